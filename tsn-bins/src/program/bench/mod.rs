//! `tsn-bench`: measures a local deployment from the outside, as a person at `tsc` sees it.
//!
//! It starts a deployment of real processes on loopback (in a temporary folder), drives
//! `tsc` clients through pipes, and prints a table:
//!
//! * **same-cluster delivery** — one post at a time from u4 to its follower u1 (both in
//!   cluster 1): from writing the line to u4's `tsc` until the line appears on u1's
//!   screen. Durable on master and slave before it is shown.
//! * **cross-cluster delivery** — the same from u2 (cluster 2) to u1: through cluster 2's
//!   master and synchronizer, cluster 1's synchronizer and master.
//! * **a new user listed elsewhere** — from a new user's login (its prompt) until user 1's
//!   LIST in cluster 1 names it; the new users are of clusters 2 and 3 in turn.
//! * **idle traffic** — the bytes the synchronizers' connections carry in ten seconds of
//!   quiet, and the bytes each kind of process (coordinator, tsd, synchronizer) sends on
//!   every connection it has, as the kernel counts them (`ss -tip`).
//! * **throughput** — posts per second one master acknowledges from pipelining protocol
//!   clients with online followers ([`throughput`]).
//! * **delivery under load** — the same-cluster and cross-cluster deliveries again, while
//!   users of every cluster who follow each other post half as many posts a second as the
//!   throughput measurement reached ([`load`]).
//! * **fan-out** — one author followed by thousands of online readers in every cluster
//!   ([`fanout`]).
//! * **failover** — u4 posts every 10 ms; half a second later the master of cluster 1 is
//!   killed with SIGKILL; the time from the kill until u1's screen shows a post written
//!   after it. Both clients reconnect by themselves. The old master is then started again
//!   and catches up before the next trial. With `--etcd`, each trial is run a second time
//!   with etcd's leader killed at the same moment as the master (and started again after).
//! * **soak** (`--soak <duration>`) — the load at full speed for that long, counting the
//!   failovers the coordinator decided meanwhile: a loaded master must not be taken for a
//!   failed one. Last, as the replicas it leaves behind are large.
//!
//! * **memory** — a lone tsd's at rest, and a master's at work ([`memory`]).
//!
//! With `--pictures <dir>` it draws, as SVG ([`pictures`]), the delivery latencies'
//! distribution (idle and under load) and the first failover trial's timeline (posts
//! shown per 10 ms).

mod crowd;
mod failover;
mod fanout;
mod idle;
mod load;
mod memory;
mod pictures;
mod throughput;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::client::SnsClient;
use tsn_grpc::coordinator::CoordClient;
use tsn_grpc::tls::{self, Security};

use crate::cli::{self, Fatal};
use crate::harness::{self, Deployment, Screen, Timers, Topology, free_port};
use crowd::Crowd;
use failover::fail_over;
use fanout::{FanOut, fan_out};
use idle::{IDLE_WINDOW, Idle, idle_traffic};
use load::{Carried, Load, Pace};
use memory::{resident_memory, working_memory};
use pictures::Timeline;
use throughput::{Throughput, throughput};

/// The last line of the banner `tsc` prints once it has logged in.
const BANNER_END: &str = "=====================================";

/// How long any one expected event may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// The flags of `tsn-bench`.
#[derive(Parser, Debug)]
#[command(
    name = "tsn-bench",
    version,
    about = "Measures a local TSN deployment: delivery and failover times, throughput, idle sync traffic, and a tsd's memory (see BENCHMARKS.md)"
)]
struct Flags {
    /// Posts for each delivery measurement (same-cluster, then cross-cluster).
    #[arg(long, default_value_t = 200)]
    posts: usize,
    /// Failover trials.
    #[arg(long, default_value_t = 5)]
    failovers: usize,
    /// New users whose arrival in another cluster is timed.
    #[arg(long, default_value_t = 10)]
    new_users: usize,
    /// Clients pipelining posts for the throughput measurement.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Posts each of those clients sends.
    #[arg(long, default_value_t = 5000)]
    client_posts: u64,
    /// Online followers of each of those clients, in its cluster, their timelines open
    /// while it posts.
    #[arg(long, default_value_t = 10)]
    followers: u32,
    /// Load posters, spread over the clusters, for the delivery under load and the soak.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    load_posters: u32,
    /// Run the load at full speed for this long, counting failovers (`5m`, say; by
    /// default not run).
    #[arg(long, value_parser = cli::duration_or_zero, default_value = "0s")]
    soak: Duration,
    /// Online readers of the fan-out's author, spread over the clusters.
    #[arg(long, default_value_t = 1_000)]
    fan_out_readers: u32,
    /// Posts of the fan-out's author, one at a time.
    #[arg(long, default_value_t = 50)]
    fan_out_posts: usize,
    /// Posts of the fan-out's burst, sent without waiting.
    #[arg(long, default_value_t = 100)]
    fan_out_burst: usize,
    /// Users of the replica of the master whose memory is measured at work.
    #[arg(long, default_value_t = 10_000)]
    working_users: u32,
    /// Posts written through that master before its memory is read.
    #[arg(long, default_value_t = 100_000)]
    working_posts: u64,
    /// Online clients writing them.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    working_clients: u32,
    /// Users of the lone tsd whose memory is measured at rest.
    #[arg(long, default_value_t = 10_000)]
    memory_users: u32,
    /// Whom each of them follows.
    #[arg(long, default_value_t = 2)]
    memory_follows: u32,
    /// Posts of that tsd.
    #[arg(long, default_value_t = 100_000)]
    memory_posts: u64,
    /// Run each process on a simulated host of its own (network namespaces; needs root):
    /// delivery, new users, failover and throughput across hosts; idle traffic and memory
    /// are measured on one host only, and skipped.
    #[arg(long)]
    hosts: bool,
    /// Run the coordination on etcd: a cluster of 3 etcd members (the `etcd` program must
    /// be on the PATH) and two coordinators on it.
    #[arg(long)]
    etcd: bool,
    /// Run every connection over TLS, with certificates made for the run (as `tsn-local
    /// --tls` does).
    #[arg(long)]
    tls: bool,
    /// Draw pictures into this folder (made if missing): `delivery.svg`, the delivery
    /// latencies' distribution, and `failover.svg`, the first failover trial's timeline.
    #[arg(long, value_name = "DIR")]
    pictures: Option<PathBuf>,
    #[command(flatten)]
    timers: Timers,
}

/// Runs `tsn-bench` with `args`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    harness::run_as(&args).unwrap_or_else(|| cli::run_program("tsn-bench", args, run))
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    let data_dir = std::env::temp_dir().join(format!("tsn-bench-{}", std::process::id()));
    let topology = Topology {
        hosts: flags.hosts,
        etcd: flags.etcd,
        tls: flags.tls,
        ..Topology::standard(3, free_port()?, true, data_dir.clone(), flags.timers)
    };
    let mut deployment = Deployment::start(topology).await?;
    let secured = match deployment.authority_file() {
        // The load tool's own clients verify the servers, as tsc does.
        Some(ca) => Security::client(&ca)
            .and_then(tls::install)
            .map_err(|e| Fatal::new("cannot turn TLS on", e)),
        None => Ok(()),
    };
    let result = match secured {
        Ok(()) => measure(&flags, &mut deployment).await,
        Err(fatal) => Err(fatal),
    };
    deployment.stop().await;
    let kept = result.is_err().then(|| keep_logs(deployment.logs()));
    drop(deployment);
    let _ = std::fs::remove_dir_all(&data_dir);
    let figures = result.map_err(|Fatal(message)| match kept {
        Some(Some(logs)) => Fatal(format!(
            "{message} (the processes' logs are kept in {})",
            logs.display()
        )),
        _ => Fatal(message),
    })?;
    if let Some(dir) = &flags.pictures {
        draw(dir, &figures)?;
    }
    if flags.hosts {
        println!("every process on a simulated host of its own");
    }
    if flags.tls {
        println!("every connection over TLS (tsc with --tls-ca)");
    }
    println!("| figure | runs | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- |");
    print_row("same-cluster delivery, tsc to tsc", &figures.same_cluster);
    print_row("cross-cluster delivery, tsc to tsc", &figures.cross_cluster);
    print_row("a new user listed in another cluster", &figures.new_user);
    print_row(
        "failover, kill -9 of the master to the next post shown",
        &figures.failover,
    );
    if !figures.failover_leader_change.is_empty() {
        print_row(
            "failover, the same with etcd's leader killed at the same moment",
            &figures.failover_leader_change,
        );
    }
    let under_load = &figures.under_load;
    print_row(
        "same-cluster delivery under load, tsc to tsc",
        &under_load.same_cluster,
    );
    print_row(
        "cross-cluster delivery under load, tsc to tsc",
        &under_load.cross_cluster,
    );
    print_row(
        "fan-out, a post to the last of its readers' streams",
        &figures.fan_out.to_last,
    );
    println!();
    if flags.etcd {
        println!("coordination on etcd: 3 etcd members, two coordinators");
    }
    if let Some(idle) = &figures.idle {
        let per_second = |bytes: u64| bytes as f64 / IDLE_WINDOW.as_secs_f64();
        println!(
            "idle synchronizers: {:.0} bytes/s on the wire between them ({} bytes in {} s)",
            per_second(idle.between_synchronizers),
            idle.between_synchronizers,
            IDLE_WINDOW.as_secs()
        );
        let kinds: Vec<String> = idle
            .by_program
            .iter()
            .map(|(program, (bytes, count))| {
                format!(
                    "{program} {:.0} bytes/s ({count} of them)",
                    per_second(*bytes)
                )
            })
            .collect();
        println!(
            "idle, everything each kind of process sends, on every connection: {}",
            kinds.join(", ")
        );
    }
    let throughput = &figures.throughput;
    let slave = match throughput.slave_in_sync {
        true => "the slave in the in-sync set throughout",
        false => "BUT the slave left the in-sync set during the run, so the figure does not count",
    };
    println!(
        "throughput: {:.0} posts/s acknowledged by one master, durable on master and slave, \
         {slave} ({} clients pipelining {} posts each, {} online followers each, {} posts \
         shown on their timelines)",
        throughput.posts_per_second,
        flags.clients,
        flags.client_posts,
        flags.followers,
        throughput.delivered
    );
    println!(
        "under load: {} posters of 3 clusters, each following 3 others, asked for {:.0} posts/s \
         (half the throughput above); carried {:.0} posts/s and {:.0} deliveries/s to their \
         open timelines",
        flags.load_posters,
        under_load.asked,
        under_load.carried.posts_per_second,
        under_load.carried.deliveries_per_second,
    );
    println!(
        "fan-out: {} online readers over 3 clusters ({} of them in the author's cluster); a \
         burst of {} posts: {:.0} deliveries/s by the author's master to its readers' streams",
        flags.fan_out_readers,
        figures.fan_out.local_readers,
        flags.fan_out_burst,
        figures.fan_out.deliveries_per_second
    );
    if let Some(soak) = &figures.soak {
        println!(
            "soak: {} posters at full speed for {} s: {:.0} posts/s and {:.0} deliveries/s; \
             {} failovers",
            flags.load_posters,
            flags.soak.as_secs(),
            soak.carried.posts_per_second,
            soak.carried.deliveries_per_second,
            soak.failovers
        );
    }
    // Memory is measured in deployments of its own, on one host, without TLS.
    if flags.hosts || flags.tls {
        return Ok(());
    }
    progress("memory at work");
    let working = working_memory(&flags).await?;
    println!(
        "memory at work: the master of a cluster with its slave and synchronizer, {} users, \
         after {} online clients wrote {} posts through it: {:.0} MB resident",
        flags.working_users,
        flags.working_clients,
        flags.working_posts,
        working.resident_bytes as f64 / 1e6
    );
    progress("memory at rest");
    let memory = resident_memory(&flags).await?;
    println!(
        "memory: a tsd holding {} users, {} follows and {} posts: {:.0} MB resident, {:.1} s to start",
        flags.memory_users,
        u64::from(flags.memory_users) * u64::from(flags.memory_follows),
        flags.memory_posts,
        memory.resident_bytes as f64 / 1e6,
        memory.startup.as_secs_f64()
    );
    Ok(())
}

/// Copies the deployment's logs out of its data folder, which is removed, for a failed
/// run to be looked into; where they went, if they could be copied.
fn keep_logs(logs: &Path) -> Option<PathBuf> {
    let kept = std::env::temp_dir().join(format!("tsn-bench-logs-{}", std::process::id()));
    std::fs::create_dir_all(&kept).ok()?;
    for file in std::fs::read_dir(logs).ok()?.flatten() {
        std::fs::copy(file.path(), kept.join(file.file_name())).ok()?;
    }
    Some(kept)
}

/// Draws the pictures of `figures` into `dir`.
fn draw(dir: &Path, figures: &Figures) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fatal::new(format_args!("cannot create {}", dir.display()), e))?;
    let delivery = dir.join("delivery.svg");
    pictures::delivery(
        &delivery,
        &[
            ("same cluster", &figures.same_cluster),
            ("across clusters", &figures.cross_cluster),
            ("same cluster, under load", &figures.under_load.same_cluster),
            (
                "across clusters, under load",
                &figures.under_load.cross_cluster,
            ),
        ],
    )?;
    println!("drew {}", delivery.display());
    if let Some(timeline) = &figures.failover_timeline {
        let failover = dir.join("failover.svg");
        pictures::failover(&failover, timeline)?;
        println!("drew {}", failover.display());
    }
    Ok(())
}

/// What `measure` found.
struct Figures {
    same_cluster: Vec<Duration>,
    cross_cluster: Vec<Duration>,
    new_user: Vec<Duration>,
    failover: Vec<Duration>,
    /// On etcd: the same, with etcd's leader killed at the same moment as the master.
    failover_leader_change: Vec<Duration>,
    /// When each post of the first failover trial showed, around its kill.
    failover_timeline: Option<Timeline>,
    /// `None` across hosts, where the sockets are in namespaces of their own.
    idle: Option<Idle>,
    throughput: Throughput,
    under_load: UnderLoad,
    fan_out: FanOut,
    soak: Option<Soak>,
}

/// The deliveries measured while a load ran, and the load.
struct UnderLoad {
    same_cluster: Vec<Duration>,
    cross_cluster: Vec<Duration>,
    /// The posts a second the load was to carry.
    asked: f64,
    carried: Carried,
}

/// What the soak found.
struct Soak {
    carried: Carried,
    /// Failovers the coordinator decided during it.
    failovers: usize,
}

async fn measure(flags: &Flags, deployment: &mut Deployment) -> Result<Figures, Fatal> {
    let coordinator = CoordClient::new(&deployment.coordinators())
        .map_err(|e| Fatal::new("bad coordinator address", e))?;
    // u1 (cluster 1) reads u4 (cluster 1) and u2 (cluster 2).
    let mut near = deployment.screen(4)?;
    near.wait_for(BANNER_END).await?;
    let mut far = deployment.screen(2)?;
    far.wait_for(BANNER_END).await?;
    let mut reader = deployment.screen(1)?;
    reader.wait_for(BANNER_END).await?;
    let lister = lister(&coordinator).await?;
    wait_listed(&lister, 2).await?;
    reader.type_line("FOLLOW 4").await?;
    reader.type_line("FOLLOW 2").await?;
    reader.type_line("TIMELINE").await?;
    reader.wait_for("Now you are in the timeline").await?;
    for author in [&mut near, &mut far] {
        author.type_line("TIMELINE").await?;
        author.wait_for("Now you are in the timeline").await?;
    }
    progress("delivery");
    let same_cluster = deliveries(&mut near, &mut reader, "near", flags.posts).await?;
    let cross_cluster = deliveries(&mut far, &mut reader, "far", flags.posts).await?;

    let mut new_user = Vec::new();
    for n in 0..flags.new_users as u32 {
        // Users 5, 6, 8, 9, 11 ...: of clusters 2 and 3 in turn.
        let user = 5 + 3 * (n / 2) + n % 2;
        let mut newcomer = deployment.screen(user)?;
        let logged_in = newcomer.wait_for(BANNER_END).await?;
        new_user.push(wait_listed(&lister, user).await? - logged_in);
        newcomer.kill();
    }

    progress("idle traffic");
    let idle = match flags.hosts {
        true => None,
        false => Some(idle_traffic(deployment).await?),
    };
    progress("throughput");
    let throughput = throughput(deployment, &coordinator, flags).await?;

    let mut posters = Crowd::new(&coordinator, 3, 1).await?;
    let rate = throughput.posts_per_second / 2.0;
    let load = Load::start(&mut posters, flags.load_posters, Pace::Rate(rate))
        .await
        .map_err(during("the load"))?;
    progress("delivery under load");
    let same_under_load = deliveries(&mut near, &mut reader, "near, loaded,", flags.posts).await?;
    let cross_under_load = deliveries(&mut far, &mut reader, "far, loaded,", flags.posts).await?;
    let under_load = UnderLoad {
        same_cluster: same_under_load,
        cross_cluster: cross_under_load,
        asked: rate,
        carried: load.stop().await.map_err(during("the load"))?,
    };
    progress("fan-out");
    let mut readers = Crowd::new(&coordinator, 3, 100).await?;
    let fan_out = fan_out(
        &mut readers,
        3,
        flags.fan_out_readers,
        flags.fan_out_posts,
        flags.fan_out_burst,
    )
    .await
    .map_err(during("the fan-out"))?;

    let mut failover = Vec::with_capacity(flags.failovers);
    let mut failover_leader_change = Vec::new();
    let mut failover_timeline = None;
    progress("failover");
    for trial in 0..flags.failovers {
        let trials = [(false, &mut failover), (true, &mut failover_leader_change)];
        for (leader_change, samples) in trials {
            if leader_change && deployment.etcd().is_none() {
                continue;
            }
            let (took, timeline) = fail_over(
                deployment,
                &coordinator,
                &mut near,
                &mut reader,
                trial,
                leader_change,
            )
            .await?;
            samples.push(took);
            failover_timeline.get_or_insert(timeline);
        }
    }
    // Last: after minutes at full speed, a replica holds millions of entries, and a tsd
    // killed by a failover trial would take long to start again.
    let soak = match flags.soak.is_zero() {
        true => None,
        false => Some(
            soak(deployment, &coordinator, flags)
                .await
                .map_err(during("the soak"))?,
        ),
    };
    for mut screen in [near, far, reader] {
        screen.kill();
    }
    Ok(Figures {
        same_cluster,
        cross_cluster,
        new_user,
        failover,
        failover_leader_change,
        failover_timeline,
        idle,
        throughput,
        under_load,
        fan_out,
        soak,
    })
}

/// Tells on standard error which measurement begins (the table comes at the end).
fn progress(measurement: &str) {
    eprintln!("tsn-bench: measuring {measurement}");
}

/// Says in which measurement a failure came.
fn during(measurement: &str) -> impl FnOnce(Fatal) -> Fatal + '_ {
    move |Fatal(message)| Fatal(format!("{measurement}: {message}"))
}

/// Runs the load at full speed for `--soak`; what it carried and how many failovers the
/// coordinator decided meanwhile.
async fn soak(
    deployment: &Deployment,
    coordinator: &CoordClient,
    flags: &Flags,
) -> Result<Soak, Fatal> {
    let failovers = || deployment.log("coordinator").matches("new master").count();
    let before = failovers();
    progress("the soak");
    // At the masters of now (the failover trials moved some).
    let mut crowd = Crowd::new(coordinator, 3, 1).await?;
    let load = Load::start(&mut crowd, flags.load_posters, Pace::Full).await?;
    tokio::time::sleep(flags.soak).await;
    let carried = load.stop().await?;
    Ok(Soak {
        carried,
        failovers: failovers() - before,
    })
}

/// Posts `count` probes one at a time from `author`; the time each took to show on
/// `reader`'s screen.
async fn deliveries(
    author: &mut Screen,
    reader: &mut Screen,
    tag: &str,
    count: usize,
) -> Result<Vec<Duration>, Fatal> {
    let mut taken = Vec::with_capacity(count);
    for n in 0..count {
        let text = format!("{tag} probe {n}");
        let sent = Instant::now();
        author.type_line(&text).await?;
        taken.push(reader.wait_for(&text).await? - sent);
    }
    Ok(taken)
}

/// A course-protocol client of user 1 at cluster 1's master, for LIST.
async fn lister(coordinator: &CoordClient) -> Result<SnsClient, Fatal> {
    let user = UserId::new(1).expect("1 is a user id");
    let server = coordinator
        .server_for(user)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Fatal("cluster 1 has no master".into()))?;
    SnsClient::new(server.endpoint, user, String::new())
        .map_err(|e| Fatal::new("cannot reach cluster 1", e))
}

/// Waits until user 1's LIST names `user`; returns when it did.
async fn wait_listed(lister: &SnsClient, user: u32) -> Result<Instant, Fatal> {
    let deadline = Instant::now() + PATIENCE;
    let name = user.to_string();
    while Instant::now() < deadline {
        if let Ok(listing) = lister.list().await
            && listing.users.contains(&name)
        {
            return Ok(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(Fatal(format!("user {user} never appeared in cluster 1")))
}

fn print_row(figure: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {figure} | {} | {} | {} | {} |",
        sorted.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Flags;

    #[test]
    fn a_load_or_a_working_memory_without_clients_is_refused_with_its_flag_named() {
        for flag in ["--load-posters", "--working-clients"] {
            let error = Flags::try_parse_from(["tsn-bench", flag, "0"])
                .expect_err("no clients to post")
                .to_string();
            assert!(error.contains(flag), "{error}");
        }
        assert!(Flags::try_parse_from(["tsn-bench", "--working-clients", "1"]).is_ok());
    }
}
