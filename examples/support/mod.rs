//! What the examples that run servers on loopback share: starting a coordinator and a tsd
//! in tasks of this process, logging a client in, and waiting with a deadline.
//!
//! (Not an example of its own: cargo builds `examples/*.rs`, and each of those that needs
//! this includes it with `#[path = "support/mod.rs"] mod support;`.)

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tsn_core::coordinator::{Endpoint, RegistryConfig, ServerRef};
use tsn_core::id::{ClusterId, FolderId, ServerId, UserId};
use tsn_core::{Coordinator, Store};
use tsn_grpc::client::{CallError, SnsClient, TimelineConn, TimelineEvent};
use tsn_grpc::coordinator::CoordClient;
use tsn_grpc::tsd;
use tsn_server::coordinator::Local;

pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// A server running in a task of this process.
pub(crate) type Task = JoinHandle<tsn_core::Result<()>>;

/// How long anything an example waits for may take before it gives up.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// How long the coordinator waits for a heartbeat; it also listens that long after it
/// starts before it elects the first master.
const FAILURE_TIMEOUT: Duration = Duration::from_millis(300);

/// Serves a coordinator of one cluster on a free loopback port until `stopped` fires.
pub(crate) async fn start_coordinator(stopped: watch::Receiver<()>) -> Result<(Endpoint, Task)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = loopback(&listener)?;
    let coordinator = Arc::new(Local::new(RegistryConfig {
        clusters: 1,
        failure_timeout: FAILURE_TIMEOUT,
    }));
    let serve =
        tsn_grpc::coordinator::serve(coordinator, listener, FAILURE_TIMEOUT, until(stopped));
    println!("coordinator at {endpoint}");
    Ok((endpoint, tokio::spawn(serve)))
}

/// Serves `store` as server `id` of cluster 1, on a free loopback port, until `stopped`
/// fires.
pub(crate) async fn start_tsd(
    store: Arc<impl Store>,
    id: u32,
    coordinator: &Endpoint,
    stopped: watch::Receiver<()>,
) -> Result<Task> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let me = ServerRef {
        cluster: ClusterId(1),
        server: ServerId(id),
        endpoint: loopback(&listener)?,
    };
    println!("tsd {id} at {}", me.endpoint);
    let config = tsd::Config {
        me,
        incarnation: std::process::id().into(),
        folder: FolderId(id.into()), // each tsd's store is its own
        heartbeat_interval: Duration::from_millis(50),
        session_timeout: Duration::from_secs(10),
        replication_timeout: Duration::from_secs(1),
        imports: Vec::new(), // one cluster: nothing to import from others
    };
    let coordinator = Arc::new(CoordClient::new(std::slice::from_ref(coordinator))?);
    let reporting = move || Arc::new(coordinator.with_own_connections());
    let serve = tsd::serve(config, store, reporting, listener, until(stopped));
    Ok(tokio::spawn(serve))
}

/// A client of `user`, logged in at the server the coordinator names. Retries, up to the
/// deadline, while there is no master yet: the coordinator elects one a failure timeout
/// after it starts, and the server learns it on its next heartbeat.
pub(crate) async fn log_in(coordinator: &CoordClient, user: u32) -> Result<SnsClient> {
    let user = UserId::new(user).ok_or("not a user id")?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(master)) = coordinator.server_for(user).await {
            // A client sends a session token of its own: a user has one live session.
            let client = SnsClient::new(master.endpoint, user, format!("example-{user}"))?;
            match client.login().await {
                Ok(reply) => {
                    println!("[user {user}] LOGIN at {}: {reply:?}", client.endpoint());
                    return Ok(client);
                }
                Err(CallError::Unreachable(_)) => {} // not master yet: ask again
                Err(error) => return Err(error.into()),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no master served user {user} in time").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next event of a timeline stream, within the deadline.
pub(crate) async fn next_event(stream: &mut TimelineConn) -> Result<TimelineEvent> {
    let event = tokio::time::timeout(DEADLINE, stream.next()).await??;
    Ok(event.ok_or("the timeline stream ended")?)
}

/// Completes when `stopped`'s sender sends or goes.
async fn until(mut stopped: watch::Receiver<()>) {
    let _ = stopped.changed().await;
}

fn loopback(listener: &TcpListener) -> Result<Endpoint> {
    let port = listener.local_addr()?.port();
    let host = "127.0.0.1".into();
    Ok(Endpoint { host, port })
}
