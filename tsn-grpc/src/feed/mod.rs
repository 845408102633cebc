//! Synchronization between clusters over gRPC: [`FeedServer`] serves a cluster's changes
//! (TSN's `Feed`) and its users (the course's `SynchService`) from any
//! [`FeedSources`] — a master's, a synchronizer's — and [`serve`] runs both, with the
//! operators' services, as a synchronizer; [`FeedClient`] is a [`tsn_core::SyncPeer`]
//! that reads a server's feed.

mod client;
mod server;

pub use client::FeedClient;
pub use server::FeedServer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tsn_core::sync::FeedSources;
use tsn_core::{Error, Result};

use crate::proto::csce438::synch_service_server::SynchServiceServer;
use crate::proto::tsn::feed_server::FeedServer as FeedService;
use crate::transport::{Health, serve_until, service_name, with_operator_services};

/// How many entries a feed batch carries at most.
pub const FEED_BATCH: usize = 1024;

/// How long an idle feed waits before a cursor-only batch is worth sending: one is sent
/// when positions that carry nothing for the reader pile up, so its cursor keeps up.
pub const CURSOR_ONLY_EVERY: u64 = tsn_core::sync::IMPORT_LAG;

/// How long `FeedClient::changes_after` waits for news before answering with nothing.
pub const LONG_POLL: Duration = Duration::from_secs(1);

/// Serves a synchronizer's `Feed` and `SynchService` from `sources`, with the operators'
/// services, on `listener` until `shutdown` completes.
pub async fn serve(
    sources: Arc<dyn FeedSources>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let router = crate::transport::server()
        .add_service(FeedService::new(FeedServer::new(Arc::clone(&sources))))
        .add_service(SynchServiceServer::new(FeedServer::new(sources)));
    let services = [
        service_name::<FeedService<FeedServer>>(),
        service_name::<SynchServiceServer<FeedServer>>(),
    ];
    let health = Health::new();
    health.set(&services, true).await;
    let router = with_operator_services(router, &services, &health).await?;
    serve_until(router, listener, shutdown)
        .await
        .map_err(|e| Error::Unavailable {
            what: "the synchronizer's listener".into(),
            reason: e.to_string(),
        })
}
