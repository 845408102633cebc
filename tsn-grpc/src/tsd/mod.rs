//! `tsd`, a server of one cluster, as a library: [`serve`] runs one on a listener until a
//! shutdown future completes.
//!
//! # How it works
//!
//! * [`heartbeat`] owns the server's [`Node`](tsn_core::failover::Node): it reports to the
//!   coordinator every heartbeat interval and carries out role changes — starting a
//!   master (`tsn_server::master`) or a [`follower`], or stopping them.
//! * As master, every client write goes through `tsn_server`'s `Master::append`: decided on the
//!   current state, appended to the store at the next position, made durable by a
//!   group-commit flusher, and replicated to the slaves by [`replication`]. A write is
//!   acknowledged, and its timeline posts published, once it is committed: durable on the
//!   master and on every in-sync slave.
//! * As master, `tsn_server::import` merges the changes of the other clusters that the cluster's
//!   synchronizer brings, through the same write path.
//! * As slave, [`follower`] copies the master's log, entry for entry, so that a promoted
//!   slave serves at once from its own store.
//! * [`sns`] and [`timeline`] serve the course's `SNSService`; [`session`] TSN's
//!   keep-alives; [`request`] is what they all read from a request.

mod follower;
mod heartbeat;
mod replication;
mod request;
mod server;
mod session;
mod sns;
mod timeline;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tsn_core::coordinator::ServerRef;
use tsn_core::id::{ClusterId, FolderId};
use tsn_core::{Coordinator, Error, Result, Store, SyncPeer};

use crate::proto::csce438::sns_service_server::SnsServiceServer;
use crate::proto::tsn::replication_server::ReplicationServer;
use crate::proto::tsn::session_server::SessionServer;
use crate::transport::{Health, serve_until, service_name, with_operator_services};

/// The response header by which a Timeline stream says it acknowledges the client's posts
/// (TSN's extension; a server of the course's design sends no acknowledgements, and a
/// client must then neither wait for them nor send a post again).
pub const ACKNOWLEDGES: &str = "tsn-acknowledges";

/// How a tsd runs.
#[derive(Clone)]
pub struct Config {
    /// This server: its cluster, id, and the address it announces.
    pub me: ServerRef,
    /// A random number picked when the process started (see
    /// [`Report::incarnation`](tsn_core::coordinator::Report::incarnation)).
    pub incarnation: u64,
    /// The identity of the data folder its replica lives in (see
    /// [`Report::folder`](tsn_core::coordinator::Report::folder)).
    pub folder: FolderId,
    /// How often it reports to the coordinator.
    pub heartbeat_interval: Duration,
    /// How long a client's session lives without a keep-alive.
    pub session_timeout: Duration,
    /// How long an in-sync slave may make no progress before the master stops waiting for
    /// it (after the coordinator confirms).
    pub replication_timeout: Duration,
    /// Where to read the changes of each other cluster from (the cluster's synchronizer
    /// leaves them there); merged while this server is master.
    pub imports: Vec<(ClusterId, Arc<dyn SyncPeer>)>,
}

/// Runs a tsd on `listener` until `shutdown` completes, with `store` as its replica of the
/// cluster and `coordinator` deciding its role.
pub async fn serve<S, C>(
    config: Config,
    store: Arc<S>,
    coordinator: Arc<C>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()>
where
    S: Store,
    C: Coordinator + 'static,
{
    // Every service of a tsd is its master's: a slave refuses their calls.
    let services = vec![
        service_name::<SnsServiceServer<server::Server<S>>>(),
        service_name::<SessionServer<server::Server<S>>>(),
        service_name::<ReplicationServer<server::Server<S>>>(),
    ];
    let health = Health::new();
    health.set(&services, false).await;
    let server = server::Server::new(config, store, health.clone(), services.clone());
    let keeper = tokio::spawn(heartbeat::run(Arc::clone(&server), coordinator));
    let router = tonic::transport::Server::builder()
        .add_service(SnsServiceServer::from_arc(Arc::clone(&server)))
        .add_service(SessionServer::from_arc(Arc::clone(&server)))
        .add_service(ReplicationServer::from_arc(Arc::clone(&server)));
    let router = match with_operator_services(router, &services, &health).await {
        Ok(router) => router,
        Err(error) => {
            keeper.abort();
            return Err(error);
        }
    };
    let result = serve_until(router, listener, shutdown).await;
    keeper.abort();
    server.stop_serving();
    result.map_err(|e| Error::Unavailable {
        what: "the tsd's listener".into(),
        reason: e.to_string(),
    })
}

pub use tsn_server::clock::wall_clock;
