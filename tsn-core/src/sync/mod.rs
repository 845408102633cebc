//! Synchronization between clusters: [`SyncPeer`] (what one cluster asks of another) and
//! [`merge`] (what a cluster writes of what it learns).
//!
//! A cluster's log holds the changes its own users make — first logins, follows and
//! unfollows they do, their posts — and the changes it imported. Each cluster imports from
//! every other the changes that *originate* there ([`origin`]), in that cluster's log
//! order, and records in its own log how far it got ([`Change::Imported`]), in the same
//! append as what it merged. So an import resumes exactly where it stopped, after any
//! restart or failover, and applying a batch twice changes nothing.
//!
//! A position means something only in one log of a cluster: every answer names its log
//! ([`LogId`]), and so does every import cursor. A cluster whose servers all lost their
//! data starts a new log, whose positions repeat the old one's; the clusters that import
//! from it see the new [`LogId`], start their cursor again from 0 and merge the new log
//! whole (merging what they already have changes nothing), instead of passing over its
//! first entries for good.

mod merge;
mod store_peer;

pub use merge::{IMPORT_LAG, merge};
pub use store_peer::StorePeer;

use std::sync::Arc;

use async_trait::async_trait;

use crate::change::{Change, Entry};
use crate::error::Result;

use crate::id::{ClusterId, LogId, Position, UserId, home_cluster};
use crate::post::Post;
use crate::state::State;

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

/// Every user of `state`'s own cluster, with posts and relations, by user id.
pub fn user_records(state: &State) -> Vec<UserRecord> {
    let membership = state.membership();
    state
        .users()
        .filter(|&user| membership.is_local(user))
        .map(|user| UserRecord {
            user,
            posts: state.posts_by(user).collect(),
            following: state.following(user).collect(),
            followers: state.followers(user).collect(),
        })
        .collect()
}

/// The cluster whose user made `entry`'s change: the joining user's, the follower's, the
/// author's. `None` for the log's own bookkeeping (elections, import marks).
pub fn origin(entry: &Entry, clusters: u32) -> Option<ClusterId> {
    let user = match &entry.change {
        Change::UserJoined { user, .. } => *user,
        Change::Followed { follower, .. } | Change::Unfollowed { follower, .. } => *follower,
        Change::Posted(post) => post.author,
        Change::MasterElected { .. } | Change::Imported { .. } => return None,
    };
    Some(home_cluster(user, clusters))
}

/// Whether a batch of `from`'s log `log` cannot continue the import cursor `state` records
/// for `from`: the cursor is a position of another log, or of a log not named (recorded
/// before logs were named, so that it may be any). The import then starts again from 0 in
/// `log` ([`merge`] records that).
pub fn starts_again(state: &State, from: ClusterId, log: LogId) -> bool {
    let merged_log = state.imported_log(from);
    let unnamed_cursor = merged_log.is_unknown() && state.imported_through(from) > Position(0);
    log.differs_from(merged_log) || (unnamed_cursor && !log.is_unknown())
}

/// A stretch of another cluster's log: the changes that originate there, after a cursor
/// and up to `through`, in the log `log`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The changes, in log order; positions may skip entries that originate elsewhere.
    pub entries: Vec<Entry>,
    /// The last position the answer covers (at least the cursor asked after).
    pub through: Position,
    /// The log the positions belong to. When it is not the log of the asker's cursor, the
    /// answer says only that: the asker starts again from 0.
    pub log: LogId,
}

/// Another cluster, as seen from this one.
///
/// # Contract
///
/// * `changes_after(cursor, ..)` answers with the committed changes that originate in the
///   peer's cluster, in log order, from right after `cursor` up to `through` — never a
///   change a failover could take back — and names their [`LogId`]. Positions mean the same
///   on every server of a cluster, so a cursor stays valid across the peer's failovers and
///   restarts, as long as the log is the same.
/// * When there is nothing new it may wait a while (at most about a second) for news before
///   answering with no entries and `through == cursor`.
/// * Failures are [`Error::Unavailable`](crate::Error::Unavailable); the caller retries with
///   the same cursor. An answer given twice is harmless to [`merge`].
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait SyncPeer: Send + Sync {
    /// Every user of the peer's cluster with its posts and relations.
    async fn users(&self) -> Result<Vec<UserRecord>>;

    /// Up to about `max` changes of the peer's cluster after `cursor`.
    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Changes>;
}

/// What a server's change feed serves: a reader for each subscription, by the cluster
/// whose changes it asks for. A cluster's master serves its own cluster's committed
/// changes; a synchronizer serves its own cluster's (read from the master) and relays the
/// other clusters' (read from their synchronizers), so that a master imports another
/// cluster's changes through its own synchronizer.
pub trait FeedSources: Send + Sync {
    /// The server's own cluster: the one whose users the course's `GetUserTLFL` lists.
    fn cluster(&self) -> ClusterId;

    /// A reader of the committed changes that originate in `source`, for one subscription:
    /// each subscription gets its own, so that each keeps one stream upstream. Fails with
    /// [`Error::Invalid`](crate::Error::Invalid) for a cluster this server does not serve.
    fn reader(&self, source: ClusterId) -> Result<Arc<dyn SyncPeer>>;
}
