//! Pulling another cluster's changes into this cluster's inbox.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tsn_core::coordinator::Endpoint;
use tsn_core::id::{ClusterId, Position};
use tsn_core::{Result, SyncPeer};
use tsn_fs::InboxWriter;
use tsn_grpc::sync::{FEED_BATCH, FeedClient};

use crate::sync::local::LocalCluster;

/// The first and the longest pause after a failed read.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(1000));

/// Copies the changes of cluster `from`, read from its synchronizer at `peer`, into this
/// cluster's inbox, until aborted. It resumes after what the inbox already holds or the
/// cluster has already merged, whichever is further. With a `round` above zero it asks at
/// most once per round, as the course's synchronizers do.
pub async fn pull(
    local: Arc<LocalCluster>,
    me: ClusterId,
    from: ClusterId,
    peer: Endpoint,
    inbox: PathBuf,
    round: Duration,
) {
    let mut pause = RETRY.0;
    loop {
        match pull_from(&local, me, from, &peer, &inbox, round).await {
            Ok(()) => return,
            Err(error) => {
                tracing::debug!(%from, %peer, %error, "pulling changes failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY.1);
            }
        }
    }
}

async fn pull_from(
    local: &LocalCluster,
    me: ClusterId,
    from: ClusterId,
    peer: &Endpoint,
    inbox: &std::path::Path,
    round: Duration,
) -> Result<()> {
    let client = FeedClient::new(peer, me)?;
    let mut writer = InboxWriter::open(inbox, from)?;
    let merged = |local: &LocalCluster| local.read(|s| s.imported_through(from));
    let mut cursor: Position = writer.written_through().max(merged(local));
    loop {
        let changes = client.changes_after(cursor, FEED_BATCH).await?;
        if changes.through > cursor {
            writer.append(&changes)?;
            cursor = changes.through;
            writer.compact(merged(local))?;
        }
        if !round.is_zero() {
            tokio::time::sleep(round).await;
        }
    }
}
