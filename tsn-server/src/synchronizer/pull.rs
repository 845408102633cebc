//! Pulling another cluster's changes into this cluster's handover.

use std::time::Duration;

use tsn_core::coordinator::Endpoint;
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::Handover;
use tsn_core::{Result, SyncPeer};

use super::Links;

/// How many changes one read asks for at most.
const PULL_BATCH: usize = 1024;

/// The first and the longest pause after a failed read.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(1000));

/// Copies the changes of cluster `from`, read from its synchronizer at `peer`, into the
/// handover to this cluster's master, until aborted. It resumes after what the handover
/// already holds or the cluster has already merged (committed), whichever is further. With
/// a `round` above zero it asks at most once per round, as the course's synchronizers do.
pub async fn pull(links: Links, from: ClusterId, peer: Endpoint, round: Duration) {
    let mut pause = RETRY.0;
    loop {
        let mut answered = false;
        let copied = pull_from(&links, from, &peer, round, &mut answered).await;
        if answered {
            // The peer answered this time: a failure now starts a new run of them.
            pause = RETRY.0;
        }
        match copied {
            Ok(()) => return,
            // The first failure of a run of them is a warning: the cluster receives nothing
            // from `from` until it is over. The retries that follow say the same.
            Err(error) if pause == RETRY.0 => {
                tracing::warn!(%from, %peer, %error, "cannot copy the changes of another cluster for the master; retrying");
            }
            Err(error) => {
                tracing::debug!(%from, %peer, %error, "pulling changes failed again; retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY.1);
    }
}

async fn pull_from(
    links: &Links,
    from: ClusterId,
    peer: &Endpoint,
    round: Duration,
    answered: &mut bool,
) -> Result<()> {
    let client = (links.feed)(peer)?;
    let mut handover = (links.handover)(from)?;
    copy_changes(
        &*client,
        &mut *handover,
        || (links.merged)(from),
        round,
        answered,
    )
    .await
}

/// Copies `peer`'s changes into `handover`, each stretch once, starting after what it
/// holds or the cluster has merged, and compacting it, before each append, once the
/// cluster has merged all it holds. Returns only when the peer fails.
///
/// `merged` must be the import cursor (with its log) of a **committed** entry of the
/// cluster's log (see [`Links::merged`]): the next master, after any failover, resumes its
/// import there, so what the handover held up to it is no longer needed. A cursor read
/// from an entry that a failover may still cut would discard (or never fetch) batches the
/// next master needs. Sets `answered` once the peer has answered.
///
/// When the peer answers from another log than the cursor's (its cluster lost its data and
/// started a new one), the copy starts again from 0 in that log; the handover starts
/// afresh with its first batch.
async fn copy_changes(
    peer: &dyn SyncPeer,
    handover: &mut dyn Handover,
    merged: impl Fn() -> (LogId, Position),
    round: Duration,
    answered: &mut bool,
) -> Result<()> {
    let (merged_log, merged_at) = merged();
    let (mut log, mut cursor) = handover.written();
    if log.is_unknown() {
        log = merged_log;
    }
    // A cursor counts only in its own log (one recorded before logs were named counts only
    // for batches that were not named either).
    if merged_log == log {
        cursor = cursor.max(merged_at);
    }
    // What the cluster has merged of `log`, as far as compaction is concerned.
    let merged_of = |log: LogId| match merged() {
        (merged_log, at) if merged_log == log => at,
        _ => Position(0),
    };
    loop {
        let changes = peer.changes_after(cursor, PULL_BATCH).await?;
        *answered = true;
        if changes.log.differs_from(log) {
            tracing::info!(
                peer_log = changes.log.0,
                "the other cluster has a new log; copying it from its start"
            );
            (log, cursor) = (changes.log, Position(0));
            continue;
        }
        if log.is_unknown() {
            log = changes.log;
        }
        if changes.through > cursor {
            handover.compact(merged_of(log))?;
            handover.append(&changes)?;
            cursor = changes.through;
        }
        if !round.is_zero() {
            tokio::time::sleep(round).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use mockall::Sequence;
    use mockall::predicate::{always, eq};
    use tsn_core::Error;
    use tsn_core::Store;
    use tsn_core::change::{Change, Entry};
    use tsn_core::id::{Epoch, Membership, ServerId, Time, UserId};
    use tsn_core::sync::merge;
    use tsn_core::sync::{Changes, MockSyncPeer};
    use tsn_fs::{ClusterFiles, InboxPeer, InboxWriter};

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
            log: FIRST_LOG,
        }
    }

    /// A peer's answer, as a script gives it.
    type Answer = fn() -> tsn_core::Result<Changes>;

    /// A peer that expects the questions of `script`, in order, each after its cursor, and
    /// gives their answers.
    fn scripted(script: Vec<(u64, Answer)>) -> MockSyncPeer {
        let mut peer = MockSyncPeer::new();
        let mut order = Sequence::new();
        for (cursor, answer) in script {
            peer.expect_changes_after()
                .with(eq(Position(cursor)), always())
                .times(1)
                .in_sequence(&mut order)
                .returning(move |_, _| answer());
        }
        peer
    }

    /// The log of cluster 2 in these tests, until it starts a new one.
    const FIRST_LOG: LogId = LogId(1);

    #[tokio::test]
    async fn each_stretch_is_copied_once_and_the_next_question_follows_it() {
        let mut script: Vec<(u64, Answer)> = Vec::new();
        let mut expect = |cursor: u64, answer: Answer| script.push((cursor, answer));
        expect(0, || Ok(joins(1, 3)));
        expect(3, || {
            Ok(Changes {
                entries: vec![],
                through: Position(3),
                log: FIRST_LOG,
            })
        });
        expect(3, || {
            Ok(Changes {
                entries: vec![],
                through: Position(7),
                log: FIRST_LOG,
            })
        });
        expect(7, || Ok(joins(8, 9)));
        expect(9, || {
            Err(Error::Unavailable {
                what: "peer".into(),
                reason: "gone".into(),
            })
        });

        let peer = scripted(script);
        let dir = tempfile::tempdir().expect("a folder");
        let from = ClusterId(2);
        let mut writer = InboxWriter::open(dir.path(), from).expect("an inbox");
        let ended = copy_changes(
            &peer,
            &mut writer,
            || (LogId::UNKNOWN, Position(0)),
            Duration::ZERO,
            &mut false,
        )
        .await;
        assert!(ended.is_err(), "it returns when the peer fails");
        assert_eq!(writer.written().1, Position(9));

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
    async fn a_new_log_of_the_peer_is_copied_from_its_start_into_a_fresh_inbox_file() {
        let mut script: Vec<(u64, Answer)> = Vec::new();
        let mut expect = |cursor: u64, answer: Answer| script.push((cursor, answer));
        const NEW_LOG: LogId = LogId(5);
        expect(0, || Ok(joins(1, 6)));
        // Cluster 2 lost its data: the answer after 6 comes from a log of 2 entries.
        expect(6, || {
            Ok(Changes {
                entries: vec![],
                through: Position(6),
                log: NEW_LOG,
            })
        });
        expect(0, || {
            Ok(Changes {
                log: NEW_LOG,
                ..joins(1, 2)
            })
        });
        expect(2, || {
            Err(Error::Unavailable {
                what: "peer".into(),
                reason: "gone".into(),
            })
        });
        let peer = scripted(script);
        let dir = tempfile::tempdir().expect("a folder");
        let from = ClusterId(2);
        let mut writer = InboxWriter::open(dir.path(), from).expect("an inbox");
        let merged = || (FIRST_LOG, Position(0));
        let ended = copy_changes(&peer, &mut writer, merged, Duration::ZERO, &mut false).await;
        assert!(ended.is_err(), "it returns when the peer fails");
        assert_eq!(writer.written(), (NEW_LOG, Position(2)));
        let inbox = InboxPeer::new(dir.path(), from, Duration::from_millis(10));
        let read = inbox.changes_after(Position(0), 100).await.expect("read");
        let positions: Vec<u64> = read.entries.iter().map(|e| e.position.0).collect();
        assert_eq!(
            (positions, read.log),
            (vec![1, 2], NEW_LOG),
            "only the new log"
        );
    }

    /// Answers from a fixed list of batches, as a peer whose log holds them: the first
    /// batch past the cursor, without the entries at or below it; fails once it has
    /// nothing more, which ends `copy_changes`.
    struct Batches(Vec<Changes>);

    #[async_trait::async_trait]
    impl SyncPeer for Batches {
        async fn users(&self) -> tsn_core::Result<Vec<tsn_core::sync::UserRecord>> {
            Ok(Vec::new())
        }

        async fn changes_after(&self, cursor: Position, _max: usize) -> tsn_core::Result<Changes> {
            let batch =
                self.0
                    .iter()
                    .find(|b| b.through > cursor)
                    .ok_or_else(|| Error::Unavailable {
                        what: "peer".into(),
                        reason: "nothing more".into(),
                    })?;
            Ok(Changes {
                entries: batch
                    .entries
                    .iter()
                    .filter(|e| e.position > cursor)
                    .cloned()
                    .collect(),
                through: batch.through,
                log: batch.log,
            })
        }
    }

    /// Cluster 1 of 3, importing from cluster 2: server 1 its master, server 2 its slave,
    /// both holding user 1's first login, committed. The master has merged cluster 2's
    /// first batch (`joins(1, 3)`): appended and durable, **not committed**, with the
    /// synchronizer's view of the cluster following it. Returns the data folder, the two
    /// stores and the synchronizer's view (with the task that follows the files).
    async fn an_import_appended_but_not_committed() -> (
        tempfile::TempDir,
        tsn_fs::FileStore,
        tsn_fs::FileStore,
        Arc<ClusterFiles>,
        tokio::task::JoinHandle<()>,
    ) {
        let data = tempfile::tempdir().expect("a folder");
        let membership = Membership {
            cluster: ClusterId(1),
            clusters: 3,
        };
        let open = |server: u32| {
            let dir = tsn_fs::replica_dir(data.path(), membership.cluster, ServerId(server));
            tsn_fs::FileStore::open(&dir, membership)
                .expect("a replica")
                .0
        };
        let (master, slave) = (open(1), open(2));
        let first_login = [Entry {
            position: Position(1),
            epoch: Epoch(1),
            change: Change::UserJoined {
                user: UserId::new(1).expect("a user"),
                time: Time(1),
            },
        }];
        for store in [&master, &slave] {
            store.append(&first_login).expect("append");
            store.flush().await.expect("flush");
        }
        master.record_commit(Position(1));

        let merged = master.read(|s| merge(s, ClusterId(2), &joins(1, 3)));
        let entries: Vec<Entry> = (2..)
            .zip(merged)
            .map(|(p, change)| Entry {
                position: Position(p),
                epoch: Epoch(1),
                change,
            })
            .collect();
        assert!(matches!(
            entries.last().map(|e| &e.change),
            Some(Change::Imported {
                through: Position(3),
                ..
            })
        ));
        master.append(&entries).expect("append the import");
        master.flush().await.expect("durable on the master alone");

        let local = Arc::new(ClusterFiles::new(membership));
        let cluster_dir = tsn_fs::cluster_dir(data.path(), membership.cluster);
        let follower = tokio::spawn({
            let local = Arc::clone(&local);
            async move { local.follow(cluster_dir, Duration::from_millis(10)).await }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while local.read(|s| s.last().position) < Position(1) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the synchronizer read nothing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (data, master, slave, local, follower)
    }

    /// The master fails before its import commits; the slave takes over (a new epoch,
    /// committed) and the old master's uncommitted tail is cut, as when it comes back.
    /// Returns the positions of cluster 2's log that the new master's import reads from
    /// the inbox, from the cursor its own log records.
    async fn fail_over_and_import(
        data: &std::path::Path,
        old_master: tsn_fs::FileStore,
        new_master: &tsn_fs::FileStore,
    ) -> Vec<u64> {
        new_master
            .append(&[Entry {
                position: Position(2),
                epoch: Epoch(2),
                change: Change::MasterElected {
                    server: ServerId(2),
                    time: Time(2),
                },
            }])
            .expect("the election entry");
        new_master.flush().await.expect("flush");
        new_master.record_commit(Position(2));
        old_master
            .truncate_after(Position(1))
            .await
            .expect("the cut");

        let from = ClusterId(2);
        let inbox = InboxPeer::new(
            &tsn_fs::inbox_dir(data, ClusterId(1)),
            from,
            Duration::from_millis(10),
        );
        let mut cursor = new_master.read(|s| s.imported_through(from));
        assert_eq!(cursor, Position(0), "the new master never merged the batch");
        let mut read = Vec::new();
        for _ in 0..10 {
            let changes = inbox.changes_after(cursor, 100).await.expect("read");
            read.extend(changes.entries.iter().map(|e| e.position.0));
            if changes.through == cursor || changes.through == Position(5) {
                break;
            }
            cursor = changes.through;
        }
        read
    }

    /// Copies cluster 2's two batches, `joins(1, 3)` and `joins(4, 5)`, into `writer`, with
    /// `local`'s committed import cursor as what the cluster has merged.
    async fn pull_both_batches(local: &ClusterFiles, writer: &mut InboxWriter) {
        let peer = Batches(vec![joins(1, 3), joins(4, 5)]);
        let from = ClusterId(2);
        let merged = || local.read(|s| (s.imported_log(from), s.imported_through(from)));
        let ended = copy_changes(&peer, writer, merged, Duration::ZERO, &mut false).await;
        assert!(ended.is_err(), "it ends when the peer has nothing more");
    }

    #[tokio::test]
    async fn an_inbox_is_not_compacted_on_an_import_that_a_failover_can_cut() {
        let (data, master, slave, local, follower) = an_import_appended_but_not_committed().await;
        let inbox = tsn_fs::inbox_dir(data.path(), ClusterId(1));
        let from = ClusterId(2);
        InboxWriter::open(&inbox, from)
            .expect("an inbox")
            .append(&joins(1, 3))
            .expect("the first batch");
        // A limit of one byte: any inbox is over it.
        let mut writer = InboxWriter::open(&inbox, from)
            .expect("the inbox again")
            .with_compact_limit(1);
        pull_both_batches(&local, &mut writer).await;
        follower.abort();

        let read = fail_over_and_import(data.path(), master, &slave).await;
        assert_eq!(read, [1, 2, 3, 4, 5], "every batch arrives, once");
    }

    #[tokio::test]
    async fn a_pull_does_not_start_after_an_import_that_a_failover_can_cut() {
        let (data, master, slave, local, follower) = an_import_appended_but_not_committed().await;
        // An inbox started afresh (compacted), with nothing in it.
        let from = ClusterId(2);
        let mut writer = InboxWriter::open(&tsn_fs::inbox_dir(data.path(), ClusterId(1)), from)
            .expect("an inbox");
        pull_both_batches(&local, &mut writer).await;
        follower.abort();

        let read = fail_over_and_import(data.path(), master, &slave).await;
        assert_eq!(read, [1, 2, 3, 4, 5], "every batch arrives, once");
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
        let ended = copy_changes(
            &peer,
            &mut writer,
            || (FIRST_LOG, Position(2)),
            Duration::ZERO,
            &mut false,
        )
        .await;
        assert!(ended.is_err());
    }
}
