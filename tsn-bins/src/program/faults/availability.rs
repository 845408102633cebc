//! How available the deployment stayed while each fault was on, read from the movers'
//! calls: for each fault, on each side — the movers of the cluster it struck, and those of
//! the other clusters — the longest any one call (a follow, an unfollow or a post, from
//! its first sending to its acknowledgement, across every retry) took among those in
//! progress while the fault was on; and the time from the fault's undoing (the heal, the
//! restart) until the deployment was whole again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::program::faults::CLUSTERS;
use crate::program::faults::inject::{Fault, Struck};
use crate::program::faults::movers::Record;

/// The figures of one kind of fault.
#[derive(Debug, Default)]
struct Figures {
    /// The longest wait on the struck cluster, one per fault.
    struck: Vec<Duration>,
    /// The longest wait on the other clusters, one per fault.
    others: Vec<Duration>,
    /// From the undoing to a whole deployment, one per fault.
    recovery: Vec<Duration>,
}

/// The longest wait of the calls of those `movers` whose cluster is on `side` that were in
/// progress at some moment between `from` and `to`.
fn longest_wait(
    movers: &[Record],
    side: impl Fn(u32) -> bool,
    from: Instant,
    to: Instant,
) -> Option<Duration> {
    movers
        .iter()
        .filter(|m| side((m.user - 1) % CLUSTERS + 1))
        .flat_map(|m| {
            let changes = m.changes.iter().map(|c| c.span);
            changes.chain(m.posts.iter().map(|p| p.span))
        })
        .map(|(sent, acked)| (sent.into_std(), acked.into_std()))
        .filter(|&(sent, acked)| sent <= to && acked >= from)
        .map(|(sent, acked)| acked - sent)
        .max()
}

/// Prints the figures of every kind of fault in `history`.
pub(super) fn print(history: &[Struck], movers: &[Record]) {
    let mut kinds: BTreeMap<Fault, Figures> = BTreeMap::new();
    for struck in history {
        let figures = kinds.entry(struck.fault).or_default();
        let (from, to) = (struck.began, struck.undone);
        let on = |c: u32| struck.cluster.is_none_or(|s| s == c);
        figures.struck.extend(longest_wait(movers, on, from, to));
        if struck.cluster.is_some() {
            figures
                .others
                .extend(longest_wait(movers, |c| !on(c), from, to));
        }
        if let Some(whole) = struck.whole {
            figures.recovery.push(whole.saturating_duration_since(to));
        }
    }
    println!(
        "availability: the longest wait of a mover's call while a fault was on (p50 / max over the faults of a kind), and the time from its undoing to a whole deployment:"
    );
    for (fault, figures) in &kinds {
        let mut line = format!(
            "  {}: struck cluster {}",
            fault.label(),
            spread(&figures.struck)
        );
        if !figures.others.is_empty() {
            line += &format!(", other clusters {}", spread(&figures.others));
        }
        line += &format!("; undone to whole {}", spread(&figures.recovery));
        println!("{line}");
    }
}

/// `p50 / max` of `durations`, in seconds.
fn spread(durations: &[Duration]) -> String {
    let mut sorted = durations.to_vec();
    sorted.sort();
    match (sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(p50), Some(max)) => format!("{:.2} / {:.2} s", p50.as_secs_f64(), max.as_secs_f64()),
        _ => "-".into(),
    }
}
