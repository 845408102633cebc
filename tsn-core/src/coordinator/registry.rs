//! [`Registry`]: role assignment and failure detection, as a pure state machine.
//!
//! # Rules
//!
//! * A server is *live* while its last heartbeat is younger than the failure timeout,
//!   unless it was [found down](Registry::found_down) since: a master late by a part of the
//!   timeout may be checked on by other means (nothing listens at its address any more),
//!   so that a crash is answered at once while a slow master still has the whole timeout.
//! * A cluster has at most one master and an epoch that grows with every promotion. A
//!   server acting as master at an older epoch is told to be a slave.
//! * When a cluster has no live master, the best *eligible* live server is promoted at a
//!   new epoch: eligible are the members of the last in-sync set the master reported (they
//!   hold everything it acknowledged), or every live server when no set is known (a new
//!   cluster, or a coordinator that has just restarted). Best means the furthest log, then
//!   the earliest first heartbeat, then the lowest server id.
//! * For one failure timeout after the registry starts it promotes no one and declares no
//!   master lost, only listens: a restarted coordinator learns the current masters and
//!   epochs from their heartbeats before it could wrongly replace them. Meanwhile it
//!   confirms no smaller in-sync set. A registry that cannot hear for a while (its shared
//!   store stalled) listens again likewise ([`Registry::listen_again`]), and then does not
//!   count that while against anyone ([`Registry::forgive`]).
//! * A master that reports any other role (it restarted) loses its role. Either way the
//!   next promotion starts a new epoch, above every epoch seen and above the registry's
//!   floor.
//! * Epochs nobody granted are refused. Once the registry knows a cluster's epoch for
//!   sure (it granted it, a shared store recorded it, or it stopped listening with the
//!   master it adopted), a heartbeat claiming mastership is taken only from the server the
//!   epoch was granted to, and one reporting a newer epoch than the cluster's is refused
//!   with [`Error::Refused`], changing nothing: nobody can install itself as master by
//!   reporting a high epoch. Until then (while it listens, or for a cluster none of whose
//!   masters it has heard) it cannot check a claim against a grant, and checks it against
//!   the claimant's log instead: a master writes an entry of its epoch as it takes the
//!   role, so a report whose log holds no entry of the epoch it names is no master's, nor
//!   a slave's of that master. A claim whose log agrees is adopted only while the cluster
//!   has no master (a master's claim of a newer epoch does not depose one it adopted), and
//!   a server that is not master and holds entries of a newer epoch than the adopted
//!   master's deposes it, as the server that holds what the newer epoch acknowledged. An
//!   epoch further above the registry's floor (its start) than [`EPOCH_LEAD`] is refused
//!   at any time (no coordinator grants one).
//! * A master's in-sync set names only servers that have reported to the registry in its
//!   cluster: a cluster never waits for servers that never were. A server the master
//!   named before the registry heard it (a coordinator that has just restarted may hear
//!   the master first) joins the set with its first heartbeat: a master that stalls right
//!   after one report still has a successor.
//! * A synchronizer counts as registered while it re-registers within the failure timeout.
//! * A place is held by a data folder, not by a process: while a server (or a cluster's
//!   synchronizer) is live, a heartbeat (a registration) for the same place from another
//!   data folder is a second copy started by mistake and is refused with
//!   [`Error::Duplicate`], leaving the live one's record untouched. A process restarted on
//!   its own folder takes its place back at once; another folder may take it once the
//!   holder has been silent for the failure timeout. A process that does not say its
//!   folder ([`FolderId::UNKNOWN`], the course's programs) is refused only where a live
//!   process that says its folder holds the place: it cannot pass for that process.
//!
//! # Caveats
//!
//! After a coordinator restart the in-sync sets are unknown until the masters' next
//! heartbeats; a master that dies in that window is replaced by the live server with the
//! furthest log, which holds every acknowledged write unless the in-sync set had shrunk.
//!
//! Without authenticated connections, a coordinator that keeps its records in memory
//! takes what servers say of their logs until it knows a cluster's epoch for sure
//! (above): a caller that reports a log of the epoch it claims, in the first failure
//! timeout after a restart (or after a stall of its shared store), or for a cluster whose
//! masters it has not heard, can still be adopted, or depose the master it adopted. A
//! shared store that records the epochs (etcd), or TLS identities, closes that window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::change::LogPoint;
use crate::coordinator::{Assignment, Report, Role, ServerRef};
use crate::error::{Error, Result};
use crate::id::{ClusterId, Epoch, FolderId, ServerId, UserId, home_cluster};

/// How a registry is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The number of clusters, `N` in the routing rule (at least 1).
    pub clusters: u32,
    /// How long a server may go without a heartbeat before it counts as failed.
    pub failure_timeout: Duration,
}

/// How far above the registry's floor (or the cluster's epoch, if higher) a reported epoch
/// may be: 2^40, some 35 years of the milliseconds the floors count. A report further
/// ahead is refused; no coordinator grants such an epoch, and taking it in would bring the
/// epochs close to their end.
pub const EPOCH_LEAD: u64 = 1 << 40;

/// A role change the registry decided, for logs and displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// A master missed its heartbeats for the failure timeout, or was found down.
    MasterLost {
        /// The cluster.
        cluster: ClusterId,
        /// The server that was master.
        server: ServerId,
    },
    /// The master reported a new in-sync set (itself first): the servers that may be
    /// promoted if it fails.
    InSync {
        /// The cluster.
        cluster: ClusterId,
        /// The master and its in-sync slaves.
        servers: Vec<ServerId>,
    },
    /// A server became master.
    Promoted {
        /// The cluster.
        cluster: ClusterId,
        /// The new master.
        server: ServerId,
        /// Its epoch.
        epoch: Epoch,
    },
}

#[derive(Clone, Debug)]
struct ServerRecord {
    server: ServerRef,
    incarnation: u64,
    folder: FolderId,
    first_seen: Instant,
    last_seen: Instant,
    /// Found down since its last heartbeat ([`Registry::found_down`]).
    down: bool,
    log: LogPoint,
    epoch: Epoch,
    /// The newest epoch the registry knows this server was made master of (by its own
    /// promotion, a record it adopted, or a claim it took); [`Epoch::default`]: none.
    granted: Epoch,
}

/// A master late with its heartbeats, not yet for the failure timeout
/// ([`Registry::late_masters`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateMaster {
    /// The master.
    pub server: ServerRef,
    /// When its last heartbeat came.
    pub heard: Instant,
}

/// What coordinators that share a store must agree on about a cluster: its epoch, its
/// master and its in-sync set. A registry decides it; a shared store keeps it, changed only
/// by compare-and-swap, so that of two coordinators deciding at once one wins and the other
/// [adopts](Registry::adopt) what won.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The newest epoch of the cluster.
    pub epoch: Epoch,
    /// Its master, if it has one.
    pub master: Option<ServerId>,
    /// The incarnation of the master's process when it was given the role.
    pub master_incarnation: u64,
    /// The master and the slaves it last reported in sync; empty when unknown.
    pub in_sync: Vec<ServerId>,
}

impl ClusterState {
    /// The role changes that turn `self` into `next`, for `cluster`, in the order they
    /// happened: the master lost, a master promoted, a new in-sync set.
    pub fn changes_to(&self, cluster: ClusterId, next: &ClusterState) -> Vec<RoleChange> {
        let mut changes = Vec::new();
        if self.master != next.master {
            if let Some(server) = self.master {
                changes.push(RoleChange::MasterLost { cluster, server });
            }
            if let Some(server) = next.master {
                changes.push(RoleChange::Promoted {
                    cluster,
                    server,
                    epoch: next.epoch,
                });
            }
        }
        if self.in_sync != next.in_sync && !next.in_sync.is_empty() {
            changes.push(RoleChange::InSync {
                cluster,
                servers: next.in_sync.clone(),
            });
        }
        changes
    }
}

impl ServerRecord {
    fn is_live(&self, now: Instant, failure_timeout: Duration) -> bool {
        !self.down && now.duration_since(self.last_seen) < failure_timeout
    }
}

#[derive(Clone, Debug, Default)]
struct ClusterRecord {
    state: ClusterState,
    /// Whether `state.epoch` is known for sure: the registry granted it, adopted it from
    /// a shared store's record, or stopped listening with the master it adopted; not when
    /// it was only taken from servers' reports.
    recorded: bool,
    servers: BTreeMap<ServerId, ServerRecord>,
    /// What the master last reported in sync (itself first), as it reported it: the
    /// in-sync set holds those of them that have reported to the registry, and grows as
    /// the others do.
    reported_in_sync: Vec<ServerId>,
}

impl ClusterRecord {
    /// The in-sync set the master's last report makes, where it differs from the one held:
    /// the master and the servers it named that have reported to the registry (so a slave
    /// named before the registry heard it, as after a coordinator restart, joins the set
    /// with its first heartbeat). `None` while the report is not the current master's.
    fn known_in_sync(&self) -> Option<Vec<ServerId>> {
        let (&master, named) = self.reported_in_sync.split_first()?;
        if self.state.master != Some(master) {
            return None;
        }
        let in_sync: Vec<ServerId> = std::iter::once(master)
            .chain(
                named
                    .iter()
                    .copied()
                    .filter(|s| self.servers.contains_key(s)),
            )
            .collect();
        (in_sync != self.state.in_sync).then_some(in_sync)
    }

    /// Whether server `id` was made master at `epoch`, as far as the registry knows: it
    /// granted or adopted that, or `id` heads the in-sync set the cluster keeps at that
    /// epoch (its master, lost since).
    fn was_granted(&self, id: ServerId, epoch: Epoch) -> bool {
        self.servers.get(&id).is_some_and(|r| r.granted == epoch)
            || (self.state.epoch == epoch && self.state.in_sync.first() == Some(&id))
    }
}

/// A registered synchronizer.
#[derive(Clone, Debug)]
struct SyncRecord {
    sync: ServerRef,
    folder: FolderId,
    last_seen: Instant,
}

/// The refusal of a second copy of `what`, held by a live process at `held_by` that was
/// last heard from at `last_seen`.
fn duplicate(what: &str, held_by: &ServerRef, last_seen: Instant, now: Instant) -> Error {
    Error::Duplicate(format!(
        "{what} already runs at {} from another data folder (heard from {} ms ago); \
         refusing a second copy",
        held_by.endpoint,
        now.duration_since(last_seen).as_millis()
    ))
}

/// The coordinator's knowledge and decisions. See the [module docs](self) for the rules.
#[derive(Clone, Debug)]
pub struct Registry {
    config: RegistryConfig,
    listen_until: Instant,
    /// Every epoch this registry starts is above it.
    epoch_floor: Epoch,
    clusters: BTreeMap<ClusterId, ClusterRecord>,
    syncs: BTreeMap<ClusterId, SyncRecord>,
    changes: Vec<RoleChange>,
}

impl Registry {
    /// A registry that starts at `now`, knowing no server, and starts only epochs above
    /// `epoch_floor`.
    ///
    /// A coordinator that restarts knows nothing of the epochs it started before, and a
    /// server holding the newest one may be down while it listens. Passing a floor that
    /// grows with wall-clock time (milliseconds since the Unix epoch, say) keeps every new
    /// epoch above every earlier one all the same.
    pub fn new(config: RegistryConfig, now: Instant, epoch_floor: Epoch) -> Self {
        assert!(
            config.clusters >= 1,
            "a deployment has at least one cluster"
        );
        Registry {
            config,
            listen_until: now + config.failure_timeout,
            epoch_floor,
            clusters: BTreeMap::new(),
            syncs: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// Whether the registry is still in its first failure timeout, learning the current
    /// masters from their heartbeats rather than promoting anyone.
    pub fn is_listening(&self, now: Instant) -> bool {
        now < self.listen_until
    }

    /// Listens again until `now + span` (or longer, if it was to listen longer anyway),
    /// promoting no one, declaring no master lost and confirming no smaller in-sync set
    /// meanwhile: for a registry that cannot hear heartbeats for a while (its shared store
    /// stalled), so that it does not take silence for failure.
    pub fn listen_again(&mut self, now: Instant, span: Duration) {
        self.listen_until = self.listen_until.max(now + span);
    }

    /// Counts `deaf` less of the silence of every synchronizer and of every server that
    /// `heard_anyway` does not spare: the registry could not hear them for that long (its
    /// shared store stalled), so that silence says nothing of them. `heard_anyway(cluster,
    /// server)` names the servers it could hear all the same (they report to it directly),
    /// whose silence still counts. No one counts as heard after `now`.
    pub fn forgive(
        &mut self,
        deaf: Duration,
        now: Instant,
        heard_anyway: impl Fn(ClusterId, ServerId) -> bool,
    ) {
        let credit = |seen: &mut Instant| *seen = (*seen + deaf).min(now);
        for (&cluster_id, cluster) in &mut self.clusters {
            for (&server, record) in &mut cluster.servers {
                if !heard_anyway(cluster_id, server) {
                    credit(&mut record.last_seen);
                }
            }
        }
        self.syncs
            .values_mut()
            .for_each(|r| credit(&mut r.last_seen));
    }

    /// The number of clusters.
    pub fn clusters(&self) -> u32 {
        self.config.clusters
    }

    fn check_cluster(&self, cluster: ClusterId) -> Result<()> {
        if (1..=self.config.clusters).contains(&cluster.0) {
            Ok(())
        } else {
            Err(Error::NoSuchCluster {
                cluster,
                clusters: self.config.clusters,
            })
        }
    }

    fn is_live(&self, record: &ServerRecord, now: Instant) -> bool {
        record.is_live(now, self.config.failure_timeout)
    }

    /// The masters that have been silent for `silence` or longer, and not yet for the
    /// failure timeout: the ones worth checking on by other means. None while listening.
    pub fn late_masters(&self, now: Instant, silence: Duration) -> Vec<LateMaster> {
        if self.is_listening(now) {
            return Vec::new();
        }
        self.clusters
            .values()
            .filter_map(|cluster| cluster.servers.get(&cluster.state.master?))
            .filter(|r| self.is_live(r, now) && now.duration_since(r.last_seen) >= silence)
            .map(|r| LateMaster {
                server: r.server.clone(),
                heard: r.last_seen,
            })
            .collect()
    }

    /// Counts `late.server` down from now, as if its silence had lasted the failure
    /// timeout, unless it has been heard since `late.heard`; its cluster is then checked
    /// at once (a replacement promoted). For evidence other than silence that it is down:
    /// nothing listens at its address. A heartbeat brings it back to life.
    pub fn found_down(&mut self, late: &LateMaster, now: Instant) {
        let cluster_id = late.server.cluster;
        let Some(record) = self
            .clusters
            .get_mut(&cluster_id)
            .and_then(|cluster| cluster.servers.get_mut(&late.server.server))
        else {
            return;
        };
        if record.last_seen == late.heard && record.server == late.server {
            record.down = true;
            self.tick_cluster(cluster_id, now);
        }
    }

    /// Whether a heartbeat would be taken, changing nothing: its cluster exists, it comes
    /// from no second copy of a live server ([`Error::Duplicate`]), and it claims no epoch
    /// nobody granted ([`Error::Refused`]).
    pub fn check_heartbeat(&self, report: &Report, now: Instant) -> Result<()> {
        let cluster_id = report.server.cluster;
        self.check_cluster(cluster_id)?;
        let id = report.server.server;
        let cluster = self.clusters.get(&cluster_id);
        let held = cluster.and_then(|cluster| cluster.servers.get(&id));
        if let Some(held) = held
            && self.is_live(held, now)
            && (held.folder.differs_from(report.folder)
                || (held.folder != FolderId::UNKNOWN && report.folder == FolderId::UNKNOWN))
        {
            let what = format!("server {id} of cluster {cluster_id}");
            return Err(duplicate(&what, &held.server, held.last_seen, now));
        }
        let epoch = cluster.map_or(Epoch::default(), |c| c.state.epoch);
        let refused = |why: String| {
            Err(Error::Refused(format!(
                "server {id} of cluster {cluster_id} {why}; refusing its heartbeat"
            )))
        };
        if report.epoch.0 > self.epoch_floor.max(epoch).0.saturating_add(EPOCH_LEAD) {
            return refused(format!(
                "reports epoch {}, which no coordinator grants",
                report.epoch
            ));
        }
        let Some(cluster) = cluster.filter(|c| c.recorded) else {
            return Ok(());
        };
        if report.epoch > epoch {
            return refused(format!(
                "reports epoch {}, newer than its cluster's, {epoch}: nobody granted it",
                report.epoch
            ));
        }
        let holder = cluster.state.master;
        if report.role == Some(Role::Master)
            && report.epoch == epoch
            && holder != Some(id)
            && !(holder.is_none() && cluster.was_granted(id, epoch))
        {
            let holder = holder.map_or("nobody it knows".to_owned(), |h| format!("server {h}"));
            return refused(format!(
                "claims to be master at epoch {epoch}, which was granted to {holder}"
            ));
        }
        Ok(())
    }

    /// Records a heartbeat and answers it with the server's assignment. See the [module
    /// docs](self) for what a report may change.
    pub fn heartbeat(&mut self, report: &Report, now: Instant) -> Result<Assignment> {
        self.check_heartbeat(report, now)?;
        self.record(report, now);
        let cluster_id = report.server.cluster;
        let id = report.server.server;
        let cluster = self.clusters.entry(cluster_id).or_default();
        if cluster.state.master == Some(id)
            && report.incarnation != cluster.state.master_incarnation
        {
            // The master restarted: it may have written entries of its epoch that it lost
            // and a slave kept. Whoever is promoted next, itself included, starts a new
            // epoch, so that no two logs hold different entries written in one epoch.
            cluster.state.master = None;
            self.changes.push(RoleChange::MasterLost {
                cluster: cluster_id,
                server: id,
            });
        }
        // A report's log agrees with its epoch when the log holds entries written in it
        // (a master's first entry of its epoch is written as it takes the role, and
        // copied to its slaves at once): what the registry checks a report by where it
        // cannot check it against a grant.
        let log_agrees = report.log.epoch == report.epoch;
        if report.role != Some(Role::Master) && report.epoch > cluster.state.epoch && log_agrees {
            // (Only while the registry cannot check epochs: otherwise refused above.) A
            // server holds entries of a newer epoch than the one its master claims (a
            // coordinator that restarted adopted a stale master before hearing of it),
            // perhaps ones that epoch acknowledged: epochs never go
            // back, and that master is deposed.
            cluster.state.epoch = report.epoch;
            // What that master said was in sync says nothing of the newer epoch.
            cluster.state.in_sync.clear();
            cluster.reported_in_sync.clear();
            if let Some(master) = cluster.state.master.take() {
                self.changes.push(RoleChange::MasterLost {
                    cluster: cluster_id,
                    server: master,
                });
            }
        }
        if report.role == Some(Role::Master) {
            let state = &cluster.state;
            let current = state.master == Some(id) && report.epoch == state.epoch;
            let unopposed = state.master.is_none() && report.epoch >= state.epoch;
            // Where the epoch is not known for sure, a claim is taken if its log agrees.
            let believed =
                (!cluster.recorded && log_agrees) || cluster.was_granted(id, report.epoch);
            if current || (unopposed && believed) {
                if cluster.state.master != Some(id) {
                    self.changes.push(RoleChange::Promoted {
                        cluster: cluster_id,
                        server: id,
                        epoch: report.epoch,
                    });
                }
                cluster.state.epoch = report.epoch;
                cluster.state.master = Some(id);
                cluster.state.master_incarnation = report.incarnation;
                if let Some(record) = cluster.servers.get_mut(&id) {
                    record.granted = report.epoch;
                }
                cluster.reported_in_sync = std::iter::once(id)
                    .chain(report.in_sync.iter().copied().filter(|&s| s != id))
                    .collect();
            }
        }
        if let Some(in_sync) = cluster.known_in_sync() {
            cluster.state.in_sync = in_sync.clone();
            self.changes.push(RoleChange::InSync {
                cluster: cluster_id,
                servers: in_sync,
            });
        }
        self.tick_cluster(cluster_id, now);
        let mut assignment = self.assignment(cluster_id, id, now);
        if report.role == Some(Role::Master) {
            // Confirmed is the set as reported, not one the registry trimmed.
            let reported: Vec<ServerId> = std::iter::once(id)
                .chain(report.in_sync.iter().copied().filter(|&s| s != id))
                .collect();
            assignment.in_sync_confirmed &= self.cluster_state(cluster_id).in_sync == reported;
        }
        Ok(assignment)
    }

    /// Takes in a heartbeat that another coordinator took and decided on (read from a
    /// shared store): the server is heard from now, and its log and epoch are as it says;
    /// nothing is decided. A heartbeat for a cluster that does not exist is ignored.
    pub fn hear(&mut self, report: &Report, now: Instant) {
        if self.check_cluster(report.server.cluster).is_ok() {
            self.record(report, now);
        }
    }

    /// Records what `report` says of its server, heard at `now`.
    fn record(&mut self, report: &Report, now: Instant) {
        let cluster = self.clusters.entry(report.server.cluster).or_default();
        let record = cluster
            .servers
            .entry(report.server.server)
            .or_insert_with(|| ServerRecord {
                server: report.server.clone(),
                incarnation: report.incarnation,
                folder: report.folder,
                first_seen: now,
                last_seen: now,
                down: false,
                log: report.log,
                epoch: report.epoch,
                granted: Epoch::default(),
            });
        record.server = report.server.clone();
        record.incarnation = report.incarnation;
        record.folder = report.folder;
        record.last_seen = now;
        record.down = false;
        record.log = report.log;
        record.epoch = report.epoch;
    }

    /// The assignment of server `id` of `cluster_id` as the registry stands: what a
    /// heartbeat of it is answered with.
    pub fn assignment(&self, cluster_id: ClusterId, id: ServerId, now: Instant) -> Assignment {
        let state = self.cluster_state(cluster_id);
        let master = self.live_master(cluster_id, now);
        Assignment {
            role: if state.master == Some(id) {
                Role::Master
            } else {
                Role::Slave
            },
            epoch: state.epoch,
            master,
            clusters: self.config.clusters,
            in_sync_confirmed: !self.is_listening(now),
        }
    }

    /// Detects failed masters and promotes replacements, in every cluster. Call it on a
    /// timer, so that a failure is noticed when no heartbeat comes (a heartbeat checks its
    /// own cluster).
    pub fn tick(&mut self, now: Instant) {
        let ids: Vec<ClusterId> = self.clusters.keys().copied().collect();
        for cluster_id in ids {
            self.tick_cluster(cluster_id, now);
        }
    }

    /// Detects a failed master of `cluster_id` and promotes a replacement; while listening,
    /// does neither (silence may be the registry's deafness, not the master's failure).
    fn tick_cluster(&mut self, cluster_id: ClusterId, now: Instant) {
        if now < self.listen_until {
            return;
        }
        let timeout = self.config.failure_timeout;
        let live = |r: &ServerRecord| r.is_live(now, timeout);
        let Some(cluster) = self.clusters.get_mut(&cluster_id) else {
            return;
        };
        if let Some(master) = cluster.state.master {
            if cluster.servers.get(&master).is_some_and(&live) {
                // A master adopted while listening is as good as granted once the
                // registry has heard the whole cluster.
                cluster.recorded = true;
                return;
            }
            cluster.state.master = None;
            self.changes.push(RoleChange::MasterLost {
                cluster: cluster_id,
                server: master,
            });
        }
        let in_sync = &cluster.state.in_sync;
        let best = cluster
            .servers
            .values()
            .filter(|r| live(r))
            .filter(|r| in_sync.is_empty() || in_sync.contains(&r.server.server))
            .max_by(|a, b| {
                (
                    a.log,
                    std::cmp::Reverse(a.first_seen),
                    std::cmp::Reverse(a.server.server),
                )
                    .cmp(&(
                        b.log,
                        std::cmp::Reverse(b.first_seen),
                        std::cmp::Reverse(b.server.server),
                    ))
            })
            .map(|r| r.server.server);
        if let Some(server) = best {
            let newest_known = cluster
                .servers
                .values()
                .map(|r| r.epoch)
                .max()
                .unwrap_or_default();
            cluster.state.epoch = cluster
                .state
                .epoch
                .max(newest_known)
                .max(self.epoch_floor)
                .next();
            cluster.state.master = Some(server);
            cluster.recorded = true;
            let record = cluster
                .servers
                .get_mut(&server)
                .expect("a live server's record");
            record.granted = cluster.state.epoch;
            cluster.state.master_incarnation = record.incarnation;
            cluster.state.in_sync = vec![server];
            cluster.reported_in_sync.clear();
            self.changes.push(RoleChange::Promoted {
                cluster: cluster_id,
                server,
                epoch: cluster.state.epoch,
            });
            self.changes.push(RoleChange::InSync {
                cluster: cluster_id,
                servers: vec![server],
            });
        }
    }

    /// What the registry holds of `cluster` that coordinators sharing a store agree on.
    pub fn cluster_state(&self, cluster: ClusterId) -> ClusterState {
        self.clusters
            .get(&cluster)
            .map(|c| c.state.clone())
            .unwrap_or_default()
    }

    /// Takes `state` as what `cluster` is, as a shared store holds it (another coordinator
    /// decided it, or this one's own decision lost to it). What the registry knows of the
    /// cluster's servers stays; what changed is noted among the role changes.
    pub fn adopt(&mut self, cluster: ClusterId, state: ClusterState) {
        let record = self.clusters.entry(cluster).or_default();
        self.changes
            .extend(record.state.changes_to(cluster, &state));
        record.recorded = state.epoch != Epoch::default();
        if let Some(master) = state.master.and_then(|m| record.servers.get_mut(&m)) {
            master.granted = master.granted.max(state.epoch);
        }
        // The master may have reported another set since, to the coordinator that decided
        // this state: only its next report to this registry counts.
        record.reported_in_sync.clear();
        record.state = state;
    }

    /// The role changes decided since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<RoleChange> {
        std::mem::take(&mut self.changes)
    }

    /// The master of `cluster_id` as the registry stands, if it is live; unlike
    /// [`Registry::master_of`], decides nothing.
    pub fn live_master(&self, cluster_id: ClusterId, now: Instant) -> Option<ServerRef> {
        let cluster = self.clusters.get(&cluster_id)?;
        let record = cluster.servers.get(&cluster.state.master?)?;
        self.is_live(record, now).then(|| record.server.clone())
    }

    /// The live master of `cluster`, if it has one.
    pub fn master_of(&mut self, cluster: ClusterId, now: Instant) -> Option<ServerRef> {
        self.tick_cluster(cluster, now);
        self.live_master(cluster, now)
    }

    /// The live master of the cluster `user` lives in, if it has one.
    pub fn server_for(&mut self, user: UserId, now: Instant) -> Option<ServerRef> {
        self.master_of(home_cluster(user, self.config.clusters), now)
    }

    /// Registers the synchronizer of a cluster, running on the data folder `folder`;
    /// registering again keeps it alive, and a new address replaces the old one. A
    /// registration from another folder while the registered one is live is refused.
    /// Returns the number of clusters.
    pub fn register_sync(
        &mut self,
        sync: ServerRef,
        folder: FolderId,
        now: Instant,
    ) -> Result<u32> {
        self.check_cluster(sync.cluster)?;
        if let Some(held) = self.syncs.get(&sync.cluster)
            && now.duration_since(held.last_seen) < self.config.failure_timeout
            && held.folder.differs_from(folder)
        {
            let what = format!("the synchronizer of cluster {}", sync.cluster);
            return Err(duplicate(&what, &held.sync, held.last_seen, now));
        }
        self.syncs.insert(
            sync.cluster,
            SyncRecord {
                sync,
                folder,
                last_seen: now,
            },
        );
        Ok(self.config.clusters)
    }

    /// The synchronizers registered within the failure timeout, by cluster.
    pub fn sync_servers(&self, now: Instant) -> Vec<ServerRef> {
        self.syncs
            .values()
            .filter(|r| now.duration_since(r.last_seen) < self.config.failure_timeout)
            .map(|r| r.sync.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::Endpoint;
    use crate::id::Position;

    const TIMEOUT: Duration = Duration::from_millis(1000);

    /// A registry and a clock, with helpers that read like the scenario they play.
    struct World {
        registry: Registry,
        start: Instant,
        now: Instant,
        /// Added to each server id to make its incarnation.
        incarnation: u64,
    }

    fn server(cluster: u32, id: u32) -> ServerRef {
        ServerRef {
            cluster: ClusterId(cluster),
            server: ServerId(id),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port: (10000 * cluster + id) as u16,
            },
        }
    }

    /// The data folder of server `id` in every test: the same across its restarts.
    fn folder_of(id: u32) -> FolderId {
        FolderId(1000 + u64::from(id))
    }

    fn log(epoch: u64, position: u64) -> LogPoint {
        LogPoint {
            epoch: Epoch(epoch),
            position: Position(position),
        }
    }

    impl World {
        fn new() -> Self {
            let start = Instant::now();
            World {
                registry: Registry::new(
                    RegistryConfig {
                        clusters: 3,
                        failure_timeout: TIMEOUT,
                    },
                    start,
                    Epoch(0),
                ),
                start,
                now: start,
                incarnation: 0,
            }
        }

        /// A world past its listening period.
        fn settled() -> Self {
            let mut world = World::new();
            world.at(1100);
            world
        }

        fn at(&mut self, millis: u64) {
            self.now = self.start + Duration::from_millis(millis);
        }

        fn beat(
            &mut self,
            cluster: u32,
            id: u32,
            role: Option<Role>,
            epoch: u64,
            at: LogPoint,
            in_sync: &[u32],
        ) -> Assignment {
            let report = Report {
                server: server(cluster, id),
                incarnation: self.incarnation + u64::from(id),
                folder: folder_of(id),
                role,
                epoch: Epoch(epoch),
                log: at,
                in_sync: in_sync.iter().map(|&s| ServerId(s)).collect(),
            };
            self.registry.heartbeat(&report, self.now).unwrap()
        }

        fn new_server(&mut self, cluster: u32, id: u32) -> Assignment {
            self.beat(cluster, id, None, 0, LogPoint::default(), &[])
        }

        fn master(&mut self, cluster: u32) -> Option<u32> {
            self.registry
                .master_of(ClusterId(cluster), self.now)
                .map(|s| s.server.0)
        }
    }

    #[test]
    fn the_first_live_server_becomes_master_and_the_next_slave() {
        let mut w = World::settled();
        let first = w.new_server(1, 1);
        assert_eq!((first.role, first.epoch), (Role::Master, Epoch(1)));
        let second = w.new_server(1, 2);
        assert_eq!(second.role, Role::Slave);
        assert_eq!(
            second.master,
            Some(server(1, 1)),
            "a slave learns its master"
        );
        assert_eq!(second.clusters, 3);
        assert_eq!(w.master(1), Some(1));
        assert_eq!(w.master(2), None, "an empty cluster has no master");
    }

    #[test]
    fn a_dead_master_is_replaced_by_an_in_sync_slave_at_a_new_epoch() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        w.at(2200);
        let promoted = w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        assert_eq!((promoted.role, promoted.epoch), (Role::Master, Epoch(2)));
        let c1 = ClusterId(1);
        assert_eq!(
            w.registry.take_changes(),
            [
                RoleChange::Promoted {
                    cluster: c1,
                    server: ServerId(1),
                    epoch: Epoch(1)
                },
                RoleChange::InSync {
                    cluster: c1,
                    servers: vec![ServerId(1)]
                },
                RoleChange::InSync {
                    cluster: c1,
                    servers: vec![ServerId(1), ServerId(2)]
                },
                RoleChange::MasterLost {
                    cluster: c1,
                    server: ServerId(1)
                },
                RoleChange::Promoted {
                    cluster: c1,
                    server: ServerId(2),
                    epoch: Epoch(2)
                },
                RoleChange::InSync {
                    cluster: c1,
                    servers: vec![ServerId(2)]
                },
            ]
        );
        let back = w.beat(1, 1, Some(Role::Master), 1, log(1, 6), &[2]);
        assert_eq!(back.role, Role::Slave, "the old master returns as a slave");
        assert_eq!(back.master, Some(server(1, 2)));
        assert_eq!(back.epoch, Epoch(2));
    }

    #[test]
    fn a_late_master_found_down_is_replaced_at_once() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        w.at(1200);
        let quarter = TIMEOUT / 4;
        assert!(
            w.registry.late_masters(w.now, quarter).is_empty(),
            "a master heard 100 ms ago is not late"
        );
        w.at(1400);
        let late = w.registry.late_masters(w.now, quarter);
        assert_eq!(late.len(), 1, "{late:?}");
        assert_eq!(late[0].server, server(1, 1));
        w.registry.found_down(&late[0], w.now);
        let promoted = w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        assert_eq!(
            (promoted.role, promoted.epoch),
            (Role::Master, Epoch(2)),
            "promoted 300 ms after the master's last heartbeat, not 1 s"
        );
        let back = w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        assert_eq!(
            back.role,
            Role::Slave,
            "the old master's heartbeat revives it as a slave"
        );
    }

    #[test]
    fn a_master_heard_since_it_was_checked_on_is_not_found_down() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        w.at(1400);
        let late = w.registry.late_masters(w.now, TIMEOUT / 4);
        w.at(1450);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        w.registry.found_down(&late[0], w.now);
        assert_eq!(
            w.master(1),
            Some(1),
            "the check's answer came too late to count"
        );
    }

    #[test]
    fn no_master_is_late_while_the_registry_listens() {
        let mut w = World::new();
        w.new_server(1, 1);
        w.at(800);
        assert!(w.registry.late_masters(w.now, TIMEOUT / 4).is_empty());
    }

    #[test]
    fn a_slave_outside_the_in_sync_set_is_never_promoted() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 9), &[]); // 2 is catching up
        w.at(2200);
        let slave = w.beat(1, 2, Some(Role::Slave), 1, log(1, 3), &[]);
        assert_eq!(slave.role, Role::Slave);
        assert_eq!(slave.master, None, "the cluster waits for its master");
        let back = w.beat(1, 1, Some(Role::Master), 1, log(1, 9), &[]);
        assert_eq!(
            (back.role, back.epoch),
            (Role::Master, Epoch(1)),
            "the lone master resumes"
        );
    }

    #[test]
    fn a_master_alone_that_restarts_becomes_master_again() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 4), &[]);
        w.at(3000);
        assert_eq!(w.master(1), None);
        let again = w.new_server(1, 1);
        assert_eq!((again.role, again.epoch), (Role::Master, Epoch(2)));
    }

    #[test]
    fn a_restarted_coordinator_listens_before_it_promotes() {
        let mut w = World::new();
        // Servers that were running before the coordinator restarted.
        let slave = w.beat(1, 2, Some(Role::Slave), 4, log(4, 10), &[]);
        assert_eq!(slave.role, Role::Slave, "no promotion while listening");
        let master = w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[2]);
        assert_eq!(
            (master.role, master.epoch),
            (Role::Master, Epoch(4)),
            "the master is adopted"
        );
        w.at(900);
        w.beat(1, 1, Some(Role::Master), 4, log(4, 11), &[2]);
        w.at(1500);
        let slave = w.beat(1, 2, Some(Role::Slave), 4, log(4, 11), &[]);
        assert_eq!(slave.role, Role::Slave);
        assert_eq!(slave.master, Some(server(1, 1)));
    }

    #[test]
    fn after_listening_the_furthest_log_wins() {
        let mut w = World::new();
        w.at(500);
        w.new_server(1, 1);
        w.beat(1, 2, Some(Role::Slave), 3, log(3, 7), &[]);
        w.at(1100);
        w.tick_and_check(1, Some(2));
        let stale = w.beat(1, 1, None, 0, LogPoint::default(), &[]);
        assert_eq!(stale.role, Role::Slave);
        assert_eq!(
            stale.epoch,
            Epoch(4),
            "the new epoch is past every epoch seen"
        );
    }

    #[test]
    fn a_master_that_restarts_before_it_is_missed_gets_a_new_epoch() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 12), &[]);
        w.incarnation = 99;
        let restarted = w.beat(1, 1, None, 1, log(1, 10), &[]);
        assert_eq!((restarted.role, restarted.epoch), (Role::Master, Epoch(2)));
    }

    #[test]
    fn a_server_promoted_between_its_heartbeats_keeps_the_role() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        w.at(1900);
        w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        w.at(2200);
        w.registry.tick(w.now);
        assert_eq!(w.master(1), Some(2), "promoted by the timer");
        let told = w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        assert_eq!(
            (told.role, told.epoch),
            (Role::Master, Epoch(2)),
            "still its role, same epoch"
        );
    }

    #[test]
    fn a_stale_master_is_deposed_once_a_newer_epoch_is_heard() {
        let mut w = World::new();
        // After a restart of the coordinator: a master that was replaced reports first.
        let stale = w.beat(1, 1, Some(Role::Master), 1, log(1, 9), &[]);
        assert_eq!(stale.role, Role::Master);
        assert!(
            !stale.in_sync_confirmed,
            "no smaller in-sync set is confirmed while listening"
        );
        w.beat(1, 2, Some(Role::Slave), 2, log(2, 11), &[]);
        let deposed = w.beat(1, 1, Some(Role::Master), 1, log(1, 9), &[]);
        assert_eq!(deposed.role, Role::Slave);
        w.at(900);
        w.beat(1, 2, Some(Role::Slave), 2, log(2, 11), &[]);
        w.at(1100);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 9), &[]);
        let promoted = w.beat(1, 2, Some(Role::Slave), 2, log(2, 11), &[]);
        assert_eq!((promoted.role, promoted.epoch), (Role::Master, Epoch(3)));
        assert!(promoted.in_sync_confirmed);
    }

    #[test]
    fn new_epochs_start_above_the_floor() {
        let start = Instant::now();
        let config = RegistryConfig {
            clusters: 1,
            failure_timeout: TIMEOUT,
        };
        let mut registry = Registry::new(config, start, Epoch(5000));
        let later = start + TIMEOUT * 2;
        let report = Report {
            server: server(1, 1),
            incarnation: 1,
            folder: FolderId(1),
            role: None,
            epoch: Epoch(7),
            log: log(7, 3),
            in_sync: vec![],
        };
        assert_eq!(
            registry.heartbeat(&report, later).unwrap().epoch,
            Epoch(5001)
        );
    }

    #[test]
    fn an_older_epoch_cannot_claim_mastership() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        let intruder = w.beat(1, 2, Some(Role::Master), 0, log(0, 0), &[]);
        assert_eq!(intruder.role, Role::Slave);
        assert_eq!(w.master(1), Some(1));
    }

    #[test]
    fn unknown_clusters_are_refused() {
        let mut w = World::settled();
        let report = Report {
            server: server(4, 1),
            incarnation: 1,
            folder: FolderId(1),
            role: None,
            epoch: Epoch(0),
            log: LogPoint::default(),
            in_sync: vec![],
        };
        assert!(matches!(
            w.registry.heartbeat(&report, w.now),
            Err(Error::NoSuchCluster { .. })
        ));
        assert!(
            w.registry
                .register_sync(server(0, 1), FolderId(1), w.now)
                .is_err()
        );
    }

    #[test]
    fn users_are_routed_to_their_clusters_master() {
        let mut w = World::settled();
        w.new_server(2, 1);
        let user = |n| UserId::new(n).unwrap();
        let found = w.registry.server_for(user(5), w.now).map(|s| s.server);
        assert_eq!(found, Some(server(2, 1).server));
        assert_eq!(w.registry.server_for(user(4), w.now), None);
    }

    #[test]
    fn synchronizers_count_while_they_re_register() {
        let mut w = World::settled();
        w.registry
            .register_sync(server(1, 1), FolderId(1), w.now)
            .unwrap();
        w.registry
            .register_sync(server(2, 1), FolderId(2), w.now)
            .unwrap();
        assert_eq!(w.registry.sync_servers(w.now).len(), 2);
        w.at(1900);
        w.registry
            .register_sync(server(2, 1), FolderId(2), w.now)
            .unwrap();
        w.at(2300);
        let alive: Vec<u32> = w
            .registry
            .sync_servers(w.now)
            .iter()
            .map(|s| s.cluster.0)
            .collect();
        assert_eq!(alive, [2]);
    }

    #[test]
    fn a_second_copy_of_a_live_server_is_refused_and_changes_nothing() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.new_server(1, 2);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
        w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        for (id, role) in [(1, None), (2, None), (1, Some(Role::Master))] {
            let copy = Report {
                server: ServerRef {
                    endpoint: Endpoint {
                        host: "127.0.0.9".into(),
                        port: 1,
                    },
                    ..server(1, id)
                },
                incarnation: 77,
                folder: FolderId(5),
                role,
                epoch: Epoch(9),
                log: log(9, 50),
                in_sync: vec![],
            };
            let refused = w.registry.heartbeat(&copy, w.now);
            assert!(
                matches!(&refused, Err(Error::Duplicate(m)) if m.contains(&format!("server {id} of cluster 1 already runs at 127.0.0.1:"))),
                "{refused:?}"
            );
        }
        assert_eq!(w.master(1), Some(1), "the master keeps its role");
        assert_eq!(
            w.registry.master_of(ClusterId(1), w.now).unwrap().endpoint,
            server(1, 1).endpoint,
            "and its address"
        );
        w.at(2200);
        let promoted = w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
        assert_eq!(
            (promoted.role, promoted.epoch),
            (Role::Master, Epoch(2)),
            "the real slave is still in sync and takes over"
        );
    }

    #[test]
    fn a_server_restarted_on_its_own_folder_takes_its_place_back_at_once() {
        let mut w = World::settled();
        w.new_server(1, 1);
        w.beat(1, 1, Some(Role::Master), 1, log(1, 4), &[]);
        w.incarnation = 50;
        let again = w.new_server(1, 1);
        assert_eq!((again.role, again.epoch), (Role::Master, Epoch(2)));
    }

    #[test]
    fn another_folder_takes_a_place_once_its_holder_is_silent_for_the_timeout() {
        let mut w = World::settled();
        w.new_server(1, 1);
        let mut other = Report {
            server: server(1, 1),
            incarnation: 8,
            folder: FolderId(5),
            role: None,
            epoch: Epoch(0),
            log: LogPoint::default(),
            in_sync: vec![],
        };
        w.at(2000);
        assert!(w.registry.heartbeat(&other, w.now).is_err());
        w.at(2100);
        assert_eq!(
            w.registry.heartbeat(&other, w.now).unwrap().role,
            Role::Master
        );
        other.folder = FolderId::UNKNOWN;
        assert!(
            matches!(
                w.registry.heartbeat(&other, w.now),
                Err(Error::Duplicate(_))
            ),
            "a process that does not say its folder cannot pass for one that does"
        );
        other.server = server(1, 3);
        assert!(w.registry.heartbeat(&other, w.now).is_ok());
        assert!(
            w.registry.heartbeat(&other, w.now).is_ok(),
            "nor is refused where none says its folder"
        );
    }

    #[test]
    fn a_second_synchronizer_of_a_cluster_is_refused_while_the_first_lives() {
        let mut w = World::settled();
        let mut elsewhere = server(1, 1);
        elsewhere.endpoint.port = 1;
        w.registry
            .register_sync(server(1, 1), FolderId(1), w.now)
            .unwrap();
        let refused = w
            .registry
            .register_sync(elsewhere.clone(), FolderId(2), w.now);
        assert!(
            matches!(&refused, Err(Error::Duplicate(m)) if m.starts_with("the synchronizer of cluster 1 already runs at 127.0.0.1:10001")),
            "{refused:?}"
        );
        assert_eq!(w.registry.sync_servers(w.now), [server(1, 1)]);
        w.at(1500);
        w.registry
            .register_sync(elsewhere.clone(), FolderId(1), w.now)
            .unwrap();
        assert_eq!(
            w.registry.sync_servers(w.now),
            [elsewhere.clone()],
            "a restart on its own folder moves at once"
        );
        w.at(2600);
        w.registry
            .register_sync(server(1, 1), FolderId(2), w.now)
            .unwrap();
        assert_eq!(w.registry.sync_servers(w.now), [server(1, 1)]);
    }

    impl World {
        /// A heartbeat that may be refused.
        fn try_beat(
            &mut self,
            cluster: u32,
            id: u32,
            role: Option<Role>,
            epoch: u64,
        ) -> Result<Assignment> {
            let report = Report {
                server: server(cluster, id),
                incarnation: self.incarnation + u64::from(id),
                folder: folder_of(id),
                role,
                epoch: Epoch(epoch),
                log: log(epoch, 1_000_000),
                in_sync: vec![],
            };
            self.registry.heartbeat(&report, self.now)
        }

        /// Cluster 1 with master 1 at epoch 1 and slave 2 in sync, past listening.
        fn running() -> Self {
            let mut w = World::settled();
            w.new_server(1, 1);
            w.new_server(1, 2);
            w.beat(1, 1, Some(Role::Master), 1, log(1, 5), &[2]);
            w.beat(1, 2, Some(Role::Slave), 1, log(1, 5), &[]);
            w.registry.take_changes();
            w
        }
    }

    #[test]
    fn forged_claims_of_epochs_nobody_granted_are_refused_and_change_nothing() {
        let mut w = World::running();
        let forged = [
            (9, Some(Role::Master), 1 << 62),
            (9, Some(Role::Master), 2),
            (9, Some(Role::Master), 1),
            (9, Some(Role::Slave), 7),
            (2, Some(Role::Master), 1),
            (3, None, 2),
        ];
        for (id, role, epoch) in forged {
            let refused = w.try_beat(1, id, role, epoch);
            assert!(
                matches!(&refused, Err(Error::Refused(m)) if m.starts_with(&format!("server {id} of cluster 1 "))),
                "{id} {role:?} {epoch}: {refused:?}"
            );
        }
        assert_eq!(w.registry.take_changes(), [], "nothing changed");
        assert_eq!(
            w.registry.cluster_state(ClusterId(1)).in_sync,
            [ServerId(1), ServerId(2)]
        );
        let master = w.beat(1, 1, Some(Role::Master), 1, log(1, 6), &[2]);
        assert_eq!((master.role, master.epoch), (Role::Master, Epoch(1)));
        w.at(2200);
        let promoted = w.beat(1, 2, Some(Role::Slave), 1, log(1, 6), &[]);
        assert_eq!(
            (promoted.role, promoted.epoch),
            (Role::Master, Epoch(2)),
            "the real slave takes over from its master, not the forger"
        );
    }

    #[test]
    fn an_epoch_beyond_any_grant_is_refused_even_while_listening() {
        let mut w = World::new();
        let refused = w.try_beat(1, 9, Some(Role::Slave), EPOCH_LEAD + 1);
        assert!(
            matches!(&refused, Err(Error::Refused(m)) if m.contains("no coordinator grants")),
            "{refused:?}"
        );
        assert!(w.try_beat(1, 9, Some(Role::Slave), EPOCH_LEAD).is_ok());
    }

    #[test]
    fn while_listening_a_newer_claim_deposes_an_adopted_master_only_with_a_slave_following_it() {
        let mut w = World::new();
        w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[2]);
        w.beat(1, 2, Some(Role::Slave), 4, log(4, 10), &[]);
        let lone = w.beat(1, 9, Some(Role::Master), 6, log(6, 99), &[]);
        assert_eq!(lone.role, Role::Slave, "a claim nobody follows");
        assert_eq!(lone.master, Some(server(1, 1)));
        w.beat(1, 3, Some(Role::Master), 5, log(5, 12), &[4]);
        w.beat(1, 4, Some(Role::Slave), 5, log(5, 12), &[]);
        let followed = w.beat(1, 3, Some(Role::Master), 5, log(5, 12), &[4]);
        assert_eq!(
            (followed.role, followed.epoch),
            (Role::Master, Epoch(5)),
            "a newer claim that a slave follows wins"
        );
    }

    #[test]
    fn a_record_from_a_shared_store_is_checked_even_while_listening() {
        let mut w = World::new();
        let recorded = ClusterState {
            epoch: Epoch(4),
            master: Some(ServerId(1)),
            master_incarnation: 1,
            in_sync: vec![ServerId(1), ServerId(2)],
        };
        w.registry.adopt(ClusterId(1), recorded);
        w.beat(1, 8, Some(Role::Slave), 4, log(4, 10), &[]);
        for (role, epoch) in [(Some(Role::Master), 4), (Some(Role::Master), 5), (None, 5)] {
            let refused = w.try_beat(1, 9, role, epoch);
            assert!(
                matches!(refused, Err(Error::Refused(_))),
                "{role:?} {epoch}: {refused:?}"
            );
        }
        let master = w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[2]);
        assert_eq!((master.role, master.epoch), (Role::Master, Epoch(4)));
    }

    #[test]
    fn a_lost_master_that_a_shared_record_names_first_in_sync_is_taken_back() {
        let mut w = World::new();
        let recorded = ClusterState {
            epoch: Epoch(4),
            master: None,
            master_incarnation: 1,
            in_sync: vec![ServerId(1), ServerId(2)],
        };
        w.registry.adopt(ClusterId(1), recorded);
        let back = w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[2]);
        assert_eq!((back.role, back.epoch), (Role::Master, Epoch(4)));
        let other = w.try_beat(1, 2, Some(Role::Master), 4);
        assert!(matches!(other, Err(Error::Refused(_))), "{other:?}");
    }

    #[test]
    fn a_master_adopted_while_listening_is_checked_once_listening_is_over() {
        let mut w = World::new();
        w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[2]);
        w.beat(1, 2, Some(Role::Slave), 4, log(4, 10), &[]);
        w.at(1100);
        w.beat(1, 1, Some(Role::Master), 4, log(4, 11), &[2]);
        for (role, epoch) in [(Some(Role::Slave), 5), (Some(Role::Master), 4)] {
            let forged = w.try_beat(1, 9, role, epoch);
            assert!(matches!(forged, Err(Error::Refused(_))), "{forged:?}");
        }
        assert_eq!(w.master(1), Some(1));
    }

    #[test]
    fn a_master_first_heard_after_listening_is_adopted_over_an_older_epoch_heard_before() {
        let mut w = World::new();
        w.beat(1, 2, Some(Role::Slave), 3, log(3, 7), &[]);
        w.at(2200);
        // Server 2 fell silent; its master reports only now.
        let master = w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[]);
        assert_eq!((master.role, master.epoch), (Role::Master, Epoch(4)));
    }

    #[test]
    fn a_trimmed_in_sync_set_is_not_confirmed() {
        let mut w = World::running();
        let trimmed = w.beat(1, 1, Some(Role::Master), 1, log(1, 6), &[9]);
        assert!(!trimmed.in_sync_confirmed, "9 never reported");
        let whole = w.beat(1, 1, Some(Role::Master), 1, log(1, 6), &[2]);
        assert!(whole.in_sync_confirmed);
    }

    #[test]
    fn while_listening_a_report_whose_log_holds_nothing_of_its_epoch_changes_nothing() {
        let mut w = World::new();
        let claim = w.beat(1, 9, Some(Role::Master), 7, LogPoint::default(), &[]);
        assert_eq!(
            claim.role,
            Role::Slave,
            "no master's log holds nothing of its epoch"
        );
        let master = w.beat(1, 1, Some(Role::Master), 4, log(4, 10), &[2]);
        assert_eq!((master.role, master.epoch), (Role::Master, Epoch(4)));
        w.beat(1, 8, Some(Role::Slave), 9, log(4, 10), &[]);
        assert_eq!(
            w.master(1),
            Some(1),
            "a newer epoch with no entries of it deposes no one"
        );
    }

    /// After a coordinator restart the master may report before its slave does; the
    /// slave joins the set when it reports, and replaces a master that stalls from then on.
    #[test]
    fn a_slave_named_in_sync_before_it_reported_is_promoted_when_the_master_stalls() {
        let mut w = World::new();
        w.at(100);
        w.beat(1, 2, Some(Role::Master), 4, log(4, 9), &[1]);
        assert_eq!(
            w.registry.cluster_state(ClusterId(1)).in_sync,
            [ServerId(2)],
            "server 1 has not reported yet"
        );
        w.at(150);
        w.beat(1, 1, Some(Role::Slave), 4, log(4, 9), &[]);
        assert_eq!(
            w.registry.cluster_state(ClusterId(1)).in_sync,
            [ServerId(2), ServerId(1)]
        );
        // The master is heard no more; its slave goes on reporting.
        for millis in (200..=2000).step_by(100) {
            w.at(millis);
            w.beat(1, 1, Some(Role::Slave), 4, log(4, 9), &[]);
        }
        w.tick_and_check(1, Some(1));
        assert_eq!(w.registry.cluster_state(ClusterId(1)).epoch, Epoch(5));
    }

    #[test]
    fn an_in_sync_set_names_only_servers_that_reported() {
        let mut w = World::running();
        w.beat(1, 1, Some(Role::Master), 1, log(1, 6), &[2, 9]);
        assert_eq!(w.registry.take_changes(), []);
        assert_eq!(
            w.registry.cluster_state(ClusterId(1)).in_sync,
            [ServerId(1), ServerId(2)]
        );
    }

    impl World {
        fn tick_and_check(&mut self, cluster: u32, master: Option<u32>) {
            self.registry.tick(self.now);
            assert_eq!(self.master(cluster), master);
        }
    }
}
