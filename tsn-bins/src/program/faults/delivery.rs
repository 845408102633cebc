//! The delivery rule under a changing graph, and `LIST` asked of every cluster.
//!
//! A post belongs on a reader's timeline exactly once if the reader followed its author at
//! the post's time, and not at all if not (SPEC section 5). "Followed at the time" is read
//! from the follow history the movers saw acknowledged: between a change's
//! acknowledgement and the next change's sending the follow is certain; while a change is
//! in flight (sent, not yet acknowledged) a post may be on the timeline once or not at all.
//! A post's time is the one its author's master stamped, as its cluster's log holds it.
//!
//! `LIST`, asked of each user's own cluster, must name every user of every cluster, and
//! as the user's followers exactly those the acknowledged history says follow it at the
//! end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;
use tsn_core::Coordinator;
use tsn_core::id::{Time, UserId};
use tsn_core::post::Post;
use tsn_grpc::client::{Delivered, Listing, SnsClient};
use tsn_grpc::coordinator::CoordClient;

use crate::cli::Fatal;
use crate::program::faults::PATIENCE;
use crate::program::faults::check::LISTED;
use crate::program::faults::clients::{USERS, parse_post};
use crate::program::faults::movers::{Change, LAST, Record};

/// Whether a reader followed an author at some moment, by the acknowledged history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Following {
    Yes,
    No,
    /// A change was in flight.
    Either,
}

/// Whether the follow that `changes` (one reader's changes to one author, in order) make
/// held at `time`.
fn following_at(changes: &[&Change], time: Time) -> Following {
    let mut state = Following::No;
    for change in changes {
        if time < change.sent {
            return state;
        }
        if time <= change.acked {
            return Following::Either;
        }
        state = if change.follow {
            Following::Yes
        } else {
            Following::No
        };
    }
    state
}

/// What the movers' timelines and the lists show that they should not.
#[derive(Debug, Default)]
pub(super) struct DeliveryFindings {
    /// Posts checked against a reader's history, and of them those whose follow was in
    /// flight.
    checked: usize,
    in_flight: usize,
    /// Posts missing from a reader who followed their author: `(reader, author, n)`.
    lost: Vec<(u32, u32, u64)>,
    /// Posts on a reader's timeline who did not follow their author then.
    wrongly_delivered: Vec<(u32, u32, u64)>,
    /// Posts more than once on a timeline.
    doubled: Vec<(u32, u32, u64)>,
    /// An author's posts in another order than written.
    out_of_order: Vec<(u32, u32, u64)>,
    /// Posts on a timeline that no author wrote.
    unexpected: Vec<(u32, String)>,
    /// Lists that differ from the acknowledged history.
    lists: Vec<String>,
}

/// Checks the movers' timelines against their follow histories, `posts_by` giving each
/// author's posts, and the `lists` of every user.
pub(super) fn judge(
    movers: &[Record],
    timelines: &BTreeMap<u32, Vec<Delivered>>,
    posts_by: impl Fn(u32) -> Vec<Post>,
    lists: &BTreeMap<u32, Listing>,
) -> DeliveryFindings {
    let mut findings = DeliveryFindings::default();
    let posts: BTreeMap<u32, Vec<Post>> = (1..=LAST).map(|a| (a, posts_by(a))).collect();
    for mover in movers {
        let timeline = timelines.get(&mover.user).map_or(&[][..], Vec::as_slice);
        judge_timeline(mover, timeline, &posts, &mut findings);
    }
    judge_lists(movers, lists, &mut findings);
    findings
}

fn judge_timeline(
    reader: &Record,
    timeline: &[Delivered],
    posts: &BTreeMap<u32, Vec<Post>>,
    findings: &mut DeliveryFindings,
) {
    let mut shown: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut latest: BTreeMap<u32, u64> = BTreeMap::new();
    for item in timeline {
        let Some((author, n)) =
            parse_post(&item.text).filter(|(a, _)| item.author == a.to_string())
        else {
            let text = format!("{} >> {}", item.author, item.text);
            findings.unexpected.push((reader.user, text));
            continue;
        };
        *shown.entry((author, n)).or_default() += 1;
        let before = latest.entry(author).or_default();
        if n < *before {
            findings.out_of_order.push((reader.user, author, n));
        }
        *before = (*before).max(n);
    }
    for (&author, written) in posts.iter().filter(|(a, _)| **a != reader.user) {
        let changes: Vec<&Change> = reader
            .changes
            .iter()
            .filter(|c| c.target == author)
            .collect();
        for post in written {
            let Some((_, n)) = parse_post(post.text.as_str()) else {
                continue;
            };
            let times = shown.remove(&(author, n)).unwrap_or(0);
            let following = following_at(&changes, post.time);
            findings.checked += 1;
            let entry = (reader.user, author, n);
            match (following, times) {
                (Following::Either, _) => findings.in_flight += 1,
                (Following::Yes, 0) => findings.lost.push(entry),
                (Following::No, 0) | (Following::Yes, 1) => {}
                (Following::No, _) => findings.wrongly_delivered.push(entry),
                (Following::Yes, _) => findings.doubled.push(entry),
            }
            if following == Following::Either && times > 1 {
                findings.doubled.push(entry);
            }
        }
    }
    for ((author, n), _) in shown {
        findings.unexpected.push((
            reader.user,
            format!("post {author} {n}, which no log holds"),
        ));
    }
}

/// Checks each user's list: every user, and the followers the acknowledged history gives.
fn judge_lists(movers: &[Record], lists: &BTreeMap<u32, Listing>, findings: &mut DeliveryFindings) {
    let everyone: BTreeSet<String> = (1..=LAST).map(|u| u.to_string()).collect();
    for user in 1..=LAST {
        let Some(listing) = lists.get(&user) else {
            findings
                .lists
                .push(format!("user {user}: no list was read"));
            continue;
        };
        let users: BTreeSet<String> = listing.users.iter().cloned().collect();
        if users != everyone {
            findings.lists.push(format!(
                "user {user}'s cluster lists the users {users:?}, not 1 to {LAST}"
            ));
        }
        let mut expected: BTreeSet<String> = BTreeSet::new();
        if user <= USERS {
            expected.extend((1..=USERS).filter(|&u| u != user).map(|u| u.to_string()));
        }
        expected.extend(
            movers
                .iter()
                .filter(|m| m.following().contains(&user))
                .map(|m| m.user.to_string()),
        );
        let followers: BTreeSet<String> = listing.followers.iter().cloned().collect();
        if followers != expected {
            findings.lists.push(format!(
                "user {user}'s followers are listed as {followers:?}; the acknowledged history says {expected:?}"
            ));
        }
    }
}

/// Asks `LIST` of every user at its own cluster's master, trying again within
/// [`PATIENCE`].
pub(super) async fn read_lists(coordinator: &CoordClient) -> Result<BTreeMap<u32, Listing>, Fatal> {
    let mut lists = BTreeMap::new();
    for user in 1..=LAST {
        let deadline = Instant::now() + PATIENCE;
        let id = UserId::new(user).expect("a user id");
        loop {
            let listed = async {
                let master = coordinator.server_for(id).await.ok()??;
                SnsClient::new(master.endpoint, id, String::new())
                    .ok()?
                    .list()
                    .await
                    .ok()
            };
            if let Some(listing) = listed.await {
                lists.insert(user, listing);
                break;
            }
            if Instant::now() >= deadline {
                return Err(Fatal(format!("cannot list as user {user}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(lists)
}

impl DeliveryFindings {
    /// Whether nothing is wrong.
    pub(super) fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.wrongly_delivered.is_empty()
            && self.doubled.is_empty()
            && self.out_of_order.is_empty()
            && self.unexpected.is_empty()
            && self.lists.is_empty()
    }

    /// Prints the figures, and examples of each problem.
    pub(super) fn print(&self) {
        println!(
            "movers' timelines: {} posts checked against the follow history ({} while a change was in flight)",
            self.checked, self.in_flight
        );
        let posts = [
            ("lost by the movers' timelines", &self.lost),
            ("wrongly delivered", &self.wrongly_delivered),
            ("doubled on the movers' timelines", &self.doubled),
            ("out of order on the movers' timelines", &self.out_of_order),
        ];
        for (what, list) in posts {
            println!("{what}: {}", list.len());
            for (reader, author, n) in list.iter().take(LISTED) {
                println!("  post {author} {n} on user {reader}'s timeline");
            }
        }
        println!(
            "unexpected on the movers' timelines: {}",
            self.unexpected.len()
        );
        for (reader, text) in self.unexpected.iter().take(LISTED) {
            println!("  on user {reader}'s timeline: {text}");
        }
        println!("lists that differ: {}", self.lists.len());
        for problem in self.lists.iter().take(LISTED) {
            println!("  {problem}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn change(follow: bool, sent: u64, acked: u64) -> Change {
        let now = Instant::now();
        Change {
            target: 1,
            follow,
            sent: Time(sent),
            acked: Time(acked),
            span: (now, now),
        }
    }

    #[test]
    fn a_follow_is_certain_only_between_its_acknowledgement_and_the_next_change() {
        let follow = change(true, 10, 20);
        let unfollow = change(false, 30, 40);
        let history = [&follow, &unfollow];
        let at = |t| following_at(&history, Time(t));
        assert_eq!(at(5), Following::No, "before any change");
        assert_eq!(at(10), Following::Either, "the follow in flight");
        assert_eq!(at(20), Following::Either);
        assert_eq!(at(25), Following::Yes);
        assert_eq!(at(35), Following::Either, "the unfollow in flight");
        assert_eq!(at(41), Following::No);
        assert_eq!(following_at(&[], Time(7)), Following::No);
    }
}
