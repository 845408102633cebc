//! Memory: the resident memory of a tsd, and how long it takes to start.
//!
//! * **At rest** ([`resident_memory`]) — a lone tsd serving a replica of a given size,
//!   written straight to a file store: its `VmRSS` once it is master.
//! * **At work** ([`working_memory`]) — the master of a cluster with its slave and its
//!   synchronizer, whose replica starts with the given users and follows, while online
//!   protocol clients write the given number of posts through it, as fast as it
//!   acknowledges them: its `VmRSS` once the last of them is acknowledged, the clients still
//!   online with their timelines open.

use std::path::Path;
use std::time::{Duration, Instant};

use tsn_core::Store;
use tsn_core::change::{Change, Entry};
use tsn_core::id::{ClusterId, Epoch, Membership, Position, ServerId, Time, UserId};
use tsn_core::post::{Post, PostId, PostText};
use tsn_grpc::coordinator::CoordClient;

use super::crowd::Crowd;
use super::load::{Load, Pace};
use super::{Flags, PATIENCE};
use crate::cli::Fatal;
use crate::harness::{Deployment, Topology, free_port};

/// What a memory measurement found.
pub(super) struct Memory {
    pub(super) resident_bytes: u64,
    /// From launching the processes to the tsd's ready line.
    pub(super) startup: Duration,
}

/// A replica to write: `users` users, each following `follows` others, and `posts` posts.
struct Replica {
    users: u32,
    follows: u32,
    posts: u64,
}

/// The resident memory of a lone tsd serving a replica with `--memory-users`,
/// `--memory-follows` and `--memory-posts`, and how long it took to start.
pub(super) async fn resident_memory(flags: &Flags) -> Result<Memory, Fatal> {
    let replica = Replica {
        users: flags.memory_users,
        follows: flags.memory_follows,
        posts: flags.memory_posts,
    };
    on_replica("memory", &replica, |data_dir| async move {
        let started = Instant::now();
        let mut deployment = Deployment::start(topology(data_dir, flags, 1, false)?).await?;
        let startup = started.elapsed();
        let resident = deployment
            .server(1, 1)
            .and_then(|m| m.pid())
            .map(resident_bytes);
        deployment.stop().await;
        Ok(Memory {
            resident_bytes: resident.unwrap_or(Err(no_memory()))?,
            startup,
        })
    })
    .await
}

/// The resident memory of cluster 1's master, with its slave and synchronizer, after
/// `--working-clients` online clients wrote `--working-posts` posts through it into a
/// replica of `--working-users` users that follow `--memory-follows` others each.
pub(super) async fn working_memory(flags: &Flags) -> Result<Memory, Fatal> {
    let replica = Replica {
        users: flags.working_users,
        follows: flags.memory_follows,
        posts: 0,
    };
    on_replica("working", &replica, |data_dir| async move {
        let started = Instant::now();
        let mut deployment = Deployment::start(topology(data_dir, flags, 2, true)?).await?;
        let startup = started.elapsed();
        let measured = write_through(&mut deployment, flags).await;
        deployment.stop().await;
        Ok(Memory {
            resident_bytes: measured?,
            startup,
        })
    })
    .await
}

/// Has `--working-clients` online clients post `--working-posts` posts together; the
/// master's resident memory once the last is acknowledged, the clients still online.
async fn write_through(deployment: &mut Deployment, flags: &Flags) -> Result<u64, Fatal> {
    let coordinator = CoordClient::new(&deployment.coordinators())
        .map_err(|e| Fatal::new("bad coordinator address", e))?;
    let master = super::failover::current_master(&coordinator).await?;
    let mut crowd = Crowd::new(&coordinator, 1, 10).await?;
    let load = Load::start(
        &mut crowd,
        flags.working_clients,
        Pace::Count(flags.working_posts),
    )
    .await?;
    let deadline = Instant::now() + PATIENCE + Duration::from_secs(flags.working_posts / 1000);
    while load.acked() < flags.working_posts {
        if Instant::now() > deadline {
            return Err(Fatal(format!(
                "only {} of {} posts were acknowledged in time",
                load.acked(),
                flags.working_posts
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = deployment.server(1, master).and_then(|m| m.pid());
    let resident = pid.map(resident_bytes).unwrap_or(Err(no_memory()));
    load.stop().await?;
    resident
}

/// Writes `replica` into a new data folder named after `what`, runs `measure` on it, and
/// removes the folder.
async fn on_replica<F, M>(what: &str, replica: &Replica, measure: M) -> Result<Memory, Fatal>
where
    M: FnOnce(std::path::PathBuf) -> F,
    F: std::future::Future<Output = Result<Memory, Fatal>>,
{
    let data_dir = std::env::temp_dir().join(format!("tsn-bench-{what}-{}", std::process::id()));
    let measured = match build_replica(&data_dir, replica) {
        Ok(()) => measure(data_dir.clone()).await,
        Err(error) => Err(error),
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    measured
}

/// One cluster of `servers` servers on `data_dir`, with or without its synchronizer.
fn topology(
    data_dir: std::path::PathBuf,
    flags: &Flags,
    servers: u32,
    synchronizers: bool,
) -> Result<Topology, Fatal> {
    Ok(Topology {
        servers,
        synchronizers,
        // Its start is measured, however long it takes.
        start_timeout: Duration::from_secs(600),
        ..Topology::standard(1, free_port()?, true, data_dir, flags.timers)
    })
}

/// Writes `replica` as server 1 of cluster 1 (of 1) straight into a file store in
/// `data_dir`, 10,000 entries at a time: first the users, then the follows (user `n`
/// follows users `n + 7919 k`), then the posts (by every user in turn).
fn build_replica(data_dir: &Path, replica: &Replica) -> Result<(), Fatal> {
    let membership = Membership {
        cluster: ClusterId(1),
        clusters: 1,
    };
    let dir = tsn_fs::replica_dir(data_dir, ClusterId(1), ServerId(1));
    let (store, _) = tsn_fs::FileStore::open(&dir, membership)
        .map_err(|e| Fatal::new("a replica to measure", e))?;
    let users = u64::from(replica.users.max(2));
    let user = |n: u64| UserId::new((n % users) as u32 + 1).expect("a user");
    let joins = (0..users).map(|n| Change::UserJoined {
        user: user(n),
        time: Time(n),
    });
    let follows = (0..users).flat_map(|n| {
        (1..=u64::from(replica.follows))
            .map(move |k| (user(n), user(n + k * 7919), n))
            .filter(|(follower, followee, _)| follower != followee)
            .map(|(follower, followee, n)| Change::Followed {
                follower,
                followee,
                time: Time(n),
            })
    });
    let base = 1_700_000_000_000_000_000;
    let posts = (0..replica.posts).map(|n| {
        Change::Posted(Post {
            id: PostId {
                origin: 1,
                seq: n + 1,
            },
            author: user(n),
            time: Time(base + n),
            text: PostText::new(format!("post number {n} of the memory measurement"))
                .expect("a post"),
        })
    });
    let mut entries = joins
        .chain(follows)
        .chain(posts)
        .zip(1..)
        .map(|(change, position)| Entry {
            position: Position(position),
            epoch: Epoch(1),
            change,
        })
        .peekable();
    let runtime = tokio::runtime::Handle::current();
    while entries.peek().is_some() {
        let chunk: Vec<Entry> = entries.by_ref().take(10_000).collect();
        store
            .append(&chunk)
            .map_err(|e| Fatal::new("writing the replica", e))?;
        tokio::task::block_in_place(|| runtime.block_on(store.flush()))
            .map_err(|e| Fatal::new("flushing the replica", e))?;
    }
    Ok(())
}

/// The `VmRSS` of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> Result<u64, Fatal> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .ok_or_else(no_memory)
}

fn no_memory() -> Fatal {
    Fatal("cannot read the tsd's resident memory".into())
}
