//! The faults, and the injector that deals them out at random moments.
//!
//! Each fault strikes a cluster picked at random (or the coordinator): it does the damage,
//! waits a random while (or, for a stopped or cut-off master, until its slave is promoted,
//! and then a random while), and undoes it: starts the killed process again with its former
//! flags, resumes the stopped one, or heals the cut network. The network's faults —
//! partitions — need every process on a simulated host of its own (`--hosts`).
//!
//! Faults come in episodes. In most an episode is one fault; in about [`OVERLAP`] of them a
//! second fault, on another cluster, begins a moment after the first, usually before the
//! first is undone: faults overlap. Before the next episode the deployment must be whole
//! again ([`health`](super::health)), so that every fault is survivable: the injector never
//! strikes two servers of one cluster at once, so never the only server of a cluster that
//! holds every acknowledged post.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;
use tsn_grpc::coordinator::CoordClient;

use crate::cli::Fatal;
use crate::harness::{
    COORDINATOR, Deployment, Partition, SECOND_COORDINATOR, Timers, synchronizer_name, tsd_name,
};
use crate::program::faults::{PATIENCE, health};

/// How often a flapping link changes.
const FLAP: Duration = Duration::from_millis(200);
/// How long a link flaps.
const FLAPPING: Duration = Duration::from_secs(5);
/// The share of episodes with a second fault that overlaps the first.
const OVERLAP: f64 = 0.4;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub(super) enum Fault {
    /// `kill -9` of a cluster's master, then a restart.
    KillMaster,
    /// `kill -9` of a cluster's slave, then a restart.
    KillSlave,
    /// `kill -9` of a cluster's synchronizer, then a restart.
    KillSynchronizer,
    /// `kill -9` of the coordinator (of one of the two, on etcd), then a restart on the
    /// same port.
    KillCoordinator,
    /// `kill -9` of an etcd member (on etcd only), sometimes the leader, then a restart.
    KillEtcdMember,
    /// SIGSTOP of a cluster's master until its slave is promoted, then SIGCONT.
    PauseMaster,
    /// A master cut off from the coordinator only, both ways.
    CutMasterFromCoordinator,
    /// A master cut off from its slave only, both ways.
    CutMasterFromSlave,
    /// A master cut off from every other host.
    IsolateMaster,
    /// A slave cut off from every other host.
    IsolateSlave,
    /// A synchronizer cut off from every other host.
    IsolateSynchronizer,
    /// The coordinator cut off from every other host.
    IsolateCoordinator,
    /// What a master sends the coordinator dropped; the other way works.
    CutMasterToCoordinatorOneWay,
    /// A master's link to the coordinator cut and healed every 200 ms for 5 s.
    FlapMasterAndCoordinator,
}

impl Fault {
    /// The kinds that kill or stop processes.
    pub(super) const PROCESSES: [Fault; 5] = [
        Fault::KillMaster,
        Fault::KillSlave,
        Fault::KillSynchronizer,
        Fault::KillCoordinator,
        Fault::PauseMaster,
    ];

    /// The kinds that cut the network (on simulated hosts only).
    pub(super) const PARTITIONS: [Fault; 8] = [
        Fault::CutMasterFromCoordinator,
        Fault::CutMasterFromSlave,
        Fault::IsolateMaster,
        Fault::IsolateSlave,
        Fault::IsolateSynchronizer,
        Fault::IsolateCoordinator,
        Fault::CutMasterToCoordinatorOneWay,
        Fault::FlapMasterAndCoordinator,
    ];

    /// The kinds a run deals out: those of `only` if any are named, else every kind, with
    /// partitions on simulated hosts only and etcd's members on etcd only; an error for a
    /// kind the run cannot deal out.
    pub(super) fn kinds(
        only: &[Fault],
        partitions: bool,
        etcd: bool,
    ) -> Result<Vec<Fault>, String> {
        if only.is_empty() {
            let mut kinds = Fault::PROCESSES.to_vec();
            if partitions {
                kinds.extend(Fault::PARTITIONS);
            }
            if etcd {
                kinds.push(Fault::KillEtcdMember);
            }
            return Ok(kinds);
        }
        if let Some(partition) = only.iter().find(|f| Fault::PARTITIONS.contains(f))
            && !partitions
        {
            return Err(format!("{} (a partition) needs --hosts", partition.label()));
        }
        if only.contains(&Fault::KillEtcdMember) && !etcd {
            return Err(format!("{} needs --etcd", Fault::KillEtcdMember.label()));
        }
        Ok(only.to_vec())
    }

    /// Whether it strikes the coordinator itself rather than a cluster.
    fn strikes_coordinator(self) -> bool {
        matches!(
            self,
            Fault::KillCoordinator | Fault::IsolateCoordinator | Fault::KillEtcdMember
        )
    }

    /// What it is called in the summary.
    pub(super) fn label(self) -> &'static str {
        match self {
            Fault::KillMaster => "kill -9 of a master",
            Fault::KillSlave => "kill -9 of a slave",
            Fault::KillSynchronizer => "kill -9 of a synchronizer",
            Fault::KillCoordinator => "kill -9 of the coordinator",
            Fault::KillEtcdMember => "kill -9 of an etcd member",
            Fault::PauseMaster => "SIGSTOP of a master",
            Fault::CutMasterFromCoordinator => "a master cut off from the coordinator",
            Fault::CutMasterFromSlave => "a master cut off from its slave",
            Fault::IsolateMaster => "a master cut off from everyone",
            Fault::IsolateSlave => "a slave cut off from everyone",
            Fault::IsolateSynchronizer => "a synchronizer cut off from everyone",
            Fault::IsolateCoordinator => "the coordinator cut off from everyone",
            Fault::CutMasterToCoordinatorOneWay => "a master's messages to the coordinator dropped",
            Fault::FlapMasterAndCoordinator => "a master's link to the coordinator flapping",
        }
    }
}

/// One fault as it happened.
#[derive(Clone, Debug)]
pub(super) struct Struck {
    pub(super) fault: Fault,
    /// The cluster it struck; `None` for the coordinator.
    pub(super) cluster: Option<u32>,
    pub(super) began: Instant,
    /// When it was undone: the process started again or resumed, the network healed.
    pub(super) undone: Instant,
    /// Whether it began while another fault was still on.
    pub(super) overlapped: bool,
    /// When the deployment was whole again after it (and the fault it overlapped).
    pub(super) whole: Option<Instant>,
}

/// Notes that the deployment is whole at `at`, after every fault of `history` that was
/// not known to be followed by a whole deployment yet.
pub(super) fn mark_whole(history: &mut [Struck], at: Instant) {
    for struck in history.iter_mut().rev().take_while(|s| s.whole.is_none()) {
        struck.whole = Some(at);
    }
}

/// The faults still to come: a shuffled plan, then random kinds while more are wanted.
struct Plan {
    planned: std::vec::IntoIter<Fault>,
    kinds: Vec<Fault>,
    /// A fault drawn but not yet dealt.
    held: Option<Fault>,
}

impl Plan {
    /// `per_kind` faults of each of `kinds`, in an order drawn from `rng`.
    fn new(kinds: Vec<Fault>, per_kind: u32, rng: &mut StdRng) -> Plan {
        let mut plan: Vec<Fault> = kinds
            .iter()
            .flat_map(|&f| std::iter::repeat_n(f, per_kind as usize))
            .collect();
        plan.shuffle(rng);
        Plan {
            planned: plan.into_iter(),
            kinds,
            held: None,
        }
    }

    /// The next fault: the planned ones first, then random ones until `enough` holds.
    fn next(&mut self, rng: &mut StdRng, enough: &impl Fn() -> bool) -> Option<Fault> {
        if let Some(fault) = self.held.take().or_else(|| self.planned.next()) {
            return Some(fault);
        }
        (!enough()).then(|| *self.kinds.choose(rng).expect("kinds"))
    }
}

/// Deals out faults to a deployment.
pub(super) struct Injector<'a> {
    deployment: Mutex<&'a mut Deployment>,
    coordinator: CoordClient,
    rng: StdRng,
    timers: Timers,
    started: Instant,
    history: Vec<Struck>,
}

impl<'a> Injector<'a> {
    /// An injector whose every choice follows from `seed`.
    pub(super) fn new(
        deployment: &'a mut Deployment,
        coordinator: CoordClient,
        seed: u64,
        timers: Timers,
    ) -> Self {
        Injector {
            deployment: Mutex::new(deployment),
            coordinator,
            rng: StdRng::seed_from_u64(seed),
            timers,
            started: Instant::now(),
            history: Vec::new(),
        }
    }

    /// The faults injected so far, in the order they began.
    pub(super) fn history(&self) -> &[Struck] {
        &self.history
    }

    /// The time since the injector was made.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Injects `per_kind` faults of each of `kinds` in a random order, then more of random
    /// kinds until `enough` holds. Returns right after the last fault is undone, without
    /// waiting for the deployment to recover from it; early, with no error, once `broken`
    /// holds.
    pub(super) async fn run(
        &mut self,
        kinds: Vec<Fault>,
        per_kind: u32,
        enough: impl Fn() -> bool,
        broken: impl Fn() -> bool,
    ) -> Result<(), Fatal> {
        let mut plan = Plan::new(kinds, per_kind, &mut self.rng);
        let mut first = true;
        while let Some(fault) = plan.next(&mut self.rng, &enough) {
            if !first {
                let deployment = self.deployment.get_mut();
                health::wait_healthy(deployment, &self.coordinator, PATIENCE).await?;
                mark_whole(&mut self.history, Instant::now());
            }
            first = false;
            if broken() {
                return Ok(());
            }
            let gap = random_up_to(&mut self.rng, 2 * self.timers.failure_timeout);
            tokio::time::sleep(gap).await;
            let second = match self.rng.random_bool(OVERLAP) {
                true => plan.next(&mut self.rng, &enough),
                false => None,
            };
            match second {
                Some(other) if fault.strikes_coordinator() && other.strikes_coordinator() => {
                    plan.held = Some(other);
                    self.episode(fault, None).await?;
                }
                second => self.episode(fault, second).await?,
            }
        }
        Ok(())
    }

    /// Strikes with `fault` and, a moment after it began, with `second` on another cluster.
    async fn episode(&mut self, fault: Fault, second: Option<Fault>) -> Result<(), Fatal> {
        let clusters = self.deployment.get_mut().topology().clusters;
        let mut order: Vec<u32> = (1..=clusters).collect();
        order.shuffle(&mut self.rng);
        let seeds: [u64; 2] = self.rng.random();
        let delay = random_up_to(&mut self.rng, self.timers.failure_timeout / 2);
        let [mut first, mut other] = seeds.map(|seed| Hand {
            deployment: &self.deployment,
            coordinator: &self.coordinator,
            rng: StdRng::seed_from_u64(seed),
            timers: self.timers,
        });
        let Some(second) = second else {
            let struck = first.strike(fault, order[0]).await?;
            self.record(struck, false);
            return Ok(());
        };
        let (a, b) = tokio::join!(first.strike(fault, order[0]), async {
            tokio::time::sleep(delay).await;
            other.strike(second, order[1]).await
        });
        let (a, b) = (a?, b?);
        let overlapped = b.0.began < a.0.undone;
        self.record(a, false);
        self.record(b, overlapped);
        Ok(())
    }

    /// Notes a fault that was struck and undone, and prints what was done.
    fn record(&mut self, (mut struck, what): (Struck, String), overlapped: bool) {
        struck.overlapped = overlapped;
        let at = (struck.began - self.started).as_secs_f64();
        let note = if overlapped {
            " (while the fault before was on)"
        } else {
            ""
        };
        println!("[{at:6.1} s] {what}{note}");
        self.history.push(struck);
    }
}

/// Strikes one fault at a time. Two hands may strike at once, on different clusters: each
/// takes the deployment only for the moment it acts on it.
struct Hand<'i, 'a> {
    deployment: &'i Mutex<&'a mut Deployment>,
    coordinator: &'i CoordClient,
    rng: StdRng,
    timers: Timers,
}

impl Hand<'_, '_> {
    /// Does `fault` to `cluster` (or to the coordinator) and undoes it; what was done.
    async fn strike(&mut self, fault: Fault, cluster: u32) -> Result<(Struck, String), Fatal> {
        let began = Instant::now();
        let what = self.inject(fault, cluster).await?;
        let struck = Struck {
            fault,
            cluster: (!fault.strikes_coordinator()).then_some(cluster),
            began,
            undone: Instant::now(),
            overlapped: false,
            whole: None,
        };
        Ok((struck, what))
    }

    /// Does `fault` and undoes it; says what was done.
    async fn inject(&mut self, fault: Fault, cluster: u32) -> Result<String, Fatal> {
        match fault {
            Fault::KillMaster => {
                let master = self.master_of(cluster).await?;
                self.kill_and_restart(&tsd_name(cluster, master), "master")
                    .await
            }
            Fault::KillSlave => {
                let slave = self.slave_of(cluster).await?;
                self.kill_and_restart(&tsd_name(cluster, slave), "slave")
                    .await
            }
            Fault::KillSynchronizer => {
                self.kill_and_restart(&synchronizer_name(cluster), "synchronizer")
                    .await
            }
            Fault::KillCoordinator => {
                let on_etcd = self.deployment.lock().await.topology().etcd;
                let which = match on_etcd && self.rng.random_bool(0.5) {
                    true => SECOND_COORDINATOR,
                    false => COORDINATOR,
                };
                self.kill_and_restart(which, "coordinator").await
            }
            Fault::KillEtcdMember => self.kill_etcd_member().await,
            Fault::PauseMaster => self.pause_master(cluster).await,
            Fault::CutMasterFromCoordinator => {
                self.cut_master(cluster, "cut off from the coordinator", |d, m| {
                    d.cut(m, COORDINATOR)
                })
                .await
            }
            Fault::CutMasterFromSlave => {
                let master = tsd_name(cluster, self.master_of(cluster).await?);
                let slave = tsd_name(cluster, self.slave_of(cluster).await?);
                let partition = self.deployment.lock().await.cut(&master, &slave)?;
                self.hold().await;
                self.deployment.lock().await.heal(partition)?;
                Ok(format!(
                    "{master} (master) cut off from {slave} (slave), then healed"
                ))
            }
            Fault::IsolateMaster => {
                self.cut_master(cluster, "cut off from everyone", |d, m| d.isolate(m))
                    .await
            }
            Fault::IsolateSlave => {
                let slave = tsd_name(cluster, self.slave_of(cluster).await?);
                self.isolate_for_a_while(&slave).await?;
                Ok(format!(
                    "{slave} (slave) cut off from everyone, then healed"
                ))
            }
            Fault::IsolateSynchronizer => {
                let synchronizer = synchronizer_name(cluster);
                self.isolate_for_a_while(&synchronizer).await?;
                Ok(format!("{synchronizer} cut off from everyone, then healed"))
            }
            Fault::IsolateCoordinator => {
                self.isolate_for_a_while(COORDINATOR).await?;
                Ok("the coordinator cut off from everyone, then healed".into())
            }
            Fault::CutMasterToCoordinatorOneWay => {
                self.cut_master(cluster, "could not send to the coordinator", |d, m| {
                    d.cut_one_way(m, COORDINATOR)
                })
                .await
            }
            Fault::FlapMasterAndCoordinator => {
                let master = tsd_name(cluster, self.master_of(cluster).await?);
                let flapping = Instant::now();
                while flapping.elapsed() < FLAPPING {
                    let partition = self.deployment.lock().await.cut(&master, COORDINATOR)?;
                    tokio::time::sleep(FLAP).await;
                    self.deployment.lock().await.heal(partition)?;
                    tokio::time::sleep(FLAP).await;
                }
                Ok(format!(
                    "{master} (master) cut off from the coordinator and healed every {} ms for {} s",
                    FLAP.as_millis(),
                    FLAPPING.as_secs()
                ))
            }
        }
    }

    /// Waits a random while of up to three failure timeouts (so sometimes before the
    /// coordinator notices, sometimes after).
    async fn hold(&mut self) {
        let held = random_up_to(&mut self.rng, 3 * self.timers.failure_timeout);
        tokio::time::sleep(held).await;
    }

    /// Cuts `name` off from everyone for a while, then heals it.
    async fn isolate_for_a_while(&mut self, name: &str) -> Result<(), Fatal> {
        let partition = self.deployment.lock().await.isolate(name)?;
        self.hold().await;
        self.deployment.lock().await.heal(partition)
    }

    /// Cuts the master of `cluster` off as `cut` does (given the deployment and the
    /// master's name), waits until the coordinator has promoted another server and then up
    /// to two failure timeouts more, and heals it; says what was done, `what` being the cut.
    async fn cut_master(
        &mut self,
        cluster: u32,
        what: &str,
        cut: impl FnOnce(&Deployment, &str) -> Result<Partition, Fatal>,
    ) -> Result<String, Fatal> {
        let master = self.master_of(cluster).await?;
        let name = tsd_name(cluster, master);
        let partition = cut(*self.deployment.lock().await, &name)?;
        let promoted = self.wait_promotion(cluster, master).await;
        if promoted.is_ok() {
            let extra = random_up_to(&mut self.rng, 2 * self.timers.failure_timeout);
            tokio::time::sleep(extra).await;
        }
        self.deployment.lock().await.heal(partition)?;
        let promoted = promoted?;
        Ok(format!(
            "{name} (master) {what}, server {promoted} promoted, then healed"
        ))
    }

    /// Kills the member `name` with SIGKILL and, after up to three failure timeouts (so
    /// sometimes before the coordinator notices, sometimes after), starts it again.
    async fn kill_and_restart(&mut self, name: &str, role: &str) -> Result<String, Fatal> {
        let down = random_up_to(&mut self.rng, 3 * self.timers.failure_timeout);
        self.deployment.lock().await.kill_member(name)?;
        tokio::time::sleep(down).await;
        // Not holding the deployment while the member gets ready: it may need the
        // coordinator, which the other hand may be starting again meanwhile.
        let starting = self.deployment.lock().await.relaunch(name)?;
        let member = starting.ready().await?;
        self.deployment.lock().await.rejoin(member)?;
        Ok(format!(
            "kill -9 of {name} ({role}), started again after {} ms",
            down.as_millis()
        ))
    }

    /// Kills an etcd member with SIGKILL (the leader half the time) and, after up to three
    /// failure timeouts, starts it again on its data.
    async fn kill_etcd_member(&mut self) -> Result<String, Fatal> {
        let down = random_up_to(&mut self.rng, 3 * self.timers.failure_timeout);
        let mut deployment = self.deployment.lock().await;
        let etcd = deployment
            .etcd()
            .ok_or_else(|| Fatal("etcd's members are struck only on etcd".into()))?;
        let leader = etcd.leader().await;
        let (member, which) = match leader {
            Some(leader) if self.rng.random_bool(0.5) => (leader, "the leader"),
            _ => (self.rng.random_range(0..etcd.len()), "a member"),
        };
        etcd.kill(member);
        drop(deployment);
        tokio::time::sleep(down).await;
        let mut deployment = self.deployment.lock().await;
        if let Some(etcd) = deployment.etcd() {
            etcd.restart(member)?;
        }
        Ok(format!(
            "kill -9 of etcd member {} ({which}), started again after {} ms",
            member + 1,
            down.as_millis()
        ))
    }

    /// Stops the master of `cluster` with SIGSTOP, waits until the coordinator has promoted
    /// another server and then up to two failure timeouts more, and resumes it with SIGCONT.
    async fn pause_master(&mut self, cluster: u32) -> Result<String, Fatal> {
        let master = self.master_of(cluster).await?;
        let name = tsd_name(cluster, master);
        let stopped = Instant::now();
        self.deployment.lock().await.pause(&name)?;
        let promoted = self.wait_promotion(cluster, master).await;
        let extra = random_up_to(&mut self.rng, 2 * self.timers.failure_timeout);
        if promoted.is_ok() {
            tokio::time::sleep(extra).await;
        }
        self.deployment.lock().await.resume(&name)?;
        let promoted = promoted?;
        Ok(format!(
            "SIGSTOP of {name} (master), server {promoted} promoted, SIGCONT after {} ms",
            stopped.elapsed().as_millis()
        ))
    }

    /// Waits until the coordinator names a master of `cluster` other than `former`.
    async fn wait_promotion(&self, cluster: u32, former: u32) -> Result<u32, Fatal> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(master) = health::master_of(self.coordinator, cluster).await
                && master != former
            {
                return Ok(master);
            }
            if Instant::now() >= deadline {
                return Err(Fatal(format!(
                    "cluster {cluster} promoted no server within {} s of the fault on its master",
                    PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The master of `cluster`, asked of the coordinator until it answers (it may be struck
    /// itself, by the other hand).
    async fn master_of(&self, cluster: u32) -> Result<u32, Fatal> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match health::master_of(self.coordinator, cluster).await {
                Ok(master) => return Ok(master),
                Err(problem) if Instant::now() >= deadline => return Err(Fatal(problem)),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// A server of `cluster` that is not its master, chosen at random.
    async fn slave_of(&mut self, cluster: u32) -> Result<u32, Fatal> {
        let master = self.master_of(cluster).await?;
        let servers = self.deployment.lock().await.topology().servers;
        let slaves: Vec<u32> = (1..=servers).filter(|&s| s != master).collect();
        slaves
            .choose(&mut self.rng)
            .copied()
            .ok_or_else(|| Fatal(format!("cluster {cluster} has no slave")))
    }
}

/// A random duration from zero to `most`.
fn random_up_to(rng: &mut StdRng, most: Duration) -> Duration {
    most.mul_f64(rng.random_range(0.0..=1.0))
}
