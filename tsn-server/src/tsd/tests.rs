//! A cluster's servers in one process: each [`Tsd`] on the in-memory store, replicating
//! through [`Direct`] (no sockets), its role decided by a scripted [`MockCoordinator`] or a
//! real [`Local`] coordinator, on tokio's paused clock.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tsn_core::change::{Change, Entry, LogPoint};
use tsn_core::coordinator::{
    Assignment, Coordinator, Endpoint, MockCoordinator, RegistryConfig, Role, ServerRef,
};
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Epoch, FolderId, Membership, Position, ServerId, Time, UserId};
use tsn_core::store::Memory;
use tsn_core::sync::{Changes, FeedSources, UserRecord};
use tsn_core::{Error, Result, Store, SyncPeer};

use super::replication::{Hello, Incoming, MasterMessage, SlaveMessage, Upstream};
use super::roles::keep_role;
use super::serving::Serving;
use super::{Config, Tsd};
use crate::coordinator::Local;

const HEARTBEAT: Duration = Duration::from_millis(50);

fn server(id: u32) -> ServerRef {
    ServerRef {
        cluster: ClusterId(1),
        server: ServerId(id),
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            port: 10_000 + id as u16,
        },
    }
}

fn user(n: u32) -> UserId {
    UserId::new(n).expect("a user")
}

/// Replication between servers of this process: a slave's stream goes straight to its
/// master's [`Tsd::replicate`].
#[derive(Default)]
struct Direct {
    servers: Mutex<Vec<Weak<Tsd<Memory>>>>,
}

/// A slave's messages, as the master reads them.
struct Outgoing(mpsc::Receiver<SlaveMessage>);

#[async_trait]
impl Incoming<SlaveMessage> for Outgoing {
    async fn next(&mut self) -> Result<Option<SlaveMessage>> {
        Ok(self.0.recv().await)
    }
}

#[async_trait]
impl Upstream for Direct {
    async fn open(
        &self,
        master: &ServerRef,
        outgoing: mpsc::Receiver<SlaveMessage>,
    ) -> Result<Box<dyn Incoming<MasterMessage>>> {
        let found = self
            .servers
            .lock()
            .expect("the servers")
            .iter()
            .filter_map(Weak::upgrade)
            .find(|tsd| tsd.config().me.server == master.server);
        let tsd = found.ok_or_else(|| Error::Unavailable {
            what: format!("server {}", master.server),
            reason: "not running".into(),
        })?;
        Ok(Box::new(tsd.replicate(Outgoing(outgoing))?))
    }
}

/// Server `id` of cluster 1 (of 1), its store empty, replicating through `direct`.
fn a_tsd(id: u32, direct: &Arc<Direct>) -> Arc<Tsd<Memory>> {
    let store = Arc::new(Memory::new(Membership {
        cluster: ClusterId(1),
        clusters: 1,
    }));
    a_tsd_on(id, store, direct)
}

fn a_tsd_on(id: u32, store: Arc<Memory>, direct: &Arc<Direct>) -> Arc<Tsd<Memory>> {
    a_tsd_with(config(id), store, direct)
}

/// How server `id` runs in these tests: short timers, no imports.
fn config(id: u32) -> Config {
    Config {
        me: server(id),
        incarnation: u64::from(id),
        folder: FolderId(u64::from(id)),
        heartbeat_interval: HEARTBEAT,
        session_timeout: Duration::from_secs(10),
        replication_timeout: Duration::from_millis(500),
        imports: Vec::new(),
    }
}

fn a_tsd_with(config: Config, store: Arc<Memory>, direct: &Arc<Direct>) -> Arc<Tsd<Memory>> {
    let upstream: Arc<dyn Upstream> = direct.clone();
    let tsd = Tsd::new(config, store, upstream);
    direct
        .servers
        .lock()
        .expect("the servers")
        .push(Arc::downgrade(&tsd));
    tsd
}

/// The coordinator's answer: `role` in `epoch`, with `master` the cluster's master.
fn assignment(role: Role, epoch: u64, master: u32) -> Assignment {
    Assignment {
        role,
        epoch: Epoch(epoch),
        master: Some(server(master)),
        clusters: 1,
        in_sync_confirmed: true,
    }
}

/// A coordinator that answers every heartbeat of server 1 with `answer`.
fn always(answer: Assignment) -> Arc<MockCoordinator> {
    let mut coordinator = MockCoordinator::new();
    coordinator
        .expect_heartbeat()
        .returning(move |_| Ok(answer.clone()));
    Arc::new(coordinator)
}

/// A coordinator that names server 1 master of epoch 1 in its first `heartbeats` answers,
/// and then answers every heartbeat with `then()`.
fn answers(
    heartbeats: usize,
    then: impl Fn() -> Result<Assignment> + Send + Sync + 'static,
) -> Arc<MockCoordinator> {
    let asked = AtomicUsize::new(0);
    let mut coordinator = MockCoordinator::new();
    coordinator.expect_heartbeat().returning(move |_| {
        if asked.fetch_add(1, Ordering::SeqCst) < heartbeats {
            Ok(assignment(Role::Master, 1, 1))
        } else {
            then()
        }
    });
    Arc::new(coordinator)
}

/// Runs the role task of `tsd` with `coordinator`; aborted when the guard drops.
fn keep<C: Coordinator + 'static>(tsd: &Arc<Tsd<Memory>>, coordinator: Arc<C>) -> Running {
    let serving = Serving::current(tsd.config().heartbeat_interval);
    Running(tokio::spawn(keep_role(
        Arc::clone(tsd),
        coordinator,
        serving,
    )))
}

struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Awaits `future`, failing the test rather than hanging if it does not come.
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("it should have come by now")
}

/// Waits until `tsd` serves as master, then returns its master role.
async fn master_of(tsd: &Tsd<Memory>) -> Arc<crate::master::Master<Memory>> {
    let mut serving = tsd.serving();
    within(serving.wait_for(|&s| s))
        .await
        .expect("the role task runs");
    tsd.master().expect("serving as master")
}

/// Appends user `n`'s first login through `tsd`'s master role; returns its position.
fn login(tsd: &Tsd<Memory>, n: u32) -> Position {
    let master = tsd.master().expect("the master");
    master
        .append(|state| {
            Some(Change::UserJoined {
                user: user(n),
                time: state.next_time(Time(1)),
            })
        })
        .expect("appended")
}

/// Waits until `master` counts a slave in sync.
async fn in_sync(master: &crate::master::Master<Memory>) {
    within(async {
        while master.in_sync_report(crate::clock::now()).0.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Connects slave 2 to `tsd`'s master (of epoch 1) through a stream the test holds, and
/// waits until it is in sync: it acknowledges only what the test sends.
async fn a_silent_slave(
    tsd: &Tsd<Memory>,
    master: &crate::master::Master<Memory>,
) -> (
    mpsc::Sender<SlaveMessage>,
    mpsc::Receiver<Result<MasterMessage>>,
) {
    let last = tsd.store().read(|s| s.last());
    let (slave, answers) = stream_into(tsd);
    let answers = answers.expect("the stream opens");
    slave.send(hello(2, 1, 1, last)).await.expect("sent");
    in_sync(master).await;
    (slave, answers)
}

/// Logs user `n` in through `master`, in a task that waits until the login commits.
fn waiting_login(
    tsd: &Tsd<Memory>,
    master: &Arc<crate::master::Master<Memory>>,
    n: u32,
) -> tokio::task::JoinHandle<Result<()>> {
    let master = Arc::clone(master);
    let position = login(tsd, n);
    tokio::spawn(async move { master.committed(position).await })
}

/// A slave's Hello to the master of `epoch`, its log ending at `last`.
fn hello(server: u32, cluster: u32, epoch: u64, last: LogPoint) -> SlaveMessage {
    SlaveMessage::Hello(Hello {
        cluster: ClusterId(cluster),
        server: ServerId(server),
        epoch: Epoch(epoch),
        last,
        folder: FolderId(u64::from(server)),
    })
}

/// Opens a replication stream into `tsd` as a slave would: returns the slave's sending end
/// and the master's answers.
fn stream_into(
    tsd: &Tsd<Memory>,
) -> (
    mpsc::Sender<SlaveMessage>,
    Result<mpsc::Receiver<Result<MasterMessage>>>,
) {
    let (tx, rx) = mpsc::channel(8);
    (tx, tsd.replicate(Outgoing(rx)))
}

#[tokio::test(start_paused = true)]
async fn a_cluster_elects_a_master_whose_slave_holds_each_write_before_it_is_answered() {
    let direct = Arc::new(Direct::default());
    let coordinator = Arc::new(Local::new(RegistryConfig {
        clusters: 1,
        failure_timeout: Duration::from_millis(200),
    }));
    let (first, second) = (a_tsd(1, &direct), a_tsd(2, &direct));
    let _roles = [
        keep(&first, Arc::clone(&coordinator)),
        keep(&second, Arc::clone(&coordinator)),
    ];
    // Whoever is elected, the other follows it.
    let master_tsd = within(async {
        loop {
            for tsd in [&first, &second] {
                if tsd.master().is_ok() {
                    return Arc::clone(tsd);
                }
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
    .await;
    let slave_tsd = if Arc::ptr_eq(&master_tsd, &first) {
        &second
    } else {
        &first
    };
    let master = master_of(&master_tsd).await;
    in_sync(&master).await;

    let position = login(&master_tsd, 1);
    within(master.committed(position)).await.expect("committed");
    assert!(
        slave_tsd.store().durable() >= position,
        "an answered write is durable on the in-sync slave"
    );
    assert!(slave_tsd.store().read(|s| s.has_user(user(1))));
    assert!(slave_tsd.master().is_err(), "one master");
}

#[tokio::test(start_paused = true)]
async fn a_slave_holding_entries_the_master_never_had_drops_them_and_copies_the_masters_log() {
    let direct = Arc::new(Direct::default());
    let master_tsd = a_tsd(1, &direct);
    let _master_role = keep(&master_tsd, always(assignment(Role::Master, 5, 1)));
    let master = master_of(&master_tsd).await;
    let committed = login(&master_tsd, 1);
    within(master.committed(committed)).await.expect("alone");

    // The slave's log holds an entry of an epoch (3) the master's log never had.
    let slave_store = Arc::new(Memory::new(Membership {
        cluster: ClusterId(1),
        clusters: 1,
    }));
    slave_store
        .append(&[Entry {
            position: Position(1),
            epoch: Epoch(3),
            change: Change::UserJoined {
                user: user(7),
                time: Time(1),
            },
        }])
        .expect("the stray entry");
    let slave_tsd = a_tsd_on(2, slave_store, &direct);
    let _slave_role = keep(&slave_tsd, always(assignment(Role::Slave, 5, 1)));

    within(async {
        while slave_tsd.store().durable() < committed {
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
    .await;
    let (masters, slaves) = (
        master_tsd.store().read(|s| s.users().collect::<Vec<_>>()),
        slave_tsd.store().read(|s| s.users().collect::<Vec<_>>()),
    );
    assert_eq!(slaves, masters, "the slave's log is the master's");
    assert!(!slaves.contains(&user(7)), "the stray entry is gone");
}

#[tokio::test(start_paused = true)]
async fn a_hello_with_a_newer_epoch_deposes_the_master_and_fails_every_waiting_write() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let _role = keep(&tsd, always(assignment(Role::Master, 1, 1)));
    let master = master_of(&tsd).await;
    // Slave 2 is in sync and acknowledges nothing: writes wait for it.
    let _slave = a_silent_slave(&tsd, &master).await;
    let waiting = waiting_login(&tsd, &master, 1);

    // Another slave says the cluster has moved on to epoch 9.
    let last = tsd.store().read(|s| s.last());
    let (newer, answers) = stream_into(&tsd);
    let mut answers = answers.expect("the stream opens");
    newer.send(hello(3, 1, 9, last)).await.expect("sent");
    let refused = within(answers.recv()).await.expect("an answer");
    assert!(
        matches!(refused, Err(Error::StaleEpoch { .. })),
        "{refused:?}"
    );

    let failed = within(waiting).await.expect("the waiter");
    assert!(
        matches!(failed, Err(Error::NotMaster(_))),
        "the waiting write fails: {failed:?}"
    );
    assert!(tsd.master().is_err(), "no longer master");
    assert!(!*tsd.serving().borrow(), "its services say so");
    assert!(
        master.append(|_| None).is_err(),
        "the deposed role appends nothing more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_newer_epoch_from_the_coordinator_deposes_the_master_and_fails_every_waiting_write() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let coordinator = answers(3, || Ok(assignment(Role::Slave, 2, 2)));
    let _role = keep(&tsd, coordinator);
    let master = master_of(&tsd).await;
    let _slave = a_silent_slave(&tsd, &master).await;
    let waiting = waiting_login(&tsd, &master, 1);

    let failed = within(waiting).await.expect("the waiter");
    assert!(matches!(failed, Err(Error::NotMaster(_))), "{failed:?}");
    assert!(tsd.master().is_err(), "a slave now");
    assert!(
        tsd.store().read(|s| s.has_user(user(1))),
        "appended, never acknowledged: the next master decides its fate"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hello_from_another_cluster_or_a_second_copy_of_a_slave_is_refused() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let _role = keep(&tsd, always(assignment(Role::Master, 1, 1)));
    let master = master_of(&tsd).await;
    let last = tsd.store().read(|s| s.last());

    // A server of cluster 2, whose epochs are no business of cluster 1's.
    let (stranger, answers) = stream_into(&tsd);
    let mut answers = answers.expect("the stream opens");
    stranger.send(hello(2, 2, 99, last)).await.expect("sent");
    let refused = within(answers.recv()).await.expect("an answer");
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    assert!(tsd.master().is_ok(), "its epoch deposes no one here");

    let (slave, answers) = stream_into(&tsd);
    let _answers = answers.expect("the stream opens");
    slave.send(hello(2, 1, 1, last)).await.expect("sent");
    in_sync(&master).await;
    let (copy, answers) = stream_into(&tsd);
    let mut answers = answers.expect("the stream opens");
    let SlaveMessage::Hello(mut forged) = hello(2, 1, 1, last) else {
        unreachable!("a hello")
    };
    forged.folder = FolderId(99);
    copy.send(SlaveMessage::Hello(forged)).await.expect("sent");
    let refused = within(answers.recv()).await.expect("an answer");
    assert!(matches!(refused, Err(Error::Duplicate(_))), "{refused:?}");
    assert_eq!(
        master.in_sync_report(crate::clock::now()).0,
        [ServerId(2)],
        "the real slave keeps its place"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_does_not_start_with_a_hello_is_refused_and_a_slave_is_refused_service() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let (_slave, answers) = stream_into(&tsd);
    assert!(
        matches!(answers, Err(Error::NotMaster(_))),
        "no master role yet"
    );

    let _role = keep(&tsd, always(assignment(Role::Master, 1, 1)));
    master_of(&tsd).await;
    let (slave, answers) = stream_into(&tsd);
    let mut answers = answers.expect("the stream opens");
    slave
        .send(SlaveMessage::Ack {
            durable: Position(1),
        })
        .await
        .expect("sent");
    let refused = within(answers.recv()).await.expect("an answer");
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lost_slave_holds_commits_until_the_coordinator_confirms_the_smaller_set() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let confirm = Arc::new(AtomicBool::new(true));
    let reported = Arc::new(Mutex::new(Vec::new()));
    let mut coordinator = MockCoordinator::new();
    coordinator.expect_heartbeat().returning({
        let (confirm, reported) = (Arc::clone(&confirm), Arc::clone(&reported));
        move |report| {
            reported
                .lock()
                .expect("the reports")
                .push(report.in_sync.clone());
            Ok(Assignment {
                in_sync_confirmed: confirm.load(Ordering::SeqCst),
                ..assignment(Role::Master, 1, 1)
            })
        }
    });
    let _role = keep(&tsd, Arc::new(coordinator));
    let master = master_of(&tsd).await;
    let last = tsd.store().read(|s| s.last());
    let (slave, answers) = stream_into(&tsd);
    let answers = answers.expect("the stream opens");
    slave.send(hello(2, 1, 1, last)).await.expect("sent");
    in_sync(&master).await;

    // The coordinator stops confirming; the slave goes away without a word.
    confirm.store(false, Ordering::SeqCst);
    drop((slave, answers));
    let position = login(&tsd, 1);
    let waiting = tokio::spawn({
        let master = Arc::clone(&master);
        async move { master.committed(position).await }
    });
    within(async {
        while !reported
            .lock()
            .expect("the reports")
            .last()
            .is_some_and(|set| set.is_empty())
        {
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
    .await;
    tokio::time::sleep(HEARTBEAT * 10).await;
    assert!(
        !waiting.is_finished(),
        "the smaller set is reported but not confirmed: the write waits"
    );

    confirm.store(true, Ordering::SeqCst);
    within(waiting)
        .await
        .expect("the waiter")
        .expect("committed once the smaller set is confirmed");
}

/// Runs a master whose coordinator, after two answers, refuses its reports with `refusal`;
/// checks that it steps down.
async fn steps_down_when_refused(refusal: fn() -> Error) {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let coordinator = answers(2, move || Err(refusal()));
    let _role = keep(&tsd, coordinator);
    master_of(&tsd).await;
    let mut serving = tsd.serving();
    within(serving.wait_for(|&s| !s))
        .await
        .expect("the role task runs");
    assert!(tsd.master().is_err(), "it serves nothing as master");
}

#[tokio::test(start_paused = true)]
async fn a_server_the_coordinator_counts_as_another_copy_steps_down() {
    steps_down_when_refused(|| Error::Duplicate("another copy of server 1".into())).await;
}

#[tokio::test(start_paused = true)]
async fn a_master_whose_claim_the_coordinator_refuses_steps_down() {
    steps_down_when_refused(|| Error::Refused("epoch 7 was never granted".into())).await;
}

#[tokio::test(start_paused = true)]
async fn a_slave_takes_over_when_its_master_goes_silent_and_holds_every_answered_write() {
    let direct = Arc::new(Direct::default());
    let coordinator = Arc::new(Local::new(RegistryConfig {
        clusters: 1,
        failure_timeout: Duration::from_millis(200),
    }));
    let first = a_tsd(1, &direct);
    let first_role = keep(&first, Arc::clone(&coordinator));
    let old = master_of(&first).await;
    let second = a_tsd(2, &direct);
    let _second_role = keep(&second, Arc::clone(&coordinator));
    in_sync(&old).await;
    let answered = login(&first, 1);
    within(old.committed(answered)).await.expect("answered");

    // Server 1 stops reporting (a hang, a cut cable); the coordinator promotes server 2.
    drop(first_role);
    let new = master_of(&second).await;
    assert!(new.epoch() > old.epoch(), "a newer epoch");
    assert!(
        second.store().read(|s| s.has_user(user(1))),
        "the new master holds the answered write"
    );
    let next = login(&second, 2);
    within(new.committed(next))
        .await
        .expect("the new master writes");
}

/// Cluster 2's changes, as its synchronizer gives them: one batch, then nothing more until
/// the question is dropped, which it counts.
struct OneBatch {
    answered: AtomicBool,
    dropped: Arc<AtomicUsize>,
}

/// Counts, when dropped, a question that was still waiting.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl SyncPeer for OneBatch {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(Vec::new())
    }

    async fn changes_after(&self, _: Position, _: usize) -> Result<Changes> {
        if !self.answered.swap(true, Ordering::SeqCst) {
            return Ok(Changes {
                entries: vec![Entry {
                    position: Position(1),
                    epoch: Epoch(1),
                    change: Change::UserJoined {
                        user: user(2),
                        time: Time(1),
                    },
                }],
                through: Position(1),
                log: LogId(1),
            });
        }
        let _waiting = Waiting(Arc::clone(&self.dropped));
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_master_imports_the_other_clusters_while_it_is_master_and_stops_when_deposed() {
    let direct = Arc::new(Direct::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    let peer: Arc<dyn SyncPeer> = Arc::new(OneBatch {
        answered: AtomicBool::new(false),
        dropped: Arc::clone(&dropped),
    });
    let store = Arc::new(Memory::new(Membership {
        cluster: ClusterId(1),
        clusters: 2,
    }));
    let config = Config {
        imports: vec![(ClusterId(2), peer)],
        ..config(1)
    };
    let tsd = a_tsd_with(config, store, &direct);
    let _role = keep(&tsd, answers(10, || Ok(assignment(Role::Slave, 2, 2))));
    let master = master_of(&tsd).await;
    within(async {
        while !tsd.store().read(|s| s.has_user(user(2))) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let merged = tsd.store().read(|s| s.last().position);
    within(master.committed(merged))
        .await
        .expect("the merge commits like any write");

    // The coordinator names another master: the import ends with the role.
    within(async {
        while dropped.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
    .await;
    assert!(tsd.master().is_err(), "deposed");
}

/// Server 1 of cluster 1 of 2, master of epoch 1, with slave 2 in sync (its stream held
/// by the test: it acknowledges only when told); returns the slave's sending end too.
async fn a_master_with_a_slave() -> (
    Arc<Tsd<Memory>>,
    Arc<crate::master::Master<Memory>>,
    Running,
    mpsc::Sender<SlaveMessage>,
    mpsc::Receiver<Result<MasterMessage>>,
) {
    let store = Arc::new(Memory::new(Membership {
        cluster: ClusterId(1),
        clusters: 2,
    }));
    let tsd = a_tsd_with(config(1), store, &Arc::new(Direct::default()));
    let role = keep(&tsd, always(assignment(Role::Master, 1, 1)));
    let master = master_of(&tsd).await;
    let last = tsd.store().read(|s| s.last());
    let (slave, answers) = stream_into(&tsd);
    slave.send(hello(2, 1, 1, last)).await.expect("sent");
    in_sync(&master).await;
    (tsd, master, role, slave, answers.expect("the stream opens"))
}

#[tokio::test(start_paused = true)]
async fn a_masters_feed_holds_only_its_own_clusters_changes_and_only_once_committed() {
    let (tsd, master, _role, slave, _answers) = a_master_with_a_slave().await;
    let feed = tsd.reader(ClusterId(1)).expect("its own cluster's feed");
    assert!(
        matches!(tsd.reader(ClusterId(2)), Err(Error::Invalid(_))),
        "no other cluster's"
    );
    let own = login(&tsd, 1);
    // User 2 is of cluster 2: an entry an import would write.
    let imported = master
        .append(|state| {
            Some(Change::UserJoined {
                user: user(2),
                time: state.next_time(Time(2)),
            })
        })
        .expect("appended");

    let before = within(feed.changes_after(Position(0), 10))
        .await
        .expect("an answer");
    assert!(before.entries.is_empty(), "nothing uncommitted: {before:?}");
    assert!(before.through < own);

    slave
        .send(SlaveMessage::Ack { durable: imported })
        .await
        .expect("sent");
    let after = within(feed.changes_after(before.through, 10))
        .await
        .expect("an answer");
    let positions: Vec<Position> = after.entries.iter().map(|e| e.position).collect();
    assert_eq!(positions, [own], "its own user's login, not the import");
    assert_eq!(after.through, imported, "past what it does not serve");
}

#[tokio::test(start_paused = true)]
async fn a_slave_serves_no_feed_and_a_deposed_master_ends_its_readers() {
    let idle = a_tsd(1, &Arc::new(Direct::default()));
    let refused = idle
        .reader(ClusterId(1))
        .expect("a reader")
        .changes_after(Position(0), 10)
        .await;
    assert!(
        matches!(refused, Err(Error::NotMaster(_))),
        "not master yet"
    );

    let (tsd, master, _role, _slave, _answers) = a_master_with_a_slave().await;
    let feed = tsd.reader(ClusterId(1)).expect("a reader");
    let end = tsd.store().read(|s| s.last().position);
    within(master.committed(end)).await.expect("committed");
    let waiting = tokio::spawn(async move { feed.changes_after(end, 10).await });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "it waits for news");
    tsd.saw_epoch(Epoch(99));
    let ended = within(waiting).await.expect("the reader");
    assert!(
        matches!(ended, Err(Error::NotMaster(_))),
        "a deposed master tells its reader to look elsewhere: {:?}",
        ended.map(|c| c.through)
    );
}

/// The coordinator cannot be reached.
fn unreachable_coordinator() -> Result<Assignment> {
    Err(Error::Unavailable {
        what: "the coordinator".into(),
        reason: "cut off".into(),
    })
}

#[tokio::test(start_paused = true)]
async fn a_master_cut_off_from_the_coordinator_whose_writes_do_not_commit_steps_down() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let _role = keep(&tsd, answers(2, unreachable_coordinator));
    let master = master_of(&tsd).await;
    // Its slave, in sync, stops answering: it was promoted elsewhere.
    let last = tsd.store().read(|s| s.last());
    let (slave, answers) = stream_into(&tsd);
    let _held = (slave.clone(), answers.expect("the stream opens"));
    slave.send(hello(2, 1, 1, last)).await.expect("sent");
    in_sync(&master).await;
    let waiting = waiting_login(&tsd, &master, 1);
    let failed = within(waiting).await.expect("the waiter");
    assert!(
        matches!(failed, Err(Error::NotMaster(_))),
        "the write is never acknowledged: {failed:?}"
    );
    assert!(tsd.master().is_err(), "it stepped down");
    assert!(!*tsd.serving().borrow(), "and says so to health checks");
}

#[tokio::test(start_paused = true)]
async fn a_master_that_cannot_reach_the_coordinator_but_commits_carries_on() {
    let direct = Arc::new(Direct::default());
    let tsd = a_tsd(1, &direct);
    let _role = keep(&tsd, answers(2, unreachable_coordinator));
    let master = master_of(&tsd).await;
    for n in 1..=10 {
        let position = login(&tsd, n);
        within(master.committed(position))
            .await
            .expect("committed alone");
        tokio::time::sleep(HEARTBEAT * 2).await;
    }
    assert!(
        tsd.master().is_ok(),
        "writes commit: the coordinator's silence alone is no reason to step down"
    );
}

/// The serving runtime of [`a_role_reports_for_a_slow_runtime_and_not_for_one_that_runs_nothing`]:
/// a one-thread runtime that the test can block (a wedge) for a while.
struct Wedgeable {
    serving: Serving,
    wedge: std::sync::mpsc::Sender<Duration>,
    /// True while a wedge blocks it, sent as it begins and as it ends.
    wedged: std::sync::mpsc::Receiver<bool>,
}

impl Wedgeable {
    fn start() -> Self {
        let (wedge, wedges) = std::sync::mpsc::channel::<Duration>();
        let (tell, wedged) = std::sync::mpsc::channel();
        let (made, serving) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                made.send(Serving::current(HEARTBEAT))
                    .expect("the test waits");
                loop {
                    tokio::time::sleep(HEARTBEAT / 5).await;
                    match wedges.try_recv() {
                        Ok(how_long) => {
                            let _ = tell.send(true);
                            std::thread::sleep(how_long);
                            let _ = tell.send(false);
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => {}
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                    }
                }
            });
        });
        Wedgeable {
            serving: serving.recv().expect("the serving runtime"),
            wedge,
            wedged,
        }
    }

    /// Blocks the runtime for `how_long`; returns what `count` said as the wedge began and
    /// as it ended.
    fn wedge(&self, how_long: Duration, count: impl Fn() -> usize) -> (usize, usize) {
        self.wedge.send(how_long).expect("the runtime runs");
        let wait = |state| {
            let told = self
                .wedged
                .recv_timeout(how_long + Duration::from_secs(10))
                .expect("the runtime tells");
            assert_eq!(told, state);
            count()
        };
        (wait(true), wait(false))
    }
}

/// The role of a tsd, on a runtime of its own as in a tsd, its duties on a [`Wedgeable`]
/// runtime, reporting to a coordinator that counts its heartbeats and makes it master.
struct Reporting {
    heartbeats: Arc<AtomicUsize>,
    serving: Wedgeable,
    _role: tokio::runtime::Runtime,
}

impl Reporting {
    /// Starts the role of `tsd`; returns once it has reported three times.
    fn start<S: Store>(tsd: Arc<Tsd<S>>) -> Self {
        let heartbeats = Arc::new(AtomicUsize::new(0));
        let mut coordinator = MockCoordinator::new();
        let counted = Arc::clone(&heartbeats);
        coordinator.expect_heartbeat().returning(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(assignment(Role::Master, 1, 1))
        });
        let serving = Wedgeable::start();
        let role = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        role.spawn(keep_role(
            tsd,
            Arc::new(coordinator),
            serving.serving.clone(),
        ));
        let reporting = Reporting {
            heartbeats,
            serving,
            _role: role,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reporting.count() < 3 {
            assert!(std::time::Instant::now() < deadline, "no heartbeats");
            std::thread::sleep(HEARTBEAT);
        }
        reporting
    }

    /// How many heartbeats the coordinator has had.
    fn count(&self) -> usize {
        self.heartbeats.load(Ordering::SeqCst)
    }
}

/// The role runs on a thread of its own: it reports while the runtime that serves the
/// clients is slow (a loaded server is not a dead one), but stops once that runtime has
/// run nothing for the stall limit — the coordinator must then replace the server — and
/// reports again once it runs.
#[test]
fn a_role_reports_for_a_slow_runtime_and_not_for_one_that_runs_nothing() {
    use super::serving::STALL_BEATS;
    let reporting = Reporting::start(a_tsd(1, &Arc::new(Direct::default())));
    let (serving, count) = (&reporting.serving, || reporting.count());

    // Slow: blocked for half the stall limit. The heartbeats go on meanwhile.
    let (began, ended) = serving.wedge(HEARTBEAT * STALL_BEATS / 2, count);
    assert!(
        ended >= began + 2,
        "heartbeats while slow: {began} -> {ended}"
    );

    // Wedged: blocked for three stall limits. Reports stop once one has passed.
    let wedge = HEARTBEAT * STALL_BEATS * 3;
    let beats_in_wedge = (wedge.as_millis() / HEARTBEAT.as_millis()) as usize;
    let (began, ended) = serving.wedge(wedge, count);
    assert!(
        ended - began < beats_in_wedge / 2,
        "reported {} times in a wedge of {beats_in_wedge} intervals",
        ended - began
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count() <= ended {
        assert!(
            std::time::Instant::now() < deadline,
            "no report after the wedge"
        );
        std::thread::sleep(HEARTBEAT);
    }
}

/// A heartbeat tells the log's end without waiting for the store's lock: a server whose
/// state is held by a long append (a master at full load held it for half a second) goes
/// on reporting.
#[test]
fn a_role_reports_while_the_state_of_its_store_is_held() {
    use super::serving::STALL_BEATS;
    let folder = tempfile::tempdir().expect("a temporary folder");
    let membership = Membership {
        cluster: ClusterId(1),
        clusters: 1,
    };
    let (store, _) = tsn_fs::FileStore::open(folder.path(), membership).expect("a store");
    let upstream: Arc<dyn Upstream> = Arc::new(Direct::default());
    let tsd = Tsd::new(config(1), Arc::new(store), upstream);
    let reporting = Reporting::start(Arc::clone(&tsd));
    // Held for half the stall limit, so that the serving runtime, whose tasks wait for the
    // state too, is not taken for a wedged one.
    let began = reporting.count();
    tsd.store()
        .read(|_| std::thread::sleep(HEARTBEAT * STALL_BEATS / 2));
    let ended = reporting.count();
    assert!(
        ended >= began + 2,
        "heartbeats while the state was held: {began} -> {ended}"
    );
}
