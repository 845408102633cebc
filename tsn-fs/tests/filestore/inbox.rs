//! The inbox: batches a synchronizer writes with `InboxWriter`, read back by the master
//! through `InboxPeer`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tsn_core::change::{Change, Entry};
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Epoch, Position, Time, UserId};
use tsn_core::post::{Post, PostId, PostText};
use tsn_core::sync::{Changes, Handover};
use tsn_core::{Error, SyncPeer};
use tsn_fs::{InboxPeer, InboxWriter, inbox_dir, inbox_file};

const TWO: ClusterId = ClusterId(2);
/// The fallback poll of the peers below: long, so that a prompt answer comes from the
/// folder's watch.
const POLL: Duration = Duration::from_secs(1);

/// An entry of cluster 2's log: user `2 + 3k` joining, at `position`.
fn joined(position: u64) -> Entry {
    Entry {
        position: Position(position),
        epoch: Epoch(1),
        change: Change::UserJoined {
            user: UserId::new(2 + 3 * position as u32).expect("a user"),
            time: Time(position),
        },
    }
}

/// The log of cluster 2 in the tests below, until it starts a new one.
const FIRST_LOG: LogId = LogId(1);

fn batch(positions: &[u64], through: u64) -> Changes {
    Changes {
        entries: positions.iter().copied().map(joined).collect(),
        through: Position(through),
        log: FIRST_LOG,
    }
}

fn positions(changes: &Changes) -> Vec<u64> {
    changes.entries.iter().map(|e| e.position.0).collect()
}

/// A peer's answer after `cursor`, which must come without waiting for news.
async fn answer(peer: &InboxPeer, cursor: u64, max: usize) -> (Vec<u64>, u64) {
    let changes = peer
        .changes_after(Position(cursor), max)
        .await
        .expect("read the inbox");
    (positions(&changes), changes.through.0)
}

#[test]
fn the_inbox_is_in_the_cluster_folder() {
    assert_eq!(
        inbox_dir(Path::new("/data"), ClusterId(3)),
        Path::new("/data/cluster_3/inbox")
    );
    assert_eq!(
        inbox_file(Path::new("/data/cluster_3/inbox"), TWO),
        Path::new("/data/cluster_3/inbox/from_2.log")
    );
}

#[tokio::test]
async fn batches_round_trip_and_the_cursor_skips() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    assert_eq!(writer.path(), inbox.join("from_2.log"));
    assert_eq!(writer.written().1, Position(0));
    writer.append(&batch(&[1, 2, 3], 3)).expect("append");
    writer.append(&batch(&[5], 6)).expect("append");
    // Nothing of cluster 2 from 7 to 9: the batch has no entries.
    writer.append(&batch(&[], 9)).expect("append");
    writer
        .append(&batch(&[], 9))
        .expect("an empty batch that says nothing");
    assert_eq!(writer.written().1, Position(9));

    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 100).await, (vec![1, 2, 3, 5], 9));
    // Whole records, about `max`.
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 2).await, (vec![1, 2, 3], 3));
    assert_eq!(answer(&peer, 3, 1).await, (vec![5], 6));
    assert_eq!(
        answer(&peer, 6, 1).await,
        (vec![], 9),
        "through past the last entry"
    );
    // Records at or below the cursor are passed over, and entries at or below it too.
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 4, 100).await, (vec![5], 9));
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 2, 100).await, (vec![3, 5], 9));
}

#[tokio::test]
async fn a_new_log_of_the_other_cluster_starts_the_file_afresh_and_is_read_from_its_start() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    writer.append(&batch(&[1, 2, 3, 4], 9)).expect("append");
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 100).await, (vec![1, 2, 3, 4], 9));

    // Cluster 2 lost its data: its new log has 2 entries.
    let new_log = LogId(7);
    let fresh = Changes {
        log: new_log,
        ..batch(&[1, 2], 2)
    };
    writer.append(&fresh).expect("append");
    assert_eq!(writer.written(), (new_log, Position(2)));
    let reopened = InboxWriter::open(&inbox, TWO);
    assert!(reopened.is_err(), "the writer holds the file");
    drop(writer);
    let writer = InboxWriter::open(&inbox, TWO).expect("open again");
    assert_eq!(writer.written(), (new_log, Position(2)));

    // The master, its cursor at 9 in the old log, is told of the new log ...
    let told = peer.changes_after(Position(9), 100).await.expect("read");
    assert_eq!((told.log, told.through), (new_log, Position(9)));
    // ... and, its cursor started again, reads the new log from its start.
    let whole = peer.changes_after(Position(0), 100).await.expect("read");
    assert_eq!(
        (positions(&whole), whole.through, whole.log),
        (vec![1, 2], Position(2), new_log)
    );
}

#[tokio::test]
async fn a_lower_cursor_reads_the_file_again_from_its_start() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    writer.append(&batch(&[1, 2], 2)).expect("append");
    writer.append(&batch(&[3, 4], 4)).expect("append");
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 100).await, (vec![1, 2, 3, 4], 4));
    // A new master role whose log merged through 2 only.
    assert_eq!(answer(&peer, 2, 100).await, (vec![3, 4], 4));
    assert_eq!(answer(&peer, 0, 1).await, (vec![1, 2], 2));
}

#[tokio::test]
async fn the_entries_of_an_answer_only_go_forward() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    writer.append(&batch(&[1, 2, 3], 3)).expect("append");
    // A synchronizer that restarted and fetched again from an older cursor.
    writer.append(&batch(&[2, 3], 3)).expect("append");
    writer.append(&batch(&[2, 3, 4], 4)).expect("append");
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 100).await, (vec![1, 2, 3, 4], 4));
}

#[tokio::test]
async fn a_batch_over_the_record_limit_is_split() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    let text = PostText::new("🦀".repeat(PostText::MAX_CHARS)).expect("a post");
    let entries: Vec<Entry> = (1..=600u64)
        .map(|seq| Entry {
            position: Position(seq),
            epoch: Epoch(1),
            change: Change::Posted(Post {
                id: PostId { origin: 1, seq },
                author: UserId::new(2).expect("a user"),
                time: Time(seq),
                text: text.clone(),
            }),
        })
        .collect();
    let changes = Changes {
        entries,
        through: Position(700),
        log: FIRST_LOG,
    };
    writer.append(&changes).expect("append");
    let len = fs::metadata(writer.path()).expect("the file").len();
    assert!(len > 2 << 20, "over two records' worth: {len}");
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    let read = peer
        .changes_after(Position(0), usize::MAX)
        .await
        .expect("read");
    assert_eq!(read, changes);
}

#[tokio::test]
async fn compaction_starts_a_new_file_that_readers_go_on_with() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO)
        .expect("open the writer")
        .with_compact_limit(200);
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    writer.append(&batch(&[1, 2], 2)).expect("append");
    assert!(
        !writer.compact(Position(2)).expect("compact"),
        "under the limit"
    );
    writer.append(&batch(&[3, 4], 4)).expect("append");
    assert_eq!(answer(&peer, 0, 100).await, (vec![1, 2, 3, 4], 4));
    assert!(
        !writer.compact(Position(3)).expect("compact"),
        "not all merged"
    );

    // A batch the reader has not read yet when the file is replaced: it reads the old
    // file to its end, then the new one.
    writer.append(&batch(&[5], 5)).expect("append");
    let old = fs::metadata(writer.path()).expect("the file").len();
    assert!(writer.compact(Position(5)).expect("compact"));
    assert_eq!(fs::metadata(writer.path()).expect("the file").len(), 0);
    assert_eq!(writer.written().1, Position(5));
    writer.append(&batch(&[6, 7], 7)).expect("append");
    assert!(old > 200);
    assert_eq!(answer(&peer, 4, 100).await, (vec![5, 6, 7], 7));
    writer.append(&batch(&[8], 8)).expect("append");
    assert_eq!(answer(&peer, 7, 100).await, (vec![8], 8));
    // A reader that starts again reads the new file only.
    assert_eq!(answer(&peer, 0, 100).await, (vec![6, 7, 8], 8));
    // The writer holds the lock on the new file.
    assert!(InboxWriter::open(&inbox, TWO).is_err());
}

#[tokio::test]
async fn a_second_writer_is_refused_and_a_torn_tail_is_cut_at_open() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    writer.append(&batch(&[1, 2], 2)).expect("append");
    let error = InboxWriter::open(&inbox, TWO).expect_err("one writer at a time");
    assert!(matches!(error, Error::Storage { .. }), "{error:?}");
    let path = writer.path().to_path_buf();
    let whole = fs::metadata(&path).expect("the file").len();
    drop(writer);

    // A crash in the middle of an append.
    let mut file = OpenOptions::new().append(true).open(&path).expect("open");
    file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, b'{'])
        .expect("write");
    drop(file);
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 100).await, (vec![1, 2], 2));

    let mut writer = InboxWriter::open(&inbox, TWO).expect("reopen the writer");
    assert_eq!(fs::metadata(&path).expect("the file").len(), whole);
    assert_eq!(writer.written().1, Position(2));
    writer.append(&batch(&[3], 3)).expect("append");
    assert_eq!(answer(&peer, 2, 100).await, (vec![3], 3));
}

#[tokio::test]
async fn damage_in_the_middle_is_passed_over_to_the_end_of_the_file() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    writer.append(&batch(&[1], 1)).expect("append");
    writer.append(&batch(&[2], 2)).expect("append");
    writer.append(&batch(&[3], 3)).expect("append");
    let path = writer.path().to_path_buf();
    // A flipped bit in the second record's payload.
    let mut bytes = fs::read(&path).expect("read");
    let first = 8 + u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    bytes[first + 12] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let peer = InboxPeer::new(&inbox, TWO, POLL);
    assert_eq!(answer(&peer, 0, 100).await, (vec![1], 1));
    writer.append(&batch(&[4], 4)).expect("append");
    assert_eq!(answer(&peer, 1, 100).await, (vec![4], 4));
}

#[tokio::test]
async fn with_nothing_new_the_answer_is_empty_and_keeps_the_cursor() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let peer = InboxPeer::new(&inbox, TWO, Duration::from_millis(50));
    let changes = peer
        .changes_after(Position(7), 100)
        .await
        .expect("a file that is not there is empty");
    let nothing = Changes {
        log: LogId::UNKNOWN,
        ..batch(&[], 7)
    };
    assert_eq!(changes, nothing, "no file, no log");
    let error = peer.users().await.expect_err("changes only");
    assert!(matches!(error, Error::Invalid(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_written_while_the_peer_waits_is_its_answer() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let inbox = inbox_dir(data.path(), ClusterId(1));
    let mut writer = InboxWriter::open(&inbox, TWO).expect("open the writer");
    writer.append(&batch(&[1], 1)).expect("append");
    let peer = Arc::new(InboxPeer::new(&inbox, TWO, POLL));
    assert_eq!(answer(&peer, 0, 100).await, (vec![1], 1));

    for round in 2..5u64 {
        let waiting = {
            let peer = Arc::clone(&peer);
            tokio::spawn(async move { peer.changes_after(Position(round - 1), 100).await })
        };
        // Not a wait for something: only so that the peer is most likely in its wait when
        // the batch comes (the assertion holds either way). How soon it answers is
        // measured by tsn-bench's delivery figures, not here.
        tokio::time::sleep(Duration::from_millis(150)).await;
        writer.append(&batch(&[round], round)).expect("append");
        let changes = waiting.await.expect("the waiting task");
        assert_eq!(changes.expect("read"), batch(&[round], round));
    }
}
