//! Channels to peers, with TSN's timeouts.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};
use tsn_core::coordinator::Endpoint;
use tsn_core::{Error, Result};

use crate::CALL_TIMEOUT;
use crate::tls::{self, Access};

/// A server's router: its services behind the [access rules](crate::tls::access).
pub type Router = tonic::transport::server::Router<Stack<Access, Identity>>;

/// How much of what its clients send a server takes in on one connection before it has
/// handled it (HTTP/2's connection window), and on one stream. A client that sends faster
/// than the server handles its posts waits on these windows, so that a server with
/// hundreds of busy connections does not hold a megabyte of unhandled posts for each (the
/// default). On loopback or a LAN, a quarter of a megabyte still carries hundreds of
/// megabytes a second per connection.
const CONNECTION_WINDOW: u32 = 256 * 1024;
const STREAM_WINDOW: u32 = 128 * 1024;

/// The builder every TSN server starts from: its services are added behind the access
/// rules.
pub fn server() -> Server<Stack<Access, Identity>> {
    Server::builder()
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .layer(Access)
}

/// A channel to `endpoint` that connects when first used: over TLS when this process has
/// [installed](crate::tls::install) TLS settings.
pub fn connect_lazy(endpoint: &tonic::transport::Endpoint) -> Channel {
    match tls::installed() {
        Some(security) => security.channel(endpoint),
        None => endpoint.connect_lazy(),
    }
}

/// Like [`connect_lazy`], to the server that is `expected`: over TLS, a server whose
/// certificate names another identity is refused.
pub fn connect_lazy_to(endpoint: &tonic::transport::Endpoint, expected: tls::Identity) -> Channel {
    match tls::installed() {
        Some(security) => security.channel_to(endpoint, expected),
        None => endpoint.connect_lazy(),
    }
}

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
    Ok(connect_lazy(&call_endpoint(endpoint)?))
}

/// What [`call_channel`] connects with: more channels like it can be made from it, each
/// driven by the runtime it is made on.
pub fn call_endpoint(endpoint: &Endpoint) -> Result<tonic::transport::Endpoint> {
    Ok(builder(endpoint)?.timeout(CALL_TIMEOUT))
}

/// A lazily connecting channel for long-lived streams between TSN's own servers: no call
/// deadline, but a connection whose peer stops answering keep-alive probes (HTTP/2 pings,
/// every second) is dropped within about two seconds.
pub fn stream_channel(endpoint: &Endpoint) -> Result<Channel> {
    Ok(connect_lazy(&stream_endpoint(endpoint)?))
}

/// What [`stream_channel`] connects with.
pub fn stream_endpoint(endpoint: &Endpoint) -> Result<tonic::transport::Endpoint> {
    Ok(builder(endpoint)?
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE)
        .keep_alive_while_idle(true))
}

/// A lazily connecting channel for a client's long-lived streams to a server that may be
/// of the course's design: no call deadline and no HTTP/2 pings. The caller finds out
/// that the server stopped answering by other means (TSN's session keep-alive calls).
pub fn client_stream_channel(endpoint: &Endpoint) -> Result<Channel> {
    builder(endpoint).map(|b| connect_lazy(&b))
}

/// What the standard gRPC health service says of a server's services: `SERVING` while a
/// service takes calls, `NOT_SERVING` while it would refuse them (a slave's `SNSService`).
/// The whole server (the empty service name) is `SERVING` while the process runs.
#[derive(Clone, Debug)]
pub struct Health(tonic_health::server::HealthReporter);

impl Health {
    /// A health service that knows of nothing yet.
    pub fn new() -> Self {
        Health(tonic_health::server::HealthReporter::new())
    }

    /// Says that each of `services` (full names such as `csce438.SNSService`) is serving,
    /// or not.
    pub async fn set(&self, services: &[&str], serving: bool) {
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for service in services {
            self.0.set_service_status(*service, status).await;
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

/// Asks the server at `endpoint`, through the standard health check, whether it serves
/// `service` now (a tsd serves `csce438.SNSService` only while it is its cluster's master).
pub async fn is_serving(endpoint: &Endpoint, service: &str) -> Result<bool> {
    let what = format!("the health service at {endpoint}");
    let mut client = tonic_health::pb::health_client::HealthClient::new(call_channel(endpoint)?);
    let request = tonic_health::pb::HealthCheckRequest {
        service: service.to_owned(),
    };
    let reply = client
        .check(request)
        .await
        .map_err(|status| crate::error::from_status(&what, status))?;
    Ok(reply.into_inner().status()
        == tonic_health::pb::health_check_response::ServingStatus::Serving)
}

/// The names reflection lists beside a server's own services.
const OPERATOR_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Adds the operators' services to `router`: the standard gRPC health service, answering
/// as `health` says (the whole server serving), and server reflection, both v1 and
/// v1alpha (older grpcurl builds ask v1alpha), listing `services` (full names such as
/// `csce438.SNSService`) and the operators' services — those the server serves, no other —
/// so that `grpcurl -plaintext HOST:PORT list` works.
pub async fn with_operator_services(
    router: Router,
    services: &[&str],
    health: &Health,
) -> Result<Router> {
    health.set(&[""], true).await;
    let reflection = || {
        services.iter().chain(&OPERATOR_SERVICES).fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::DESCRIPTORS)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, service| builder.with_service_name(*service),
        )
    };
    let unreadable = |e| Error::Invalid(format!("the protocol's descriptors are unreadable: {e}"));
    let v1 = reflection().build_v1().map_err(unreadable)?;
    let v1alpha = reflection().build_v1alpha().map_err(unreadable)?;
    let health = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(health.0.clone()),
    );
    Ok(router
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha))
}

/// The full gRPC name of the service `S` serves (`csce438.SNSService` ...).
pub fn service_name<S: NamedService>() -> &'static str {
    S::NAME
}

/// Serves `router` on `listener` until `shutdown` completes, then stops at once: open
/// streams (timelines, replication, feeds) are cut rather than waited for — their clients
/// reconnect elsewhere, and nothing acknowledged depends on them.
///
/// Connections are taken as [`tls::incoming`] takes them: over TLS when this process has
/// installed TLS settings (plaintext ones left to the access rules), and with
/// `TCP_NODELAY` set: without it, a small reply written while the previous one is
/// unacknowledged waits for the peer's delayed ACK (about 40 ms).
pub async fn serve_until(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), tonic::transport::Error> {
    let incoming = tls::incoming(listener, tls::installed().cloned());
    tokio::select! {
        served = router.serve_with_incoming(incoming) => served,
        () = shutdown => Ok(()),
    }
}
