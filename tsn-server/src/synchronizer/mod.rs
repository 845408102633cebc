//! The synchronizer's runtime: following the other clusters' synchronizers and handing
//! what they bring to this cluster's master.
//!
//! A synchronizer serves its own cluster's committed changes (a transport does that from a
//! [`SyncPeer`] standing for the cluster) and, here, [`follow_peers`]: it registers with
//! the coordinator at a fixed interval (the registration is its heartbeat), learns the
//! other clusters' synchronizers from it, and keeps one [`pull`] per other cluster, which
//! copies that cluster's changes into a [`Handover`] to this cluster's master, each
//! stretch once, resuming after what the handover holds or the cluster has merged.

mod pull;

pub use pull::pull;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tsn_core::coordinator::{Endpoint, ServerRef};
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, FolderId, Position};
use tsn_core::sync::Handover;
use tsn_core::{Coordinator, Result, SyncPeer};

/// How a synchronizer runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This synchronizer: its cluster and the address it announces.
    pub me: ServerRef,
    /// The identity of its data folder (see [`Coordinator::register_sync`]).
    pub folder: FolderId,
    /// How often it registers with the coordinator and asks for the other synchronizers.
    pub register_interval: Duration,
    /// At least this long between two reads from one other cluster (0: read as changes
    /// come; the course's synchronizers use 20 s rounds).
    pub round_interval: Duration,
}

/// Reads this cluster's committed import cursor of a cluster (see [`Links::merged`]).
pub type MergedOf = dyn Fn(ClusterId) -> (LogId, Position) + Send + Sync;
/// Opens the handover of what comes from a cluster (see [`Links::handover`]).
pub type OpenHandover = dyn Fn(ClusterId) -> Result<Box<dyn Handover>> + Send + Sync;
/// Connects to a synchronizer (see [`Links::feed`]).
pub type ConnectFeed = dyn Fn(&Endpoint) -> Result<Arc<dyn SyncPeer>> + Send + Sync;

/// What a synchronizer reaches, beside the coordinator: given by whoever runs it.
#[derive(Clone)]
pub struct Links {
    /// What this cluster has merged of another's changes: the import cursor (with its log)
    /// of the cluster's **committed** log. The next master, after any failover, resumes
    /// its import there, so a cursor a failover may still cut would lose batches.
    pub merged: Arc<MergedOf>,
    /// Opens the handover to this cluster's master of what comes from a cluster. At most
    /// one is open per cluster at a time: the previous one is dropped first.
    pub handover: Arc<OpenHandover>,
    /// Connects to another cluster's synchronizer at an address.
    pub feed: Arc<ConnectFeed>,
}

/// Registers with the coordinator at every interval and keeps one [`pull`] per other
/// cluster's synchronizer, restarting it when that synchronizer's address changes, until
/// aborted.
pub async fn follow_peers<C: Coordinator>(config: Config, links: Links, coordinator: Arc<C>) {
    let me = config.me.cluster;
    let mut pulls = Pulls::default();
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
            let current = pulls.0.get(&peer.cluster).map(|(endpoint, _)| endpoint);
            if current == Some(&peer.endpoint) {
                continue;
            }
            tracing::info!(cluster = %peer.cluster, at = %peer.endpoint, "following the synchronizer of another cluster");
            if let Some((_, old)) = pulls.0.remove(&peer.cluster) {
                // Ended before the next one opens the handover, which the old one holds.
                old.abort();
                let _ = old.await;
            }
            let task = tokio::spawn(pull(
                links.clone(),
                peer.cluster,
                peer.endpoint.clone(),
                config.round_interval,
            ));
            pulls.0.insert(peer.cluster, (peer.endpoint, task));
        }
    }
}

/// The running pulls, by cluster, with the address each reads from; ended when dropped.
#[derive(Default)]
struct Pulls(BTreeMap<ClusterId, (Endpoint, JoinHandle<()>)>);

impl Drop for Pulls {
    fn drop(&mut self) {
        for (_, task) in self.0.values() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tsn_core::coordinator::MockCoordinator;
    use tsn_core::sync::{Changes, MockHandover, UserRecord};
    use tsn_core::{Error, Result};

    use super::*;

    const INTERVAL: Duration = Duration::from_millis(200);

    /// The synchronizer of cluster `cluster`, at a port of its own.
    fn synchronizer(cluster: u32, port: u16) -> ServerRef {
        ServerRef {
            cluster: ClusterId(cluster),
            server: tsn_core::id::ServerId(cluster),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port,
            },
        }
    }

    /// A peer that never answers: a pull reading it stays on it.
    struct Silent;

    #[async_trait]
    impl SyncPeer for Silent {
        async fn users(&self) -> Result<Vec<UserRecord>> {
            std::future::pending().await
        }

        async fn changes_after(&self, _: Position, _: usize) -> Result<Changes> {
            std::future::pending().await
        }
    }

    /// What the pulls did: the addresses they connected to, the clusters whose handover
    /// they opened.
    #[derive(Default)]
    struct Seen {
        connected: Mutex<Vec<u16>>,
        opened: Mutex<Vec<u32>>,
    }

    fn links(seen: &Arc<Seen>) -> Links {
        let (on_feed, on_handover) = (Arc::clone(seen), Arc::clone(seen));
        Links {
            merged: Arc::new(|_| (LogId::UNKNOWN, Position(0))),
            handover: Arc::new(move |from| {
                on_handover.opened.lock().expect("seen").push(from.0);
                let mut handover = MockHandover::new();
                handover
                    .expect_written()
                    .return_const((LogId::UNKNOWN, Position(0)));
                Ok(Box::new(handover) as Box<dyn Handover>)
            }),
            feed: Arc::new(move |peer| {
                on_feed.connected.lock().expect("seen").push(peer.port);
                Ok(Arc::new(Silent) as Arc<dyn SyncPeer>)
            }),
        }
    }

    /// A coordinator that takes every registration and answers its `n`th question for
    /// the synchronizers with `answer(n)`.
    fn coordinator(answer: fn(usize) -> Result<Vec<ServerRef>>) -> Arc<MockCoordinator> {
        let asked = AtomicUsize::new(0);
        let mut coordinator = MockCoordinator::new();
        coordinator.expect_register_sync().returning(|_, _| Ok(3));
        coordinator
            .expect_sync_servers()
            .returning(move || answer(asked.fetch_add(1, Ordering::SeqCst)));
        Arc::new(coordinator)
    }

    fn config() -> Config {
        Config {
            me: synchronizer(1, 9001),
            folder: FolderId(1),
            register_interval: INTERVAL,
            round_interval: Duration::ZERO,
        }
    }

    /// Runs `follow_peers` for `rounds` registration intervals, then stops it.
    async fn run_for(rounds: u32, links: Links, coordinator: Arc<MockCoordinator>) {
        let running = tokio::spawn(follow_peers(config(), links, coordinator));
        tokio::time::sleep(INTERVAL * rounds).await;
        running.abort();
        let _ = running.await;
    }

    #[tokio::test(start_paused = true)]
    async fn each_other_cluster_is_followed_once_and_again_when_its_synchronizer_moves() {
        let seen = Arc::new(Seen::default());
        let coordinator = coordinator(|asked| {
            Ok(match asked {
                0..=2 => vec![synchronizer(1, 9001), synchronizer(2, 9002)],
                // Cluster 2's synchronizer restarted at another port; cluster 3's came.
                _ => vec![
                    synchronizer(1, 9001),
                    synchronizer(2, 9102),
                    synchronizer(3, 9003),
                ],
            })
        });
        run_for(10, links(&seen), coordinator).await;
        let mut connected = seen.connected.lock().expect("seen").clone();
        assert_eq!(connected.first(), Some(&9002), "cluster 2 first");
        connected.sort_unstable();
        assert_eq!(connected, [9002, 9003, 9102], "never itself, each once");
        let mut opened = seen.opened.lock().expect("seen").clone();
        opened.sort_unstable();
        assert_eq!(opened, [2, 2, 3], "one handover per pull");
    }

    #[tokio::test(start_paused = true)]
    async fn a_coordinator_that_stops_answering_leaves_the_pulls_running() {
        let seen = Arc::new(Seen::default());
        let coordinator = coordinator(|asked| match asked {
            0 => Ok(vec![synchronizer(2, 9002)]),
            _ => Err(Error::Unavailable {
                what: "the coordinator".into(),
                reason: "gone".into(),
            }),
        });
        run_for(10, links(&seen), coordinator).await;
        assert_eq!(*seen.connected.lock().expect("seen"), [9002]);
        assert_eq!(
            *seen.opened.lock().expect("seen"),
            [2],
            "the pull carried on"
        );
    }
}
