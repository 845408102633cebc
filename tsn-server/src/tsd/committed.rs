//! [`Committed`]: a master's committed changes, as its cluster's synchronizer reads them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::{Changes, FeedSources, SyncPeer, UserRecord, origin, user_records};
use tsn_core::{Error, Result, Store};

use crate::tsd::Tsd;

/// How long a question waits for a new commit before it is answered with nothing.
pub const LONG_POLL: Duration = Duration::from_secs(1);

/// How many entries of the log are read at a time while looking for the cluster's own.
const SCAN: usize = 1024;

/// The changes that originate in the cluster and are committed on its master — nothing a
/// failover can take back — and its users as committed; answered only while the server is
/// master ([`Error::NotMaster`] otherwise, and once the role ends, so that the reader looks
/// for the new master).
pub struct Committed<S> {
    tsd: Arc<Tsd<S>>,
}

impl<S: Store> Committed<S> {
    /// The committed changes of `tsd`'s cluster, while it is master.
    pub fn new(tsd: Arc<Tsd<S>>) -> Self {
        Committed { tsd }
    }
}

#[async_trait]
impl<S: Store> SyncPeer for Committed<S> {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        let master = self.tsd.master()?;
        let end = self.tsd.store().read(|s| s.last().position);
        master.committed(end).await?;
        Ok(self.tsd.store().read(user_records))
    }

    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Changes> {
        let master = self.tsd.master()?;
        let mut commit = master.commit_watch();
        tokio::select! {
            _ = tokio::time::timeout(LONG_POLL, commit.wait_for(|&c| c > cursor)) => {}
            () = master.ended() => return Err(Error::NotMaster("this server is no longer the master".into())),
        }
        let committed = master.commit_position();
        let store = self.tsd.store();
        let (membership, log) = store.read(|s| (s.membership(), s.log_id()));
        let mine = |entry: &tsn_core::change::Entry| {
            origin(entry, membership.clusters) == Some(membership.cluster)
        };
        let (mut through, mut entries) = (cursor, Vec::new());
        'scan: while through < committed && entries.len() < max.max(1) {
            let read = store.entries_after(through, SCAN).await?;
            if read.is_empty() {
                break;
            }
            for entry in read {
                if entry.position > committed || entries.len() >= max.max(1) {
                    break 'scan;
                }
                through = entry.position;
                if mine(&entry) {
                    entries.push(entry);
                }
            }
        }
        Ok(Changes {
            entries,
            through,
            log,
        })
    }
}

/// A master's feed serves its own cluster's committed changes, and nothing else.
impl<S: Store> FeedSources for Tsd<S> {
    fn cluster(&self) -> ClusterId {
        self.config().me.cluster
    }

    fn reader(&self, source: ClusterId) -> Result<Arc<dyn SyncPeer>> {
        if source != self.cluster() {
            return Err(Error::Invalid(format!(
                "a server of cluster {} serves only its own cluster's changes, not cluster {source}'s",
                self.cluster()
            )));
        }
        Ok(Arc::new(Committed::new(self.arc())))
    }
}
