//! The synchronizer, as a library: [`run`] serves one cluster until a shutdown future
//! completes.
//!
//! * [`LocalCluster`] reads the cluster's master's log (through the shared data folder)
//!   and serves its committed changes to the other clusters' synchronizers, through
//!   `tsn-grpc`'s `FeedServer`, and its users to the course's synchronizers.
//! * [`pull`] reads each other cluster's synchronizer and writes what it brings into this
//!   cluster's inbox, where the master merges it.
//! * The synchronizer registers with the coordinator at a fixed interval (the registration
//!   is its heartbeat) and learns the other synchronizers from it, following them as they
//!   come, go and come back.

mod local;
mod pull;

pub use local::LocalCluster;
pub use pull::{Inbox, pull};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tsn_core::Coordinator;
use tsn_core::coordinator::{Endpoint, ServerRef};
use tsn_core::id::{ClusterId, FolderId, Membership};

use crate::cli::Fatal;

/// How a synchronizer runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This synchronizer: its cluster and the address it announces.
    pub me: ServerRef,
    /// The identity of its data folder (see [`Coordinator::register_sync`]).
    pub folder: FolderId,
    /// The deployment's data folder, shared with the cluster's servers.
    pub data_dir: PathBuf,
    /// How often it registers with the coordinator and asks for the other synchronizers.
    pub register_interval: Duration,
    /// How often it looks at files when no change notification came.
    pub poll_interval: Duration,
    /// At least this long between two reads from one other cluster (0: read as changes
    /// come; the course's synchronizers use 20 s rounds).
    pub round_interval: Duration,
    /// The size past which an inbox file is started afresh once the cluster has merged it
    /// all ([`tsn_fs::INBOX_COMPACT_LIMIT`] by default).
    pub inbox_compact_limit: u64,
}

/// Runs the synchronizer of `config.me.cluster` with `clusters` clusters in all.
pub async fn run<C: Coordinator + 'static>(
    config: Config,
    clusters: u32,
    coordinator: Arc<C>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Fatal> {
    let me = config.me.cluster;
    let local = Arc::new(LocalCluster::new(Membership {
        cluster: me,
        clusters,
    }));
    let cluster_dir = tsn_fs::cluster_dir(&config.data_dir, me);
    let follower = tokio::spawn({
        let local = Arc::clone(&local);
        let poll = config.poll_interval;
        async move { local.follow(cluster_dir, poll).await }
    });
    let peers = tokio::spawn(keep_peers(config.clone(), Arc::clone(&local), coordinator));
    let served = tsn_grpc::sync::serve(Arc::clone(&local), listener, shutdown).await;
    follower.abort();
    peers.abort();
    served.map_err(|e| Fatal::new("the synchronizer stopped", e))
}

/// Registers with the coordinator at every interval and keeps one pull task per other
/// cluster's synchronizer, restarting it when that synchronizer's address changes.
async fn keep_peers<C: Coordinator>(config: Config, local: Arc<LocalCluster>, coordinator: Arc<C>) {
    let me = config.me.cluster;
    let inbox = Inbox {
        dir: tsn_fs::inbox_dir(&config.data_dir, me),
        compact_limit: config.inbox_compact_limit,
    };
    let mut pulls: BTreeMap<ClusterId, (Endpoint, JoinHandle<()>)> = BTreeMap::new();
    let mut interval = tokio::time::interval(config.register_interval);
    let mut reachable = true;
    loop {
        interval.tick().await;
        let answer = async {
            coordinator
                .register_sync(config.me.clone(), config.folder)
                .await?;
            coordinator.sync_servers().await
        };
        let others = match answer.await {
            Ok(servers) => {
                if !reachable {
                    tracing::info!("the coordinator answers again");
                    reachable = true;
                }
                servers
            }
            Err(error) => {
                if reachable {
                    tracing::warn!(%error, "the coordinator did not take this synchronizer's registration; carrying on with the synchronizers known");
                    reachable = false;
                }
                continue;
            }
        };
        for peer in others.into_iter().filter(|s| s.cluster != me) {
            let current = pulls.get(&peer.cluster).map(|(endpoint, _)| endpoint);
            if current == Some(&peer.endpoint) {
                continue;
            }
            tracing::info!(cluster = %peer.cluster, at = %peer.endpoint, "following the synchronizer of another cluster");
            if let Some((_, old)) = pulls.remove(&peer.cluster) {
                // Ended before the next one opens the inbox file, which the old one locks.
                old.abort();
                let _ = old.await;
            }
            let task = tokio::spawn(pull(
                Arc::clone(&local),
                me,
                peer.cluster,
                peer.endpoint.clone(),
                inbox.clone(),
                config.round_interval,
            ));
            pulls.insert(peer.cluster, (peer.endpoint, task));
        }
    }
}
