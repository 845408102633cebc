//! [`StorePeer`]: a cluster's data, read straight from one of its stores.

use async_trait::async_trait;

use crate::error::Result;
use crate::id::Position;
use crate::store::Store;
use crate::sync::{Changes, SyncPeer, UserRecord, origin, user_records};

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
        Ok(self.store.read(user_records))
    }

    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Changes> {
        let (membership, log) = self.store.read(|s| (s.membership(), s.log_id()));
        let durable = self.store.durable();
        let mut entries = self.store.entries_after(cursor, max).await?;
        entries.retain(|entry| entry.position <= durable);
        let through = entries.last().map_or(cursor, |e| e.position);
        entries.retain(|entry| origin(entry, membership.clusters) == Some(membership.cluster));
        Ok(Changes {
            entries,
            through,
            log,
        })
    }
}
