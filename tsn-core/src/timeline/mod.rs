//! [`Timeline`]: telling the clients that are watching a timeline that it grew.
//!
//! A master tells, once a post is committed, the index it took on each reader's timeline;
//! [`Hub`] wakes every open timeline stream of that reader, which reads the new posts from
//! the replica.

mod hub;

pub use hub::{Hub, Subscription};

use crate::id::UserId;

/// Telling the online sessions of a server that a timeline grew.
///
/// # Contract
///
/// `deliver` never blocks and never fails, and holds nothing per post: a watcher reads the
/// posts themselves from the replica at its own pace, so one slow client can neither hold
/// back the master nor make it hold the posts it has not read.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait Timeline: Send + Sync {
    /// Tells each watcher of `user` that its timeline holds committed posts through
    /// `index` (see [`TimelineItem::index`](crate::state::TimelineItem::index)).
    fn deliver(&self, user: UserId, index: u64);
}
