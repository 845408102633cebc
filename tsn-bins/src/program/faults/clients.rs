//! The users and their clients: one real `tsc` per user, driven through its screen.
//!
//! Users 1 to [`USERS`] each follow every other user, enter their timeline, and type posts
//! `post <user> <n>` (n = 1, 2, 3 ...). Each client's screen is read all along: it shows
//! every post of the others as it arrives, and `Reconnecting to ...` whenever the client
//! moves to another server.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::client::SnsClient;
use tsn_grpc::coordinator::CoordClient;

use crate::cli::Fatal;
use crate::client::format;
use crate::harness::{Deployment, Screen};
use crate::program::faults::{CLUSTERS, PATIENCE};

/// The users: three per cluster.
pub(super) const USERS: u32 = 3 * CLUSTERS;

/// How many of a client's last lines are kept, to tell what happened to it.
const TAIL: usize = 12;

/// The text of post `n` of `author`.
pub(super) fn post_text(author: u32, n: u64) -> String {
    format!("post {author} {n}")
}

/// The author and number of a post's text, if it is one of [`post_text`]'s.
pub(super) fn parse_post(text: &str) -> Option<(u32, u64)> {
    let mut words = text.strip_prefix("post ")?.split(' ');
    let author = words.next()?.parse().ok()?;
    let n = words.next()?.parse().ok()?;
    words.next().is_none().then_some((author, n))
}

/// How many posts belong on each user's timeline, given the posts `sent` by each author:
/// everyone else's, as everyone follows everyone.
pub(super) fn expected_on_timelines(sent: &BTreeMap<u32, u64>) -> BTreeMap<u32, u64> {
    let total: u64 = sent.values().sum();
    sent.iter()
        .map(|(&user, &own)| (user, total - own))
        .collect()
}

/// Starts every user's client, waits until every cluster knows every user, has each
/// follow every other user, and enters each timeline.
pub(super) async fn start(
    deployment: &mut Deployment,
    coordinator: &CoordClient,
) -> Result<Vec<Client>, Fatal> {
    let mut clients = Vec::new();
    for user in 1..=USERS {
        // One at a time: a client must connect within a few seconds.
        let mut client = Client::open(deployment, user)?;
        client.wait_logged_in().await?;
        clients.push(client);
    }
    for cluster in 1..=CLUSTERS {
        wait_all_users_known(coordinator, cluster).await?;
    }
    for client in &mut clients {
        let user = client.user;
        for other in (1..=USERS).filter(|&u| u != user) {
            client
                .command(&format!("FOLLOW {other}"), format::SUCCESS)
                .await?;
        }
    }
    for client in &mut clients {
        client.command("TIMELINE", format::SUCCESS).await?;
        client.expect_line(format::IN_TIMELINE).await?;
    }
    Ok(clients)
}

/// Waits until `LIST` at the master of `cluster` names every user (asked through the
/// course's protocol, without a session).
async fn wait_all_users_known(coordinator: &CoordClient, cluster: u32) -> Result<(), Fatal> {
    let deadline = Instant::now() + PATIENCE;
    let everyone: Vec<String> = (1..=USERS).map(|u| u.to_string()).collect();
    let user = UserId::new(cluster).expect("a cluster number is a user id");
    while Instant::now() < deadline {
        if let Ok(Some(master)) = coordinator.server_for(user).await
            && let Ok(lister) = SnsClient::new(master.endpoint, user, String::new())
            && let Ok(listing) = lister.list().await
            && everyone.iter().all(|u| listing.users.contains(u))
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Fatal(format!(
        "cluster {cluster} did not learn of every user within {} s",
        PATIENCE.as_secs()
    )))
}

/// One user's `tsc`, and what its screen has shown.
pub(super) struct Client {
    /// The user.
    pub(super) user: u32,
    screen: Screen,
    /// Posts typed.
    pub(super) sent: u64,
    /// Posts of the others shown on the screen.
    shown: HashSet<(u32, u64)>,
    /// Posts shown more than once.
    shown_twice: Vec<(u32, u64)>,
    /// When the last post not shown before came.
    last_new: Option<Instant>,
    /// How many times it said `Reconnecting to ...`.
    connections: usize,
    /// Its last lines.
    tail: VecDeque<String>,
}

impl Client {
    fn open(deployment: &mut Deployment, user: u32) -> Result<Client, Fatal> {
        Ok(Client {
            user,
            screen: deployment.screen(user)?,
            sent: 0,
            shown: HashSet::new(),
            shown_twice: Vec::new(),
            last_new: None,
            connections: 0,
            tail: VecDeque::new(),
        })
    }

    /// Posts shown more than once, as `(reader, author, number)`.
    pub(super) fn shown_twice(&self) -> Vec<(u32, u32, u64)> {
        self.shown_twice
            .iter()
            .map(|&(author, n)| (self.user, author, n))
            .collect()
    }

    /// How many times the client moved to another server.
    pub(super) fn reconnections(&self) -> usize {
        self.connections.saturating_sub(1)
    }

    /// Waits until the client has logged in and shown its banner.
    async fn wait_logged_in(&mut self) -> Result<(), Fatal> {
        let banner_end = format::BANNER.lines().last().expect("a banner");
        while self.next_line().await? != banner_end {}
        Ok(())
    }

    /// Types `line` and expects the answer to end with `answer`.
    async fn command(&mut self, line: &str, answer: &str) -> Result<(), Fatal> {
        self.screen.type_line(line).await?;
        self.expect_line(answer)
            .await
            .map_err(|e| Fatal(format!("after {line}: {}", e.0)))
    }

    /// Expects the next line of the screen to end with `ending`.
    async fn expect_line(&mut self, ending: &str) -> Result<(), Fatal> {
        let line = self.next_line().await?;
        if line.ends_with(ending) {
            Ok(())
        } else {
            Err(Fatal(format!(
                "user {}'s client printed '{line}', not '{ending}'",
                self.user
            )))
        }
    }

    /// The next line of the screen, noted.
    async fn next_line(&mut self) -> Result<String, Fatal> {
        match tokio::time::timeout(PATIENCE, self.screen.next_line()).await {
            Ok(Some((at, line))) => {
                self.note((at, line.clone()));
                Ok(line)
            }
            Ok(None) => Err(self.ended()),
            Err(_) => Err(Fatal(format!(
                "user {}'s client printed nothing for {} s",
                self.user,
                PATIENCE.as_secs()
            ))),
        }
    }

    /// Notes a line of the screen: a post shown, a reconnection.
    fn note(&mut self, (at, line): (Instant, String)) {
        if line.starts_with("Reconnecting to ") {
            self.connections += 1;
        }
        let post = line
            .split_once(" >> ")
            .and_then(|(_, text)| parse_post(text));
        if let Some((author, n)) = post
            && author != self.user
        {
            if self.shown.insert((author, n)) {
                self.last_new = Some(at);
            } else {
                self.shown_twice.push((author, n));
            }
        }
        self.remember(&line);
    }

    fn remember(&mut self, line: &str) {
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }

    /// The error of a client that exited while it should not have.
    fn ended(&self) -> Fatal {
        Fatal(format!(
            "user {}'s client exited early (see its log tsc-{}.log); its last lines:\n  {}",
            self.user,
            self.user,
            Vec::from(self.tail.clone()).join("\n  ")
        ))
    }

    /// Types a post every `interval` or so (each pause between half and one and a half
    /// times it, from `rng`) until `stop` says so; counts each in `total`. The screen is
    /// read meanwhile.
    async fn post_until(
        mut self,
        mut stop: watch::Receiver<bool>,
        interval: Duration,
        mut rng: StdRng,
        total: Arc<AtomicU64>,
    ) -> Result<Client, Fatal> {
        while !*stop.borrow() {
            let pause = interval.mul_f64(rng.random_range(0.5..1.5));
            let post_at = tokio::time::Instant::now() + pause;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(post_at) => break,
                    line = self.screen.next_line() => match line {
                        Some(line) => self.note(line),
                        None => return Err(self.ended()),
                    },
                    _ = stop.changed() => return Ok(self),
                }
            }
            self.sent += 1;
            let text = post_text(self.user, self.sent);
            if self.screen.type_line(&text).await.is_err() {
                return Err(self.ended());
            }
            total.fetch_add(1, Ordering::Relaxed);
        }
        Ok(self)
    }

    /// Reads the screen until it has shown every post of the others (`sent` by author), at
    /// most until `deadline`. When the last of them came (`None`: none came), or how many
    /// did not.
    pub(super) async fn wait_shown(
        &mut self,
        sent: &BTreeMap<u32, u64>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Instant>, u64> {
        let expected = expected_on_timelines(sent)[&self.user];
        while (self.shown.len() as u64) < expected {
            match tokio::time::timeout_at(deadline, self.screen.next_line()).await {
                Ok(Some(line)) => self.note(line),
                Ok(None) | Err(_) => break,
            }
        }
        let missing = expected.saturating_sub(self.shown.len() as u64);
        if missing == 0 {
            Ok(self.last_new)
        } else {
            Err(missing)
        }
    }

    /// Ends the client's input and waits at most `limit` for it to exit 0, which it does
    /// once every post it sent is acknowledged; what went wrong otherwise.
    pub(super) async fn finish(&mut self, limit: Duration) -> Result<(), String> {
        self.screen.close_input();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.screen.next_line()).await {
                Ok(Some(line)) => self.note(line),
                Ok(None) => break,
                Err(_) => return Err(self.unfinished("did not exit", limit)),
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match self.screen.wait_exit(left).await {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(self.unfinished(&format!("exited with {status}"), limit)),
            None => Err(self.unfinished("closed its screen but did not exit", limit)),
        }
    }

    fn unfinished(&self, what: &str, limit: Duration) -> String {
        format!(
            "user {}'s client {what} within {} s of the end of its input (log: tsc-{}.log); its last lines: {}",
            self.user,
            limit.as_secs(),
            self.user,
            Vec::from(self.tail.clone()).join(" | ")
        )
    }
}

/// Clients posting, each from its own task, until told to stop.
pub(super) struct Posting {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<Client, Fatal>>>,
    sent: Arc<AtomicU64>,
}

impl Posting {
    /// Sets every client posting, its pauses drawn from a generator seeded from `seed`.
    pub(super) fn start(clients: Vec<Client>, interval: Duration, seed: u64) -> Posting {
        let (stop, stopped) = watch::channel(false);
        let sent = Arc::new(AtomicU64::new(0));
        let tasks = clients
            .into_iter()
            .map(|client| {
                let rng = StdRng::seed_from_u64(seed.wrapping_add(u64::from(client.user)));
                tokio::spawn(client.post_until(stopped.clone(), interval, rng, Arc::clone(&sent)))
            })
            .collect();
        Posting { stop, tasks, sent }
    }

    /// The posts typed so far, all clients together.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether a client stopped by itself: it exited, so the run cannot go on.
    pub(super) fn failed(&self) -> bool {
        self.tasks.iter().any(JoinHandle::is_finished)
    }

    /// Stops the posting and gives the clients back, or the first client's failure.
    pub(super) async fn stop(self) -> Result<Vec<Client>, Fatal> {
        let _ = self.stop.send(true);
        let mut clients = Vec::new();
        for task in self.tasks {
            clients.push(task.await.map_err(|e| Fatal::new("a client's task", e))??);
        }
        Ok(clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_read_back() {
        assert_eq!(parse_post(&post_text(4, 17)), Some((4, 17)));
        for other in ["post 4", "post 4 17 x", "post x 1", "hello", "post 4 -1"] {
            assert_eq!(parse_post(other), None, "{other}");
        }
    }

    #[test]
    fn everyone_expects_the_posts_of_everyone_else() {
        let sent = BTreeMap::from([(1, 5), (2, 7), (3, 0)]);
        assert_eq!(
            expected_on_timelines(&sent),
            BTreeMap::from([(1, 7), (2, 5), (3, 12)])
        );
    }
}
