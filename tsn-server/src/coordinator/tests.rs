//! The coordinators in one process: [`Local`] alone, and [`Shared`] coordinators on one
//! [`MemoryBoard`], on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use tsn_core::change::LogPoint;
use tsn_core::coordinator::{
    Assignment, Coordinator, Endpoint, RegistryConfig, Report, Role, RoleChange, ServerRef,
};
use tsn_core::id::{ClusterId, Epoch, FolderId, ServerId, UserId};

use super::{Board, Local, MemoryBoard, Notice, Shared, Swap, Ticking};

/// The failure timeout of these tests.
const TIMEOUT: Duration = Duration::from_millis(100);

/// A heartbeat of server `server` of cluster 1, in `role` at `epoch`.
fn report(server: u32, role: Option<Role>, epoch: Epoch) -> Report {
    Report {
        server: ServerRef {
            cluster: ClusterId(1),
            server: ServerId(server),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: 10_000 + server as u16,
            },
        },
        incarnation: 1,
        folder: FolderId(u64::from(server)),
        role,
        epoch,
        log: LogPoint::default(),
        in_sync: Vec::new(),
    }
}

fn config() -> RegistryConfig {
    RegistryConfig {
        clusters: 1,
        failure_timeout: TIMEOUT,
    }
}

fn user_of_cluster_1() -> UserId {
    UserId::new(1).expect("a user")
}

/// Server `server` (1 or 2) heartbeats `coordinator`, doing as told, every 20 ms for
/// `how_long`; as master it reports the other server in sync. The last answer.
async fn heartbeats(coordinator: &dyn Coordinator, server: u32, how_long: Duration) -> Assignment {
    let mut role = None;
    let mut epoch = Epoch(0);
    let mut last = None;
    let end = tokio::time::Instant::now() + how_long;
    while tokio::time::Instant::now() < end {
        let mut sent = report(server, role, epoch);
        if role == Some(Role::Master) {
            sent.in_sync = vec![ServerId(3 - server)];
        }
        let answer = coordinator.heartbeat(sent).await.expect("a heartbeat");
        role = Some(answer.role);
        epoch = answer.epoch;
        last = Some(answer);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last.expect("at least one heartbeat")
}

/// Has each of `coordinators` tick, `rounds` times, a quarter of a failure timeout apart.
async fn tick(coordinators: Vec<&dyn Ticking>, rounds: usize) {
    for _ in 0..rounds {
        for coordinator in &coordinators {
            coordinator.tick().await;
        }
        tokio::time::sleep(TIMEOUT / 4).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_routing_question_asked_while_listening_waits_for_the_master() {
    let coordinator = Arc::new(Local::new(config()));
    let asked = tokio::spawn({
        let coordinator = Arc::clone(&coordinator);
        async move { coordinator.server_for(user_of_cluster_1()).await }
    });
    let answer = heartbeats(coordinator.as_ref(), 1, 3 * TIMEOUT).await;
    assert_eq!(answer.role, Role::Master);
    let routed = asked.await.expect("the question").expect("an answer");
    assert_eq!(routed.map(|s| s.server), Some(ServerId(1)));
}

#[tokio::test(start_paused = true)]
async fn a_cluster_without_a_server_has_no_master_once_listening_is_over() {
    let coordinator = Local::new(config());
    tokio::time::advance(2 * TIMEOUT).await;
    let routed = coordinator.server_for(user_of_cluster_1()).await;
    assert_eq!(routed.expect("an answer"), None);
    assert!(coordinator.tick().await.is_empty(), "nothing to decide");
}

/// Two coordinators on one board.
async fn two_on_one_board() -> (
    Arc<MemoryBoard>,
    Arc<Shared<MemoryBoard>>,
    Arc<Shared<MemoryBoard>>,
) {
    let board = Arc::new(MemoryBoard::new());
    let a = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("a");
    let b = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("b");
    (board, a, b)
}

/// The cluster record the board holds.
async fn record(board: &MemoryBoard) -> (Option<ServerId>, Epoch) {
    let snapshot = board.snapshot().await.expect("a snapshot");
    snapshot
        .notices
        .into_iter()
        .find_map(|n| match n {
            Notice::Cluster { state, .. } => Some((state.master, state.epoch)),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn coordinators_on_one_board_agree_on_the_master_whichever_one_a_server_asks() {
    let (board, a, b) = two_on_one_board().await;
    // Server 1 reports to a, server 2 to b, at the same time.
    let (one, two) = tokio::join!(
        heartbeats(a.as_ref(), 1, 4 * TIMEOUT),
        heartbeats(b.as_ref(), 2, 4 * TIMEOUT)
    );
    let masters = [one.role, two.role];
    assert_eq!(
        masters.iter().filter(|&&r| r == Role::Master).count(),
        1,
        "exactly one master: {masters:?}"
    );
    assert_eq!(one.epoch, two.epoch, "one epoch for both");
    let master = record(&board).await.0.expect("a master on the board");
    for coordinator in [&a, &b] {
        let routed = coordinator
            .server_for(user_of_cluster_1())
            .await
            .expect("routed");
        assert_eq!(routed.map(|s| s.server), Some(master), "both route to it");
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_master_is_replaced_once_though_every_coordinator_notices() {
    let (board, a, b) = two_on_one_board().await;
    tokio::join!(
        heartbeats(a.as_ref(), 1, 4 * TIMEOUT),
        heartbeats(b.as_ref(), 2, 4 * TIMEOUT)
    );
    let (master, epoch) = record(&board).await;
    let survivor = if master == Some(ServerId(1)) { 2 } else { 1 };
    let (to, other) = if survivor == 1 { (&a, &b) } else { (&b, &a) };

    // The master falls silent; both coordinators tick while the survivor reports.
    let ticking = tick(vec![a.as_ref(), b.as_ref()], 20);
    let (answer, ()) = tokio::join!(heartbeats(to.as_ref(), survivor, 5 * TIMEOUT), ticking);
    assert_eq!(answer.role, Role::Master, "the survivor is promoted");
    let (now_master, new_epoch) = record(&board).await;
    assert_eq!(now_master, Some(ServerId(survivor)));
    assert!(new_epoch > epoch, "a new epoch");
    // One promotion: the epoch on the board is the one the survivor serves at, and the other
    // coordinator, asked by the survivor, says the same.
    assert_eq!(answer.epoch, new_epoch);
    let asked_elsewhere = other
        .heartbeat(report(survivor, Some(Role::Master), new_epoch))
        .await
        .expect("a heartbeat");
    assert_eq!(
        (asked_elsewhere.role, asked_elsewhere.epoch),
        (Role::Master, new_epoch)
    );
}

#[tokio::test(start_paused = true)]
async fn a_master_found_down_is_replaced_on_the_board_before_its_failure_timeout() {
    let (board, a, b) = two_on_one_board().await;
    tokio::join!(
        heartbeats(a.as_ref(), 1, 4 * TIMEOUT),
        heartbeats(b.as_ref(), 2, 4 * TIMEOUT)
    );
    let (master, epoch) = record(&board).await;
    let survivor = if master == Some(ServerId(1)) { 2 } else { 1 };
    let (to, other) = if survivor == 1 { (&a, &b) } else { (&b, &a) };

    // The master falls silent for half its failure timeout while the survivor reports.
    heartbeats(to.as_ref(), survivor, TIMEOUT / 2).await;
    let late = other.late_masters(TIMEOUT / 4);
    assert_eq!(
        late.iter().map(|l| l.server.server).collect::<Vec<_>>(),
        vec![master.expect("a master")],
        "the silent master is late"
    );
    let changes = other.found_down(&late[0]).await;
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, RoleChange::Promoted { server, .. } if server.0 == survivor)),
        "{changes:?}"
    );
    let (now_master, new_epoch) = record(&board).await;
    assert_eq!(now_master, Some(ServerId(survivor)), "on the board");
    assert!(new_epoch > epoch, "a new epoch");
    let answer = heartbeats(to.as_ref(), survivor, TIMEOUT / 4).await;
    assert_eq!(
        (answer.role, answer.epoch),
        (Role::Master, new_epoch),
        "the coordinator the survivor reports to adopted the decision"
    );
}

#[tokio::test(start_paused = true)]
async fn a_master_heard_only_through_the_other_coordinator_is_not_replaced() {
    let (board, a, b) = two_on_one_board().await;
    let ticking_b = tick(vec![b.as_ref()], 30);
    let (answer, ()) = tokio::join!(heartbeats(a.as_ref(), 1, 8 * TIMEOUT), ticking_b);
    assert_eq!(answer.role, Role::Master);
    assert_eq!(
        record(&board).await.0,
        Some(ServerId(1)),
        "b never replaced it"
    );
}

#[tokio::test(start_paused = true)]
async fn epochs_never_go_back_when_every_coordinator_restarts() {
    let board = Arc::new(MemoryBoard::new());
    let first = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("first");
    let answer = heartbeats(first.as_ref(), 1, 3 * TIMEOUT).await;
    assert_eq!(answer.role, Role::Master);
    drop(first);

    // A new coordinator on the same board knows the master and its epoch at once.
    let second = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("second");
    let again = second
        .heartbeat(report(1, Some(Role::Master), answer.epoch))
        .await
        .expect("a heartbeat");
    assert_eq!((again.role, again.epoch), (Role::Master, answer.epoch));
    let (_, epoch) = record(&board).await;
    assert_eq!(epoch, answer.epoch);
}

#[tokio::test(start_paused = true)]
async fn a_swap_is_lost_when_the_record_or_the_guarded_heartbeat_changed() {
    let board = MemoryBoard::new();
    let state = tsn_core::coordinator::ClusterState {
        epoch: Epoch(5),
        master: Some(ServerId(1)),
        master_incarnation: 1,
        in_sync: vec![ServerId(1)],
    };
    let cluster = ClusterId(1);
    let Swap::Done(first) = board
        .swap_cluster(cluster, 0, &state, None)
        .await
        .expect("a swap")
    else {
        panic!("a record that does not exist is created");
    };
    let stale = board
        .swap_cluster(cluster, 0, &state, None)
        .await
        .expect("a swap");
    assert_eq!(stale, Swap::Lost(Some((state.clone(), first))));
    let heard = board
        .post_heartbeat(&report(1, Some(Role::Master), Epoch(5)))
        .await
        .expect("a heartbeat");
    let guard = Some((ServerId(1), heard - 1));
    let guarded = board
        .swap_cluster(cluster, first, &state, guard)
        .await
        .expect("a swap");
    assert!(matches!(guarded, Swap::Lost(_)), "the master spoke since");
    let fresh = Some((ServerId(1), heard));
    let done = board
        .swap_cluster(cluster, first, &state, fresh)
        .await
        .expect("a swap");
    assert!(matches!(done, Swap::Done(_)));
}

/// A board that can stall, as etcd does while it elects a leader: every write fails.
#[derive(Debug, Default)]
struct Stalling {
    board: MemoryBoard,
    stalled: std::sync::atomic::AtomicBool,
}

impl Stalling {
    /// Stalls the board, or ends the stall.
    fn stall(&self, stalled: bool) {
        self.stalled
            .store(stalled, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> tsn_core::Result<()> {
        match self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
            true => Err(tsn_core::Error::Unavailable {
                what: "the board".into(),
                reason: "stalled".into(),
            }),
            false => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Board for Stalling {
    async fn snapshot(&self) -> tsn_core::Result<super::Snapshot> {
        self.check()?;
        self.board.snapshot().await
    }
    async fn watch(
        &self,
        after: super::Revision,
    ) -> tsn_core::Result<tokio::sync::mpsc::Receiver<tsn_core::Result<Vec<Notice>>>> {
        self.check()?;
        self.board.watch(after).await
    }
    async fn post_heartbeat(&self, report: &Report) -> tsn_core::Result<super::Revision> {
        self.check()?;
        self.board.post_heartbeat(report).await
    }
    async fn pulse(&self, from: u64) -> tsn_core::Result<()> {
        self.check()?;
        self.board.pulse(from).await
    }
    async fn post_sync(&self, sync: &ServerRef, folder: FolderId) -> tsn_core::Result<()> {
        self.check()?;
        self.board.post_sync(sync, folder).await
    }
    async fn swap_cluster(
        &self,
        cluster: ClusterId,
        expected: super::Revision,
        state: &tsn_core::coordinator::ClusterState,
        guard: Option<(ServerId, super::Revision)>,
    ) -> tsn_core::Result<Swap> {
        self.check()?;
        self.board
            .swap_cluster(cluster, expected, state, guard)
            .await
    }
}

#[tokio::test(start_paused = true)]
async fn a_board_that_stalls_longer_than_the_failure_timeout_makes_no_master_fail() {
    let board = Arc::new(Stalling::default());
    let a = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("a");
    let b = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("b");
    let (one, _) = tokio::join!(
        heartbeats(a.as_ref(), 1, 4 * TIMEOUT),
        heartbeats(b.as_ref(), 2, 4 * TIMEOUT)
    );
    let master = if one.role == Role::Master { 1 } else { 2 };
    let epoch = one.epoch;

    // The board stalls for two failure timeouts; nothing reaches it, the coordinators tick,
    // and the master goes on reporting to b, which cannot write its heartbeats: to a, it is
    // silent.
    board.stall(true);
    let ticking = tick(vec![a.as_ref(), b.as_ref()], 8);
    let (during, ()) = tokio::join!(heartbeats(b.as_ref(), master, 2 * TIMEOUT), ticking);
    assert_eq!(during.role, Role::Master, "answered from the records");
    board.stall(false);
    // Back, the coordinators tick before the master's next heartbeat comes: its silence
    // was the board's, and they know it.
    a.tick().await;
    b.tick().await;
    assert_eq!(
        record(&board.board).await,
        (Some(ServerId(master)), epoch),
        "nobody promoted"
    );

    // The master reports on, ticks go on, and it keeps its place.
    let ticking = tick(vec![a.as_ref(), b.as_ref()], 12);
    let (answer, ()) = tokio::join!(heartbeats(a.as_ref(), master, 3 * TIMEOUT), ticking);
    assert_eq!(
        (answer.role, answer.epoch),
        (Role::Master, epoch),
        "the master kept its role and epoch"
    );
}

#[tokio::test(start_paused = true)]
async fn a_smaller_in_sync_set_is_confirmed_only_once_the_board_holds_it() {
    let board = Arc::new(Stalling::default());
    let a = Shared::start(config(), Arc::clone(&board))
        .await
        .expect("a");
    let (one, _) = tokio::join!(
        heartbeats(a.as_ref(), 1, 4 * TIMEOUT),
        heartbeats(a.as_ref(), 2, 4 * TIMEOUT)
    );
    let master = if one.role == Role::Master { 1 } else { 2 };
    let alone = report(master, Some(Role::Master), one.epoch);

    // The master reports its slave gone while the board cannot take it: not confirmed, or
    // it would commit without the slave that the board still says may be promoted.
    board.stall(true);
    let stalled = a.heartbeat(alone.clone()).await.expect("answered");
    assert!(
        !stalled.in_sync_confirmed,
        "not on the board, not confirmed"
    );
    board.stall(false);
    tokio::time::sleep(TIMEOUT).await;
    let written = a.heartbeat(alone).await.expect("answered");
    assert!(
        written.in_sync_confirmed,
        "confirmed once the board holds it"
    );
}
