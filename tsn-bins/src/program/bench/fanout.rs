//! Fan-out: one author of cluster 1 followed by many online readers spread over every
//! cluster, all protocol clients of a [`Crowd`].
//!
//! * **To the last reader** — the author posts one post at a time; the time from sending
//!   it until the last reader's stream brought it.
//! * **Deliveries per second** — the author then sends a burst of posts without waiting;
//!   the deliveries cluster 1's master made to its own readers' streams, divided by the
//!   time from the first send until its last reader had the last post.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tsn_core::id::{ClusterId, UserId, home_cluster};
use tsn_grpc::client::TimelineEvent;

use super::PATIENCE;
use super::crowd::{Crowd, follow_all};
use crate::cli::Fatal;

/// The author: a user of cluster 1, apart from every other user of the tool.
const AUTHOR: u32 = 9_001;
/// The first reader; the others follow in order, taking turns among the clusters.
const FIRST_READER: u32 = 60_001;

/// What the fan-out measurement found.
pub(super) struct FanOut {
    /// Per post, the time until the last reader had it.
    pub(super) to_last: Vec<Duration>,
    /// Deliveries per second cluster 1's master made to its readers during the burst.
    pub(super) deliveries_per_second: f64,
    /// Cluster 1's readers.
    pub(super) local_readers: u64,
}

/// When each post arrived: how many readers have it, and when the last of them (of all
/// readers, and of cluster 1's) got it, in nanoseconds from `base`.
struct Arrivals {
    base: Instant,
    count: Vec<AtomicU64>,
    last: Vec<AtomicU64>,
    local_count: Vec<AtomicU64>,
    local_last: Vec<AtomicU64>,
}

impl Arrivals {
    fn new(posts: usize) -> Arrivals {
        let zeros = || (0..posts).map(|_| AtomicU64::new(0)).collect();
        Arrivals {
            base: Instant::now(),
            count: zeros(),
            last: zeros(),
            local_count: zeros(),
            local_last: zeros(),
        }
    }

    fn arrived(&self, post: usize, local: bool) {
        let at = self.base.elapsed().as_nanos() as u64;
        self.count[post].fetch_add(1, Ordering::Relaxed);
        self.last[post].fetch_max(at, Ordering::Relaxed);
        if local {
            self.local_count[post].fetch_add(1, Ordering::Relaxed);
            self.local_last[post].fetch_max(at, Ordering::Relaxed);
        }
    }

    fn at(&self, nanos: &AtomicU64) -> Instant {
        self.base + Duration::from_nanos(nanos.load(Ordering::Relaxed))
    }

    /// Waits until `counts[post]` reaches `readers`.
    async fn wait_all(counts: &[AtomicU64], post: usize, readers: u64) -> Result<(), Fatal> {
        let deadline = Instant::now() + PATIENCE;
        while counts[post].load(Ordering::Relaxed) < readers {
            if Instant::now() > deadline {
                return Err(Fatal(format!(
                    "fan-out post {post} reached {} of {readers} readers",
                    counts[post].load(Ordering::Relaxed)
                )));
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        Ok(())
    }
}

/// Measures the fan-out of `posts` posts one at a time, then of a burst of `burst`, from
/// one author to `readers` readers spread over the crowd's clusters.
pub(super) async fn fan_out(
    crowd: &mut Crowd,
    clusters: u32,
    readers: u32,
    posts: usize,
    burst: usize,
) -> Result<FanOut, Fatal> {
    let author = UserId::new(AUTHOR).expect("a user");
    let writer = crowd.logged_in(&[author]).await?.remove(0);
    let users: Vec<UserId> = (0..readers)
        .map(|n| UserId::new(FIRST_READER + n).expect("a user"))
        .collect();
    let clients = crowd.logged_in(&users).await?;
    let follows: Vec<_> = clients.iter().map(|c| (c.clone(), author)).collect();
    follow_all(&follows).await?;

    let arrivals = Arc::new(Arrivals::new(posts + burst));
    let mut reading = Vec::with_capacity(clients.len());
    for (client, user) in clients.iter().zip(&users) {
        let mut stream = client
            .open_timeline(None)
            .await
            .map_err(|e| Fatal::new("a reader's stream", e))?;
        let local = home_cluster(*user, clusters) == ClusterId(1);
        let arrivals = Arc::clone(&arrivals);
        reading.push(tokio::spawn(async move {
            while let Ok(Some(event)) = stream.next().await {
                if let TimelineEvent::Post(post) = event
                    && let Some(n) = post.text.strip_prefix("fan-out ")
                    && let Ok(n) = n.parse::<usize>()
                    && n < arrivals.count.len()
                {
                    arrivals.arrived(n, local);
                }
            }
        }));
    }
    let local_readers = users
        .iter()
        .filter(|&&u| home_cluster(u, clusters) == ClusterId(1))
        .count() as u64;

    let mut stream = writer
        .open_timeline(None)
        .await
        .map_err(|e| Fatal::new("the author's stream", e))?;
    let poster = stream.poster();
    let draining = tokio::spawn(async move { while let Ok(Some(_)) = stream.next().await {} });
    let send = |n: usize| {
        let poster = poster.clone();
        async move {
            poster
                .post(1, n as u64 + 1, &format!("fan-out {n}"))
                .await
                .map_err(|e| Fatal::new("the author's post", e))
        }
    };
    eprintln!("tsn-bench: {readers} readers are reading; the author posts");
    let mut to_last = Vec::with_capacity(posts);
    for n in 0..posts {
        let sent = Instant::now();
        send(n).await?;
        Arrivals::wait_all(&arrivals.count, n, u64::from(readers)).await?;
        to_last.push(arrivals.at(&arrivals.last[n]) - sent);
    }
    let started = Instant::now();
    for n in posts..posts + burst {
        send(n).await?;
    }
    let mut last = started;
    for n in posts..posts + burst {
        Arrivals::wait_all(&arrivals.local_count, n, local_readers).await?;
        last = last.max(arrivals.at(&arrivals.local_last[n]));
    }
    let deliveries = local_readers * burst as u64;
    draining.abort();
    for reader in reading {
        reader.abort();
    }
    Ok(FanOut {
        to_last,
        deliveries_per_second: deliveries as f64 / (last - started).as_secs_f64(),
        local_readers,
    })
}
