//! `tsn-faults`: faults injected into a local deployment while clients post, and a check
//! that no acknowledged post was lost, doubled or reordered, in the spirit of Jepsen's set
//! checks.
//!
//! 1. It starts a deployment of real processes ([`harness`](crate::harness)) on free loopback ports, with
//!    its data in a new folder: the coordinator and, per cluster, a master, a slave and a
//!    synchronizer, with short timers (heartbeat 100 ms, failure timeout 500 ms).
//! 2. Users 1 to 9, three per cluster, each run a real `tsc` ([`clients`]): each follows every
//!    other user, enters its timeline and types `post <user> <n>` every `--interval` or so.
//!    The clients' own reconnection and resending after failovers is what gets exercised.
//!    Beside them users 10 to 18, the movers ([`movers`]), join at random moments once the
//!    faults have begun and, through the protocol, follow, unfollow and post across
//!    clusters, keeping every acknowledgement: when each change was sent and acknowledged,
//!    and where each post was committed (epoch and log position).
//! 3. Meanwhile faults chosen by a seeded random generator are injected ([`inject`]):
//!    `kill -9` and restart of a master, of a slave, of a synchronizer and of the
//!    coordinator, and SIGSTOP of a master until its slave is promoted, then SIGCONT; with
//!    `--hosts`, partitions too: a master cut off from the coordinator, from its slave, or
//!    from everyone, a slave, a synchronizer or the coordinator cut off from everyone, a
//!    one-way cut, a flapping link. In part of the run faults overlap: a second begins, on
//!    another cluster, before the first is undone. After each episode the deployment must
//!    become whole again ([`health`]) before the next one.
//! 4. After the last fault the clients stop posting. Every screen must show every post of
//!    the others (the time that takes is the convergence time), every client must exit 0 at
//!    the end of its input (so every post it sent was acknowledged), and every user's whole
//!    timeline, read through the protocol, must hold each post of the users it follows
//!    exactly once, each author's in the order they were sent ([`check`]); a mover's, by its
//!    follow history ([`delivery`]), and `LIST` must agree with that history. No process may
//!    have panicked, and every cluster must have exactly one master.
//! 5. Once the deployment has stopped, every replica's log and course files are read back
//!    ([`replicas`]): the replicas of a cluster agree up to the commit point, the course
//!    files hold what the logs say, and every acknowledged post is where its
//!    acknowledgement said, in every replica, with no position acknowledged twice and none
//!    acknowledged by a deposed master (fencing).
//! 6. The summary gives, per kind of fault, how long the movers' calls waited on the
//!    struck cluster and on the others, and how long the deployment took to be whole again
//!    ([`availability`]).
//!
//! The seed fixes which faults come, in which order, at which cluster, and every pause; the
//! system's own timing varies from run to run, so a seed repeats the schedule, not
//! necessarily the outcome. The data and logs of a failing run are kept.

mod availability;
mod check;
mod clients;
mod delivery;
mod health;
mod inject;
mod movers;
mod replicas;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tsn_grpc::coordinator::CoordClient;

use crate::cli::{self, Fatal};
use crate::harness::{self, Deployment, Timers, Topology, free_port};
use check::Findings;
use clients::{Client, Posting};
use delivery::DeliveryFindings;
use inject::{Fault, Injector, Struck};
use movers::Movers;
use replicas::ReplicaFindings;

/// The number of clusters.
const CLUSTERS: u32 = 3;

/// How long any one expected thing may take: a recovery, a client's exit, a timeline's
/// convergence.
const PATIENCE: Duration = Duration::from_secs(30);

/// The flags of `tsn-faults`.
#[derive(Parser, Debug)]
#[command(
    name = "tsn-faults",
    version,
    about = "Injects faults into a local TSN deployment while clients post, and checks that no acknowledged post is lost, doubled or reordered",
    mut_arg("heartbeat_interval", |a| a.default_value("100ms")),
    mut_arg("failure_timeout", |a| a.default_value("500ms"))
)]
struct Flags {
    /// The seed of every random choice (default: a random one, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Faults of each kind (more come while fewer than --posts posts have been sent).
    #[arg(long, default_value_t = 2)]
    faults: u32,
    /// Posts to send at least, all clients together.
    #[arg(long, default_value_t = 300)]
    posts: u64,
    /// Follows and unfollows to have acknowledged at least, all movers together.
    #[arg(long, default_value_t = 100)]
    changes: u64,
    /// The mean pause between two posts of one client (each pause is between half and
    /// one and a half times it).
    #[arg(long, default_value = "100ms", value_parser = cli::duration)]
    interval: Duration,
    /// Folder for the deployment's data and logs; it must not exist yet (default: a new
    /// folder in the temporary folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the data and logs after a passing run too (a failing run always keeps them).
    #[arg(long)]
    keep: bool,
    /// Run each process on a simulated host of its own (network namespaces; needs root),
    /// and cut the network between them as well.
    #[arg(long)]
    hosts: bool,
    /// Run the coordination on etcd: a cluster of 3 etcd members (the `etcd` program must
    /// be on the PATH) and two coordinators on it.
    #[arg(long)]
    etcd: bool,
    /// Deal out only these kinds of fault (default: every kind; partitions need --hosts).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Fault>,
    #[command(flatten)]
    timers: Timers,
}

/// Runs `tsn-faults` with `args`, or, started as one of its children, that program.
pub fn main(args: Vec<OsString>) -> ExitCode {
    harness::run_as(&args).unwrap_or_else(|| cli::run_program("tsn-faults", args, run))
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    let kinds = Fault::kinds(&flags.only, flags.hosts, flags.etcd).map_err(Fatal)?;
    let seed = flags.seed.unwrap_or_else(rand::random);
    println!("seed {seed} (run it again with --seed {seed})");
    let data_dir = new_data_dir(flags.data_dir.clone())?;
    let topology = Topology {
        hosts: flags.hosts,
        etcd: flags.etcd,
        ..Topology::standard(CLUSTERS, free_port()?, true, data_dir.clone(), flags.timers)
    };
    let mut deployment = Deployment::start(topology).await?;
    println!(
        "deployment running; data and logs in {}",
        data_dir.display()
    );
    let outcome = exercise(&flags, kinds, seed, &mut deployment).await;
    deployment.stop().await;
    let passed = match outcome {
        Ok(mut report) => {
            report.panics = check::panics(deployment.logs());
            report.read_replicas(deployment.topology());
            report.print();
            report.passed()
        }
        Err(fatal) => {
            println!("the run stopped: {}", fatal.0);
            for panic in check::panics(deployment.logs()) {
                println!("  {panic}");
            }
            false
        }
    };
    if passed {
        println!("PASS (seed {seed})");
        if !flags.keep {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        return Ok(());
    }
    Err(Fatal(format!(
        "FAIL (seed {seed}); the data and logs are in {}",
        data_dir.display()
    )))
}

/// The folder the deployment gets: `chosen`, which must not exist yet, or a new one in the
/// temporary folder.
fn new_data_dir(chosen: Option<PathBuf>) -> Result<PathBuf, Fatal> {
    let dir = chosen.unwrap_or_else(|| {
        let name = format!(
            "tsn-faults-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        std::env::temp_dir().join(name)
    });
    if dir.exists() {
        return Err(Fatal(format!(
            "{} exists already; give a new folder",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Sets the clients going, injects the faults, and checks what came of it.
async fn exercise(
    flags: &Flags,
    kinds: Vec<Fault>,
    seed: u64,
    deployment: &mut Deployment,
) -> Result<Report, Fatal> {
    let coordinator = CoordClient::new(&deployment.coordinators())
        .map_err(|e| Fatal::new("bad coordinator address", e))?;
    health::wait_healthy(deployment, &coordinator, PATIENCE).await?;
    let clients = clients::start(deployment, &coordinator).await?;
    println!(
        "{} clients follow each other; posting and injecting faults",
        clients.len()
    );
    let (clients, movers, mut faults) =
        inject_while_posting(flags, kinds, seed, deployment, &coordinator, clients).await?;
    health::wait_healthy(deployment, &coordinator, PATIENCE)
        .await
        .map_err(|e| Fatal(format!("after the last fault: {}", e.0)))?;
    inject::mark_whole(&mut faults.history, Instant::now());
    println!("faults over; waiting for every post to reach every follower");
    settle_and_check(deployment, &coordinator, clients, movers, faults).await
}

/// The faults a run injected.
struct Faults {
    /// Each fault, in the order they began.
    history: Vec<Struck>,
    /// From the first fault to the end of the last.
    took: Duration,
    /// When the last fault began.
    last_began: Instant,
    /// When the last fault was undone, and the clients stopped posting.
    last_undone: Instant,
}

impl Faults {
    /// How many of each kind.
    fn by_kind(&self) -> BTreeMap<Fault, u32> {
        let mut kinds = BTreeMap::new();
        for struck in &self.history {
            *kinds.entry(struck.fault).or_default() += 1;
        }
        kinds
    }

    /// How many faults were in an overlapping pair: one that began while the other was on.
    fn overlapping(&self) -> usize {
        2 * self.history.iter().filter(|s| s.overlapped).count()
    }
}

/// Has the clients post while the faults come; stops the posting as soon as the last fault
/// is undone, and gives the clients back.
async fn inject_while_posting(
    flags: &Flags,
    kinds: Vec<Fault>,
    seed: u64,
    deployment: &mut Deployment,
    coordinator: &CoordClient,
    clients: Vec<Client>,
) -> Result<(Vec<Client>, Vec<movers::Record>, Faults), Fatal> {
    let posting = Posting::start(clients, flags.interval, seed);
    let movers = Movers::start(coordinator, flags.interval, seed);
    let mut injector = Injector::new(deployment, coordinator.clone(), seed, flags.timers);
    let injected = injector
        .run(
            kinds,
            flags.faults,
            || posting.sent() >= flags.posts && movers.changes() >= flags.changes,
            || posting.failed(),
        )
        .await;
    let last_undone = Instant::now();
    let history = injector.history().to_vec();
    let faults = Faults {
        took: injector.elapsed(),
        last_began: history.last().map_or(last_undone, |s| s.began),
        last_undone,
        history,
    };
    // A client's failure says more than the injector's noticing it.
    let clients = posting.stop().await?;
    let records = movers.stop().await?;
    injected?;
    Ok((clients, records, faults))
}

/// Waits until every post is everywhere, ends the clients, and checks every timeline.
async fn settle_and_check(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
    mut clients: Vec<Client>,
    movers: Vec<movers::Record>,
    faults: Faults,
) -> Result<Report, Fatal> {
    let sent: BTreeMap<u32, u64> = clients.iter().map(|c| (c.user, c.sent)).collect();
    let converged = converge(&mut clients, &sent, faults.last_undone)
        .await
        .map(|at| Convergence {
            after_undone: at - faults.last_undone,
            after_began: at - faults.last_began,
        });
    let unfinished = finish(&mut clients).await;
    let mut expected = clients::expected_on_timelines(&sent);
    // How many posts a mover's timeline holds is what the check finds out.
    expected.extend(movers.iter().map(|m| (m.user, 0)));
    let mut timelines = check::read_timelines(coordinator, &expected).await?;
    let mover_timelines = timelines.split_off(&movers::FIRST);
    let lists = delivery::read_lists(coordinator).await?;
    Ok(Report {
        findings: check::judge(&timelines, &sent),
        movers,
        mover_timelines,
        lists,
        replicas: None,
        delivery: None,
        masters: health::masters(deployment, coordinator).await,
        faults,
        sent,
        unfinished,
        shown_twice: clients.iter().flat_map(Client::shown_twice).collect(),
        reconnections: clients.iter().map(Client::reconnections).sum(),
        converged,
        panics: Vec::new(),
    })
}

/// Waits until every screen shows every post the others sent; when the last of them came
/// (`since` if before), or how many posts are missing where.
async fn converge(
    clients: &mut [Client],
    sent: &BTreeMap<u32, u64>,
    since: Instant,
) -> Result<Instant, String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let users: Vec<u32> = clients.iter().map(|c| c.user).collect();
    let waits = clients.iter_mut().map(|c| c.wait_shown(sent, deadline));
    let mut last = since;
    let mut missing = Vec::new();
    for (user, shown) in users
        .into_iter()
        .zip(futures::future::join_all(waits).await)
    {
        match shown {
            Ok(at) => last = last.max(at.unwrap_or(since)),
            Err(count) => missing.push(format!("{count} missing on user {user}'s screen")),
        }
    }
    if missing.is_empty() {
        Ok(last)
    } else {
        Err(format!(
            "not within {} s: {}",
            PATIENCE.as_secs(),
            missing.join(", ")
        ))
    }
}

/// Ends every client's input and waits for each to exit 0; what went wrong with those
/// that did not.
async fn finish(clients: &mut [Client]) -> Vec<String> {
    let exits = clients.iter_mut().map(|c| c.finish(PATIENCE));
    futures::future::join_all(exits)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// How long after the last fault every post was on every screen.
struct Convergence {
    /// From when the fault began.
    after_began: Duration,
    /// From when it was undone (the process started again, or resumed).
    after_undone: Duration,
}

/// What a run found.
struct Report {
    faults: Faults,
    /// Posts typed, by author.
    sent: BTreeMap<u32, u64>,
    /// Clients that did not exit 0 at the end of their input, and why.
    unfinished: Vec<String>,
    /// Posts a screen showed more than once: (reader, author, number).
    shown_twice: Vec<(u32, u32, u64)>,
    reconnections: usize,
    converged: Result<Convergence, String>,
    findings: Findings,
    /// The master of every cluster, or what is wrong with the roles.
    masters: Result<Vec<(u32, u32)>, String>,
    /// Log lines that tell of a panic.
    panics: Vec<String>,
    /// What the movers did.
    movers: Vec<movers::Record>,
    /// The movers' whole timelines.
    mover_timelines: BTreeMap<u32, Vec<tsn_grpc::client::Delivered>>,
    /// `LIST` of every user, at its own cluster.
    lists: BTreeMap<u32, tsn_grpc::client::Listing>,
    /// What the replicas show, once read; or why they could not be.
    replicas: Option<Result<ReplicaFindings, String>>,
    /// What the movers' timelines and the lists show, once the replicas are read.
    delivery: Option<DeliveryFindings>,
}

impl Report {
    /// Reads the replicas of the stopped deployment and holds them, the movers' timelines
    /// and the lists against what the clients were told.
    fn read_replicas(&mut self, topology: &Topology) {
        let replicas = match replicas::read(topology) {
            Ok(replicas) => replicas,
            Err(fatal) => {
                self.replicas = Some(Err(fatal.0));
                return;
            }
        };
        let clusters = topology.clusters;
        self.replicas = Some(Ok(replicas.judge(&self.movers, clusters)));
        self.delivery = Some(delivery::judge(
            &self.movers,
            &self.mover_timelines,
            |author| replicas.posts_by(author, clusters),
            &self.lists,
        ));
    }

    fn passed(&self) -> bool {
        matches!(&self.replicas, Some(Ok(r)) if r.is_clean())
            && self
                .delivery
                .as_ref()
                .is_some_and(DeliveryFindings::is_clean)
            && self.movers.iter().all(|m| m.surprises.is_empty())
            && self.findings.is_clean()
            && self.unfinished.is_empty()
            && self.shown_twice.is_empty()
            && self.converged.is_ok()
            && self.masters.is_ok()
            && self.panics.is_empty()
    }

    fn print(&self) {
        let kinds: Vec<String> = self
            .faults
            .by_kind()
            .iter()
            .map(|(f, count)| format!("{count} {}", f.label()))
            .collect();
        let total = self.faults.history.len();
        println!();
        println!(
            "faults injected: {} ({total} in all, over {:.1} s)",
            kinds.join(", "),
            self.faults.took.as_secs_f64()
        );
        println!(
            "overlapping: {} of {total} faults (in pairs, the second begun while the first was on)",
            self.faults.overlapping()
        );
        let sent: u64 = self.sent.values().sum();
        match self.unfinished.is_empty() {
            true => println!("posts acknowledged: {sent} (every client exited 0)"),
            false => println!("posts sent: {sent}, not all acknowledged:"),
        }
        for problem in &self.unfinished {
            println!("  {problem}");
        }
        self.findings.print();
        self.print_movers();
        availability::print(&self.faults.history, &self.movers);
        match &self.converged {
            Ok(time) => println!(
                "converged: {:.2} s after the last fault began, {:.2} s after it was undone",
                time.after_began.as_secs_f64(),
                time.after_undone.as_secs_f64()
            ),
            Err(problem) => println!("converged: no, {problem}"),
        }
        println!("clients reconnected: {} times", self.reconnections);
        println!(
            "shown twice on a client's screen: {}",
            self.shown_twice.len()
        );
        for (reader, author, n) in self.shown_twice.iter().take(check::LISTED) {
            println!("  post {author} {n} on user {reader}'s screen");
        }
        match &self.masters {
            Ok(masters) => {
                let list: Vec<String> = masters
                    .iter()
                    .map(|(c, s)| format!("cluster {c}: server {s}"))
                    .collect();
                println!("masters: {}", list.join(", "));
            }
            Err(problem) => println!("masters: {problem}"),
        }
        println!("panics: {}", self.panics.len());
        for panic in self.panics.iter().take(check::LISTED) {
            println!("  {panic}");
        }
    }
}

impl Report {
    /// What the movers did, and what the replicas, the movers' timelines and the lists
    /// show.
    fn print_movers(&self) {
        let changes: usize = self.movers.iter().map(|m| m.changes.len()).sum();
        let posts: usize = self.movers.iter().map(|m| m.posts.len()).sum();
        println!(
            "movers: {} users joined during the faults; {changes} follows and unfollows and {posts} posts acknowledged",
            self.movers.len()
        );
        let surprises: Vec<&String> = self.movers.iter().flat_map(|m| &m.surprises).collect();
        println!("surprising answers: {}", surprises.len());
        for surprise in surprises.iter().take(check::LISTED) {
            println!("  {surprise}");
        }
        if let Some(delivery) = &self.delivery {
            delivery.print();
        }
        match &self.replicas {
            Some(Ok(replicas)) => replicas.print(),
            Some(Err(problem)) => println!("replicas: {problem}"),
            None => println!("replicas: not read"),
        }
    }
}
