//! The commit marker and `LogTail`: another process reading a master's log.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tsn_core::change::Entry;
use tsn_core::id::{Position, Time};
use tsn_core::{Error, Store};
use tsn_fs::{COMMIT_FILE, DirWatch, LOG_FILE, Located, LogReader, LogTail, read_commit};

use crate::common::{Writer, open};

/// A bound for waits that end as soon as the work is done.
const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_commit_marker_only_grows_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    assert_eq!(read_commit(dir.path()).expect("read"), Position(0));
    let (store, _) = open(dir.path());
    assert_eq!(
        fs::read(dir.path().join(COMMIT_FILE)).expect("the marker exists"),
        [0; 8]
    );
    let mut w = Writer::after(&store);
    let entries: Vec<Entry> = (1..=5).map(|n| w.join(n * 3 + 1)).collect();
    store.append(&entries).expect("append");
    store.flush().await.expect("flush");

    store.record_commit(Position(3));
    assert_eq!(read_commit(dir.path()).expect("read"), Position(3));
    store.record_commit(Position(2));
    assert_eq!(
        read_commit(dir.path()).expect("read"),
        Position(3),
        "never lowered"
    );
    store.record_commit(Position(5));
    assert_eq!(read_commit(dir.path()).expect("read"), Position(5));
    assert_eq!(
        fs::read(dir.path().join(COMMIT_FILE)).expect("read"),
        5u64.to_le_bytes(),
        "8 bytes, little-endian"
    );
    drop(store);

    let (store, _) = open(dir.path());
    assert_eq!(read_commit(dir.path()).expect("read"), Position(5));
    store.record_commit(Position(4));
    assert_eq!(read_commit(dir.path()).expect("read"), Position(5));
}

/// The records of a flushed log of `n` entries, and the entries.
async fn log_bytes(n: u32) -> (Vec<u8>, Vec<Entry>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let mut entries = vec![w.join(1)];
    for seq in 1..n.into() {
        entries.push(w.post(1, seq, Time(seq), &format!("post {seq} 🦀 \"quoted\"")));
    }
    store.append(&entries).expect("append");
    store.flush().await.expect("flush");
    drop(store);
    (
        fs::read(dir.path().join(LOG_FILE)).expect("read the log"),
        entries,
    )
}

#[tokio::test]
async fn a_record_cut_short_at_the_end_waits_for_the_rest() {
    let (bytes, entries) = log_bytes(6).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(LOG_FILE);
    fs::write(&path, b"").expect("create the log");
    let mut tail = LogTail::open(dir.path()).expect("open the tail");
    assert_eq!(tail.dir(), dir.path());
    let mut read = Vec::new();
    // Grow the file a few bytes at a time, as a slow writer would.
    for end in (0..=bytes.len()).step_by(7).chain([bytes.len()]) {
        fs::write(&path, &bytes[..end]).expect("write the log");
        read.extend(tail.read_new().expect("a partial record is no error"));
        assert!(
            read.len() <= entries.len() && read[..] == entries[..read.len()],
            "whole records only, in order"
        );
    }
    assert_eq!(read, entries);
    assert_eq!(tail.position(), Position(6));
    assert!(tail.read_new().expect("read").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tail_follows_a_store_that_appends_and_flushes() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let store = Arc::new(store);
    let mut w = Writer::after(&store);
    store.append(&[w.join(1)]).expect("append");
    store.flush().await.expect("flush");
    let total = 400u64;

    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for seq in 1..total {
                let entry = w.post(1, seq, Time(seq), &format!("post {seq}"));
                store.append(&[entry]).expect("append");
                if seq % 3 == 0 {
                    let durable = store.flush().await.expect("flush");
                    store.record_commit(durable);
                }
            }
            let durable = store.flush().await.expect("flush");
            store.record_commit(durable);
        })
    };

    // The synchronizer's loop: the commit marker first, then the log, up to the marker.
    let replica = dir.path().to_path_buf();
    let reader = tokio::spawn(async move {
        let watch = DirWatch::for_files(&replica, &[COMMIT_FILE, LOG_FILE]);
        let mut tail = LogTail::open(&replica).expect("open the tail");
        let mut read: Vec<Entry> = Vec::new();
        let start = Instant::now();
        while read.len() < total as usize {
            assert!(start.elapsed() < DEADLINE, "read {} entries", read.len());
            let commit = read_commit(&replica).expect("read the marker");
            let new = tokio::task::block_in_place(|| tail.read_new()).expect("read the tail");
            read.extend(new);
            assert!(
                read.len() as u64 >= commit.0,
                "everything committed is in the file"
            );
            if tail.position() == Position(total) {
                break;
            }
            watch.changed(Duration::from_millis(100)).await;
        }
        read
    });
    writer.await.expect("the writer");
    let read = reader.await.expect("the reader");
    let all = store.entries_after(Position(0), 1000).await.expect("read");
    assert_eq!(read, all, "in order, none twice, none missing");
    assert_eq!(read_commit(dir.path()).expect("read"), Position(total));
}

#[tokio::test]
async fn a_cut_log_is_reported() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let first: Vec<Entry> = [1, 4, 7, 10, 13].map(|n| w.join(n)).to_vec();
    store.append(&first).expect("append");
    store.flush().await.expect("flush");
    let mut tail = LogTail::open(dir.path()).expect("open the tail");
    assert_eq!(tail.read_new().expect("read"), first);

    store.truncate_after(Position(3)).await.expect("truncate");
    let error = tail.read_new().expect_err("the cut is noticed");
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    assert!(error.to_string().contains("from the start"), "{error}");

    // A new tail reads what is there; then the log is cut and written again past it.
    let mut tail = LogTail::open(dir.path()).expect("open the tail");
    assert_eq!(tail.read_new().expect("read"), first[..3]);
    store.truncate_after(Position(1)).await.expect("truncate");
    let mut w = Writer::after(&store);
    let again: Vec<Entry> = (0..6)
        .map(|seq| w.post(1, seq, Time(seq), "a longer post than a join"))
        .collect();
    store.append(&again).expect("append");
    store.flush().await.expect("flush");
    let error = tail.read_new().expect_err("the rewrite is noticed");
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn a_replaced_log_is_reported() {
    let (bytes, entries) = log_bytes(3).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    fs::write(dir.path().join(LOG_FILE), &bytes).expect("write the log");
    let mut tail = LogTail::open(dir.path()).expect("open the tail");
    assert_eq!(tail.read_new().expect("read"), entries);
    let other = dir.path().join("other.log");
    fs::write(&other, &bytes).expect("write a copy");
    fs::rename(&other, dir.path().join(LOG_FILE)).expect("replace the log");
    let error = tail.read_new().expect_err("the replacement is noticed");
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn a_record_out_of_place_is_an_error() {
    let (bytes, _) = log_bytes(3).await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    // Records 1 and 3: position 2 is missing.
    let second = 8 + u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let third =
        second + 8 + u32::from_le_bytes(bytes[second..second + 4].try_into().expect("4")) as usize;
    let mut gap = bytes[..second].to_vec();
    gap.extend_from_slice(&bytes[third..]);
    fs::write(dir.path().join(LOG_FILE), &gap).expect("write the log");
    let mut tail = LogTail::open(dir.path()).expect("open the tail");
    let error = tail.read_new().expect_err("a gap");
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    assert_eq!(
        tail.position(),
        Position(0),
        "nothing of a failed read counts"
    );
    assert!(LogTail::open(&dir.path().join("none")).is_err());
}

#[tokio::test]
async fn a_reader_reads_chosen_entries_again_where_the_tail_found_them() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let mut entries = vec![w.join(1)];
    entries.extend((1..=20).map(|seq| w.post(1, seq, Time(seq), &format!("post {seq}"))));
    store.append(&entries).expect("append");
    store.flush().await.expect("flush");
    let located = LogTail::open(dir.path())
        .expect("open the tail")
        .read_committed(Position(u64::MAX), usize::MAX)
        .expect("read");
    assert_eq!(
        located.iter().map(|l| l.entry.clone()).collect::<Vec<_>>(),
        entries
    );
    assert_eq!(located[0].offset, 0);

    let reader = LogReader::open(dir.path()).expect("open the reader");
    // Every third entry, with the records between passed over.
    let chosen: Vec<&Located> = located.iter().step_by(3).collect();
    let wanted: Vec<(Position, u64)> = chosen
        .iter()
        .map(|l| (l.entry.position, l.offset))
        .collect();
    let expected: Vec<Entry> = chosen.iter().map(|l| l.entry.clone()).collect();
    assert_eq!(reader.read(&wanted).expect("read again"), expected);
    assert_eq!(reader.read(&[]).expect("nothing"), Vec::<Entry>::new());

    // An entry that is not where it was found is an error, not another entry.
    let wrong = [(Position(2), located[2].offset)];
    let error = reader.read(&wrong).expect_err("position 3 is there");
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    let between = [(Position(2), located[1].offset + 1)];
    let error = reader.read(&between).expect_err("no record starts there");
    assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
}
