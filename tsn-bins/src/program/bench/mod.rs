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
//!   LIST in cluster 1 names it.
//! * **idle traffic** — the bytes the synchronizers' connections carry in ten seconds of
//!   quiet, and the bytes each kind of process (coordinator, tsd, synchronizer) sends on
//!   every connection it has, as the kernel counts them (`ss -tip`).
//! * **failover** — u4 posts every 10 ms; half a second later the master of cluster 1 is
//!   killed with SIGKILL; the time from the kill until u1's screen shows a post written
//!   after it. Both clients
//!   reconnect by themselves. The old master is then started again and catches up before
//!   the next trial. With `--etcd`, each trial is run a second time with etcd's leader killed
//!   at the same moment as the master (and started again after).
//!
//! With `--pictures <dir>` it draws, as SVG ([`pictures`]), the delivery latencies'
//! distribution and the first failover trial's timeline (posts shown per 10 ms).

mod pictures;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::client::{SnsClient, TimelineEvent};
use tsn_grpc::coordinator::CoordClient;

use crate::cli::{self, Fatal};
use crate::harness::{self, Deployment, Screen, Timers, Topology, free_port};
use pictures::Timeline;

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
    /// Users of the tsd whose memory is measured.
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
        ..Topology::standard(3, free_port()?, true, data_dir.clone(), flags.timers)
    };
    let mut deployment = Deployment::start(topology).await?;
    let result = measure(&flags, &mut deployment).await;
    deployment.stop().await;
    drop(deployment);
    let _ = std::fs::remove_dir_all(&data_dir);
    let figures = result?;
    if let Some(dir) = &flags.pictures {
        draw(dir, &figures)?;
    }
    if flags.hosts {
        println!("every process on a simulated host of its own");
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
            "the same, with etcd's leader killed at the same moment",
            &figures.failover_leader_change,
        );
    }
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
    if flags.hosts {
        return Ok(());
    }
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

/// How long the synchronizers' idle traffic is counted.
const IDLE_WINDOW: Duration = Duration::from_secs(10);

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
}

/// What the throughput measurement found.
struct Throughput {
    posts_per_second: f64,
    /// Whether the coordinator logged no change of cluster 1's in-sync set during the run.
    slave_in_sync: bool,
    /// Posts shown on the followers' timelines.
    delivered: u64,
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
    let same_cluster = deliveries(&mut near, &mut reader, "near", flags.posts).await?;
    let cross_cluster = deliveries(&mut far, &mut reader, "far", flags.posts).await?;

    let mut new_user = Vec::new();
    for n in 0..flags.new_users {
        let user = 5 + 3 * n as u32;
        let mut newcomer = deployment.screen(user)?;
        let logged_in = newcomer.wait_for(BANNER_END).await?;
        new_user.push(wait_listed(&lister, user).await? - logged_in);
        newcomer.kill();
    }

    let idle = match flags.hosts {
        true => None,
        false => Some(idle_traffic(deployment).await?),
    };
    let throughput = throughput(deployment, &coordinator, flags).await?;

    let mut failover = Vec::with_capacity(flags.failovers);
    let mut failover_leader_change = Vec::new();
    let mut failover_timeline = None;
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

/// Posts per second cluster 1's master acknowledges — durable on it and its slave — from
/// `clients` clients that each send `posts` posts on a Timeline stream without waiting for
/// acknowledgements (the window is the stream's flow control).
/// `--clients` protocol clients of cluster 1 each pipeline `--client-posts` posts on a
/// timeline stream, each followed by `--followers` online users of cluster 1 whose
/// timelines are open; posts per second acknowledged (durable on master and slave), and
/// whether the slave stayed in the in-sync set throughout, by the coordinator's log.
async fn throughput(
    deployment: &Deployment,
    coordinator: &CoordClient,
    flags: &Flags,
) -> Result<Throughput, Fatal> {
    let (clients, posts) = (flags.clients, flags.client_posts);
    let first = UserId::new(1).expect("a user");
    let master = coordinator
        .server_for(first)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Fatal("cluster 1 has no master".into()))?;
    let session = |user: UserId| {
        SnsClient::new(master.endpoint.clone(), user, format!("bench-{user}"))
            .map_err(|e| Fatal::new("a throughput client", e))
    };
    let mut streams = Vec::new();
    for n in 0..clients {
        // Users 3001, 3004, ... of cluster 1, apart from the users above.
        let user = UserId::new(3001 + 3 * n).expect("a user");
        let client = session(user)?;
        client
            .login()
            .await
            .map_err(|e| Fatal::new("a throughput login", e))?;
        streams.push(
            client
                .open_timeline(None)
                .await
                .map_err(|e| Fatal::new("a throughput stream", e))?,
        );
    }
    // The followers: users 6001, 6004, ... of cluster 1, each following one author.
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for n in 0..clients * flags.followers {
        let user = UserId::new(6001 + 3 * n).expect("a user");
        let author = 3001 + 3 * (n % clients);
        let client = session(user)?;
        client
            .login()
            .await
            .map_err(|e| Fatal::new("a follower's login", e))?;
        client
            .follow(&author.to_string())
            .await
            .map_err(|e| Fatal::new("a follow", e))?;
        let mut stream = client
            .open_timeline(None)
            .await
            .map_err(|e| Fatal::new("a follower's stream", e))?;
        let delivered = Arc::clone(&delivered);
        readers.push(tokio::spawn(async move {
            while let Ok(Some(event)) = stream.next().await {
                if matches!(event, TimelineEvent::Post(_)) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let in_sync_changes = || {
        deployment
            .log("coordinator")
            .matches("in-sync set cluster=1 ")
            .count()
    };
    let changes_before = in_sync_changes();
    let text = "a post of about fifty characters, as in a feed";
    let started = Instant::now();
    let senders: Vec<_> = streams
        .into_iter()
        .zip(1u64..)
        .map(|(mut stream, origin)| {
            let poster = stream.poster();
            tokio::spawn(async move {
                let sending = tokio::spawn(async move {
                    for seq in 1..=posts {
                        poster.post(origin, seq, text).await?;
                    }
                    Ok::<_, tsn_grpc::client::CallError>(())
                });
                loop {
                    match stream.next().await {
                        Ok(Some(TimelineEvent::Acked {
                            seq, error: None, ..
                        })) if seq == posts => {
                            break;
                        }
                        Ok(Some(TimelineEvent::Acked {
                            error: Some(error), ..
                        })) => {
                            return Err(Fatal(format!("a post was refused: {error}")));
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => return Err(Fatal("a throughput stream broke".into())),
                    }
                }
                sending
                    .await
                    .map_err(|e| Fatal::new("a sender", e))?
                    .map_err(|e| Fatal::new("sending", e))
            })
        })
        .collect();
    for sender in futures::future::join_all(senders).await {
        sender.map_err(|e| Fatal::new("a throughput client", e))??;
    }
    let took = started.elapsed();
    let slave_in_sync = in_sync_changes() == changes_before;
    for reader in readers {
        reader.abort();
    }
    Ok(Throughput {
        posts_per_second: (u64::from(clients) * posts) as f64 / took.as_secs_f64(),
        slave_in_sync,
        delivered: delivered.load(Ordering::Relaxed),
    })
}

/// What the memory measurement found.
struct Memory {
    resident_bytes: u64,
    startup: Duration,
}

/// The resident memory of a tsd serving a replica with the flags' numbers of users,
/// follows and posts: the replica is written straight to a file store, then a coordinator
/// and the tsd are started on it, and the tsd's `VmRSS` is read once it is master.
async fn resident_memory(flags: &Flags) -> Result<Memory, Fatal> {
    let data_dir = std::env::temp_dir().join(format!("tsn-bench-memory-{}", std::process::id()));
    let built = build_replica(&data_dir, flags);
    let measured = match built {
        Ok(()) => measure_resident(&data_dir, flags).await,
        Err(error) => Err(error),
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    measured
}

fn build_replica(data_dir: &std::path::Path, flags: &Flags) -> Result<(), Fatal> {
    use tsn_core::Store;
    use tsn_core::change::{Change, Entry};
    use tsn_core::id::{ClusterId, Epoch, Membership, Position, ServerId, Time};
    use tsn_core::post::{Post, PostId, PostText};

    let membership = Membership {
        cluster: ClusterId(1),
        clusters: 1,
    };
    let dir = tsn_fs::replica_dir(data_dir, ClusterId(1), ServerId(1));
    let (store, _) = tsn_fs::FileStore::open(&dir, membership)
        .map_err(|e| Fatal::new("a replica to measure", e))?;
    let users = flags.memory_users.max(2);
    let user = |n: u64| UserId::new((n % u64::from(users)) as u32 + 1).expect("a user");
    let mut changes: Vec<Change> = Vec::new();
    for n in 0..u64::from(users) {
        changes.push(Change::UserJoined {
            user: user(n),
            time: Time(n),
        });
    }
    for n in 0..u64::from(users) {
        for k in 1..=u64::from(flags.memory_follows) {
            let followee = user(n + k * 7919);
            if followee != user(n) {
                changes.push(Change::Followed {
                    follower: user(n),
                    followee,
                    time: Time(n),
                });
            }
        }
    }
    let base = 1_700_000_000_000_000_000;
    for n in 0..flags.memory_posts {
        changes.push(Change::Posted(Post {
            id: PostId {
                origin: 1,
                seq: n + 1,
            },
            author: user(n),
            time: Time(base + n),
            text: PostText::new(format!("post number {n} of the memory measurement"))
                .expect("a post"),
        }));
    }
    let runtime = tokio::runtime::Handle::current();
    for (batch, chunk) in changes.chunks(10_000).enumerate() {
        let start = batch as u64 * 10_000;
        let entries: Vec<Entry> = chunk
            .iter()
            .cloned()
            .zip(start + 1..)
            .map(|(change, position)| Entry {
                position: Position(position),
                epoch: Epoch(1),
                change,
            })
            .collect();
        store
            .append(&entries)
            .map_err(|e| Fatal::new("writing the replica", e))?;
        tokio::task::block_in_place(|| runtime.block_on(store.flush()))
            .map_err(|e| Fatal::new("flushing the replica", e))?;
    }
    Ok(())
}

async fn measure_resident(data_dir: &std::path::Path, flags: &Flags) -> Result<Memory, Fatal> {
    let topology = Topology {
        clusters: 1,
        coordinator_port: free_port()?,
        free_ports: true,
        data_dir: data_dir.to_path_buf(),
        timers: flags.timers,
        servers: 1,
        synchronizers: false,
        hosts: false,
        etcd: false,
    };
    let started = Instant::now();
    let mut deployment = Deployment::start(topology).await?;
    let startup = started.elapsed();
    let pid = deployment.server(1, 1).and_then(|m| m.pid());
    let status = pid.map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")));
    deployment.stop().await;
    let resident_kb = status
        .and_then(Result::ok)
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .ok_or_else(|| Fatal("cannot read the tsd's resident memory".into()))?;
    Ok(Memory {
        resident_bytes: resident_kb * 1024,
        startup,
    })
}

/// The bytes the synchronizers' connections to each other carry in `IDLE_WINDOW` of quiet,
/// as the kernel counts them (`ss -ti`).
/// What an idle deployment sends in [`IDLE_WINDOW`].
struct Idle {
    /// Bytes on the connections to the synchronizers' ports, both ends.
    between_synchronizers: u64,
    /// Bytes each kind of process sent, on every connection it has: by program, with how
    /// many processes of it there are.
    by_program: BTreeMap<String, (u64, usize)>,
}

async fn idle_traffic(deployment: &Deployment) -> Result<Idle, Fatal> {
    let ports: Vec<String> = deployment
        .members
        .iter()
        .filter(|m| m.program == "synchronizer")
        .filter_map(|m| m.address.rsplit(':').next().map(str::to_owned))
        .collect();
    let programs: BTreeMap<u32, String> = deployment
        .members
        .iter()
        .filter_map(|m| Some((m.pid()?, m.program.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sockets()?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let after = sockets()?;
    let sent = |socket: &Socket| {
        let earlier = before.iter().find(|b| b.id == socket.id);
        socket.sent.saturating_sub(earlier.map_or(0, |b| b.sent))
    };
    let mut by_program: BTreeMap<String, (u64, usize)> = BTreeMap::new();
    for program in programs.values() {
        by_program.entry(program.clone()).or_default().1 += 1;
    }
    let mut between_synchronizers = 0;
    for socket in &after {
        if ports.iter().any(|p| socket.touches_port(p)) {
            between_synchronizers += sent(socket);
        }
        if let Some(program) = socket.pid.and_then(|pid| programs.get(&pid)) {
            by_program.entry(program.clone()).or_default().0 += sent(socket);
        }
    }
    Ok(Idle {
        between_synchronizers,
        by_program,
    })
}

/// One established TCP connection's end, as `ss` shows it.
struct Socket {
    /// Its local and peer addresses.
    id: (String, String),
    /// The process that holds it, when `ss` says.
    pid: Option<u32>,
    /// Bytes sent so far.
    sent: u64,
}

impl Socket {
    fn touches_port(&self, port: &str) -> bool {
        let end = format!(":{port}");
        self.id.0.ends_with(&end) || self.id.1.ends_with(&end)
    }
}

/// Every established TCP connection's end on this machine (`ss -tinpH`): the connection,
/// its process, and the bytes it has sent.
fn sockets() -> Result<Vec<Socket>, Fatal> {
    let output = std::process::Command::new("ss")
        .args(["-tinpH", "state", "established"])
        .output()
        .map_err(|e| Fatal::new("cannot run ss (iproute2) to count bytes", e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut found: Vec<Socket> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            let mut fields = line.split_whitespace().skip(2);
            let (Some(local), Some(peer)) = (fields.next(), fields.next()) else {
                continue;
            };
            let pid = line
                .split("pid=")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse().ok());
            found.push(Socket {
                id: (local.to_owned(), peer.to_owned()),
                pid,
                sent: 0,
            });
            continue;
        }
        if let Some(socket) = found.last_mut() {
            socket.sent = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("bytes_sent:")?.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(found)
}

/// How long the author posts before a failover trial's kill.
const LEAD: Duration = Duration::from_millis(500);

/// How long a failover trial goes on once the first post written after the kill showed.
const TRAIL: Duration = Duration::from_millis(500);

/// One failover trial: while `author` posts every 10 ms (from [`LEAD`] before), kills
/// cluster 1's master (and with `leader_change`, at the same moment, etcd's leader); the
/// time until `reader` shows a post written after the kill, and when every post of the
/// trial showed. Then the old master (and etcd member) return, and the old master catches
/// up.
async fn fail_over(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
    author: &mut Screen,
    reader: &mut Screen,
    trial: usize,
    leader_change: bool,
) -> Result<(Duration, Timeline), Fatal> {
    let master = current_master(coordinator).await?;
    let leader = match (leader_change, deployment.etcd()) {
        (true, Some(etcd)) => etcd.leader().await,
        _ => None,
    };
    let prefix = format!(
        "failover {trial}{} post ",
        if leader_change { "e" } else { "" }
    );
    let started = Instant::now();
    let mut killed_at = None;
    let mut typed: Vec<Instant> = Vec::new();
    let mut shown: Vec<Instant> = Vec::new();
    let mut first_after: Option<Instant> = None;
    loop {
        if killed_at.is_none() && started.elapsed() >= LEAD {
            killed_at = Some(Instant::now());
            deployment.kill(1, master);
            if let (Some(leader), Some(etcd)) = (leader, deployment.etcd()) {
                etcd.kill(leader);
            }
        }
        author
            .type_line(&format!("{prefix}{}", typed.len() + 1))
            .await?;
        typed.push(Instant::now());
        let slot = tokio::time::Instant::now() + Duration::from_millis(10);
        while let Ok(Some((at, line))) = tokio::time::timeout_at(slot, reader.next_line()).await {
            let Some(n) = line
                .split(&prefix)
                .nth(1)
                .and_then(|rest| rest.trim().parse::<usize>().ok())
            else {
                continue;
            };
            shown.push(at);
            let written_after = killed_at
                .is_some_and(|kill| n >= 1 && typed.get(n - 1).is_some_and(|&t| t >= kill));
            if written_after && first_after.is_none() {
                first_after = Some(at);
            }
        }
        if first_after.is_some_and(|first| first.elapsed() >= TRAIL) {
            break;
        }
        if started.elapsed() > PATIENCE {
            return Err(Fatal("no post was shown after the failover".into()));
        }
    }
    if let (Some(leader), Some(etcd)) = (leader, deployment.etcd()) {
        etcd.restart(leader)?;
    }
    // The next trial needs the old master back in sync (it could not be promoted before).
    let promoted = current_master(coordinator).await?;
    let in_sync = format!("servers=[{promoted}, {master}]");
    let seen = deployment.log("coordinator").matches(&in_sync).count();
    deployment.restart(1, master).await?;
    let deadline = Instant::now() + PATIENCE;
    while deployment.log("coordinator").matches(&in_sync).count() <= seen {
        if Instant::now() > deadline {
            return Err(Fatal(format!("server {master} did not catch up")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kill = killed_at.expect("killed before any post showed after it");
    let first = first_after.expect("the loop ends once one showed");
    let from_kill = |at: Instant| match at.checked_duration_since(kill) {
        Some(after) => after.as_secs_f64(),
        None => -(kill - at).as_secs_f64(),
    };
    let timeline = Timeline {
        shown: shown.into_iter().map(from_kill).collect(),
    };
    Ok((first - kill, timeline))
}

async fn current_master(coordinator: &CoordClient) -> Result<u32, Fatal> {
    let user = UserId::new(1).expect("1 is a user id");
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(server)) = coordinator.server_for(user).await {
            return Ok(server.server.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Fatal("cluster 1 has no master".into()))
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
