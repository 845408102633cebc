//! [`Routed`]: a feed at the address the coordinator names for a role — a cluster's
//! master, or a cluster's synchronizer — looked up again after each failure, so that it
//! follows the role from process to process and from host to host.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tsn_core::coordinator::{Coordinator, Endpoint};
use tsn_core::id::{ClusterId, Position, UserId};
use tsn_core::sync::{Changes, SyncPeer, UserRecord};
use tsn_core::{Error, Result};

/// Opens a feed at an address, asking for the changes of a cluster: what a transport
/// provides (`tsn-grpc`'s `FeedClient`).
pub type ConnectFeed = dyn Fn(&Endpoint, ClusterId) -> Result<Arc<dyn SyncPeer>> + Send + Sync;

/// Whose feed a [`Routed`] reads: a role the coordinator assigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The live master of a cluster.
    MasterOf(ClusterId),
    /// The live synchronizer of a cluster.
    SynchronizerOf(ClusterId),
}

/// A [`SyncPeer`] that reads the feed of whichever process is its [`Target`] now, asking
/// it for the changes of one cluster (`source`). It asks the coordinator where that is
/// when it first reads and again after any failure; in between it keeps its connection
/// (and so its stream). With a `round`, it reads at most once per round, as the course's
/// synchronizers do.
pub struct Routed {
    coordinator: Arc<dyn Coordinator>,
    target: Target,
    source: ClusterId,
    connect: Arc<ConnectFeed>,
    round: Duration,
    /// The feed read now, and where; `None` until found, and after a failure.
    current: Mutex<Option<(Endpoint, Arc<dyn SyncPeer>)>>,
    /// When the last read started, for the round.
    last_read: Mutex<Option<Instant>>,
    /// When the coordinator was last asked where the target is.
    last_asked: Mutex<Option<Instant>>,
}

/// How often a reader of a master's feed with nothing to read asks the coordinator
/// whether the master moved.
/// A master cut off from the coordinator but not from its readers may not know it was
/// replaced, and answers on with nothing new; its readers must not wait for it to fail.
pub const RECHECK: Duration = Duration::from_secs(1);

impl Routed {
    /// Reads `source`'s changes from the process holding `target`, found through
    /// `coordinator` and opened with `connect`.
    pub fn new(
        coordinator: Arc<dyn Coordinator>,
        target: Target,
        source: ClusterId,
        connect: Arc<ConnectFeed>,
    ) -> Self {
        Routed {
            coordinator,
            target,
            source,
            connect,
            round: Duration::ZERO,
            current: Mutex::new(None),
            last_read: Mutex::new(None),
            last_asked: Mutex::new(None),
        }
    }

    /// The same, reading at most once per `round`.
    pub fn with_round(mut self, round: Duration) -> Self {
        self.round = round;
        self
    }

    /// The feed to read now: the one open, or the target's, found through the coordinator.
    async fn feed(&self) -> Result<Arc<dyn SyncPeer>> {
        if let Some((_, feed)) = lock(&self.current).as_ref() {
            return Ok(Arc::clone(feed));
        }
        let at = self.whereabouts().await?;
        *lock(&self.last_asked) = Some(Instant::now());
        let feed = (self.connect)(&at, self.source)?;
        tracing::debug!(feed_of = ?self.target, %at, source = %self.source, "reading a feed");
        *lock(&self.current) = Some((at, Arc::clone(&feed)));
        Ok(feed)
    }

    /// Where the target is now, as the coordinator says.
    async fn whereabouts(&self) -> Result<Endpoint> {
        let unheld = |what: String| Error::Unavailable {
            what,
            reason: "the coordinator knows of no live one".into(),
        };
        match self.target {
            Target::MasterOf(cluster) => {
                // User `c` is a user of cluster `c`: the coordinator routes by user.
                let user = UserId::new(cluster.0)
                    .ok_or_else(|| Error::Invalid(format!("no cluster {cluster}")))?;
                let master = self.coordinator.server_for(user).await?;
                master
                    .map(|m| m.endpoint)
                    .ok_or_else(|| unheld(format!("the master of cluster {cluster}")))
            }
            Target::SynchronizerOf(cluster) => {
                let synchronizers = self.coordinator.sync_servers().await?;
                synchronizers
                    .into_iter()
                    .find(|s| s.cluster == cluster)
                    .map(|s| s.endpoint)
                    .ok_or_else(|| unheld(format!("the synchronizer of cluster {cluster}")))
            }
        }
    }

    /// After an answer with nothing new, asks the coordinator (at most every [`RECHECK`])
    /// whether the target has moved; if it has, drops the feed, so that the next read goes
    /// to where it is now.
    async fn recheck(&self, answer: &Result<Changes>, cursor: Position) {
        if !matches!(self.target, Target::MasterOf(_)) {
            // A synchronizer that moved fails its readers' streams: they find it again.
            return;
        }
        let idle = matches!(answer, Ok(changes) if changes.entries.is_empty() && changes.through == cursor);
        let due = lock(&self.last_asked).is_none_or(|at| at.elapsed() >= RECHECK);
        if !idle || !due {
            return;
        }
        *lock(&self.last_asked) = Some(Instant::now());
        let Ok(now_at) = self.whereabouts().await else {
            return;
        };
        let mut current = lock(&self.current);
        if current.as_ref().is_some_and(|(at, _)| *at != now_at) {
            tracing::info!(feed_of = ?self.target, at = %now_at, "the target moved; reading it there");
            *current = None;
        }
    }

    /// Drops the feed after a failure: the next read looks for the target again.
    fn forget<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result
            && let Some((at, _)) = lock(&self.current).take()
        {
            tracing::debug!(feed_of = ?self.target, %at, %error, "the feed failed; looking for it again");
        }
        result
    }

    /// Waits until a round has passed since the last read, and counts this one.
    async fn pace(&self) {
        if self.round.is_zero() {
            return;
        }
        let last = *lock(&self.last_read);
        if let Some(last) = last {
            tokio::time::sleep_until(last + self.round).await;
        }
        *lock(&self.last_read) = Some(Instant::now());
    }
}

#[async_trait]
impl SyncPeer for Routed {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        let feed = self.feed().await?;
        self.forget(feed.users().await)
    }

    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Changes> {
        self.pace().await;
        let feed = self.feed().await?;
        let answer = feed.changes_after(cursor, max).await;
        self.recheck(&answer, cursor).await;
        self.forget(answer)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tsn_core::coordinator::{MockCoordinator, ServerRef};
    use tsn_core::id::{LogId, ServerId};
    use tsn_core::sync::MockSyncPeer;

    use super::*;

    fn at(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn server(cluster: u32, port: u16) -> ServerRef {
        ServerRef {
            cluster: ClusterId(cluster),
            server: ServerId(1),
            endpoint: at(port),
        }
    }

    fn nothing_new(cursor: Position) -> Changes {
        Changes {
            entries: Vec::new(),
            through: cursor,
            log: LogId(1),
        }
    }

    fn gone() -> Error {
        Error::Unavailable {
            what: "a feed".into(),
            reason: "gone".into(),
        }
    }

    /// A coordinator whose master of cluster 1 is at `ports[n]` when asked the `n`th time
    /// (the last one after that).
    fn masters_at(ports: &'static [u16]) -> Arc<dyn Coordinator> {
        let asked = AtomicUsize::new(0);
        let mut coordinator = MockCoordinator::new();
        coordinator.expect_server_for().returning(move |user| {
            assert_eq!(user, UserId::new(1).expect("user 1"), "a user of cluster 1");
            let n = asked.fetch_add(1, Ordering::SeqCst).min(ports.len() - 1);
            Ok(Some(server(1, ports[n])))
        });
        Arc::new(coordinator)
    }

    /// Connects to feeds that answer `answers` calls each with nothing new, then fail;
    /// records where it connected.
    fn feeds(answers: usize, connected: &Arc<Mutex<Vec<u16>>>) -> Arc<ConnectFeed> {
        let connected = Arc::clone(connected);
        Arc::new(move |at: &Endpoint, source: ClusterId| {
            assert_eq!(source, ClusterId(1), "asked for the source's changes");
            lock(&connected).push(at.port);
            let mut feed = MockSyncPeer::new();
            let left = AtomicUsize::new(answers);
            feed.expect_changes_after().returning(move |cursor, _| {
                match left.fetch_sub(1, Ordering::SeqCst) {
                    0 => Err(gone()),
                    _ => Ok(nothing_new(cursor)),
                }
            });
            Ok(Arc::new(feed) as Arc<dyn SyncPeer>)
        })
    }

    #[tokio::test]
    async fn a_feed_is_kept_while_it_answers_and_looked_for_again_after_a_failure() {
        let connected = Arc::new(Mutex::new(Vec::new()));
        let routed = Routed::new(
            masters_at(&[10_000, 10_001]),
            Target::MasterOf(ClusterId(1)),
            ClusterId(1),
            feeds(3, &connected),
        );
        for _ in 0..3 {
            routed
                .changes_after(Position(0), 10)
                .await
                .expect("an answer");
        }
        assert_eq!(
            *lock(&connected),
            [10_000],
            "one connection while it answers"
        );
        assert!(routed.changes_after(Position(0), 10).await.is_err());
        // The master moved (a failover): the next read asks the coordinator again.
        routed
            .changes_after(Position(0), 10)
            .await
            .expect("an answer from the new master");
        assert_eq!(*lock(&connected), [10_000, 10_001]);
    }

    #[tokio::test]
    async fn a_synchronizer_is_found_among_the_registered_ones_or_not_at_all() {
        let registered = Arc::new(Mutex::new(vec![server(1, 1234)]));
        let mut coordinator = MockCoordinator::new();
        coordinator.expect_sync_servers().returning({
            let registered = Arc::clone(&registered);
            move || Ok(lock(&registered).clone())
        });
        let connected = Arc::new(Mutex::new(Vec::new()));
        let routed = Routed::new(
            Arc::new(coordinator),
            Target::SynchronizerOf(ClusterId(2)),
            ClusterId(1),
            feeds(1, &connected),
        );
        let missing = routed.changes_after(Position(0), 10).await;
        assert!(
            matches!(missing, Err(Error::Unavailable { .. })),
            "no synchronizer of cluster 2 yet: {:?}",
            missing.map(|c| c.through)
        );
        lock(&registered).push(server(2, 1235));
        routed
            .changes_after(Position(0), 10)
            .await
            .expect("found once registered");
        assert_eq!(*lock(&connected), [1235]);
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_round_reads_come_a_round_apart() {
        let connected = Arc::new(Mutex::new(Vec::new()));
        let round = Duration::from_secs(20);
        let routed = Routed::new(
            masters_at(&[10_000]),
            Target::MasterOf(ClusterId(1)),
            ClusterId(1),
            feeds(10, &connected),
        )
        .with_round(round);
        let mut started = Vec::new();
        for _ in 0..3 {
            routed
                .changes_after(Position(0), 10)
                .await
                .expect("an answer");
            started.push(Instant::now());
        }
        for pair in started.windows(2) {
            assert!(pair[1] - pair[0] >= round, "{:?}", pair[1] - pair[0]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_with_nothing_to_read_follows_its_target_when_the_coordinator_moves_it() {
        let connected = Arc::new(Mutex::new(Vec::new()));
        // The old master answers on, with nothing new: cut off from the coordinator, it
        // does not know it was replaced.
        let routed = Routed::new(
            masters_at(&[10_000, 10_000, 10_001]),
            Target::MasterOf(ClusterId(1)),
            ClusterId(1),
            feeds(1000, &connected),
        );
        // The coordinator is asked at the first read and after each idle second.
        for _ in 0..4 {
            routed
                .changes_after(Position(0), 10)
                .await
                .expect("an answer");
            tokio::time::sleep(RECHECK).await;
        }
        assert_eq!(
            *lock(&connected),
            [10_000, 10_001],
            "it moved once the coordinator named the new master"
        );
    }
}
