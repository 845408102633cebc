//! Load: users of every cluster who follow each other post over protocol clients — at a
//! steady total rate, as fast as the servers take them, or a given number of posts as fast
//! as they take them — while something else is measured. Every poster keeps its timeline
//! open and reads what it is delivered until the load stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tsn_core::id::UserId;
use tsn_grpc::client::{SnsClient, TimelineEvent};

use super::PATIENCE;
use super::crowd::{Crowd, follow_all};
use crate::cli::Fatal;

/// The first of the load's users; the others follow in order, so that they take turns
/// among the clusters.
const FIRST_USER: u32 = 40_001;
/// Whom each poster follows: the next this many posters.
const FOLLOWS: u32 = 3;
/// How often a paced poster sends what is due.
const TICK: Duration = Duration::from_millis(10);
/// How long a poster waits for its stream before it looks again whether the load stopped.
const LOOK_AGAIN: Duration = Duration::from_millis(100);
/// The text of a load post, about as long as a post in a feed.
const TEXT: &str = "a post of the load, about as long as one in a feed";

/// How a load's posters post.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pace {
    /// This many posts a second together, until stopped.
    Rate(f64),
    /// As fast as the servers acknowledge, until stopped.
    Full,
    /// As fast as the servers acknowledge, this many posts together; then the posters only
    /// read until stopped.
    Count(u64),
}

/// What one poster posts: `rate` posts a second (or `None` for as fast as its server
/// acknowledges), at most `limit` of them.
#[derive(Clone, Copy, Debug)]
struct Share {
    rate: Option<f64>,
    limit: u64,
}

impl Pace {
    /// The share of poster `n` of `posters` (from 0).
    fn share(self, n: u32, posters: u32) -> Share {
        match self {
            Pace::Rate(rate) => Share {
                rate: Some(rate / f64::from(posters)),
                limit: u64::MAX,
            },
            Pace::Full => Share {
                rate: None,
                limit: u64::MAX,
            },
            Pace::Count(total) => Share {
                rate: None,
                limit: total / u64::from(posters)
                    + u64::from(u64::from(n) < total % u64::from(posters)),
            },
        }
    }
}

/// A load running in the background.
pub(super) struct Load {
    running: Arc<AtomicBool>,
    posters: Vec<JoinHandle<Result<(), Fatal>>>,
    tally: Arc<Tally>,
    started: Instant,
}

/// What the posters counted together.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    delivered: AtomicU64,
}

/// What a load did.
pub(super) struct Carried {
    /// Posts acknowledged per second.
    pub(super) posts_per_second: f64,
    /// Posts delivered to the posters' open timelines per second.
    pub(super) deliveries_per_second: f64,
}

impl Load {
    /// Starts `posters` posters spread over the clusters of `crowd`, each following the
    /// next [`FOLLOWS`], posting at `pace`.
    pub(super) async fn start(crowd: &mut Crowd, posters: u32, pace: Pace) -> Result<Load, Fatal> {
        let users: Vec<UserId> = (0..posters)
            .map(|n| UserId::new(FIRST_USER + n).expect("a user"))
            .collect();
        let clients = crowd.logged_in(&users).await?;
        let users = &users;
        let follows: Vec<_> = clients
            .iter()
            .enumerate()
            .flat_map(|(n, client)| {
                (1..=FOLLOWS.min(posters - 1))
                    .map(move |k| (client.clone(), users[(n + k as usize) % users.len()]))
            })
            .collect();
        follow_all(&follows).await?;
        let running = Arc::new(AtomicBool::new(true));
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        let tasks = (0..posters)
            .zip(clients)
            .map(|(n, client)| {
                let poster = Poster {
                    client,
                    origin: u64::from(n) + 1,
                    share: pace.share(n, posters),
                    running: Arc::clone(&running),
                    tally: Arc::clone(&tally),
                };
                tokio::spawn(poster.run())
            })
            .collect();
        Ok(Load {
            running,
            posters: tasks,
            tally,
            started,
        })
    }

    /// Posts acknowledged so far.
    pub(super) fn acked(&self) -> u64 {
        self.tally.acked.load(Ordering::Relaxed)
    }

    /// Stops posting, waits for every post sent to be acknowledged, and says what the load
    /// carried.
    pub(super) async fn stop(self) -> Result<Carried, Fatal> {
        self.running.store(false, Ordering::Relaxed);
        let took = self.started.elapsed();
        for poster in self.posters {
            poster.await.map_err(|e| Fatal::new("a load poster", e))??;
        }
        let per_second =
            |count: &AtomicU64| count.load(Ordering::Relaxed) as f64 / took.as_secs_f64();
        Ok(Carried {
            posts_per_second: per_second(&self.tally.acked),
            deliveries_per_second: per_second(&self.tally.delivered),
        })
    }
}

/// One poster of the load: posts as `origin` on its timeline stream, and reads it.
struct Poster {
    client: SnsClient,
    origin: u64,
    share: Share,
    running: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl Poster {
    /// Posts its share while the load runs, then waits until every post sent is
    /// acknowledged, reading the timeline all along (a reader that reads slowly is sent its
    /// posts later; its server holds none of them for it).
    async fn run(self) -> Result<(), Fatal> {
        let started = Instant::now();
        let mut acked = 0u64;
        let mut stream = self
            .client
            .open_timeline(None)
            .await
            .map_err(|e| Fatal::new("a load stream", e))?;
        let sent = Arc::new(AtomicU64::new(0));
        let sending = tokio::spawn(send(
            stream.poster(),
            self.origin,
            self.share,
            started,
            Arc::clone(&self.running),
            Arc::clone(&sent),
        ));
        let mut heard = Instant::now();
        loop {
            let finished = !self.running.load(Ordering::Relaxed) && sending.is_finished();
            let waiting = acked < sent.load(Ordering::Relaxed);
            if finished && !waiting {
                return Ok(());
            }
            let event = tokio::time::timeout(LOOK_AGAIN, stream.next()).await;
            if event.is_ok() {
                heard = Instant::now();
            }
            match event {
                Ok(Ok(Some(TimelineEvent::Acked {
                    seq, error: None, ..
                }))) => {
                    let newly = seq.saturating_sub(acked);
                    self.tally.acked.fetch_add(newly, Ordering::Relaxed);
                    acked = acked.max(seq);
                }
                Ok(Ok(Some(TimelineEvent::Acked {
                    error: Some(error), ..
                }))) => return Err(Fatal(format!("a load post was refused: {error}"))),
                Ok(Ok(Some(TimelineEvent::Post(_)))) => {
                    self.tally.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(None)) => return Err(Fatal("a load stream ended".into())),
                Ok(Err(error)) => return Err(Fatal(format!("a load stream broke: {error}"))),
                Err(_) if waiting && heard.elapsed() > PATIENCE => {
                    return Err(Fatal("a load stream fell silent".into()));
                }
                // Nothing owed, or not for long yet: look at the load's state again.
                Err(_) => {}
            }
        }
    }
}

/// Sends posts as `origin` on `poster` while `running`, at most `share.limit` of them:
/// `share.rate` a second since `started`, or with `None` as fast as the stream takes them;
/// counts them in `sent`.
async fn send(
    poster: tsn_grpc::client::Poster,
    origin: u64,
    share: Share,
    started: Instant,
    running: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let mut ticks = tokio::time::interval(TICK);
    let mut seq = 0;
    while running.load(Ordering::Relaxed) && seq < share.limit {
        let due = match share.rate {
            Some(rate) => {
                ticks.tick().await;
                (started.elapsed().as_secs_f64() * rate) as u64
            }
            None => seq + 1,
        }
        .min(share.limit);
        while seq < due {
            if poster.post(origin, seq + 1, TEXT).await.is_err() {
                return;
            }
            seq += 1;
            sent.store(seq, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_load_posts_exactly_its_count_spread_over_its_posters() {
        for (total, posters) in [(1_000_000, 1_000), (10, 3), (2, 5), (0, 4)] {
            let limits: Vec<u64> = (0..posters)
                .map(|n| Pace::Count(total).share(n, posters).limit)
                .collect();
            assert_eq!(limits.iter().sum::<u64>(), total, "{total} over {posters}");
            let (least, most) = (limits.iter().min(), limits.iter().max());
            assert!(most.unwrap() - least.unwrap() <= 1, "{limits:?}");
        }
    }

    #[test]
    fn a_paced_load_splits_its_rate_and_never_runs_out() {
        let share = Pace::Rate(300.0).share(2, 30);
        assert_eq!(share.rate, Some(10.0));
        assert_eq!(share.limit, u64::MAX);
        assert_eq!(Pace::Full.share(0, 30).rate, None);
    }
}
