//! `tsd`, a server of one cluster, as a library: [`serve`] runs one on a listener until a
//! shutdown future completes.
//!
//! The server itself — its role, the write path, replication, imports — is the runtime's
//! [`Tsd`](tsn_server::tsd::Tsd); this module serves it over gRPC:
//!
//! * [`sns`] and [`timeline`] serve the course's `SNSService` from the master's write path
//!   ([`Master`](tsn_server::master::Master)); [`session`] TSN's keep-alives; [`request`] is
//!   what they all read from a request.
//! * [`replication`] carries the runtime's replication stream between master and slaves.
//! * The change feed ([`FeedServer`]) gives the cluster's synchronizer the committed
//!   changes of this cluster ([`Committed`](tsn_server::tsd::committed::Committed)).
//! * The health service says the master's services are served only while it is master.

mod replication;
mod request;
mod session;
mod sns;
mod timeline;

pub use replication::GrpcUpstream;
pub use tsn_server::clock::wall_clock;
pub use tsn_server::tsd::Config;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tsn_core::sync::FeedSources;
use tsn_core::{Coordinator, Error, Result, Store};
use tsn_server::tsd::Tsd;
use tsn_server::tsd::runtime::RoleThread;

use crate::feed::FeedServer;
use crate::proto::csce438::sns_service_server::SnsServiceServer;
use crate::proto::csce438::synch_service_server::SynchServiceServer;
use crate::proto::tsn::feed_server::FeedServer as FeedService;
use crate::proto::tsn::replication_server::ReplicationServer;
use crate::proto::tsn::session_server::SessionServer;
use crate::transport::{Health, serve_until, service_name, with_operator_services};

/// The response header by which a Timeline stream says it acknowledges the client's posts
/// (TSN's extension; a server of the course's design sends no acknowledgements, and a
/// client must then neither wait for them nor send a post again).
pub const ACKNOWLEDGES: &str = "tsn-acknowledges";

/// Runs a tsd on `listener` until `shutdown` completes, with `store` as its replica of the
/// cluster and the coordinator that `coordinator` makes deciding its role. `coordinator` is
/// called on the role's own thread ([`RoleThread`]): a client made there (a
/// [`CoordClient`](crate::coordinator::CoordClient), say) has its connections driven there too.
pub async fn serve<S, C, M>(
    config: Config,
    store: Arc<S>,
    coordinator: M,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()>
where
    S: Store,
    C: Coordinator + 'static,
    M: FnOnce() -> Arc<C> + Send + 'static,
{
    // Every service of a tsd is its master's: a slave refuses their calls.
    let services = vec![
        service_name::<SnsServiceServer<Tsd<S>>>(),
        service_name::<SessionServer<Tsd<S>>>(),
        service_name::<ReplicationServer<Tsd<S>>>(),
        service_name::<FeedService<FeedServer>>(),
        service_name::<SynchServiceServer<FeedServer>>(),
    ];
    let health = Health::new();
    health.set(&services, false).await;
    let tsd = Tsd::new(config, store, Arc::new(GrpcUpstream));
    let reporter = tokio::spawn(report_health(
        tsd.serving(),
        health.clone(),
        services.clone(),
    ));
    let keeper = RoleThread::start(Arc::clone(&tsd), coordinator).map_err(|e| {
        reporter.abort();
        Error::Unavailable {
            what: "the tsd's role thread".into(),
            reason: e.to_string(),
        }
    })?;
    // Its own cluster's committed changes, for the cluster's synchronizer.
    let feed: Arc<dyn FeedSources> = tsd.clone();
    let router = crate::transport::server()
        .add_service(SnsServiceServer::from_arc(Arc::clone(&tsd)))
        .add_service(SessionServer::from_arc(Arc::clone(&tsd)))
        .add_service(ReplicationServer::from_arc(Arc::clone(&tsd)))
        .add_service(FeedService::new(FeedServer::new(Arc::clone(&feed))))
        .add_service(SynchServiceServer::new(FeedServer::new(feed)));
    let router = match with_operator_services(router, &services, &health).await {
        Ok(router) => router,
        Err(error) => {
            keeper.stop().await;
            reporter.abort();
            return Err(error);
        }
    };
    let result = serve_until(router, listener, shutdown).await;
    // Ended before the role does, so that it cannot install a role after it.
    keeper.stop().await;
    tsd.stop_serving();
    reporter.abort();
    result.map_err(|e| Error::Unavailable {
        what: "the tsd's listener".into(),
        reason: e.to_string(),
    })
}

/// Tells the health service, as the server's role changes, whether `services` (the
/// master's) are served.
async fn report_health(
    mut serving: tokio::sync::watch::Receiver<bool>,
    health: Health,
    services: Vec<&'static str>,
) {
    loop {
        let now = *serving.borrow_and_update();
        health.set(&services, now).await;
        if serving.changed().await.is_err() {
            return;
        }
    }
}
