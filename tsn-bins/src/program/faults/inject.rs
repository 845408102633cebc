//! The faults, and the injector that deals them out at random moments.
//!
//! Each fault is an episode: after a random pause the injector picks a cluster at random,
//! does the damage, waits a random while (or, for a stopped master, until its slave is
//! promoted, and then a random while), and undoes it: starts the killed process again with
//! its former flags, or resumes the stopped one. Before the next episode the deployment
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
}

impl Fault {
    /// Every kind.
    pub(super) const ALL: [Fault; 5] = [
        Fault::KillMaster,
        Fault::KillSlave,
        Fault::KillSynchronizer,
        Fault::KillCoordinator,
        Fault::PauseMaster,
    ];

    /// What it is called in the summary.
    pub(super) fn label(self) -> &'static str {
        match self {
            Fault::KillMaster => "kill -9 of a master",
            Fault::KillSlave => "kill -9 of a slave",
            Fault::KillSynchronizer => "kill -9 of a synchronizer",
            Fault::KillCoordinator => "kill -9 of the coordinator",
            Fault::PauseMaster => "SIGSTOP of a master",
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
        let mut plan: Vec<Fault> = Fault::ALL
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
                None => *Fault::ALL.choose(&mut self.rng).expect("kinds"),
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
        }
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
