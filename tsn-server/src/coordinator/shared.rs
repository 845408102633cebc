//! [`Shared`]: one of any number of coordinators that share a [`Board`].
//!
//! Each keeps a [`Registry`] of its own, the same rules as [`Local`](super::Local)'s, fed
//! with everything written on the board: every server's heartbeats and every
//! synchronizer's registration (whichever coordinator received them) and each cluster's
//! record — epoch, master, in-sync set. Liveness is judged on this process's own monotonic
//! clock, from when each heartbeat was seen, so coordinators need no common clock.
//!
//! Only a cluster's record is decided, and it changes only by compare-and-swap on the
//! board: a coordinator whose registry decides something (a heartbeat reports a new in-sync
//! set, a master fell silent) writes the new record if the record is still the one it knows,
//! and answers heartbeats only from what the board holds. Of two coordinators deciding at
//! once, one wins; the other adopts what won. A promotion is also guarded by the silent
//! master's last heartbeat: if the master sent one since (through another coordinator,
//! whose write this one has not seen yet), the swap fails and nobody is promoted. Epochs
//! live in the records, so they never go back, whichever coordinators restart.
//!
//! Silence on a stalled board is not failure: each coordinator writes a pulse eight times
//! per failure timeout, and while it has not seen its own pulse come back for a quarter of
//! a failure timeout (the store is electing a leader, or unreachable, or the watch lags) it
//! decides nothing; when its pulse comes back, nobody's silence counts for the time the
//! board was stalled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tsn_core::coordinator::{
    Assignment, ClusterState, Coordinator, LateMaster, Registry, RegistryConfig, Report,
    RoleChange, ServerRef,
};
use tsn_core::id::{ClusterId, Epoch, FolderId, ServerId, UserId, home_cluster};
use tsn_core::{Error, Result};

use super::Ticking;
use super::board::{Board, Notice, Revision, Swap};
use super::local::route;
use crate::clock;

/// How long a coordinator waits before reading the board again after its watch broke.
const REWATCH: Duration = Duration::from_millis(100);

/// A coordinator sharing a [`Board`] with others. See the [module docs](self).
#[derive(Debug)]
pub struct Shared<B> {
    board: Arc<B>,
    inner: Mutex<Inner>,
    /// Held while deciding and writing a record, so that this coordinator's own decisions
    /// do not race each other.
    deciding: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Inner {
    /// This coordinator's random id, in its pulses.
    me: u64,
    failure_timeout: Duration,
    /// When this coordinator last saw its own pulse come back.
    last_pulse: Instant,
    /// Whether it has found its pulse late, and decides nothing until it comes back.
    stalled: bool,
    registry: Registry,
    /// By cluster: its record as the board holds it, and the record's revision.
    committed: BTreeMap<ClusterId, (ClusterState, Revision)>,
    /// By server: the revision of its last heartbeat seen on the board.
    heard: BTreeMap<(ClusterId, ServerId), Revision>,
    /// By cluster: the revision of its synchronizer's last registration seen on the board.
    registered: BTreeMap<ClusterId, Revision>,
    /// The servers whose latest heartbeat came to this coordinator itself, not through the
    /// board: while the board stalls, their silence still tells (they would have reached
    /// this coordinator, which answers them all the same).
    direct: BTreeSet<(ClusterId, ServerId)>,
    /// Role changes seen (decided here or adopted) since the last tick.
    changes: Vec<RoleChange>,
}

/// A record a registry decided, to write on the board.
#[derive(Debug)]
struct Proposal {
    cluster: ClusterId,
    state: ClusterState,
    /// The last heartbeat of the master it replaces, which must not have changed.
    guard: Option<(ServerId, Revision)>,
}

impl Inner {
    /// The record of `cluster` as the board holds it.
    fn committed(&self, cluster: ClusterId) -> (ClusterState, Revision) {
        self.committed.get(&cluster).cloned().unwrap_or_default()
    }

    /// Puts the registry's record of `cluster` back to what the board holds, dropping
    /// what the registry decided on its own.
    fn settle(&mut self, cluster: ClusterId) {
        let (state, _) = self.committed(cluster);
        self.registry.adopt(cluster, state);
        self.registry.take_changes();
    }

    /// Takes in a record the board holds (written by this coordinator or another), unless
    /// an older one than known; the role changes noted are those of the board's records,
    /// whoever decided them.
    fn adopt(&mut self, cluster: ClusterId, state: ClusterState, revision: Revision) {
        let (held, known) = self.committed(cluster);
        if revision <= known {
            return;
        }
        self.changes.extend(held.changes_to(cluster, &state));
        self.committed.insert(cluster, (state.clone(), revision));
        self.registry.adopt(cluster, state);
        self.registry.take_changes();
    }

    /// Takes in what was written on the board.
    fn apply(&mut self, notice: Notice) {
        let now = clock::now();
        match notice {
            Notice::Heartbeat { report, revision } => {
                let key = (report.server.cluster, report.server.server);
                if revision > self.heard.get(&key).copied().unwrap_or(0) {
                    self.heard.insert(key, revision);
                    self.direct.remove(&key);
                    // Only liveness is learned here; the coordinator that received the
                    // heartbeat decided on it (and checked it).
                    self.registry.hear(&report, now);
                }
            }
            Notice::Sync {
                sync,
                folder,
                revision,
            } => {
                // A registration read again (a new watch) says nothing new of liveness.
                let seen = self.registered.entry(sync.cluster).or_default();
                if revision > *seen {
                    *seen = revision;
                    let _ = self.registry.register_sync(sync, folder, now);
                }
            }
            Notice::Pulse { from } if from == self.me => {
                if std::mem::take(&mut self.stalled) {
                    let deaf = now.duration_since(self.last_pulse);
                    let direct = &self.direct;
                    self.registry
                        .forgive(deaf, now, |c, s| direct.contains(&(c, s)));
                }
                self.last_pulse = now;
            }
            Notice::Pulse { .. } => {}
            Notice::Cluster {
                cluster,
                state,
                revision,
            } => self.adopt(cluster, state, revision),
        }
    }

    /// Has the registry listen again for a while if this coordinator has not seen its own
    /// pulse come back for a quarter of a failure timeout: it cannot tell silence from a
    /// stalled board.
    fn mind_the_board(&mut self, now: Instant) {
        let late = self.failure_timeout / 4;
        if now.duration_since(self.last_pulse) > late {
            self.stalled = true;
            self.registry.listen_again(now, late);
        }
    }

    /// The records the registry decided that the board does not hold yet.
    fn proposals(&self) -> Vec<Proposal> {
        (1..=self.registry.clusters())
            .map(ClusterId)
            .filter_map(|cluster| {
                let decided = self.registry.cluster_state(cluster);
                let (held, _) = self.committed(cluster);
                if decided == held {
                    return None;
                }
                let guard = held
                    .master
                    .filter(|&m| decided.master != Some(m))
                    .map(|m| (m, self.heard.get(&(cluster, m)).copied().unwrap_or(0)));
                Some(Proposal {
                    cluster,
                    state: decided,
                    guard,
                })
            })
            .collect()
    }
}

impl<B: Board> Shared<B> {
    /// A coordinator on `board`: it reads the board, and follows it from then on (in a task
    /// that ends when the coordinator is dropped). Like [`Local`](super::Local), it
    /// promotes no one during its first failure timeout, while it learns which servers
    /// are live.
    pub async fn start(config: RegistryConfig, board: Arc<B>) -> Result<Arc<Shared<B>>> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let shared = Arc::new(Shared {
            board,
            inner: Mutex::new(Inner {
                me: rand_id(),
                failure_timeout: config.failure_timeout,
                last_pulse: clock::now(),
                stalled: false,
                registry: Registry::new(config, clock::now(), Epoch(millis)),
                committed: BTreeMap::new(),
                heard: BTreeMap::new(),
                registered: BTreeMap::new(),
                direct: BTreeSet::new(),
                changes: Vec::new(),
            }),
            deciding: tokio::sync::Mutex::new(()),
        });
        let revision = shared.read_board().await?;
        tokio::spawn(follow(Arc::downgrade(&shared), revision));
        tokio::spawn(pulse(Arc::downgrade(&shared), config.failure_timeout / 8));
        Ok(shared)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in everything on the board; the revision it was read at.
    async fn read_board(&self) -> Result<Revision> {
        let snapshot = self.board.snapshot().await?;
        let mut inner = self.lock();
        for notice in snapshot.notices {
            inner.apply(notice);
        }
        Ok(snapshot.revision)
    }

    /// Writes every record the registry decided, each swap within an eighth of the
    /// failure timeout; a lost swap adopts what won. A swap that fails or takes too long
    /// leaves its cluster as the board holds it (what it came to, the watch brings), and
    /// the first such failure is returned once every record was tried.
    async fn write_decisions(&self) -> Result<()> {
        let (proposals, patience) = {
            let inner = self.lock();
            (inner.proposals(), inner.failure_timeout / 8)
        };
        let mut failed = None;
        for Proposal {
            cluster,
            state,
            guard,
        } in proposals
        {
            let expected = self.lock().committed(cluster).1;
            let swap = self.board.swap_cluster(cluster, expected, &state, guard);
            let swapped = tokio::time::timeout(patience, swap).await;
            let mut inner = self.lock();
            match swapped {
                Ok(Ok(Swap::Done(revision))) => inner.adopt(cluster, state, revision),
                Ok(Ok(Swap::Lost(held))) => {
                    if let Some((state, revision)) = held {
                        inner.adopt(cluster, state, revision);
                    }
                    inner.settle(cluster);
                }
                Ok(Err(error)) => {
                    inner.settle(cluster);
                    failed.get_or_insert(error);
                }
                Err(_) => {
                    inner.settle(cluster);
                    failed.get_or_insert(Error::Unavailable {
                        what: "the coordinators' board".into(),
                        reason: "a decision was not written in time".into(),
                    });
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Whether `report` would be taken ([`Registry::check_heartbeat`]). An epoch refused as
    /// newer than the cluster's may only be one another coordinator granted a moment ago,
    /// not yet seen here: the board is read again before it is refused, and if it cannot
    /// be read in time the report is neither taken nor refused ([`Error::Unavailable`]).
    async fn check_against_board(&self, report: &Report) -> Result<()> {
        let checked = self.lock().registry.check_heartbeat(report, clock::now());
        let Err(Error::Refused(_)) = checked else {
            return checked;
        };
        let patience = self.lock().failure_timeout / 8;
        match tokio::time::timeout(patience, self.read_board()).await {
            Ok(Ok(_)) => self.lock().registry.check_heartbeat(report, clock::now()),
            Ok(Err(_)) | Err(_) => Err(Error::Unavailable {
                what: "the coordinators' board".into(),
                reason: "it cannot be read to check the reported epoch".into(),
            }),
        }
    }

    /// Writes what the registry decided on the board; the role changes since the last
    /// call. Called with `deciding` held.
    async fn decided(&self) -> Vec<RoleChange> {
        if let Err(error) = self.write_decisions().await {
            tracing::warn!(%error, "cannot write a decision on the coordinators' board");
        }
        std::mem::take(&mut self.lock().changes)
    }
}

/// Follows the board from `revision` on, for as long as the coordinator lives: applies
/// every write, and reads the whole board again whenever the watch breaks.
async fn follow<B: Board>(shared: Weak<Shared<B>>, mut revision: Revision) {
    loop {
        let Some(board) = shared.upgrade().map(|s| Arc::clone(&s.board)) else {
            return;
        };
        if let Ok(mut watch) = board.watch(revision).await {
            drop(board);
            loop {
                let Some(patience) = shared.upgrade().map(|s| s.lock().failure_timeout / 2) else {
                    return;
                };
                let notices = match tokio::time::timeout(patience, watch.recv()).await {
                    Ok(Some(Ok(notices))) => notices,
                    Ok(_) => break,
                    // Quiet: fine while this coordinator's own pulses come back through
                    // it; a watch that brings not even those is stuck, and is made anew.
                    Err(_) => match shared.upgrade() {
                        Some(s) if clock::now().duration_since(s.lock().last_pulse) > patience => {
                            break;
                        }
                        Some(_) => continue,
                        None => return,
                    },
                };
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut inner = shared.lock();
                for notice in notices {
                    revision = revision.max(notice_revision(&notice));
                    inner.apply(notice);
                }
            }
        }
        tokio::time::sleep(REWATCH).await;
        let Some(strong) = shared.upgrade() else {
            return;
        };
        match strong.read_board().await {
            Ok(read) => revision = read,
            Err(error) => tracing::warn!(%error, "cannot read the coordinators' board"),
        }
    }
}

/// Writes the coordinator's pulse every `every`, for as long as it lives; each write on its
/// own, so that one that hangs (the board stalled) holds up none of the next.
async fn pulse<B: Board>(shared: Weak<Shared<B>>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let me = shared.lock().me;
        let board = Arc::clone(&shared.board);
        tokio::spawn(async move { board.pulse(me).await });
    }
}

/// A random id for a coordinator's pulses, from the time and the process.
fn rand_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The revision a write was made at, where the notice says.
fn notice_revision(notice: &Notice) -> Revision {
    match notice {
        Notice::Heartbeat { revision, .. }
        | Notice::Cluster { revision, .. }
        | Notice::Sync { revision, .. } => *revision,
        Notice::Pulse { .. } => 0,
    }
}

#[async_trait]
impl<B: Board> Ticking for Shared<B> {
    async fn tick(&self) -> Vec<RoleChange> {
        let _deciding = self.deciding.lock().await;
        {
            let mut inner = self.lock();
            let now = clock::now();
            inner.mind_the_board(now);
            inner.registry.tick(now);
        }
        self.decided().await
    }

    fn late_masters(&self, silence: Duration) -> Vec<LateMaster> {
        self.lock().registry.late_masters(clock::now(), silence)
    }

    async fn found_down(&self, late: &LateMaster) -> Vec<RoleChange> {
        let _deciding = self.deciding.lock().await;
        self.lock().registry.found_down(late, clock::now());
        self.decided().await
    }
}

#[async_trait]
impl<B: Board> Coordinator for Shared<B> {
    /// Writes the heartbeat on the board, within an eighth of the failure timeout, and
    /// decides on it. A heartbeat the board does not take in time (it stalled) is heard all
    /// the same and answered from the records the board holds, deciding nothing: the
    /// server stays with this coordinator, whose ears keep telling whether it lives.
    async fn heartbeat(&self, report: Report) -> Result<Assignment> {
        // Checked before it is written, so that no refused report reaches the board.
        self.check_against_board(&report).await?;
        // Written before deciding, so that a write that hangs holds up no decision.
        let patience = self.lock().failure_timeout / 8;
        let posted = tokio::time::timeout(patience, self.board.post_heartbeat(&report)).await;
        let _deciding = self.deciding.lock().await;
        let (cluster, server) = (report.server.cluster, report.server.server);
        let written = {
            let mut inner = self.lock();
            let written = match posted {
                Ok(Ok(revision)) => {
                    let heard = inner.heard.entry((cluster, server)).or_default();
                    *heard = (*heard).max(revision);
                    true
                }
                Ok(Err(_)) | Err(_) => false,
            };
            inner.direct.insert((cluster, server));
            let now = clock::now();
            inner.mind_the_board(now);
            inner.registry.heartbeat(&report, now)?;
            if !written {
                inner.settle(cluster);
            }
            written
        };
        if written {
            self.write_decisions().await?;
        }
        let inner = self.lock();
        let mut assignment = inner.registry.assignment(cluster, server, clock::now());
        // A master's smaller in-sync set is confirmed only once the board holds it: the
        // master may then commit without the servers it left out.
        let (held, _) = inner.committed(cluster);
        let reported: Vec<ServerId> = std::iter::once(server)
            .chain(report.in_sync.iter().copied().filter(|&s| s != server))
            .collect();
        assignment.in_sync_confirmed &=
            written && held.master == Some(server) && held.in_sync == reported;
        Ok(assignment)
    }

    /// See [`route`]; a cluster's master is as the board holds it, and live.
    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>> {
        route(|now| {
            let inner = self.lock();
            let cluster = home_cluster(user, inner.registry.clusters());
            (
                inner.registry.live_master(cluster, now),
                inner.registry.is_listening(now),
            )
        })
        .await
    }

    async fn register_sync(&self, sync: ServerRef, folder: FolderId) -> Result<u32> {
        let clusters = self
            .lock()
            .registry
            .register_sync(sync.clone(), folder, clock::now())?;
        self.board.post_sync(&sync, folder).await?;
        Ok(clusters)
    }

    async fn sync_servers(&self) -> Result<Vec<ServerRef>> {
        Ok(self.lock().registry.sync_servers(clock::now()))
    }
}
