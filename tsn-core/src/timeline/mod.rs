//! [`Timeline`]: handing new timeline posts to the clients that are watching.
//!
//! A master publishes each post once it is committed; [`Hub`] hands it to every open
//! timeline stream of its reader.

mod hub;

pub use hub::{Hub, Subscription};

use crate::id::UserId;
use crate::state::TimelineItem;

/// Delivery of committed timeline posts to the online sessions of a server.
///
/// # Contract
///
/// `deliver` never blocks and never fails: a watcher that cannot keep up is cut off (its
/// stream ends, and a client resumes from the last index it showed), so one slow client
/// cannot hold back the master.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
pub trait Timeline: Send + Sync {
    /// Hands `item`, just committed onto `user`'s timeline, to each watcher of `user`.
    fn deliver(&self, user: UserId, item: TimelineItem);
}
