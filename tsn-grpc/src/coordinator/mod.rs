//! The coordinator over gRPC: [`CoordServer`] serves `CoordService` from any
//! [`tsn_core::Coordinator`], and [`CoordClient`] is a [`tsn_core::Coordinator`] that calls
//! one over the network; [`EtcdBoard`] is the board coordinators share on etcd.

mod client;
mod etcd_board;
mod probe;
mod server;

pub use client::CoordClient;
pub use etcd_board::EtcdBoard;
pub use server::CoordServer;

/// Metadata key marking a `GetServer` answer of `UNAVAILABLE` that means "the cluster has
/// no live master" rather than "the coordinator could not be reached".
const NO_MASTER: &str = "tsn-no-master";

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tsn_core::coordinator::RoleChange;
use tsn_core::{Error, Result};
use tsn_server::coordinator::Ticking;

use crate::proto::csce438::coord_service_server::CoordServiceServer;
use crate::transport::{Health, serve_until, service_name, with_operator_services};

/// Serves `coordinator` on `listener` until `shutdown` completes, checking for failed
/// masters ten times per failure timeout (and checking on late ones, see [`probe`]) and
/// logging every role change.
pub async fn serve<C: Ticking + 'static>(
    coordinator: Arc<C>,
    listener: TcpListener,
    failure_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let ticker = tokio::spawn({
        let coordinator = Arc::clone(&coordinator);
        async move {
            let mut interval =
                tokio::time::interval((failure_timeout / 10).max(Duration::from_millis(10)));
            let mut prober = probe::Prober::new(failure_timeout);
            loop {
                interval.tick().await;
                for change in coordinator.tick().await {
                    log_change(&change);
                }
                prober.check_on_late(&coordinator);
            }
        }
    });
    let service = CoordServiceServer::new(CoordServer::new(coordinator));
    let router = crate::transport::server().add_service(service);
    let services = [service_name::<CoordServiceServer<CoordServer<C>>>()];
    let health = Health::new();
    health.set(&services, true).await;
    let router = with_operator_services(router, &services, &health).await?;
    let result = serve_until(router, listener, shutdown).await;
    ticker.abort();
    result.map_err(|e| Error::Unavailable {
        what: "the coordinator's listener".into(),
        reason: e.to_string(),
    })
}

/// Logs a role change the coordinator decided.
fn log_change(change: &RoleChange) {
    match change {
        RoleChange::MasterLost { cluster, server } => {
            tracing::warn!(%cluster, %server, "master lost; it no longer counts")
        }
        RoleChange::Promoted {
            cluster,
            server,
            epoch,
        } => {
            tracing::info!(%cluster, %server, %epoch, "new master")
        }
        RoleChange::InSync { cluster, servers } => {
            let servers: Vec<u32> = servers.iter().map(|s| s.0).collect();
            tracing::info!(%cluster, ?servers, "in-sync set")
        }
    }
}
