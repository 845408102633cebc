//! Channels to peers, with TSN's timeouts.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::{Router, TcpIncoming};

use tonic::transport::Channel;
use tsn_core::coordinator::Endpoint;
use tsn_core::{Error, Result};

use crate::CALL_TIMEOUT;

/// How often an idle stream's connection is probed, and how long a probe may go unanswered
/// before the connection counts as dead.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// A channel's settings, without HTTP/2 pings: a server built on gRPC's defaults (the
/// course's) answers pings more often than every five minutes with GOAWAY
/// `too_many_pings`.
fn builder(endpoint: &Endpoint) -> Result<tonic::transport::Endpoint> {
    let uri = format!("http://{endpoint}");
    Ok(tonic::transport::Endpoint::from_shared(uri)
        .map_err(|e| Error::Invalid(format!("'{endpoint}' is not a valid address: {e}")))?
        .connect_timeout(CALL_TIMEOUT)
        .tcp_nodelay(true))
}

/// A lazily connecting channel for short calls: each call fails after
/// [`CALL_TIMEOUT`](crate::CALL_TIMEOUT). It sends no HTTP/2 pings.
pub fn call_channel(endpoint: &Endpoint) -> Result<Channel> {
    Ok(builder(endpoint)?.timeout(CALL_TIMEOUT).connect_lazy())
}

/// A lazily connecting channel for long-lived streams between TSN's own servers: no call
/// deadline, but a connection whose peer stops answering keep-alive probes (HTTP/2 pings,
/// every second) is dropped within about two seconds.
pub fn stream_channel(endpoint: &Endpoint) -> Result<Channel> {
    Ok(builder(endpoint)?
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// A lazily connecting channel for a client's long-lived streams to a server that may be
/// of the course's design: no call deadline and no HTTP/2 pings. The caller finds out
/// that the server stopped answering by other means (TSN's session keep-alive calls).
pub fn client_stream_channel(endpoint: &Endpoint) -> Result<Channel> {
    builder(endpoint).map(|b| b.connect_lazy())
}

/// Adds the operators' services to `router`: the standard gRPC health service, with the
/// whole server and each of `services` (full names such as `csce438.SNSService`) reported
/// serving, and server reflection over every TSN and course service (so that
/// `grpcurl -plaintext HOST:PORT list` works).
pub async fn with_operator_services(router: Router, services: &[&str]) -> Result<Router> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in std::iter::once(&"").chain(services) {
        reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::DESCRIPTORS)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Invalid(format!("the protocol's descriptors are unreadable: {e}")))?;
    Ok(router.add_service(health).add_service(reflection))
}

/// The full gRPC name of the service `S` serves (`csce438.SNSService` ...).
pub fn service_name<S: NamedService>() -> &'static str {
    S::NAME
}

/// Serves `router` on `listener` until `shutdown` completes, then stops at once: open
/// streams (timelines, replication, feeds) are cut rather than waited for — their clients
/// reconnect elsewhere, and nothing acknowledged depends on them.
///
/// Accepted connections have `TCP_NODELAY` set: without it, a small reply written while
/// the previous one is unacknowledged waits for the peer's delayed ACK (about 40 ms).
/// (The server builder's own `tcp_nodelay` applies only to listeners tonic binds itself.)
pub async fn serve_until(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), tonic::transport::Error> {
    tokio::select! {
        served = router.serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true))) => served,
        () = shutdown => Ok(()),
    }
}
