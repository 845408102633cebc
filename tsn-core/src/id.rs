//! Identifiers and the small value types everything else is built from.
//!
//! Every identifier is a newtype so that a user id can never be passed where a server id
//! was meant. Parsing from text lives here too, because user ids arrive as text from
//! people, from the course protocol and from files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user of the network: a positive integer `1..=2147483647`, written in decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserId(u32);

/// Why a piece of text is not a user id; the `Display` form is the message shown to people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadUserId {
    /// Nothing was given.
    #[error("a user id is required")]
    Empty,
    /// Text that is not a decimal number.
    #[error("'{0}' is not a user id: user ids are whole numbers from 1 to 2147483647")]
    NotANumber(String),
    /// A number outside `1..=2147483647`.
    #[error("'{0}' is not a user id: user ids go from 1 to 2147483647")]
    OutOfRange(String),
}

impl UserId {
    /// The largest user id, `i32::MAX`, so that ids fit the course protocol's `int32`.
    pub const MAX: u32 = i32::MAX as u32;

    /// A user id from a number, if it is in `1..=UserId::MAX`.
    pub fn new(id: u32) -> Option<Self> {
        (1..=Self::MAX).contains(&id).then_some(Self(id))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for UserId {
    type Err = BadUserId;

    /// Accepts decimal digits only (an optional leading `+` is refused, as is whitespace).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(BadUserId::Empty);
        }
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadUserId::NotANumber(text.to_owned()));
        }
        if digits.len() != text.len() {
            return Err(BadUserId::OutOfRange(text.to_owned()));
        }
        text.parse::<u64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .and_then(UserId::new)
            .ok_or_else(|| BadUserId::OutOfRange(text.to_owned()))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A cluster: `1..=N`, where `N` is the number of clusters the coordinator was started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub u32);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A server within its cluster (the `-s` flag of `tsd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServerId(pub u32);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of a process's data folder: a random number written into the folder when
/// it is made, so that a process restarted on its own folder is the same server (or
/// synchronizer) again, and a second process claiming the same place from another folder is
/// told apart. [`FolderId::UNKNOWN`] (0) is sent by processes that keep no such number (the
/// course's own programs).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FolderId(pub u64);

impl FolderId {
    /// Not said.
    pub const UNKNOWN: FolderId = FolderId(0);

    /// Whether `self` and `other` are known to be two different folders.
    pub fn differs_from(self, other: FolderId) -> bool {
        self != FolderId::UNKNOWN && other != FolderId::UNKNOWN && self != other
    }
}

impl fmt::Display for FolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The cluster a user lives in: `((user - 1) mod clusters) + 1`.
///
/// `clusters` must be at least 1.
pub fn home_cluster(user: UserId, clusters: u32) -> ClusterId {
    assert!(clusters >= 1, "a deployment has at least one cluster");
    ClusterId((user.0 - 1) % clusters + 1)
}

/// Where a server sits in a deployment: its cluster and the number of clusters there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The cluster this replica belongs to.
    pub cluster: ClusterId,
    /// How many clusters the deployment has (at least 1).
    pub clusters: u32,
}

impl Membership {
    /// Whether `user` lives in this cluster.
    pub fn is_local(&self, user: UserId) -> bool {
        home_cluster(user, self.clusters) == self.cluster
    }
}

/// A leadership term of one cluster. It grows by one with every promotion; a server acts as
/// master only while its epoch is the newest, and epoch 0 means "none yet".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        // Saturating: epochs far up are refused as reported (see the registry's
        // `EPOCH_LEAD`), so only a record an older coordinator wrote could be there.
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A place in a cluster's change log. Entries are numbered from 1; position 0 is "before
/// the first entry", the cursor of someone who has seen nothing.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position(pub u64);

impl Position {
    /// The position after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A moment, as nanoseconds since the Unix epoch (UTC).
///
/// The core never reads a clock: callers pass the time in.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time(pub u64);

impl Time {
    const NANOS_PER_SECOND: u64 = 1_000_000_000;

    /// The time from whole seconds and nanoseconds since the Unix epoch.
    pub fn from_unix(seconds: u64, nanos: u32) -> Time {
        Time(seconds * Self::NANOS_PER_SECOND + u64::from(nanos))
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> u64 {
        self.0 / Self::NANOS_PER_SECOND
    }

    /// The nanoseconds past [`Time::unix_seconds`].
    pub fn subsec_nanos(self) -> u32 {
        (self.0 % Self::NANOS_PER_SECOND) as u32
    }

    /// The time `nanos` nanoseconds later.
    pub fn plus_nanos(self, nanos: u64) -> Time {
        Time(self.0 + nanos)
    }
}

/// Which log of a cluster a position belongs to: the epoch of the log's first entry, which
/// no later log of the cluster shares (epochs only grow; see [`State::log_id`](crate::state::State::log_id)). [`LogId::UNKNOWN`] (0): not said
/// (a log with no entry yet, or data written before logs were named).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogId(pub u64);

impl LogId {
    /// Not said.
    pub const UNKNOWN: LogId = LogId(0);

    /// Whether `self` and `other` are known to be two different logs.
    pub fn differs_from(self, other: LogId) -> bool {
        self != LogId::UNKNOWN && other != LogId::UNKNOWN && self != other
    }

    /// Whether it is [`LogId::UNKNOWN`].
    pub fn is_unknown(&self) -> bool {
        *self == LogId::UNKNOWN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_parse_only_from_decimal_in_range() {
        assert_eq!("1".parse::<UserId>().unwrap().get(), 1);
        assert_eq!("2147483647".parse::<UserId>().unwrap().get(), 2147483647);
        for bad in ["0", "-1", "2147483648", "99999999999999999999999"] {
            assert!(
                matches!(bad.parse::<UserId>(), Err(BadUserId::OutOfRange(_))),
                "{bad}"
            );
        }
        for bad in ["abc", "1a", " 1", "+1", "1.0", "-", "٣"] {
            assert!(
                matches!(bad.parse::<UserId>(), Err(BadUserId::NotANumber(_))),
                "{bad}"
            );
        }
        assert_eq!("".parse::<UserId>(), Err(BadUserId::Empty));
    }

    #[test]
    fn users_are_routed_round_robin_over_clusters() {
        let user = |n| UserId::new(n).unwrap();
        let homes: Vec<u32> = (1..=7).map(|n| home_cluster(user(n), 3).0).collect();
        assert_eq!(homes, [1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(home_cluster(user(8), 4), ClusterId(4));
        assert_eq!(home_cluster(user(UserId::MAX), 1), ClusterId(1));
    }

    #[test]
    fn times_split_into_seconds_and_nanos() {
        let t = Time::from_unix(1_700_000_000, 123);
        assert_eq!(t.unix_seconds(), 1_700_000_000);
        assert_eq!(t.subsec_nanos(), 123);
    }
}
