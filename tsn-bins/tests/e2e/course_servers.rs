//! TSN's `tsc` against servers of the course's design (SPEC.md sections 3 and 4): a
//! coordinator and a tsd that speak only the generated course stubs and behave as a C++
//! build of the course's design does — `GetServer` leaves `clusterID` empty, the Timeline
//! stream sends no acknowledgements, `tsn.Session` is not served, and the connections are
//! watched for HTTP/2 pings, which gRPC's default policy allows only every five minutes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tsn_grpc::proto::csce438::coord_service_server::{CoordService, CoordServiceServer};
use tsn_grpc::proto::csce438::sns_service_server::{SnsService, SnsServiceServer};
use tsn_grpc::proto::csce438::{
    AllSyncServers, Confirmation, Empty, Id, ListReply, Message, Reply, Request as SnsRequest,
    ServerInfo,
};

use crate::support::{PATIENCE, Proc, eventually, runtime};

/// What the course's tsd saw.
#[derive(Default)]
struct Seen {
    /// The texts posted, in the order they came, over every stream.
    posts: Mutex<Vec<String>>,
    /// Timeline streams opened.
    streams: AtomicUsize,
}

/// A tsd of the course's design: it ends the first Timeline stream after its first post
/// (as a restarted server would), and acknowledges nothing.
struct CourseTsd {
    seen: Arc<Seen>,
}

#[tonic::async_trait]
impl SnsService for CourseTsd {
    async fn login(&self, _: Request<SnsRequest>) -> Result<Response<Reply>, Status> {
        Ok(Response::new(Reply {
            msg: "Login Successful!".into(),
        }))
    }

    async fn list(&self, request: Request<SnsRequest>) -> Result<Response<ListReply>, Status> {
        Ok(Response::new(ListReply {
            all_users: vec![request.into_inner().username],
            followers: Vec::new(),
        }))
    }

    async fn follow(&self, _: Request<SnsRequest>) -> Result<Response<Reply>, Status> {
        Ok(Response::new(Reply {
            msg: "unknown follower username".into(),
        }))
    }

    async fn un_follow(&self, _: Request<SnsRequest>) -> Result<Response<Reply>, Status> {
        Ok(Response::new(Reply {
            msg: "Unknown follower".into(),
        }))
    }

    type TimelineStream = ReceiverStream<Result<Message, Status>>;

    async fn timeline(
        &self,
        request: Request<Streaming<Message>>,
    ) -> Result<Response<Self::TimelineStream>, Status> {
        let mut inbound = request.into_inner();
        let first_stream = self.seen.streams.fetch_add(1, Ordering::SeqCst) == 0;
        let seen = Arc::clone(&self.seen);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let _tx = tx;
            while let Ok(Some(message)) = inbound.message().await {
                if message.msg == "Set Stream" {
                    continue;
                }
                seen.posts.lock().unwrap().push(message.msg);
                if first_stream {
                    return; // ends the stream: the client must find its server again
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A coordinator of the course's design, naming the tsd at `tsd_port` for every user.
struct CourseCoordinator {
    tsd_port: u16,
}

#[tonic::async_trait]
impl CoordService for CourseCoordinator {
    async fn heartbeat(&self, _: Request<ServerInfo>) -> Result<Response<Confirmation>, Status> {
        Err(Status::unimplemented("no servers here"))
    }

    async fn get_server(&self, _: Request<Id>) -> Result<Response<ServerInfo>, Status> {
        Ok(Response::new(ServerInfo {
            server_id: 1,
            hostname: "127.0.0.1".into(),
            port: self.tsd_port.to_string(),
            r#type: "master".into(),
            ..Default::default() // clusterID: the course's coordinator never sets it
        }))
    }

    async fn get_sync_servers(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<AllSyncServers>, Status> {
        Err(Status::unimplemented("no synchronizers here"))
    }

    async fn register_sync_server(
        &self,
        _: Request<ServerInfo>,
    ) -> Result<Response<Confirmation>, Status> {
        Err(Status::unimplemented("no synchronizers here"))
    }
}

/// A listener on a free loopback port.
async fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("a free port")
}

fn port_of(listener: &TcpListener) -> u16 {
    listener.local_addr().expect("an address").port()
}

/// Forwards every connection to `listener` to `target`, counting the HTTP/2 PING frames
/// (not acknowledgements) that clients send.
async fn ping_counter(listener: TcpListener, target: u16, pings: Arc<AtomicUsize>) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
            continue;
        };
        let (mut from_client, mut to_server) = (client, server);
        let pings = Arc::clone(&pings);
        tokio::spawn(async move {
            let (mut client_read, mut client_write) = from_client.split();
            let (mut server_read, mut server_write) = to_server.split();
            let upstream = async {
                let mut frames = FrameCounter::default();
                let mut buf = [0; 16384];
                while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                    pings.fetch_add(frames.pings_in(&buf[..n]), Ordering::SeqCst);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = server_write.shutdown().await;
            };
            let downstream = async {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                let _ = client_write.shutdown().await;
            };
            tokio::join!(upstream, downstream);
        });
    }
}

/// Reads a client's side of an HTTP/2 connection: the preface, then frames.
#[derive(Default)]
struct FrameCounter {
    pending: Vec<u8>,
    past_preface: bool,
}

impl FrameCounter {
    const PREFACE: usize = 24;
    const PING: u8 = 0x6;
    const ACK: u8 = 0x1;

    /// Takes the next bytes; returns how many PING frames (not acknowledgements) they end.
    fn pings_in(&mut self, bytes: &[u8]) -> usize {
        self.pending.extend_from_slice(bytes);
        if !self.past_preface {
            if self.pending.len() < Self::PREFACE {
                return 0;
            }
            self.pending.drain(..Self::PREFACE);
            self.past_preface = true;
        }
        let mut pings = 0;
        while self.pending.len() >= 9 {
            let len = u32::from_be_bytes([0, self.pending[0], self.pending[1], self.pending[2]]);
            let whole = 9 + len as usize;
            if self.pending.len() < whole {
                break;
            }
            if self.pending[3] == Self::PING && self.pending[4] & Self::ACK == 0 {
                pings += 1;
            }
            self.pending.drain(..whole);
        }
        pings
    }
}

/// How long the client is watched for HTTP/2 pings while it sits in its timeline. An
/// absence can only be watched for a while: three intervals of the pings TSN's client
/// used to send.
const WATCHED: Duration = Duration::from_secs(3);

#[test]
fn tsc_works_with_a_coordinator_and_a_tsd_of_the_course_design() {
    let runtime = runtime();
    let seen = Arc::new(Seen::default());
    let pings = Arc::new(AtomicUsize::new(0));
    let coordinator_port = runtime.block_on(async {
        let tsd = free_listener().await;
        let tsd_port = port_of(&tsd);
        let service = SnsServiceServer::new(CourseTsd {
            seen: Arc::clone(&seen),
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(tsd)),
        );
        let front = free_listener().await;
        let front_port = port_of(&front);
        tokio::spawn(ping_counter(front, tsd_port, Arc::clone(&pings)));

        let coordinator = free_listener().await;
        let coordinator_port = port_of(&coordinator);
        let service = CoordServiceServer::new(CourseCoordinator {
            tsd_port: front_port,
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(coordinator)),
        );
        let front = free_listener().await;
        let front_port = port_of(&front);
        tokio::spawn(ping_counter(front, coordinator_port, Arc::clone(&pings)));
        front_port
    });

    let mut u1 = Proc::start(
        "tsc",
        &[
            "-k".into(),
            coordinator_port.to_string(),
            "-u".into(),
            "1".into(),
        ],
    );
    assert!(
        u1.wait_for_or_exit("Cmd> "),
        "tsc starts though GetServer names no cluster: {u1:?}"
    );
    u1.command("LIST", "All users: 1\n");
    u1.command("FOLLOW 2", "Command failed with invalid username\n");
    u1.enter_timeline();
    u1.send("one");
    eventually("the client to find its server again", || {
        (seen.streams.load(Ordering::SeqCst) == 2).then_some(())
    });
    std::thread::sleep(WATCHED);
    u1.send("two");
    u1.send("three");
    u1.close_stdin();
    let status = u1.wait_exit_within(PATIENCE);
    assert!(
        status.success(),
        "without acknowledgements, the client leaves at the end of input: {u1:?}"
    );
    assert_eq!(
        *seen.posts.lock().unwrap(),
        ["one", "two", "three"],
        "each post sent once, none again after the reconnection"
    );
    assert_eq!(
        pings.load(Ordering::SeqCst),
        0,
        "no HTTP/2 pings, which a server on gRPC's defaults answers with GOAWAY"
    );
    assert_eq!(
        u1.stdout().matches("Now you are in the timeline").count(),
        1,
        "{u1:?}"
    );
}
