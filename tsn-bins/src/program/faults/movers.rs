//! The movers: users who join while the faults come, and change the graph under fire.
//!
//! Users [`FIRST`] to [`LAST`], three per cluster, each log in at a random moment of the
//! run and then, every `--interval` or so, follow a user they do not follow, unfollow one
//! they do, or post. They speak the protocol directly, as a program built on TSN's client
//! library would, so that every answer can be kept: when each follow and unfollow was sent
//! and when it was acknowledged, and for each post where it was committed (the epoch and
//! log position a TSN acknowledgement names). A call that fails (the master died, was cut
//! off or stepped down) is sent again, to whichever server the coordinator names, until it
//! is answered: a change or a post is never abandoned, so the history has no gaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tsn_core::Coordinator;
use tsn_core::id::{Time, UserId};
use tsn_grpc::client::{
    CallError, Committed, FollowReply, LoginReply, SnsClient, TimelineConn, TimelineEvent,
    UnfollowReply,
};
use tsn_grpc::coordinator::CoordClient;
use tsn_server::clock::wall_clock;

use crate::cli::Fatal;
use crate::program::faults::clients::{USERS, post_text};
use crate::program::faults::{CLUSTERS, PATIENCE};

/// The first mover.
pub(super) const FIRST: u32 = USERS + 1;
/// The last mover.
pub(super) const LAST: u32 = USERS + 3 * CLUSTERS;

/// The latest a mover joins, from the start of the faults.
const JOIN_WITHIN: Duration = Duration::from_secs(5);
/// The pause between two tries of a call that failed.
const RETRY: Duration = Duration::from_millis(20);

/// A follow or an unfollow, as its mover saw it.
#[derive(Clone, Debug)]
pub(super) struct Change {
    /// Whom.
    pub(super) target: u32,
    /// A follow; else an unfollow.
    pub(super) follow: bool,
    /// When it was first sent, by the wall clock (as the servers stamp their entries).
    pub(super) sent: Time,
    /// When it was acknowledged.
    pub(super) acked: Time,
    /// When it was first sent and acknowledged, by the monotonic clock.
    pub(super) span: (Instant, Instant),
}

/// A post, as its mover saw it acknowledged.
#[derive(Clone, Debug)]
pub(super) struct Acked {
    /// Its number (its text is [`post_text`] of the mover and it; its id's seq is it too).
    pub(super) n: u64,
    /// Where it was committed, as the acknowledgement said; `None` when the server said it
    /// was stored before (sent again after a failover).
    pub(super) committed: Option<Committed>,
    /// When it was first sent and acknowledged, by the monotonic clock.
    pub(super) span: (Instant, Instant),
}

/// Everything a mover did, each thing acknowledged.
#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) user: u32,
    /// Its follows and unfollows, in order.
    pub(super) changes: Vec<Change>,
    /// Its posts, in order.
    pub(super) posts: Vec<Acked>,
    /// Answers that contradict its own acknowledged history: a follow answered "already
    /// following" on its first try, an unfollow "not following".
    pub(super) surprises: Vec<String>,
}

impl Record {
    /// Whom it follows at the end, by its acknowledged changes.
    pub(super) fn following(&self) -> Vec<u32> {
        (1..=LAST)
            .filter(|&u| {
                self.changes
                    .iter()
                    .rev()
                    .find(|c| c.target == u)
                    .is_some_and(|c| c.follow)
            })
            .collect()
    }
}

/// Movers at work, each from its own task, until told to stop.
pub(super) struct Movers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<Record, Fatal>>>,
    changes: Arc<AtomicU64>,
}

impl Movers {
    /// Sets every mover going: each joins within [`JOIN_WITHIN`], then acts every
    /// `interval` or so (between half and one and a half times it), its choices drawn from
    /// a generator seeded from `seed`.
    pub(super) fn start(coordinator: &CoordClient, interval: Duration, seed: u64) -> Movers {
        let (stop, stopped) = watch::channel(false);
        let changes = Arc::new(AtomicU64::new(0));
        let tasks = (FIRST..=LAST)
            .map(|user| {
                let mover = Mover {
                    user,
                    coordinator: coordinator.clone(),
                    session: format!("tsn-faults-mover-{user}-{seed:x}"),
                    origin: seed.rotate_left(user) | 1,
                    rng: StdRng::seed_from_u64(seed ^ u64::from(user) << 32),
                    line: None,
                    record: Record {
                        user,
                        changes: Vec::new(),
                        posts: Vec::new(),
                        surprises: Vec::new(),
                    },
                    changed: Arc::clone(&changes),
                };
                tokio::spawn(mover.run(interval, stopped.clone()))
            })
            .collect();
        Movers {
            stop,
            tasks,
            changes,
        }
    }

    /// The follows and unfollows acknowledged so far, all movers together.
    pub(super) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Stops the movers once each has its last call answered; their records, or the first
    /// mover's failure.
    pub(super) async fn stop(self) -> Result<Vec<Record>, Fatal> {
        let _ = self.stop.send(true);
        let mut records = Vec::new();
        for task in self.tasks {
            records.push(task.await.map_err(|e| Fatal::new("a mover's task", e))??);
        }
        Ok(records)
    }
}

/// A connection to the mover's master: its client, logged in, and its Timeline stream.
struct Line {
    client: SnsClient,
    stream: TimelineConn,
}

/// One mover.
struct Mover {
    user: u32,
    coordinator: CoordClient,
    session: String,
    /// The origin of its posts' ids.
    origin: u64,
    rng: StdRng,
    line: Option<Line>,
    record: Record,
    changed: Arc<AtomicU64>,
}

impl Mover {
    async fn run(
        mut self,
        interval: Duration,
        stop: watch::Receiver<bool>,
    ) -> Result<Record, Fatal> {
        let join_at = JOIN_WITHIN.mul_f64(self.rng.random_range(0.0..=1.0));
        tokio::time::sleep(join_at).await;
        while !*stop.borrow() {
            let pause = interval.mul_f64(self.rng.random_range(0.5..1.5));
            tokio::time::sleep(pause).await;
            if self.rng.random_bool(0.5) {
                self.post().await?;
            } else {
                self.change().await?;
            }
        }
        if let Some(line) = self.line.take() {
            let _ = line.client.logout().await;
        }
        Ok(self.record)
    }

    /// Follows a user it does not follow, or unfollows one it does, chosen at random, and
    /// waits until the change is acknowledged.
    async fn change(&mut self) -> Result<(), Fatal> {
        let following = self.record.following();
        let others: Vec<u32> = (1..=LAST)
            .filter(|&u| u != self.user && !following.contains(&u))
            .collect();
        let follow = following.is_empty() || (!others.is_empty() && self.rng.random_bool(0.5));
        let choices = if follow { &others } else { &following };
        let &target = choices.choose(&mut self.rng).expect("someone to choose");
        let sent = (wall_clock(), Instant::now());
        let mut tries = 0;
        let applied = self
            .call(&format!("its change to user {target}"), |client| {
                tries += 1;
                let first_try = tries == 1;
                let client = client.clone();
                async move {
                    let name = target.to_string();
                    if follow {
                        Ok(match client.follow(&name).await? {
                            FollowReply::Done => Ok(true),
                            FollowReply::AlreadyFollowing if !first_try => Ok(true),
                            FollowReply::UnknownUser => Ok(false),
                            other => Err(format!("FOLLOW {target} answered {other:?}")),
                        })
                    } else {
                        Ok(match client.unfollow(&name).await? {
                            UnfollowReply::Done => Ok(true),
                            UnfollowReply::NotFollowing if !first_try => Ok(true),
                            other => Err(format!("UNFOLLOW {target} answered {other:?}")),
                        })
                    }
                }
            })
            .await?;
        match applied {
            // A user not known yet in this cluster (a mover of another that just joined).
            Ok(false) => {}
            Ok(true) => {
                self.record.changes.push(Change {
                    target,
                    follow,
                    sent: sent.0,
                    acked: wall_clock(),
                    span: (sent.1, Instant::now()),
                });
                self.changed.fetch_add(1, Ordering::Relaxed);
            }
            Err(surprise) => self.record.surprises.push(surprise),
        }
        Ok(())
    }

    /// Posts its next post, again after each failure, until it is acknowledged.
    async fn post(&mut self) -> Result<(), Fatal> {
        let n = self.record.posts.len() as u64 + 1;
        let text = post_text(self.user, n);
        let started = Instant::now();
        let deadline = started + PATIENCE;
        let committed = loop {
            if let Some(line) = &mut self.line {
                let sent = tokio::time::timeout(
                    PATIENCE / 10,
                    send_post(&mut line.stream, self.origin, n, &text),
                );
                match sent.await {
                    Ok(Ok(committed)) => break committed,
                    Ok(Err(CallError::Invalid(e))) => {
                        return Err(self.gave_up(&format!("post {n}"), &e));
                    }
                    Ok(Err(_)) | Err(_) => self.line = None,
                }
            }
            self.reconnect(deadline, &format!("post {n}")).await?;
        };
        self.record.posts.push(Acked {
            n,
            committed,
            span: (started, Instant::now()),
        });
        Ok(())
    }

    /// Makes a call with `call` on the mover's client, again after each failure to reach a
    /// master, until it is answered.
    async fn call<T, F, Fut>(&mut self, what: &str, mut call: F) -> Result<T, Fatal>
    where
        F: FnMut(&SnsClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = &self.line {
                match call(&line.client).await {
                    Ok(answer) => return Ok(answer),
                    Err(CallError::Invalid(e)) => return Err(self.gave_up(what, &e)),
                    Err(_) => self.line = None,
                }
            }
            self.reconnect(deadline, what).await?;
        }
    }

    /// Finds the master of its cluster, logs in and opens its Timeline stream; tries again
    /// until `deadline`.
    async fn reconnect(&mut self, deadline: Instant, what: &str) -> Result<(), Fatal> {
        while Instant::now() < deadline {
            match self.connect().await {
                Ok(line) => {
                    self.line = Some(line);
                    return Ok(());
                }
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        }
        Err(self.gave_up(what, "no master answered"))
    }

    async fn connect(&self) -> Result<Line, String> {
        let user = UserId::new(self.user).ok_or("not a user id")?;
        let master = self
            .coordinator
            .server_for(user)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the cluster has no master")?;
        let client = SnsClient::new(master.endpoint, user, self.session.clone())
            .map_err(|e| e.to_string())?;
        if client.login().await.map_err(|e| e.to_string())? == LoginReply::AlreadyJoined {
            return Err("another client holds the session".into());
        }
        let stream = client
            .open_timeline(None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Line { client, stream })
    }

    fn gave_up(&self, what: &str, why: &str) -> Fatal {
        Fatal(format!(
            "mover {} could not get {what} answered within {} s: {why}",
            self.user,
            PATIENCE.as_secs()
        ))
    }
}

/// Sends post `n` (id `(origin, n)`) on `stream` and waits for its acknowledgement; where it
/// was committed. A refusal is [`CallError::Invalid`].
async fn send_post(
    stream: &mut TimelineConn,
    origin: u64,
    n: u64,
    text: &str,
) -> Result<Option<Committed>, CallError> {
    stream.post(origin, n, text).await?;
    loop {
        match stream.next().await? {
            Some(TimelineEvent::Acked {
                seq,
                error: None,
                committed,
            }) if seq >= n => return Ok(committed),
            Some(TimelineEvent::Acked { error: Some(e), .. }) => {
                return Err(CallError::Invalid(e));
            }
            Some(_) => {}
            None => return Err(CallError::Unreachable("the stream ended".into())),
        }
    }
}
