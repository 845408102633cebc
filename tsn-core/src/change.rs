//! The change log's vocabulary: what can happen to a cluster's data.
//!
//! Every write of a cluster is one [`Change`], recorded as an [`Entry`] at the next
//! [`Position`] of the cluster's log by the master of the current [`Epoch`]. Replicas hold
//! the same entries at the same positions, so a position means the same thing on every
//! server of a cluster, and a replica's state is a pure function of its log.

use serde::{Deserialize, Serialize};

use crate::id::{ClusterId, Epoch, LogId, Position, ServerId, Time, UserId};
use crate::post::Post;

/// One thing that happened to a cluster's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A user logged in for the first time, or a user of another cluster became known.
    UserJoined {
        /// The new user.
        user: UserId,
        /// When.
        time: Time,
    },
    /// `follower` began to follow `followee`.
    Followed {
        /// Who follows.
        follower: UserId,
        /// Whom.
        followee: UserId,
        /// When the follow began: posts of `followee` from this moment on are delivered.
        time: Time,
    },
    /// `follower` stopped following `followee`.
    Unfollowed {
        /// Who stopped following.
        follower: UserId,
        /// Whom.
        followee: UserId,
        /// When: posts of `followee` from this moment on are no longer delivered.
        time: Time,
    },
    /// A post was written.
    Posted(Post),
    /// A server became the cluster's master: the first entry of every epoch.
    MasterElected {
        /// The new master.
        server: ServerId,
        /// When it took over.
        time: Time,
    },
    /// The changes of cluster `from` up to position `through` of its log are merged into
    /// this one (see [`sync::merge`](crate::sync::merge)): an import resumes after it.
    Imported {
        /// The other cluster.
        from: ClusterId,
        /// The last position of its log that is merged.
        through: Position,
        /// Which log of that cluster `through` is in; an import mark naming another log
        /// than the last one starts the cursor afresh (see [`crate::sync`]).
        #[serde(default, skip_serializing_if = "LogId::is_unknown")]
        log: LogId,
    },
}

impl Change {
    /// The time the change carries, if it carries one.
    pub fn time(&self) -> Option<Time> {
        match self {
            Change::UserJoined { time, .. }
            | Change::Followed { time, .. }
            | Change::Unfollowed { time, .. }
            | Change::MasterElected { time, .. } => Some(*time),
            Change::Posted(post) => Some(post.time),
            Change::Imported { .. } => None,
        }
    }
}

/// A change at its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where in the log (1, 2, 3 ...).
    pub position: Position,
    /// The epoch of the master that wrote it.
    pub epoch: Epoch,
    /// What happened.
    pub change: Change,
}

/// The last entry of a log, by position and the epoch that wrote it; `LogPoint::default()`
/// is the empty log. Comparing two log points compares how far two logs may reach: a log
/// whose last entry has a newer epoch is ahead, whatever its length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPoint {
    /// The epoch of the last entry.
    pub epoch: Epoch,
    /// The position of the last entry.
    pub position: Position,
}

impl PartialOrd for LogPoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LogPoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.epoch, self.position).cmp(&(other.epoch, other.position))
    }
}
