//! Memory: the resident memory of a tsd serving a replica of a given size, and how long
//! it takes to start.

use std::time::{Duration, Instant};

use tsn_core::id::UserId;

use super::Flags;
use crate::cli::Fatal;
use crate::harness::{Deployment, Topology, free_port};

/// What the memory measurement found.
pub(super) struct Memory {
    pub(super) resident_bytes: u64,
    pub(super) startup: Duration,
}

/// The resident memory of a tsd serving a replica with the flags' numbers of users,
/// follows and posts: the replica is written straight to a file store, then a coordinator
/// and the tsd are started on it, and the tsd's `VmRSS` is read once it is master.
pub(super) async fn resident_memory(flags: &Flags) -> Result<Memory, Fatal> {
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

