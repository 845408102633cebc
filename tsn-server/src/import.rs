//! Merging other clusters' changes into this one, while this server is master.

use std::sync::Arc;
use std::time::Duration;

use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::{LogId, merge, starts_again};
use tsn_core::{Store, SyncPeer};

use crate::master::Master;

/// How many changes one merge takes at most.
const IMPORT_BATCH: usize = 1024;
/// The first and the longest pause after a failed read.
const RETRY: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));

/// Reads the changes of cluster `from` from `peer` and merges them through the master's
/// write path — committed, replicated and published like the master's own writes — until
/// the role ends. The merge records its cursor in the log, so the next master resumes
/// there.
pub async fn run<S: Store>(master: Arc<Master<S>>, from: ClusterId, peer: Arc<dyn SyncPeer>) {
    // What was read but merged nothing (and so moved no cursor in the log), and in which
    // log of `from`.
    let (mut read, mut read_log) = (Position(0), LogId::UNKNOWN);
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
                let recorded = master.store().read(|s| starts_again(s, from, changes.log));
                if recorded || changes.log.differs_from(read_log) {
                    // A new log of `from`: the answer came after a cursor of another one.
                    // The merge records a cursor of 0 in the new log (when the log holds a
                    // cursor of another), and the import asks again from there.
                    tracing::info!(%from, log = changes.log.0, "the other cluster has a new log; importing it from its start");
                    if recorded
                        && let Err(error) = master.append_all(|state| merge(state, from, &changes))
                    {
                        tracing::debug!(%from, %error, "import stopped");
                        return;
                    }
                    (read, read_log) = (Position(0), changes.log);
                    continue;
                }
                if changes.through <= cursor {
                    continue;
                }
                if let Err(error) = master.append_all(|state| merge(state, from, &changes)) {
                    tracing::debug!(%from, %error, "import stopped");
                    return;
                }
                (read, read_log) = (changes.through, changes.log);
            }
            Err(error) => {
                tracing::debug!(%from, %error, "cannot read the changes of another cluster");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY.1);
            }
        }
    }
}
