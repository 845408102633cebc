//! The course's protocol spoken directly, as a course client or server would.

use std::future::Future;
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};
use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
use tsn_grpc::proto::csce438::sns_service_client::SnsServiceClient;
use tsn_grpc::proto::csce438::{Id, Message, Request};

use super::*;

/// A tokio runtime for tests that make gRPC calls themselves. The harness's blocking
/// functions (starting processes, waiting for output) belong outside its `block_on`.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Awaits `future`, or panics after `PATIENCE` with `what`.
pub(crate) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A client of the course's `SNSService`.
pub(crate) type Sns = SnsServiceClient<Channel>;

/// A client of the course's `SNSService` at the tsd on `port`.
pub(crate) async fn sns_at(port: u16) -> Sns {
    within(
        &format!("a connection to the tsd on port {port}"),
        SnsServiceClient::connect(format!("http://127.0.0.1:{port}")),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to the tsd on port {port}: {e}"))
}

/// A client of the course's `CoordService` at the coordinator on `port`.
pub(crate) async fn coordinator_at(port: u16) -> CoordServiceClient<Channel> {
    within(
        &format!("a connection to the coordinator on port {port}"),
        CoordServiceClient::connect(format!("http://127.0.0.1:{port}")),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to the coordinator on port {port}: {e}"))
}

/// A course `Request`: a user name and arguments, no session.
pub(crate) fn request(user: &str, arguments: &[&str]) -> Request {
    Request {
        username: user.to_owned(),
        arguments: arguments.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

/// `GetServer(ID{id})` at the coordinator on `port`.
pub(crate) async fn get_server(
    port: u16,
    id: i32,
) -> Result<tsn_grpc::proto::csce438::ServerInfo, Status> {
    let mut coordinator = coordinator_at(port).await;
    within("GetServer", coordinator.get_server(Id { id }))
        .await
        .map(tonic::Response::into_inner)
}

/// A course `Message` from `user` with `text`, stamped now, with none of TSN's fields.
pub(crate) fn course_message(user: &str, text: &str) -> Message {
    let mut message = Message {
        username: user.to_owned(),
        msg: text.to_owned(),
        timestamp: Some(Default::default()),
        ..Default::default()
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    if let Some(stamp) = message.timestamp.as_mut() {
        stamp.seconds = now.as_secs() as i64;
        stamp.nanos = now.subsec_nanos() as i32;
    }
    message
}

/// A Timeline stream opened as the course's client opens it: a first message `Set Stream`
/// naming the user, no session, no post ids.
pub(crate) struct CourseTimeline {
    user: String,
    outbound: mpsc::Sender<Message>,
    inbound: Streaming<Message>,
}

impl CourseTimeline {
    /// Opens `user`'s Timeline stream through `client`.
    pub(crate) async fn open(client: &mut Sns, user: &str) -> Self {
        let (outbound, requests) = mpsc::channel(16);
        outbound
            .send(course_message(user, "Set Stream"))
            .await
            .expect("the request stream is open");
        let inbound = within(
            &format!("user {user}'s Timeline stream to open"),
            client.timeline(ReceiverStream::new(requests)),
        )
        .await
        .unwrap_or_else(|e| panic!("user {user}'s Timeline stream was refused: {e}"))
        .into_inner();
        CourseTimeline {
            user: user.to_owned(),
            outbound,
            inbound,
        }
    }

    /// Posts `text` as the stream's user.
    pub(crate) async fn post(&self, text: &str) {
        let user = self.user.clone();
        self.send_as(&user, text).await;
    }

    /// Sends a message that claims to be from `user`.
    pub(crate) async fn send_as(&self, user: &str, text: &str) {
        // A stream the server has ended takes no more; what it said comes from `next`.
        let _ = self.outbound.send(course_message(user, text)).await;
    }

    /// The next message from the server: `Ok(None)` when the stream ended cleanly, `Err`
    /// with the status that ended it otherwise.
    pub(crate) async fn next(&mut self) -> Result<Option<Message>, Status> {
        let what = format!("a message on user {}'s Timeline stream", self.user);
        within(&what, self.inbound.message()).await
    }

    /// The next post from the server; panics if the stream ended instead.
    pub(crate) async fn next_post(&mut self) -> Message {
        match self.next().await {
            Ok(Some(message)) => message,
            other => panic!(
                "user {}'s Timeline stream ended instead of bringing a post: {other:?}",
                self.user
            ),
        }
    }
}

/// A heartbeat as the course's stubs send one, with no credentials and no TSN fields but
/// the epoch: server `server` of `cluster`, at an address where nothing listens
/// (127.0.0.1:1), reporting `role` (`new`, `master`, `slave`) at `epoch`.
pub(crate) fn stub_heartbeat(
    cluster: u32,
    server: i32,
    role: &str,
    epoch: u64,
) -> tsn_grpc::proto::csce438::ServerInfo {
    tsn_grpc::proto::csce438::ServerInfo {
        server_id: server,
        hostname: "127.0.0.1".into(),
        port: "1".into(),
        r#type: role.into(),
        cluster_id: cluster.to_string(),
        epoch,
        ..Default::default()
    }
}
