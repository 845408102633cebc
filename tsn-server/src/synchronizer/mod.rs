//! The synchronizer's runtime: a relay that holds nothing.
//!
//! A synchronizer serves two kinds of subscription on its change feed ([`Relay`]): the
//! other clusters' synchronizers read its own cluster's committed changes, which it reads
//! in turn from its cluster's master; and its own master reads, through it, each other
//! cluster's changes, which it reads from that cluster's synchronizer. Every reader finds
//! the process it reads through the coordinator ([`Routed`]), so a synchronizer follows
//! its master across a failover, and may run on any host. It keeps no data: where each
//! import stands is recorded in the importing master's log (the one truth), and a
//! synchronizer restarted anywhere, on an empty folder, carries on from there.
//!
//! [`keep_registered`] registers it with the coordinator at a fixed interval (the
//! registration is its heartbeat).

use std::sync::Arc;
use std::time::Duration;

use tsn_core::coordinator::ServerRef;
use tsn_core::id::{ClusterId, FolderId};
use tsn_core::sync::{FeedSources, SyncPeer};
use tsn_core::{Coordinator, Error, Result};

use crate::routed::{ConnectFeed, Routed, Target};

/// How a synchronizer runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This synchronizer: its cluster and the address it announces.
    pub me: ServerRef,
    /// The identity of its data folder (see [`Coordinator::register_sync`]).
    pub folder: FolderId,
    /// How many clusters the deployment has.
    pub clusters: u32,
    /// How often it registers with the coordinator.
    pub register_interval: Duration,
    /// At least this long between two reads from one other cluster (0: read as changes
    /// come; the course's synchronizers use 20 s rounds).
    pub round_interval: Duration,
}

/// A synchronizer's change feed: its own cluster's committed changes, read from the
/// cluster's master, and each other cluster's, read from that cluster's synchronizer.
pub struct Relay {
    config: Config,
    coordinator: Arc<dyn Coordinator>,
    connect: Arc<ConnectFeed>,
}

impl Relay {
    /// The relay of `config.me.cluster`, finding the processes it reads through
    /// `coordinator` and opening their feeds with `connect`.
    pub fn new(
        config: Config,
        coordinator: Arc<dyn Coordinator>,
        connect: Arc<ConnectFeed>,
    ) -> Self {
        Relay {
            config,
            coordinator,
            connect,
        }
    }
}

impl FeedSources for Relay {
    fn cluster(&self) -> ClusterId {
        self.config.me.cluster
    }

    fn reader(&self, source: ClusterId) -> Result<Arc<dyn SyncPeer>> {
        let me = self.cluster();
        let routed = |target| {
            Routed::new(
                Arc::clone(&self.coordinator),
                target,
                source,
                Arc::clone(&self.connect),
            )
        };
        if source == me {
            Ok(Arc::new(routed(Target::MasterOf(me))))
        } else if (1..=self.config.clusters).contains(&source.0) {
            let relayed = routed(Target::SynchronizerOf(source));
            Ok(Arc::new(relayed.with_round(self.config.round_interval)))
        } else {
            Err(Error::Invalid(format!(
                "cluster {source} does not exist: the deployment has clusters 1 to {}",
                self.config.clusters
            )))
        }
    }
}

/// Registers with the coordinator at every interval, until aborted; says so once when the
/// coordinator stops taking the registration, and once when it takes it again.
pub async fn keep_registered<C: Coordinator + ?Sized>(config: Config, coordinator: Arc<C>) {
    let mut interval = tokio::time::interval(config.register_interval);
    let mut reachable = true;
    loop {
        interval.tick().await;
        match coordinator
            .register_sync(config.me.clone(), config.folder)
            .await
        {
            Ok(_) if !reachable => {
                tracing::info!("the coordinator answers again");
                reachable = true;
            }
            Ok(_) => {}
            Err(error) if reachable => {
                tracing::warn!(%error, "the coordinator did not take this synchronizer's registration; retrying");
                reachable = false;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tsn_core::coordinator::{Endpoint, MockCoordinator};
    use tsn_core::id::{LogId, Position, ServerId, UserId};
    use tsn_core::sync::{Changes, MockSyncPeer};

    use super::*;

    fn at(cluster: u32, port: u16) -> ServerRef {
        ServerRef {
            cluster: ClusterId(cluster),
            server: ServerId(1),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port,
            },
        }
    }

    #[tokio::test]
    async fn the_relay_reads_its_cluster_from_the_master_and_the_others_from_their_synchronizers() {
        let mut coordinator = MockCoordinator::new();
        coordinator
            .expect_server_for()
            .withf(|user| *user == UserId::new(1).expect("user 1"))
            .returning(|_| Ok(Some(at(1, 10_000))));
        coordinator
            .expect_sync_servers()
            .returning(|| Ok(vec![at(1, 1234), at(2, 1235)]));
        let read = Arc::new(Mutex::new(Vec::new()));
        let connect: Arc<ConnectFeed> = Arc::new({
            let read = Arc::clone(&read);
            move |endpoint: &Endpoint, source: ClusterId| {
                read.lock().expect("read").push((endpoint.port, source.0));
                let mut feed = MockSyncPeer::new();
                feed.expect_changes_after().returning(|cursor, _| {
                    Ok(Changes {
                        entries: Vec::new(),
                        through: cursor,
                        log: LogId(1),
                    })
                });
                Ok(Arc::new(feed) as Arc<dyn SyncPeer>)
            }
        });
        let config = Config {
            me: at(1, 1234),
            folder: FolderId(1),
            clusters: 3,
            register_interval: Duration::from_millis(200),
            round_interval: Duration::ZERO,
        };
        let relay = Relay::new(config, Arc::new(coordinator), connect);
        for source in [1, 2] {
            let reader = relay.reader(ClusterId(source)).expect("a reader");
            reader
                .changes_after(Position(0), 10)
                .await
                .expect("an answer");
        }
        assert_eq!(
            *read.lock().expect("read"),
            [(10_000, 1), (1235, 2)],
            "its own cluster from the master, cluster 2 from cluster 2's synchronizer"
        );
        let without_synchronizer = relay.reader(ClusterId(3)).expect("a reader");
        assert!(matches!(
            without_synchronizer.changes_after(Position(0), 10).await,
            Err(Error::Unavailable { .. })
        ));
        assert!(matches!(relay.reader(ClusterId(4)), Err(Error::Invalid(_))));
    }
}
