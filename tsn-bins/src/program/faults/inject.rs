//! The faults, and the injector that deals them out at random moments.
//!
//! Each fault is an episode: after a random pause the injector picks a cluster at random,
//! does the damage, waits a random while (or, for a stopped or cut-off master, until its
//! slave is promoted, and then a random while), and undoes it: starts the killed process
//! again with its former flags, resumes the stopped one, or heals the cut network. The
//! network's faults — partitions — need every process on a simulated host of its own
//! (`--hosts`). Before the next episode the deployment
//! must be whole again ([`health`](super::health)), so that every fault is survivable:
//! the injector never kills the only server of a cluster that holds every acknowledged
//! post.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tsn_grpc::coordinator::CoordClient;

use crate::cli::Fatal;
use crate::harness::{COORDINATOR, Deployment, Timers, synchronizer_name, tsd_name};
use crate::program::faults::{PATIENCE, health};

/// How often a flapping link changes.
const FLAP: Duration = Duration::from_millis(200);
/// How long a link flaps.
const FLAPPING: Duration = Duration::from_secs(5);

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Fault {
    /// `kill -9` of a cluster's master, then a restart.
    KillMaster,
    /// `kill -9` of a cluster's slave, then a restart.
    KillSlave,
    /// `kill -9` of a cluster's synchronizer, then a restart.
    KillSynchronizer,
    /// `kill -9` of the coordinator, then a restart on the same port.
    KillCoordinator,
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

    /// The kinds a run deals out: with partitions on simulated hosts.
    pub(super) fn kinds(partitions: bool) -> Vec<Fault> {
        let mut kinds = Fault::PROCESSES.to_vec();
        if partitions {
            kinds.extend(Fault::PARTITIONS);
        }
        kinds
    }

    /// What it is called in the summary.
    pub(super) fn label(self) -> &'static str {
        match self {
            Fault::KillMaster => "kill -9 of a master",
            Fault::KillSlave => "kill -9 of a slave",
            Fault::KillSynchronizer => "kill -9 of a synchronizer",
            Fault::KillCoordinator => "kill -9 of the coordinator",
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

/// Deals out faults to a deployment.
pub(super) struct Injector<'a> {
    deployment: &'a mut Deployment,
    coordinator: CoordClient,
    rng: StdRng,
    timers: Timers,
    started: Instant,
    injected: BTreeMap<Fault, u32>,
    /// When the last fault began.
    last_began: Option<Instant>,
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
            deployment,
            coordinator,
            rng: StdRng::seed_from_u64(seed),
            timers,
            started: Instant::now(),
            injected: BTreeMap::new(),
            last_began: None,
        }
    }

    /// The faults injected so far, by kind.
    pub(super) fn injected(&self) -> &BTreeMap<Fault, u32> {
        &self.injected
    }

    /// The time since the injector was made.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// When the last fault began, if any did.
    pub(super) fn last_began(&self) -> Option<Instant> {
        self.last_began
    }

    /// Injects `per_kind` faults of each kind in a random order, then more of random kinds
    /// until `enough` holds. Returns right after the last fault is undone, without waiting
    /// for the deployment to recover from it; early, with no error, once `broken` holds.
    pub(super) async fn run(
        &mut self,
        per_kind: u32,
        enough: impl Fn() -> bool,
        broken: impl Fn() -> bool,
    ) -> Result<(), Fatal> {
        let kinds = Fault::kinds(self.deployment.topology().hosts);
        let mut plan: Vec<Fault> = kinds
            .iter()
            .flat_map(|&f| std::iter::repeat_n(f, per_kind as usize))
            .collect();
        plan.shuffle(&mut self.rng);
        let mut planned = plan.into_iter();
        let mut first = true;
        loop {
            let fault = match planned.next() {
                Some(fault) => fault,
                None if enough() => return Ok(()),
                None => *kinds.choose(&mut self.rng).expect("kinds"),
            };
            if !first {
                health::wait_healthy(self.deployment, &self.coordinator, PATIENCE).await?;
            }
            first = false;
            if broken() {
                return Ok(());
            }
            let gap = self.random_up_to(2 * self.timers.failure_timeout);
            tokio::time::sleep(gap).await;
            let began = Instant::now();
            self.last_began = Some(began);
            let what = self.inject(fault).await?;
            *self.injected.entry(fault).or_default() += 1;
            println!("[{:6.1} s] {what}", (began - self.started).as_secs_f64());
        }
    }

    /// Does `fault` and undoes it; says what was done.
    async fn inject(&mut self, fault: Fault) -> Result<String, Fatal> {
        let clusters = self.deployment.topology().clusters;
        let cluster = self.rng.random_range(1..=clusters);
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
            Fault::KillCoordinator => self.kill_and_restart(COORDINATOR, "coordinator").await,
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
                self.deployment.cut(&master, &slave)?;
                self.hold().await;
                self.deployment.heal(&master)?;
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
                    self.deployment.cut(&master, COORDINATOR)?;
                    tokio::time::sleep(FLAP).await;
                    self.deployment.heal(&master)?;
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
        let held = self.random_up_to(3 * self.timers.failure_timeout);
        tokio::time::sleep(held).await;
    }

    /// Cuts `name` off from everyone for a while, then heals it.
    async fn isolate_for_a_while(&mut self, name: &str) -> Result<(), Fatal> {
        self.deployment.isolate(name)?;
        self.hold().await;
        self.deployment.heal(name)
    }

    /// Cuts the master of `cluster` off as `cut` does (given the deployment and the
    /// master's name), waits until the coordinator has promoted another server and then up
    /// to two failure timeouts more, and heals it; says what was done, `what` being the cut.
    async fn cut_master(
        &mut self,
        cluster: u32,
        what: &str,
        cut: impl FnOnce(&Deployment, &str) -> Result<(), Fatal>,
    ) -> Result<String, Fatal> {
        let master = self.master_of(cluster).await?;
        let name = tsd_name(cluster, master);
        cut(self.deployment, &name)?;
        let promoted = self.wait_promotion(cluster, master).await;
        if promoted.is_ok() {
            let extra = self.random_up_to(2 * self.timers.failure_timeout);
            tokio::time::sleep(extra).await;
        }
        self.deployment.heal(&name)?;
        let promoted = promoted?;
        Ok(format!(
            "{name} (master) {what}, server {promoted} promoted, then healed"
        ))
    }

    /// Kills the member `name` with SIGKILL and, after up to three failure timeouts (so
    /// sometimes before the coordinator notices, sometimes after), starts it again.
    async fn kill_and_restart(&mut self, name: &str, role: &str) -> Result<String, Fatal> {
        let down = self.random_up_to(3 * self.timers.failure_timeout);
        self.deployment.kill_member(name)?;
        tokio::time::sleep(down).await;
        self.deployment.restart_member(name).await?;
        Ok(format!(
            "kill -9 of {name} ({role}), started again after {} ms",
            down.as_millis()
        ))
    }

    /// Stops the master of `cluster` with SIGSTOP, waits until the coordinator has promoted
    /// another server and then up to two failure timeouts more, and resumes it with SIGCONT.
    async fn pause_master(&mut self, cluster: u32) -> Result<String, Fatal> {
        let master = self.master_of(cluster).await?;
        let name = tsd_name(cluster, master);
        let stopped = Instant::now();
        self.deployment.pause(&name)?;
        let promoted = self.wait_promotion(cluster, master).await;
        let extra = self.random_up_to(2 * self.timers.failure_timeout);
        if promoted.is_ok() {
            tokio::time::sleep(extra).await;
        }
        self.deployment.resume(&name)?;
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
            if let Ok(master) = health::master_of(&self.coordinator, cluster).await
                && master != former
            {
                return Ok(master);
            }
            if Instant::now() >= deadline {
                return Err(Fatal(format!(
                    "cluster {cluster} promoted no server within {} s of its master being stopped",
                    PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn master_of(&self, cluster: u32) -> Result<u32, Fatal> {
        health::master_of(&self.coordinator, cluster)
            .await
            .map_err(Fatal)
    }

    /// A server of `cluster` that is not its master, chosen at random.
    async fn slave_of(&mut self, cluster: u32) -> Result<u32, Fatal> {
        let master = self.master_of(cluster).await?;
        let slaves: Vec<u32> = (1..=self.deployment.topology().servers)
            .filter(|&s| s != master)
            .collect();
        slaves
            .choose(&mut self.rng)
            .copied()
            .ok_or_else(|| Fatal(format!("cluster {cluster} has no slave")))
    }

    /// A random duration from zero to `most`.
    fn random_up_to(&mut self, most: Duration) -> Duration {
        most.mul_f64(self.rng.random_range(0.0..=1.0))
    }
}
