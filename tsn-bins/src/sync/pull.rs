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
    copy_changes(
        &client,
        &mut writer,
        || local.read(|s| s.imported_through(from)),
        round,
    )
    .await
}

/// Copies `peer`'s changes into `writer`, each stretch once, starting after what the inbox
/// holds or the cluster has merged (`merged`), and compacting the inbox as the cluster
/// merges it. Returns only when the peer fails.
async fn copy_changes(
    peer: &dyn SyncPeer,
    writer: &mut InboxWriter,
    merged: impl Fn() -> Position,
    round: Duration,
) -> Result<()> {
    let mut cursor = writer.written_through().max(merged());
    loop {
        let changes = peer.changes_after(cursor, FEED_BATCH).await?;
        if changes.through > cursor {
            writer.append(&changes)?;
            cursor = changes.through;
            writer.compact(merged())?;
        }
        if !round.is_zero() {
            tokio::time::sleep(round).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mockall::Sequence;
    use mockall::predicate::{always, eq};
    use tsn_core::Error;
    use tsn_core::change::{Change, Entry};
    use tsn_core::id::{Epoch, Time, UserId};
    use tsn_core::sync::{Changes, MockSyncPeer};
    use tsn_fs::InboxPeer;

    /// Cluster 2's users 2, 5, 8 ... joining at positions `first..=last`.
    fn joins(first: u64, last: u64) -> Changes {
        let entries = (first..=last)
            .map(|p| Entry {
                position: Position(p),
                epoch: Epoch(1),
                change: Change::UserJoined {
                    user: UserId::new(3 * p as u32 - 1).expect("a user"),
                    time: Time(p),
                },
            })
            .collect();
        Changes {
            entries,
            through: Position(last),
        }
    }

    #[tokio::test]
    async fn each_stretch_is_copied_once_and_the_next_question_follows_it() {
        let mut peer = MockSyncPeer::new();
        let mut order = Sequence::new();
        let mut expect = |cursor: u64, answer: fn() -> tsn_core::Result<Changes>| {
            peer.expect_changes_after()
                .with(eq(Position(cursor)), always())
                .times(1)
                .in_sequence(&mut order)
                .returning(move |_, _| answer());
        };
        expect(0, || Ok(joins(1, 3)));
        expect(3, || {
            Ok(Changes {
                entries: vec![],
                through: Position(3),
            })
        });
        expect(3, || {
            Ok(Changes {
                entries: vec![],
                through: Position(7),
            })
        });
        expect(7, || Ok(joins(8, 9)));
        expect(9, || {
            Err(Error::Unavailable {
                what: "peer".into(),
                reason: "gone".into(),
            })
        });

        let dir = tempfile::tempdir().expect("a folder");
        let from = ClusterId(2);
        let mut writer = InboxWriter::open(dir.path(), from).expect("an inbox");
        let ended = copy_changes(&peer, &mut writer, || Position(0), Duration::ZERO).await;
        assert!(ended.is_err(), "it returns when the peer fails");
        assert_eq!(writer.written_through(), Position(9));

        let inbox = InboxPeer::new(dir.path(), from, Duration::from_millis(10));
        let read = inbox
            .changes_after(Position(0), 100)
            .await
            .expect("read the inbox");
        let positions: Vec<u64> = read.entries.iter().map(|e| e.position.0).collect();
        assert_eq!(positions, [1, 2, 3, 8, 9]);
        assert_eq!(read.through, Position(9));
    }

    #[tokio::test]
    async fn a_restart_resumes_after_what_the_inbox_holds() {
        let dir = tempfile::tempdir().expect("a folder");
        let from = ClusterId(2);
        InboxWriter::open(dir.path(), from)
            .expect("an inbox")
            .append(&joins(1, 4))
            .expect("append");
        let mut peer = MockSyncPeer::new();
        peer.expect_changes_after()
            .with(eq(Position(4)), always())
            .times(1)
            .returning(|_, _| {
                Err(Error::Unavailable {
                    what: "peer".into(),
                    reason: "gone".into(),
                })
            });
        let mut writer = InboxWriter::open(dir.path(), from).expect("the inbox again");
        let ended = copy_changes(&peer, &mut writer, || Position(2), Duration::ZERO).await;
        assert!(ended.is_err());
    }
}
