//! Hostile input (SPEC.md section 9): every one gets a clear refusal or works, and every
//! process stays up.

use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tsn_grpc::proto::csce438::Reply;

use crate::support::{CourseTimeline, Deployment, eventually, request, runtime, sns_at, within};

/// A Login request whose user name field carries raw bytes, valid UTF-8 or not.
#[derive(Clone, PartialEq, prost::Message)]
struct RawLogin {
    #[prost(bytes = "vec", tag = "1")]
    username: Vec<u8>,
}

/// Sends a raw Login to the tsd at `port`.
async fn raw_login(port: u16, username: Vec<u8>) -> Result<Reply, tonic::Status> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("an address")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    within("the server to be ready", grpc.ready())
        .await
        .expect("ready");
    let path = PathAndQuery::from_static("/csce438.SNSService/Login");
    let codec = tonic_prost::ProstCodec::<RawLogin, Reply>::default();
    grpc.unary(tonic::Request::new(RawLogin { username }), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// Whether the tsd at `port` still answers a List for user 1.
async fn still_serving(port: u16) -> bool {
    let mut sns = sns_at(port).await;
    sns.list(request("1", &[])).await.is_ok()
}

#[test]
fn text_that_is_not_utf8_huge_or_empty_is_refused_and_the_server_stays_up() {
    let mut deployment = Deployment::start(3);
    let port = deployment.start_master(1);
    runtime().block_on(async {
        let mut sns = sns_at(port).await;
        sns.login(request("1", &[])).await.expect("user 1 logs in");

        let not_text = raw_login(port, b"1\xff\xfe".to_vec()).await;
        assert!(
            matches!(&not_text, Err(s) if s.message().contains("UTF-8")),
            "a name that is not UTF-8 is refused as such: {not_text:?}"
        );
        let huge = raw_login(port, vec![b'1'; 5 << 20]).await;
        assert!(
            matches!(&huge, Err(s) if s.code() == Code::ResourceExhausted || s.code() == Code::OutOfRange),
            "a 5 MB message is refused: {huge:?}"
        );
        let empty = raw_login(port, Vec::new()).await;
        assert!(matches!(&empty, Err(s) if s.code() == Code::InvalidArgument), "{empty:?}");

        let mut stream = CourseTimeline::open(&mut sns, "1").await;
        stream.post("").await;
        let ended = stream.next().await;
        assert!(
            matches!(&ended, Err(s) if s.code() == Code::InvalidArgument && s.message().contains("empty")),
            "an empty post is refused: {ended:?}"
        );
        assert!(still_serving(port).await);
    });
    assert!(deployment.server(1, 1).is_running());
}

#[test]
fn a_client_that_opens_many_streams_and_vanishes_leaves_nothing_behind() {
    let mut deployment = Deployment::start(3);
    let port = deployment.start_master(1);
    let pid = deployment.server(1, 1).pid();
    let open_files = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let before = open_files();
    // A client with 200 connections, each with an open Timeline stream, that then vanishes
    // with all of them (its runtime is dropped without closing anything).
    let vanishing = runtime();
    vanishing.block_on(async {
        let mut sns = sns_at(port).await;
        sns.login(request("1", &[])).await.expect("user 1 logs in");
        let mut streams = Vec::new();
        for _ in 0..200 {
            let mut sns = sns_at(port).await;
            streams.push(CourseTimeline::open(&mut sns, "1").await);
        }
        std::mem::forget(streams);
    });
    drop(vanishing);
    eventually("the tsd to close the vanished client's connections", || {
        (open_files() <= before + 5).then_some(())
    });
    assert!(runtime().block_on(still_serving(port)));
}

#[test]
fn a_thousand_clients_connecting_at_once_are_all_served() {
    let mut deployment = Deployment::start(3);
    let port = deployment.start_master(1);
    let served = runtime().block_on(async {
        let clients = (0..1000u32).map(|n| {
            tokio::spawn(async move {
                let user = (1 + 3 * n).to_string();
                let mut sns =
                    tsn_grpc::proto::csce438::sns_service_client::SnsServiceClient::connect(
                        format!("http://127.0.0.1:{port}"),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                sns.login(request(&user, &[]))
                    .await
                    .map_err(|e| e.to_string())?;
                sns.list(request(&user, &[]))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        });
        let results = within("a thousand clients", futures::future::join_all(clients)).await;
        results
            .into_iter()
            .map(|r| r.expect("a client task"))
            .collect::<Vec<_>>()
    });
    let failures: std::collections::BTreeSet<&String> =
        served.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "every client was served; {} were not, for: {failures:?}\nthe tsd logged:\n{}",
        served.iter().filter(|r| r.is_err()).count(),
        deployment.server(1, 1).stderr()
    );
    assert!(deployment.server(1, 1).is_running());
    assert!(runtime().block_on(still_serving(port)));
}
