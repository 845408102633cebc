//! Merging other clusters' changes into this one, while this server is master.

use std::sync::Arc;
use std::time::Duration;

use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::merge;
use tsn_core::{Store, SyncPeer};

use crate::tsd::master::Master;

/// How many changes one merge takes at most.
const IMPORT_BATCH: usize = 1024;
/// The first and the longest pause after a failed read.
const RETRY: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));

/// Reads the changes of cluster `from` from `peer` and merges them through the master's
/// write path — committed, replicated and published like the master's own writes — until
/// the role ends. The merge records its cursor in the log, so the next master resumes
/// there.
pub(crate) async fn run<S: Store>(
    master: Arc<Master<S>>,
    from: ClusterId,
    peer: Arc<dyn SyncPeer>,
) {
    // What was read but merged nothing (and so moved no cursor in the log).
    let mut read = Position(0);
    let mut pause = RETRY.0;
    loop {
        let cursor = master.store().read(|s| s.imported_through(from)).max(read);
        let answer = tokio::select! {
            answer = peer.changes_after(cursor, IMPORT_BATCH) => answer,
            () = master.ended() => return,
        };
        match answer {
            Ok(changes) => {
                pause = RETRY.0;
                let new_log = master
                    .store()
                    .read(|s| changes.log.differs_from(s.imported_log(from)));
                if changes.through <= cursor && !new_log {
                    continue;
                }
                if let Err(error) = master.append_all(|state| merge(state, from, &changes)) {
                    tracing::debug!(%from, %error, "import stopped");
                    return;
                }
                // A new log of `from` restarts the cursor at 0 (the merge records it).
                read = if new_log {
                    tracing::info!(%from, log = changes.log.0, "the other cluster has a new log; importing it from its start");
                    Position(0)
                } else {
                    changes.through
                };
            }
            Err(error) => {
                tracing::debug!(%from, %error, "cannot read the changes of another cluster");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY.1);
            }
        }
    }
}
