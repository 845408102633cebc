//! [`Master`]: the write path of a cluster's master.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tsn_core::change::{Change, Entry};
use tsn_core::failover::InSyncSet;
use tsn_core::id::{Epoch, Position, ServerId};
use tsn_core::state::{Delivery, State};
use tsn_core::{Error, Result, Store, Timeline};

use crate::clock::{self, wall_clock};

/// How long the flusher waits before retrying after a failed disk sync.
const FLUSH_RETRY: Duration = Duration::from_millis(100);

/// How many appended entries may wait for their commit before pipelining writers wait
/// ([`Master::room`]): a few disk syncs' worth at full speed.
pub const UNCOMMITTED_LIMIT: u64 = 16_384;

/// The in-sync set with the commit position, and the deliveries that wait for their entry
/// to commit.
struct Book {
    in_sync: InSyncSet,
    unpublished: VecDeque<(Position, Vec<Delivery>)>,
}

/// The master role of one epoch. Writes are appended at once and acknowledged when
/// committed ([`Master::committed`]); once stopped (deposed, or the server shuts down) it
/// appends nothing and every waiter fails with [`Error::NotMaster`].
pub struct Master<S> {
    epoch: Epoch,
    store: Arc<S>,
    /// Where committed timeline posts go to their readers.
    timeline: Arc<dyn Timeline>,
    /// Serializes decide-then-append, so that each decision sees every earlier write.
    write_lock: Mutex<()>,
    book: Mutex<Book>,
    appended: watch::Sender<Position>,
    commit: watch::Sender<Position>,
    stopped: watch::Sender<bool>,
    /// Asks for an immediate heartbeat, to report a new in-sync set.
    report_now: Arc<Notify>,
}

impl<S: Store> Master<S> {
    /// Takes the master role of `epoch`: records the election in the log and starts the
    /// flusher. The role serves at once; commits wait for the election entry's durability.
    pub fn start(
        store: Arc<S>,
        timeline: Arc<dyn Timeline>,
        epoch: Epoch,
        me: ServerId,
        replication_timeout: Duration,
        report_now: Arc<Notify>,
    ) -> Result<Arc<Self>> {
        let durable = store.durable();
        let last = store.read(|s| s.last().position);
        let master = Arc::new(Master {
            epoch,
            store,
            timeline,
            write_lock: Mutex::new(()),
            book: Mutex::new(Book {
                in_sync: InSyncSet::new(durable, replication_timeout),
                unpublished: VecDeque::new(),
            }),
            appended: watch::Sender::new(last),
            commit: watch::Sender::new(durable),
            stopped: watch::Sender::new(false),
            report_now,
        });
        master.append(|state| {
            Some(Change::MasterElected {
                server: me,
                time: state.next_time(wall_clock()),
            })
        })?;
        tokio::spawn(Arc::clone(&master).flush_loop());
        Ok(master)
    }

    /// The epoch this role belongs to.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Ends the role: no more appends, waiters fail. An append under way finishes first,
    /// so that nothing of this role reaches the store once `stop` returns.
    pub fn stop(&self) {
        let _serial = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.stopped.send_replace(true);
    }

    /// Whether the role has ended.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    fn not_master(&self) -> Error {
        Error::NotMaster(format!("the master role of epoch {} has ended", self.epoch))
    }

    /// Decides a write on the current state and appends it. `decide` returns the change to
    /// write, or `None` to write nothing. Returns the position to wait for with
    /// [`Master::committed`]: the new entry's, or with nothing written the log's end (so
    /// that a repeated request is answered once the original is committed).
    pub fn append(&self, decide: impl FnOnce(&State) -> Option<Change>) -> Result<Position> {
        self.append_all(|state| decide(state).into_iter().collect())
    }

    /// Like [`Master::append`] for any number of changes, appended together at consecutive
    /// positions; returns the last one's (or the log's end if there are none).
    pub fn append_all(&self, decide: impl FnOnce(&State) -> Vec<Change>) -> Result<Position> {
        let _serial = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_stopped() {
            return Err(self.not_master());
        }
        let (last, changes) = self
            .store
            .read(|state| (state.last().position, decide(state)));
        if changes.is_empty() {
            return Ok(last);
        }
        let entries: Vec<Entry> = changes
            .into_iter()
            .zip(1..)
            .map(|(change, offset)| Entry {
                position: Position(last.0 + offset),
                epoch: self.epoch,
                change,
            })
            .collect();
        let end = entries.last().map_or(last, |e| e.position);
        let deliveries = self.store.append(&entries)?;
        {
            let mut book = self.lock_book();
            book.in_sync.appended(end, clock::now());
            for (entry, delivered) in entries.iter().zip(deliveries) {
                if !delivered.is_empty() {
                    book.unpublished.push_back((entry.position, delivered));
                }
            }
        }
        self.appended.send_replace(end);
        Ok(end)
    }

    /// Waits until fewer than [`UNCOMMITTED_LIMIT`] appended entries wait for their commit,
    /// or the role ends. Writers that take many writes without waiting for each to commit
    /// (a client's pipelined posts) wait for room here before they read more, so that a
    /// master taking writes faster than its slave makes them durable slows its writers
    /// down rather than piling up a log that nobody holds yet.
    pub async fn room(&self) {
        let appended = *self.appended.borrow();
        let mut commit = self.commit.subscribe();
        tokio::select! {
            _ = commit.wait_for(|c| appended.0.saturating_sub(c.0) < UNCOMMITTED_LIMIT) => {}
            () = self.ended() => {}
        }
    }

    /// Waits until `position` is committed; fails if the role ends first.
    pub async fn committed(&self, position: Position) -> Result<()> {
        let mut commit = self.commit.subscribe();
        tokio::select! {
            result = commit.wait_for(|&c| c >= position) => result.map(|_| ()).map_err(|_| self.not_master()),
            () = self.ended() => Err(self.not_master()),
        }
    }

    /// A receiver of the commit position.
    pub fn commit_watch(&self) -> watch::Receiver<Position> {
        self.commit.subscribe()
    }

    /// A receiver of the log's end.
    pub fn appended_watch(&self) -> watch::Receiver<Position> {
        self.appended.subscribe()
    }

    /// Completes when the role has ended.
    pub async fn ended(&self) {
        let mut stopped = self.stopped.subscribe();
        let _ = stopped.wait_for(|&s| s).await;
    }

    /// The committed position now.
    pub fn commit_position(&self) -> Position {
        *self.commit.borrow()
    }

    /// Changes the in-sync set, then commits and publishes what it allows;
    /// returns what `change` returned.
    ///
    /// The book stays locked until the new commit position is announced, so that the
    /// announced position only grows. The posts it commits are published after the book
    /// is released: a commit after a slow spell may publish hundreds of thousands of
    /// deliveries, and writers, replication and the heartbeat's report must not wait for
    /// that (a master's serving runtime stood still for seconds when they did). The
    /// [`Timeline`] takes publications in any order.
    pub fn update<T>(&self, change: impl FnOnce(&mut InSyncSet) -> T) -> T {
        let (changed, publish) = self.commit_allowed(change);
        if !publish.is_empty() {
            self.timeline.deliver(&publish.concat());
        }
        changed
    }

    /// The book's part of [`Master::update`]: changes the in-sync set, announces the commit
    /// it allows, and returns the deliveries of each entry that commit publishes (taken
    /// from the book as they are, not copied while it is locked).
    fn commit_allowed<T>(
        &self,
        change: impl FnOnce(&mut InSyncSet) -> T,
    ) -> (T, Vec<Vec<Delivery>>) {
        let mut book = self.lock_book();
        let before = book.in_sync.report();
        let changed = change(&mut book.in_sync);
        let after = book.in_sync.report();
        if before != after {
            let in_sync: Vec<u32> = after.iter().map(|s| s.0).collect();
            tracing::info!(?in_sync, "in-sync slaves changed");
            self.report_now.notify_one();
        }
        let commit = book.in_sync.commit();
        if commit <= *self.commit.borrow() {
            return (changed, Vec::new());
        }
        let mut publish = Vec::new();
        while book.unpublished.front().is_some_and(|(p, _)| *p <= commit) {
            publish.extend(book.unpublished.pop_front().map(|(_, d)| d));
        }
        self.commit.send_replace(commit);
        self.store.record_commit(commit);
        (changed, publish)
    }

    /// The in-sync set to report, and whether a removal awaits confirmation.
    pub fn in_sync_report(&self, now: Instant) -> (Vec<ServerId>, bool) {
        let mut book = self.lock_book();
        book.in_sync.tick(now);
        (book.in_sync.report(), book.in_sync.has_leaving())
    }

    fn lock_book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes appended entries durable as they come, in groups, until the role ends.
    async fn flush_loop(self: Arc<Self>) {
        let mut appended = self.appended.subscribe();
        loop {
            let target = *appended.borrow_and_update();
            if self.store.durable() < target {
                match self.store.flush().await {
                    Ok(durable) => self.update(|r| r.durable(durable)),
                    Err(error) => {
                        tracing::error!(%error, "cannot make the log durable; retrying");
                        tokio::time::sleep(FLUSH_RETRY).await;
                    }
                }
                continue;
            }
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return },
                () = self.ended() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsn_core::id::{ClusterId, FolderId, Membership, Time, UserId};
    use tsn_core::store::Memory;
    use tsn_core::timeline::{Hub, MockTimeline};

    const SLAVE: ServerId = ServerId(2);
    const LAG: Duration = Duration::from_secs(60);

    fn user(n: u32) -> UserId {
        UserId::new(n).expect("a user")
    }

    /// The master of epoch 1 of a one-cluster deployment, its log holding users 1 and 2,
    /// 2 following 1, all committed; and the hub its posts are published to.
    async fn a_master() -> (Arc<Master<Memory>>, Hub) {
        let store = Arc::new(Memory::new(Membership {
            cluster: ClusterId(1),
            clusters: 1,
        }));
        let hub = Hub::new();
        let master = Master::start(
            store,
            Arc::new(hub.clone()),
            Epoch(1),
            ServerId(1),
            LAG,
            Arc::new(Notify::new()),
        )
        .expect("the master role");
        let setup = master
            .append_all(|_| {
                vec![
                    Change::UserJoined {
                        user: user(1),
                        time: Time(1),
                    },
                    Change::UserJoined {
                        user: user(2),
                        time: Time(2),
                    },
                    Change::Followed {
                        follower: user(2),
                        followee: user(1),
                        time: Time(3),
                    },
                ]
            })
            .expect("the setup");
        within(master.committed(setup))
            .await
            .expect("committed alone");
        (master, hub)
    }

    /// Connects the slave, holding everything so far, so that it is in sync.
    fn slave_in_sync(master: &Master<Memory>) {
        let holds = master.store().read(|s| s.last().position);
        master
            .update(|r| r.connected(SLAVE, FolderId(2), 1, holds, Instant::now()))
            .expect("the slave connects");
        assert_eq!(master.in_sync_report(Instant::now()).0, [SLAVE]);
    }

    /// Appends user 1's post `seq` with `text`; returns its position.
    fn post_by_1(master: &Master<Memory>, seq: u64, text: &str) -> Position {
        master
            .append(|state| {
                Some(Change::Posted(tsn_core::post::Post {
                    id: tsn_core::post::PostId { origin: 9, seq },
                    author: user(1),
                    time: state.next_time(Time(10)),
                    text: tsn_core::post::PostText::new(text).expect("a post"),
                }))
            })
            .expect("the post")
    }

    fn post_of_1(master: &Master<Memory>) -> Position {
        post_by_1(master, 1, "hello")
    }

    /// Waits, in a task of its own, until `position` is committed.
    fn waiting_for_commit(
        master: &Arc<Master<Memory>>,
        position: Position,
    ) -> tokio::task::JoinHandle<Result<()>> {
        let master = Arc::clone(master);
        tokio::spawn(async move { within(master.committed(position)).await })
    }

    /// Awaits `future`, failing the test rather than hanging if it does not come.
    async fn within<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("it should have come by now")
    }

    /// Lets every task that can run, run (the flusher included).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_write_is_answered_only_once_durable_on_the_in_sync_slave_and_published_then() {
        let (master, hub) = a_master().await;
        let follower = hub.subscribe(user(2));
        slave_in_sync(&master);
        let post = post_of_1(&master);
        let waiting = waiting_for_commit(&master, post);
        settle().await;
        assert!(master.store().durable() >= post, "durable on the master");
        assert!(
            !waiting.is_finished(),
            "not answered before the slave has it"
        );
        assert_eq!(
            follower.grown(),
            0,
            "a follower is told of nothing before the commit"
        );
        master.update(|r| r.acked(SLAVE, post, Instant::now()));
        within(waiting)
            .await
            .expect("the waiter")
            .expect("committed");
        assert_eq!(follower.grown(), 1, "told once committed");
        let shown = master.store().read(|s| s.timeline_item(user(2), 1));
        assert_eq!(shown.map(|item| item.post.author), Some(user(1)));
    }

    #[tokio::test]
    async fn pipelining_writers_wait_for_room_while_too_many_entries_wait_for_their_commit() {
        let (master, _hub) = a_master().await;
        slave_in_sync(&master);
        let first = post_of_1(&master);
        within(master.room()).await;
        let last = master
            .append_all(|state| {
                (2..=UNCOMMITTED_LIMIT)
                    .map(|seq| {
                        Change::Posted(tsn_core::post::Post {
                            id: tsn_core::post::PostId { origin: 9, seq },
                            author: user(1),
                            time: state.next_time(Time(10)),
                            text: tsn_core::post::PostText::new("more").expect("a post"),
                        })
                    })
                    .collect()
            })
            .expect("the posts");
        let waiting = tokio::spawn({
            let master = Arc::clone(&master);
            async move { master.room().await }
        });
        settle().await;
        assert!(
            !waiting.is_finished(),
            "{UNCOMMITTED_LIMIT} entries wait for the slave: no room"
        );
        master.update(|r| r.acked(SLAVE, first, Instant::now()));
        within(waiting).await.expect("room once one committed");
        master.update(|r| r.acked(SLAVE, last, Instant::now()));
        within(master.room()).await;
    }

    #[tokio::test]
    async fn a_post_goes_to_its_readers_once_committed_and_never_before() {
        let (first, _hub) = a_master().await;
        first.stop();
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let mut timeline = MockTimeline::new();
        timeline.expect_deliver().returning({
            let delivered = Arc::clone(&delivered);
            move |deliveries| {
                delivered.lock().expect("the deliveries").extend(
                    deliveries
                        .iter()
                        .map(|delivery| (delivery.user, delivery.index)),
                )
            }
        });
        // The same log under the next master, publishing through the mock.
        let master = Master::start(
            Arc::clone(first.store()),
            Arc::new(timeline),
            Epoch(2),
            ServerId(1),
            LAG,
            Arc::new(Notify::new()),
        )
        .expect("the master role of epoch 2");
        within(master.committed(master.store().read(|s| s.last().position)))
            .await
            .expect("the election commits alone");
        slave_in_sync(&master);
        let post = post_by_1(&master, 1, "held back");
        settle().await;
        assert!(
            delivered.lock().expect("the deliveries").is_empty(),
            "nothing reaches a reader before the slave holds the post"
        );
        master.update(|r| r.acked(SLAVE, post, Instant::now()));
        assert_eq!(
            *delivered.lock().expect("the deliveries"),
            [(user(2), 1)],
            "once committed, to its one follower, once"
        );
        let shown = master.store().read(|s| s.timeline_item(user(2), 1));
        assert_eq!(
            shown.map(|item| item.post.text.as_str().to_owned()),
            Some("held back".to_owned())
        );
    }

    #[tokio::test]
    async fn a_stopped_master_fails_its_waiters_and_appends_nothing() {
        let (master, _hub) = a_master().await;
        slave_in_sync(&master);
        let post = post_of_1(&master);
        let waiting = waiting_for_commit(&master, post);
        settle().await;
        master.stop();
        let answer = within(waiting).await.expect("the waiter");
        assert!(matches!(answer, Err(Error::NotMaster(_))), "{answer:?}");
        let after = master.append(|_| {
            Some(Change::UserJoined {
                user: user(3),
                time: Time(20),
            })
        });
        assert!(matches!(after, Err(Error::NotMaster(_))), "{after:?}");
        assert_eq!(master.store().read(|s| s.last().position), post);
    }

    #[tokio::test]
    async fn a_lost_slave_stops_holding_commits_only_once_the_coordinator_confirms() {
        let (master, _hub) = a_master().await;
        slave_in_sync(&master);
        master.update(|r| r.disconnected(SLAVE, 1));
        let post = post_of_1(&master);
        let waiting = waiting_for_commit(&master, post);
        settle().await;
        assert!(!waiting.is_finished(), "the slave may still be promoted");
        let (report, leaving) = master.in_sync_report(Instant::now());
        assert!(report.is_empty() && leaving);
        master.update(|r| r.confirmed(&report));
        waiting
            .await
            .expect("the waiter")
            .expect("committed without the slave");
    }

    #[tokio::test]
    async fn a_decision_that_writes_nothing_answers_once_the_log_so_far_is_committed() {
        let (master, _hub) = a_master().await;
        slave_in_sync(&master);
        let post = post_of_1(&master);
        let repeat = master.append(|_| None).expect("nothing to write");
        assert_eq!(repeat, post, "waits for the original");
        master.update(|r| r.acked(SLAVE, post, Instant::now()));
        within(master.committed(repeat)).await.expect("committed");
    }

    #[tokio::test]
    async fn a_resent_post_id_is_stored_once_and_answered_when_the_first_commits() {
        let (master, hub) = a_master().await;
        let follower = hub.subscribe(user(2));
        slave_in_sync(&master);
        let id = tsn_core::post::PostId { origin: 7, seq: 1 };
        let send = || {
            master.append(|state| {
                let text = tsn_core::post::PostText::new("once").expect("a post");
                match tsn_core::command::post(state, user(1), id, text, Time(30)) {
                    tsn_core::command::Posting::New(change) => Some(change),
                    tsn_core::command::Posting::Duplicate => None,
                }
            })
        };
        let first = send().expect("the post");
        // The client did not hear back (a failover, a lost answer) and sends it again.
        let resent = send().expect("the resend");
        assert_eq!(resent, first, "the resend waits for the first");
        let waiting = waiting_for_commit(&master, resent);
        settle().await;
        assert!(!waiting.is_finished(), "not before the first commits");
        master.update(|r| r.acked(SLAVE, first, Instant::now()));
        within(waiting)
            .await
            .expect("the waiter")
            .expect("answered once the first commits");
        let posts = master
            .store()
            .read(|s| s.timeline_len_through(user(2), first));
        assert_eq!(posts, 1, "one post on the follower's timeline");
        assert_eq!(follower.grown(), 1, "published, once");
    }

    #[tokio::test]
    async fn changes_decided_together_take_consecutive_positions_and_commit_alone() {
        let (master, _hub) = a_master().await;
        let before = master.store().read(|s| s.last().position);
        let last = master
            .append_all(|_| {
                (3..=5)
                    .map(|n| Change::UserJoined {
                        user: user(n),
                        time: Time(20 + u64::from(n)),
                    })
                    .collect()
            })
            .expect("three users");
        assert_eq!(last, Position(before.0 + 3));
        master
            .committed(last)
            .await
            .expect("no slave: durable is committed");
        assert!(master.commit_position() >= last);
    }

    #[tokio::test]
    async fn posts_are_published_in_commit_order() {
        let (master, hub) = a_master().await;
        let follower = hub.subscribe(user(2));
        slave_in_sync(&master);
        let first = post_of_1(&master);
        let second = post_by_1(&master, 2, "again");
        settle().await;
        assert_eq!(follower.grown(), 0, "neither is committed");
        master.update(|r| r.acked(SLAVE, second, Instant::now()));
        within(master.committed(second))
            .await
            .expect("both committed");
        assert_eq!(follower.grown(), 2, "both told");
        let texts: Vec<String> = master.store().read(|s| {
            s.timeline_after(user(2), 0, second)
                .map(|item| item.post.text.as_str().to_owned())
                .collect()
        });
        assert_eq!(texts, ["hello", "again"], "{first:?} then {second:?}");
    }

    #[tokio::test]
    async fn a_slave_far_behind_does_not_hold_commits_while_it_catches_up() {
        let (master, _hub) = a_master().await;
        // A log longer than a slave may lag behind and still join the in-sync set.
        let long = master
            .append_all(|_| {
                (10..5_010)
                    .map(|n| Change::UserJoined {
                        user: user(n),
                        time: Time(100 + u64::from(n)),
                    })
                    .collect()
            })
            .expect("many users");
        within(master.committed(long))
            .await
            .expect("committed alone");
        master
            .update(|r| r.connected(SLAVE, FolderId(2), 1, Position(0), Instant::now()))
            .expect("a new slave connects, holding nothing");
        assert!(master.in_sync_report(Instant::now()).0.is_empty());
        let post = post_of_1(&master);
        within(master.committed(post))
            .await
            .expect("committed without the slave that catches up");
    }
}
