//! [`SyncPeer`]: what one cluster asks of another.
//!
//! A synchronizer copies users, follow relations and posts between clusters. It asks each
//! other cluster either for everything (the course's `GetUserTLFL`) or, between TSN
//! synchronizers, for the changes after a cursor: the position in that cluster's log up to
//! which it has applied them.

mod store_peer;

pub use store_peer::StorePeer;

use async_trait::async_trait;

use crate::change::Entry;
use crate::error::Result;
use crate::id::{Position, UserId};
use crate::post::Post;

/// Everything a cluster tells about one of its users: the course's `UserTLFL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// The user.
    pub user: UserId,
    /// The user's own posts, oldest first.
    pub posts: Vec<Post>,
    /// Whom the user follows.
    pub following: Vec<UserId>,
    /// Who follows the user.
    pub followers: Vec<UserId>,
}

/// Another cluster, as a synchronizer reaches it.
///
/// # Contract
///
/// * `changes_after` returns committed entries only (never one that a failover could
///   take back), in log order, starting right after the cursor; an empty answer means
///   nothing new. Positions mean the same on every server of the peer's cluster, so a
///   cursor stays valid across the peer's failovers.
/// * Both calls may fail with [`Error::Unavailable`](crate::Error::Unavailable); the
///   caller retries with the same cursor, and applying a change twice is harmless.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait SyncPeer: Send + Sync {
    /// Every user of the peer's cluster with its posts and relations.
    async fn users(&self) -> Result<Vec<UserRecord>>;

    /// Up to `max` committed changes of the peer's cluster after `cursor`.
    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Vec<Entry>>;
}
