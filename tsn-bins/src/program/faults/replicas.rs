//! The replicas, read back from their folders once the deployment has stopped, and held
//! against each other and against what the clients were told.
//!
//! * **Replicas agree**: the logs of a cluster's servers hold the same entries up to the
//!   commit point (the highest commit marker any of them wrote, and at least every
//!   acknowledged position); no log is damaged; every replica's course files hold what its
//!   log says; no post is twice in a log.
//! * **Acknowledgements hold**: every post a mover was told is committed at epoch `e` and
//!   position `p` is at `p`, written in epoch `e`, in the final log of every replica of its
//!   cluster; no two different posts were acknowledged at one position; and none was
//!   acknowledged at a position that a newer epoch wrote (a direct fencing check: a deposed
//!   master acknowledged a write).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tsn_core::change::{Change, Entry};
use tsn_core::id::UserId;
use tsn_core::post::Post;
use tsn_fs::{Audit, COMMIT_FILE, audit};

use crate::cli::Fatal;
use crate::harness::Topology;
use crate::program::faults::check::LISTED;
use crate::program::faults::movers::Record;

/// The replicas of every cluster, as their folders hold them.
pub(super) struct Replicas {
    /// By cluster, by server.
    audits: BTreeMap<u32, BTreeMap<u32, Audit>>,
    /// By cluster: the highest commit marker of its replicas.
    commit: BTreeMap<u32, u64>,
}

/// Reads every replica of `topology` (whose servers have stopped).
pub(super) fn read(topology: &Topology) -> Result<Replicas, Fatal> {
    let mut audits = BTreeMap::new();
    let mut commit = BTreeMap::new();
    for cluster in 1..=topology.clusters {
        let mut servers = BTreeMap::new();
        let mut highest = 0;
        for server in 1..=topology.servers {
            let dir = topology.replica_dir(cluster, server);
            let read =
                audit(&dir).map_err(|e| Fatal::new(format!("cannot read {}", dir.display()), e))?;
            highest = highest.max(commit_marker(&dir));
            servers.insert(server, read);
        }
        audits.insert(cluster, servers);
        commit.insert(cluster, highest);
    }
    Ok(Replicas { audits, commit })
}

/// The commit marker of the replica in `dir` (0 when there is none).
fn commit_marker(dir: &Path) -> u64 {
    std::fs::read(dir.join(COMMIT_FILE))
        .ok()
        .and_then(|bytes| bytes.get(..8).map(|b| b.try_into().expect("eight bytes")))
        .map_or(0, u64::from_le_bytes)
}

impl Replicas {
    /// Every post of `author` in its home cluster's log (the first replica's: they agree
    /// up to the commit point, which [`Replicas::judge`] checks), in log order.
    pub(super) fn posts_by(&self, author: u32, clusters: u32) -> Vec<Post> {
        let home = (author - 1) % clusters + 1;
        let Some(audit) = self.audits.get(&home).and_then(|s| s.values().next()) else {
            return Vec::new();
        };
        audit
            .entries
            .iter()
            .filter_map(|entry| match &entry.change {
                Change::Posted(post) if post.author.get() == author => Some(post.clone()),
                _ => None,
            })
            .collect()
    }

    /// Holds the replicas against each other and against the movers' acknowledgements.
    pub(super) fn judge(&self, movers: &[Record], clusters: u32) -> ReplicaFindings {
        let mut findings = ReplicaFindings::default();
        let acks = acknowledged_positions(movers, clusters);
        for (&cluster, servers) in &self.audits {
            let highest_ack = acks
                .get(&cluster)
                .and_then(|a| a.keys().next_back())
                .copied()
                .unwrap_or(0);
            let commit = self.commit[&cluster].max(highest_ack);
            findings.commit_points.push((cluster, commit));
            for (&server, audit) in servers {
                let name = format!("tsd-{cluster}-{server}");
                if let Some(damage) = &audit.damage {
                    findings.damaged.push(format!("{name}: {damage}"));
                }
                for difference in &audit.view_differences {
                    findings.view.push(format!("{name}: {difference}"));
                }
                findings
                    .doubled_in_log
                    .extend(doubled_posts(&name, &audit.entries));
                if (audit.entries.len() as u64) < commit {
                    findings.diverged.push(format!(
                        "{name} holds {} entries, short of the commit point {commit}",
                        audit.entries.len()
                    ));
                }
            }
            findings
                .diverged
                .extend(divergences(cluster, servers, commit));
            if let Some(acked) = acks.get(&cluster) {
                judge_acks(cluster, servers, acked, &mut findings);
            }
        }
        findings.acknowledged = acks.values().map(|a| a.len()).sum();
        findings
    }
}

/// A post a mover was told is committed at a position: its author and number, and the
/// epoch named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AckedAt {
    author: u32,
    n: u64,
    epoch: u64,
}

/// The movers' acknowledgements that name a position, by cluster, by position (several
/// at one position are a finding); other posts are left out.
fn acknowledged_positions(
    movers: &[Record],
    clusters: u32,
) -> BTreeMap<u32, BTreeMap<u64, Vec<AckedAt>>> {
    let mut acks: BTreeMap<u32, BTreeMap<u64, Vec<AckedAt>>> = BTreeMap::new();
    for mover in movers {
        let home = (mover.user - 1) % clusters + 1;
        for post in &mover.posts {
            if let Some(committed) = post.committed {
                acks.entry(home)
                    .or_default()
                    .entry(committed.position)
                    .or_default()
                    .push(AckedAt {
                        author: mover.user,
                        n: post.n,
                        epoch: committed.epoch,
                    });
            }
        }
    }
    acks
}

/// Checks every acknowledgement of `cluster` against every replica's log.
fn judge_acks(
    cluster: u32,
    servers: &BTreeMap<u32, Audit>,
    acked: &BTreeMap<u64, Vec<AckedAt>>,
    findings: &mut ReplicaFindings,
) {
    for (&position, acks) in acked {
        let first = acks[0];
        if acks.iter().any(|a| *a != first) {
            findings.same_position.push(format!(
                "cluster {cluster}, position {position}: {} different acknowledgements: {acks:?}",
                acks.len()
            ));
        }
        for ack in acks {
            for (&server, audit) in servers {
                let entry = audit.entries.get(position as usize - 1);
                if let Some(problem) = misplaced(ack, entry) {
                    let finding = format!(
                        "post {} {} acknowledged at epoch {} position {position}; tsd-{cluster}-{server} {problem}",
                        ack.author, ack.n, ack.epoch
                    );
                    match entry {
                        Some(e) if e.epoch.0 > ack.epoch => findings.fencing.push(finding),
                        _ => findings.lost_acks.push(finding),
                    }
                }
            }
        }
    }
}

/// What is wrong with `entry`, found at the position `ack` names; `None` when it is the
/// acknowledged post, written in the acknowledged epoch.
fn misplaced(ack: &AckedAt, entry: Option<&Entry>) -> Option<String> {
    let Some(entry) = entry else {
        return Some("has no entry there".into());
    };
    let holds_it = match &entry.change {
        Change::Posted(post) => {
            post.author.get() == ack.author && post.id.seq == ack.n && post.id.origin != 0
        }
        _ => false,
    };
    match (holds_it, entry.epoch.0 == ack.epoch) {
        (true, true) => None,
        (true, false) => Some(format!("holds it written in epoch {}", entry.epoch.0)),
        (false, _) => Some(format!(
            "holds another entry there, of epoch {}: {:?}",
            entry.epoch.0, entry.change
        )),
    }
}

/// Positions up to `commit` at which two replicas of `cluster` hold different entries (the
/// first of each pair of replicas).
fn divergences(cluster: u32, servers: &BTreeMap<u32, Audit>, commit: u64) -> Vec<String> {
    let mut found = Vec::new();
    let list: Vec<(&u32, &Audit)> = servers.iter().collect();
    for (i, (a, first)) in list.iter().enumerate() {
        for (b, second) in &list[i + 1..] {
            let upto = (commit as usize)
                .min(first.entries.len())
                .min(second.entries.len());
            if let Some(at) = (0..upto).find(|&i| first.entries[i] != second.entries[i]) {
                found.push(format!(
                    "cluster {cluster}: tsd-{cluster}-{a} and tsd-{cluster}-{b} differ at position {}",
                    at + 1
                ));
            }
        }
    }
    found
}

/// The posts held more than once in one log (by author and id).
fn doubled_posts(name: &str, entries: &[Entry]) -> Vec<String> {
    let mut seen: HashMap<(UserId, u64, u64), usize> = HashMap::new();
    for entry in entries {
        if let Change::Posted(post) = &entry.change {
            *seen
                .entry((post.author, post.id.origin, post.id.seq))
                .or_default() += 1;
        }
    }
    let mut doubled: Vec<String> = seen
        .into_iter()
        .filter(|(_, times)| *times > 1)
        .map(|((author, origin, seq), times)| {
            format!(
                "{name}: the post ({origin}, {seq}) of user {author} is {times} times in the log"
            )
        })
        .collect();
    doubled.sort();
    doubled
}

/// What the replicas show that they should not.
#[derive(Debug, Default)]
pub(super) struct ReplicaFindings {
    /// The commit point of each cluster, as `(cluster, position)`.
    commit_points: Vec<(u32, u64)>,
    /// How many acknowledgements named a position.
    acknowledged: usize,
    /// Logs cut short by damage.
    damaged: Vec<String>,
    /// Replicas that differ up to the commit point, or stop short of it.
    diverged: Vec<String>,
    /// Course files that do not hold what their replica's log says.
    view: Vec<String>,
    /// Posts more than once in a log.
    doubled_in_log: Vec<String>,
    /// Acknowledged posts not where their acknowledgement said.
    lost_acks: Vec<String>,
    /// Positions with two different acknowledged posts.
    same_position: Vec<String>,
    /// Posts acknowledged at a position a newer epoch wrote.
    fencing: Vec<String>,
}

impl ReplicaFindings {
    /// Whether nothing is wrong.
    pub(super) fn is_clean(&self) -> bool {
        self.problems().iter().all(|(_, list)| list.is_empty())
    }

    fn problems(&self) -> [(&'static str, &Vec<String>); 7] {
        [
            ("damaged logs", &self.damaged),
            ("diverged replicas", &self.diverged),
            ("diverged course files", &self.view),
            ("posts twice in a log", &self.doubled_in_log),
            ("acknowledged posts not where acknowledged", &self.lost_acks),
            ("positions acknowledged twice", &self.same_position),
            ("fencing violations", &self.fencing),
        ]
    }

    /// Prints the figures, and examples of each problem.
    pub(super) fn print(&self) {
        let points: Vec<String> = self
            .commit_points
            .iter()
            .map(|(c, p)| format!("cluster {c}: {p}"))
            .collect();
        println!(
            "replicas read back; commit points {}; {} acknowledgements named their position",
            points.join(", "),
            self.acknowledged
        );
        for (what, list) in self.problems() {
            println!("{what}: {}", list.len());
            for problem in list.iter().take(LISTED) {
                println!("  {problem}");
            }
        }
    }
}
