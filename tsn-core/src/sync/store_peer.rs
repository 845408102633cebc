//! [`StorePeer`]: a cluster's data, read straight from one of its stores.

use async_trait::async_trait;

use crate::change::Entry;
use crate::error::Result;
use crate::id::Position;
use crate::store::Store;
use crate::sync::{SyncPeer, UserRecord};

/// A [`SyncPeer`] over a store of the peer's cluster, for a peer in the same process.
/// Durable entries count as committed.
#[derive(Debug)]
pub struct StorePeer<S> {
    store: S,
}

impl<S: Store> StorePeer<S> {
    /// The peer whose data `store` holds.
    pub fn new(store: S) -> Self {
        StorePeer { store }
    }
}

#[async_trait]
impl<S: Store> SyncPeer for StorePeer<S> {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(self.store.read(|state| {
            let membership = state.membership();
            state
                .users()
                .filter(|&user| membership.is_local(user))
                .map(|user| UserRecord {
                    user,
                    posts: state.posts_by(user).cloned().collect(),
                    following: state.following(user).collect(),
                    followers: state.followers(user).collect(),
                })
                .collect()
        }))
    }

    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Vec<Entry>> {
        let durable = self.store.durable();
        let mut entries = self.store.entries_after(cursor, max).await?;
        entries.retain(|entry| entry.position <= durable);
        Ok(entries)
    }
}
