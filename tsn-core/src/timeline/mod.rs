//! [`Timeline`]: telling the clients that are watching a timeline that it grew.
//!
//! A master tells, once a post is committed, the index it took on each reader's timeline;
//! [`Hub`] wakes every open timeline stream of that reader, which reads the new posts from
//! the replica.

mod hub;

pub use hub::{Hub, Subscription};

use crate::state::Delivery;

/// Telling the online sessions of a server that a timeline grew.
///
/// # Contract
///
/// `deliver` never blocks and never fails, and holds nothing per post: a watcher reads the
/// posts themselves from the replica at its own pace, so one slow client can neither hold
/// back the master nor make it hold the posts it has not read.
///
/// Calls may overlap and come in any order (a master publishes each commit's posts after
/// it announced the commit, outside its locks): a delivery whose index is at or below one
/// told before tells nothing new.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait Timeline: Send + Sync {
    /// Tells the watchers of each delivery's reader that its timeline holds committed
    /// posts through the delivery's index (see
    /// [`TimelineItem::index`](crate::state::TimelineItem::index)). One commit may carry
    /// hundreds of thousands of deliveries: each reader's watchers are woken once per call.
    fn deliver(&self, deliveries: &[Delivery]);
}
