//! The set check: every user's whole timeline, read through the protocol, against the
//! posts the clients sent; and the logs, for panics.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;
use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::client::{Delivered, LoginReply, SnsClient, TimelineEvent};
use tsn_grpc::coordinator::CoordClient;

use crate::cli::Fatal;
use crate::program::faults::PATIENCE;
use crate::program::faults::clients::parse_post;

/// How many examples of each kind of problem are printed.
pub(super) const LISTED: usize = 20;

/// How long a timeline stream that has brought every expected post must stay quiet before
/// it counts as read: a post twice would come right after the others.
const QUIET_COMPLETE: Duration = Duration::from_secs(1);
/// How long a timeline stream that lacks expected posts must stay quiet before they count
/// as lost.
const QUIET_INCOMPLETE: Duration = Duration::from_secs(3);

/// Reads every user's whole timeline, in delivery order, at the master of the user's
/// cluster, as a client with a session does (`expected` says how many posts each should
/// hold, so that the reading knows when it is done).
pub(super) async fn read_timelines(
    coordinator: &CoordClient,
    expected: &BTreeMap<u32, u64>,
) -> Result<BTreeMap<u32, Vec<Delivered>>, Fatal> {
    let reads = expected
        .iter()
        .map(|(&user, &count)| read_timeline(coordinator, user, count));
    let timelines = futures::future::join_all(reads).await;
    expected
        .keys()
        .copied()
        .zip(timelines)
        .map(|(user, timeline)| Ok((user, timeline?)))
        .collect()
}

/// Reads `user`'s whole timeline, trying again within [`PATIENCE`] if the stream breaks.
async fn read_timeline(
    coordinator: &CoordClient,
    user: u32,
    expected: u64,
) -> Result<Vec<Delivered>, Fatal> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match try_read_timeline(coordinator, user, expected, deadline).await {
            Ok(posts) => return Ok(posts),
            Err(error) if Instant::now() >= deadline => {
                return Err(Fatal(format!(
                    "cannot read user {user}'s timeline: {error}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn try_read_timeline(
    coordinator: &CoordClient,
    user: u32,
    expected: u64,
    deadline: Instant,
) -> Result<Vec<Delivered>, String> {
    let id = UserId::new(user).ok_or("not a user id")?;
    let master = coordinator
        .server_for(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the user's cluster has no master")?;
    let session = format!("tsn-faults-check-{:016x}", rand::random::<u64>());
    let client = SnsClient::new(master.endpoint, id, session).map_err(|e| e.to_string())?;
    if client.login().await.map_err(|e| e.to_string())? == LoginReply::AlreadyJoined {
        return Err("another client still holds the user's session".into());
    }
    let mut stream = client
        .open_timeline(Some(0))
        .await
        .map_err(|e| e.to_string())?;
    let mut posts = Vec::new();
    loop {
        let quiet = match posts.len() as u64 >= expected {
            true => QUIET_COMPLETE,
            false => QUIET_INCOMPLETE,
        };
        if Instant::now() >= deadline {
            return Err("the timeline stream did not go quiet".into());
        }
        match tokio::time::timeout(quiet, stream.next()).await {
            Err(_) => break,
            Ok(Ok(Some(TimelineEvent::Post(post)))) => posts.push(post),
            Ok(Ok(Some(TimelineEvent::Acked { .. }))) => {}
            Ok(Ok(None)) => return Err("the server ended the timeline stream".into()),
            Ok(Err(error)) => return Err(error.to_string()),
        }
    }
    let _ = client.logout().await;
    Ok(posts)
}

/// What the timelines hold that they should not, or lack.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// Posts missing from a timeline: `(reader, author, number)`.
    lost: Vec<(u32, u32, u64)>,
    /// Posts on a timeline more than once: `(reader, author, number, times)`.
    doubled: Vec<(u32, u32, u64, usize)>,
    /// Posts that came after a later post of their author: `(reader, author, number,
    /// the number of the later post)`.
    out_of_order: Vec<(u32, u32, u64, u64)>,
    /// Posts that belong on no timeline, or not on this one: `(reader, the post)`.
    unexpected: Vec<(u32, String)>,
}

impl Findings {
    /// Whether nothing is lost, doubled, out of order or unexpected.
    pub(super) fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.doubled.is_empty()
            && self.out_of_order.is_empty()
            && self.unexpected.is_empty()
    }

    /// Prints the figures, and examples of each problem.
    pub(super) fn print(&self) {
        println!("lost: {}", self.lost.len());
        let mut by_post: BTreeMap<(u32, u64), Vec<String>> = BTreeMap::new();
        for &(reader, author, n) in &self.lost {
            by_post
                .entry((author, n))
                .or_default()
                .push(reader.to_string());
        }
        for ((author, n), readers) in by_post.iter().take(LISTED) {
            println!(
                "  post {author} {n} is not on the timeline of users {}",
                readers.join(", ")
            );
        }
        let extra: usize = self.doubled.iter().map(|d| d.3 - 1).sum();
        println!("doubled: {extra}");
        for (reader, author, n, times) in self.doubled.iter().take(LISTED) {
            println!("  post {author} {n} is {times} times on user {reader}'s timeline");
        }
        println!("out of order: {}", self.out_of_order.len());
        for (reader, author, n, later) in self.out_of_order.iter().take(LISTED) {
            println!(
                "  on user {reader}'s timeline post {author} {n} comes after post {author} {later}"
            );
        }
        println!("unexpected: {}", self.unexpected.len());
        for (reader, post) in self.unexpected.iter().take(LISTED) {
            println!("  on user {reader}'s timeline: {post}");
        }
    }
}

/// Checks every timeline against the posts `sent` by each author: each reader's timeline
/// must hold every post of every other author exactly once, each author's in the order
/// they were sent, and nothing else.
pub(super) fn judge(
    timelines: &BTreeMap<u32, Vec<Delivered>>,
    sent: &BTreeMap<u32, u64>,
) -> Findings {
    let mut findings = Findings::default();
    for (&reader, timeline) in timelines {
        judge_timeline(reader, timeline, sent, &mut findings);
    }
    findings
}

fn judge_timeline(
    reader: u32,
    timeline: &[Delivered],
    sent: &BTreeMap<u32, u64>,
    findings: &mut Findings,
) {
    let mut times: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut latest: BTreeMap<u32, u64> = BTreeMap::new();
    for post in timeline {
        let Some((author, n)) = parse_post(&post.text)
            .filter(|&(a, n)| a != reader && post.author == a.to_string() && n >= 1)
            .filter(|(a, n)| sent.get(a).is_some_and(|s| n <= s))
        else {
            let text = format!("{} >> {}", post.author, post.text);
            findings.unexpected.push((reader, text));
            continue;
        };
        let seen = times.entry((author, n)).or_default();
        *seen += 1;
        if *seen > 1 {
            continue;
        }
        let before = latest.entry(author).or_default();
        if n < *before {
            findings.out_of_order.push((reader, author, n, *before));
        }
        *before = (*before).max(n);
    }
    for (&author, &count) in sent.iter().filter(|(a, _)| **a != reader) {
        for n in 1..=count {
            match times.get(&(author, n)).copied().unwrap_or(0) {
                0 => findings.lost.push((reader, author, n)),
                1 => {}
                more => findings.doubled.push((reader, author, n, more)),
            }
        }
    }
}

/// The lines of the logs in `logs` that tell of a panic, each with its file's name.
pub(super) fn panics(logs: &Path) -> Vec<String> {
    log_lines(logs, "panicked")
}

/// The lines of the logs in `logs` that contain `needle`, each with its file's name, in
/// order; a folder that cannot be read is one such line saying so.
fn log_lines(logs: &Path, needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return vec![format!("cannot read the logs in {}", logs.display())];
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let name = entry.file_name().to_string_lossy().into_owned();
        found.extend(
            text.lines()
                .filter(|line| line.contains(needle))
                .map(|line| format!("{name}: {line}")),
        );
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsn_core::id::Time;

    fn post(author: u32, n: u64) -> Delivered {
        Delivered {
            index: 0,
            author: author.to_string(),
            time: Time::default(),
            text: format!("post {author} {n}"),
        }
    }

    #[test]
    fn a_timeline_with_each_post_once_in_order_is_clean() {
        let sent = BTreeMap::from([(1, 0), (2, 2), (3, 1)]);
        let timeline = vec![post(2, 1), post(3, 1), post(2, 2)];
        let findings = judge(&BTreeMap::from([(1, timeline)]), &sent);
        assert!(findings.is_clean(), "{findings:?}");
    }

    #[test]
    fn lost_doubled_reordered_and_foreign_posts_are_found() {
        let sent = BTreeMap::from([(1, 1), (2, 3), (3, 2)]);
        let timeline = vec![
            post(2, 2),
            post(2, 1),
            post(2, 2),
            post(3, 1),
            post(1, 1),
            post(3, 9),
        ];
        let findings = judge(&BTreeMap::from([(1, timeline)]), &sent);
        assert_eq!(findings.lost, [(1, 2, 3), (1, 3, 2)]);
        assert_eq!(findings.doubled, [(1, 2, 2, 2)]);
        assert_eq!(findings.out_of_order, [(1, 2, 1, 2)]);
        assert_eq!(findings.unexpected.len(), 2, "{findings:?}");
    }
}
