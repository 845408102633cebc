//! The coordinator's registry: role assignment and failure detection over many servers.
//!
//! Every server of every cluster sends the coordinator a heartbeat every 200 ms, each
//! answered by [`Registry::heartbeat`]; a timer calls [`Registry::tick`] to notice masters
//! that stopped; every client asks [`Registry::server_for`] where to go. All three run under
//! the coordinator's one lock, so their cost bounds how many servers one coordinator
//! serves. The deployments here have 3, 100 and 1,000 clusters of 3 servers (a master and
//! two in-sync slaves), past the registry's first failure timeout (1 s), in a steady state
//! unless a bench says otherwise. Time is simulated: the benches pass `now` in.
//!
//! * `registry/heartbeat/<clusters>` — one heartbeat; the servers take turns, and the
//!   clock moves on so that each beats every 200 ms. Throughput is per heartbeat.
//! * `registry/server_for/<clusters>` — one client's question: which server serves user
//!   `u`.
//! * `registry/tick/steady/<clusters>` — the timer's tick when every server is live:
//!   failure detection with nothing to detect. Throughput is per cluster checked.
//! * `registry/tick/one_master_lost/<clusters>` — the tick that finds the master of one
//!   cluster silent for the failure timeout and promotes a slave at a new epoch.
//! * `registry/tick/all_masters_lost/<clusters>` — the tick that finds every master silent
//!   and promotes a slave in every cluster. Throughput is per failover.
//!
//! The two failover benches start each iteration from a copy of the registry, made outside
//! the measurement.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use tsn_core::change::LogPoint;
use tsn_core::coordinator::{Endpoint, Registry, RegistryConfig, Report, Role, ServerRef};
use tsn_core::id::{ClusterId, Epoch, FolderId, Position, ServerId, UserId};

/// How long a server may be silent before it counts as failed (`--failure-timeout`).
const FAILURE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often every server beats (`--heartbeat-interval`).
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(200);
/// Servers per cluster: a master and two slaves.
const SERVERS: u32 = 3;
/// The deployments' sizes, in clusters.
const CLUSTERS: [u32; 3] = [3, 100, 1_000];

fn server(cluster: u32, id: u32) -> ServerRef {
    ServerRef {
        cluster: ClusterId(cluster),
        server: ServerId(id),
        endpoint: Endpoint {
            host: format!("tsd-{cluster}-{id}.example"),
            port: 10_000 + id as u16,
        },
    }
}

/// A registry that has assigned every role, and the heartbeats its servers send.
#[derive(Clone)]
struct Deployment {
    registry: Registry,
    /// Every server's steady heartbeat, cluster by cluster.
    reports: Vec<Report>,
    /// The time of the last heartbeats.
    now: Instant,
}

impl Deployment {
    /// `clusters` clusters whose servers 1 are masters at epoch 1 with servers 2 and 3 in
    /// sync, every server having just beaten.
    fn new(clusters: u32) -> Self {
        let start = Instant::now();
        let config = RegistryConfig {
            clusters,
            failure_timeout: FAILURE_TIMEOUT,
        };
        let mut registry = Registry::new(config, start, Epoch(0));
        let now = start + FAILURE_TIMEOUT;
        let mut reports = Vec::new();
        for cluster in 1..=clusters {
            for id in 1..=SERVERS {
                let mut report = Report {
                    server: server(cluster, id),
                    incarnation: u64::from(id),
                    folder: FolderId(u64::from(id)),
                    role: None,
                    epoch: Epoch(0),
                    log: LogPoint::default(),
                    in_sync: Vec::new(),
                };
                let assignment = registry.heartbeat(&report, now).expect("a known cluster");
                report.role = Some(assignment.role);
                report.epoch = assignment.epoch;
                report.log = LogPoint {
                    epoch: assignment.epoch,
                    position: Position(1_000),
                };
                if assignment.role == Role::Master {
                    report.in_sync = (1..=SERVERS).filter(|&s| s != id).map(ServerId).collect();
                }
                reports.push(report);
            }
        }
        let mut deployment = Deployment {
            registry,
            reports,
            now,
        };
        deployment.round(|_| true);
        let changes = deployment.registry.take_changes();
        assert_eq!(
            changes.len(),
            3 * clusters as usize,
            "a promotion and two in-sync sets"
        );
        deployment
    }

    /// Every server that `beats` lets through sends its heartbeat, one interval later.
    fn round(&mut self, beats: impl Fn(&Report) -> bool) {
        self.now += HEARTBEAT_INTERVAL;
        for report in self.reports.iter().filter(|r| beats(r)) {
            self.registry
                .heartbeat(report, self.now)
                .expect("a known cluster");
        }
    }

    /// The deployment where the `lost` masters stopped after the last round, and the time
    /// at which the next tick finds them silent for the failure timeout.
    fn losing(&self, lost: Lost) -> (Deployment, Instant) {
        let silent_since = self.now;
        let stopped = |r: &Report| {
            r.role == Some(Role::Master)
                && match lost {
                    Lost::One => r.server.cluster == ClusterId(1),
                    Lost::All => true,
                }
        };
        let mut next = self.clone();
        while next.now + HEARTBEAT_INTERVAL < silent_since + FAILURE_TIMEOUT {
            next.round(|r| !stopped(r));
        }
        assert!(next.registry.take_changes().is_empty(), "not missed yet");
        (next, silent_since + FAILURE_TIMEOUT)
    }
}

/// Which masters stop beating.
#[derive(Clone, Copy)]
enum Lost {
    /// The master of cluster 1.
    One,
    /// The master of every cluster.
    All,
}

/// One heartbeat, the servers in turn.
fn heartbeat(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry/heartbeat");
    group.throughput(Throughput::Elements(1));
    for clusters in CLUSTERS {
        let Deployment {
            mut registry,
            reports,
            mut now,
        } = Deployment::new(clusters);
        let step = HEARTBEAT_INTERVAL / reports.len() as u32;
        let mut turn = reports.iter().cycle();
        group.bench_function(BenchmarkId::from_parameter(clusters), |b| {
            b.iter(|| {
                now += step;
                let report = turn.next().expect("a cycle never ends");
                registry.heartbeat(report, now).expect("a known cluster")
            });
        });
        assert!(registry.take_changes().is_empty(), "no role changed");
    }
    group.finish();
}

/// A client's question: which server serves a user.
fn server_for(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry/server_for");
    for clusters in CLUSTERS {
        let Deployment {
            mut registry, now, ..
        } = Deployment::new(clusters);
        let mut users = (1..=UserId::MAX)
            .cycle()
            .map(|n| UserId::new(n).expect("in range"));
        group.bench_function(BenchmarkId::from_parameter(clusters), |b| {
            b.iter(|| {
                let user = users.next().expect("a cycle never ends");
                registry
                    .server_for(user, now)
                    .expect("every cluster has a master")
            });
        });
    }
    group.finish();
}

/// Failure detection: with nothing to detect, with one master lost, with every master
/// lost.
fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry/tick");
    for clusters in CLUSTERS {
        let steady = Deployment::new(clusters);
        let mut registry = steady.registry.clone();
        group.throughput(Throughput::Elements(u64::from(clusters)));
        group.bench_function(BenchmarkId::new("steady", clusters), |b| {
            b.iter(|| registry.tick(black_box(steady.now)));
        });
        assert!(registry.take_changes().is_empty(), "no role changed");

        let cases = [
            ("one_master_lost", Lost::One, 1),
            ("all_masters_lost", Lost::All, clusters),
        ];
        for (name, lost, failovers) in cases {
            let (before, at) = steady.losing(lost);
            group.throughput(Throughput::Elements(u64::from(failovers)));
            group.bench_function(BenchmarkId::new(name, clusters), |b| {
                b.iter_batched(
                    || before.registry.clone(),
                    |mut registry| {
                        registry.tick(at);
                        registry
                    },
                    BatchSize::SmallInput,
                );
            });
            let mut after = before.registry.clone();
            after.tick(at);
            let promoted = after.take_changes().len();
            assert_eq!(promoted, 3 * failovers as usize, "lost, promoted, in sync");
        }
    }
    group.finish();
}

fn main() {
    // What `criterion_group!` and `criterion_main!` expand to, written out: the macros make
    // an undocumented `pub fn`, which the workspace's `missing_docs` lint flags.
    let mut criterion = Criterion::default().configure_from_args();
    heartbeat(&mut criterion);
    server_for(&mut criterion);
    tick(&mut criterion);
    criterion.final_summary();
}
