//! Crash repair: a log cut anywhere, or damaged past what was surely durable, reopens with
//! the whole records before the damage and nothing after, repaired to a record boundary,
//! and carries on; damage to what was durable, with sound records after it, is refused and
//! left as it is.

use std::fs;
use std::path::Path;

use tempfile::TempDir;
use tsn_core::change::Entry;
use tsn_core::id::{Position, Time};
use tsn_core::{Error, Store};
use tsn_fs::{COMMIT_FILE, Cut, Damage, FileStore, LOG_FILE, Recovery};

use crate::common::{Writer, membership, open};

/// A flushed log of five entries: its entries, its bytes, and where each record starts
/// (and, last, where the log ends).
struct Sample {
    entries: Vec<Entry>,
    bytes: Vec<u8>,
    bounds: Vec<usize>,
}

async fn sample() -> Sample {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let entries = vec![
        w.join(1),
        w.join(4),
        w.follow(1, 4, 10),
        w.post(4, 1, Time(20), "hello \"world\" 🎉"),
        w.join(7),
    ];
    store.append(&entries).expect("append");
    store.flush().await.expect("flush");
    drop(store);
    let bytes = fs::read(dir.path().join(LOG_FILE)).expect("read the log");
    let mut bounds = vec![0];
    while *bounds.last().expect("a bound") < bytes.len() {
        let at = *bounds.last().expect("a bound");
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        bounds.push(at + 8 + len as usize);
    }
    assert_eq!(bounds.len(), 6, "five records");
    assert_eq!(bounds[5], bytes.len());
    Sample {
        entries,
        bytes,
        bounds,
    }
}

/// Opens a copy of a replica whose log holds `bytes`.
fn open_log(bytes: &[u8]) -> (TempDir, FileStore, Recovery) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    fs::write(dir.path().join(LOG_FILE), bytes).expect("write the log");
    let (store, recovery) = open(dir.path());
    (dir, store, recovery)
}

fn log_len(dir: &Path) -> usize {
    fs::metadata(dir.join(LOG_FILE)).expect("the log").len() as usize
}

/// Checks that `store` holds exactly `kept`, and that its log takes a new entry, flushes
/// and reopens with it.
async fn holds_and_continues(dir: &Path, store: FileStore, kept: &[Entry]) {
    let last = Position(kept.len() as u64);
    assert_eq!(store.read(|s| s.last().position), last);
    assert_eq!(store.durable(), last);
    assert_eq!(
        store.entries_after(Position(0), 100).await.expect("read"),
        kept
    );
    let next = Writer::after(&store).join(10);
    store
        .append(std::slice::from_ref(&next))
        .expect("append after repair");
    assert_eq!(store.flush().await.expect("flush"), last.next());
    drop(store);
    let (store, recovery) = open(dir);
    assert_eq!(recovery.entries, kept.len() as u64 + 1);
    assert_eq!(recovery.cut, None, "nothing left to repair");
    let mut all = kept.to_vec();
    all.push(next);
    assert_eq!(
        store.entries_after(Position(0), 100).await.expect("read"),
        all
    );
}

#[tokio::test]
async fn a_log_cut_anywhere_keeps_every_whole_record_before_the_cut() {
    let sample = sample().await;
    let b = &sample.bounds;
    let mut cuts: Vec<usize> = (b[4]..=b[5]).collect();
    for i in 0..4 {
        cuts.extend([b[i], b[i] + 1, b[i] + 4, b[i] + 8, (b[i] + b[i + 1]) / 2]);
    }
    for cut in cuts {
        let kept = b.iter().filter(|&&bound| bound <= cut).count() - 1;
        let (dir, store, recovery) = open_log(&sample.bytes[..cut]);
        assert_eq!(recovery.entries, kept as u64, "cut at {cut}");
        let expected = (cut > b[kept]).then(|| Cut {
            offset: b[kept] as u64,
            bytes: (cut - b[kept]) as u64,
            damage: Damage::Incomplete,
        });
        assert_eq!(recovery.cut, expected, "cut at {cut}");
        assert_eq!(
            log_len(dir.path()),
            b[kept],
            "repaired to a record boundary"
        );
        holds_and_continues(dir.path(), store, &sample.entries[..kept]).await;
    }
}

#[tokio::test]
async fn a_damaged_last_record_is_cut() {
    let sample = sample().await;
    let b = &sample.bounds;
    let end = sample.bytes.len() as u64;

    // A flipped bit in the payload of the last record: its checksum fails.
    let mut flipped = sample.bytes.clone();
    flipped[b[4] + 8 + 3] ^= 0x20;
    let (dir, store, recovery) = open_log(&flipped);
    assert_eq!(
        recovery.cut,
        Some(Cut {
            offset: b[4] as u64,
            bytes: end - b[4] as u64,
            damage: Damage::Checksum
        })
    );
    assert_eq!(recovery.entries, 4);
    assert_eq!(log_len(dir.path()), b[4]);
    holds_and_continues(dir.path(), store, &sample.entries[..4]).await;

    // A damaged length field of the last record.
    let mut flipped = sample.bytes.clone();
    flipped[b[4] + 1] ^= 0x01;
    let (dir, store, recovery) = open_log(&flipped);
    assert_eq!(recovery.entries, 4);
    assert_eq!(recovery.cut.as_ref().map(|c| c.offset), Some(b[4] as u64));
    holds_and_continues(dir.path(), store, &sample.entries[..4]).await;

    // A sound record that is not the next position: the second record again.
    let mut repeated = sample.bytes.clone();
    repeated.extend_from_slice(&sample.bytes[b[1]..b[2]]);
    let (dir, store, recovery) = open_log(&repeated);
    assert_eq!(recovery.entries, 5);
    let cut = recovery.cut.expect("a cut");
    assert_eq!((cut.offset, cut.bytes), (end, (b[2] - b[1]) as u64));
    assert!(matches!(cut.damage, Damage::OutOfOrder(_)), "{cut}");
    holds_and_continues(dir.path(), store, &sample.entries).await;

    // Zeros after the end, as a file system may leave after a crash.
    let mut zeros = sample.bytes.clone();
    zeros.extend_from_slice(&[0; 16]);
    let (dir, store, recovery) = open_log(&zeros);
    let cut = recovery.cut.expect("a cut");
    assert_eq!((cut.offset, cut.bytes), (end, 16));
    assert!(matches!(cut.damage, Damage::Undecodable(_)), "{cut}");
    holds_and_continues(dir.path(), store, &sample.entries).await;
}

/// Records in the commit marker of `dir` that the log was committed, so durable, through
/// `position`.
fn committed_through(dir: &Path, position: u64) {
    fs::write(dir.join(COMMIT_FILE), position.to_le_bytes()).expect("write the commit marker");
}

#[tokio::test]
async fn durable_damage_with_sound_records_after_it_is_refused_and_left_alone() {
    let sample = sample().await;
    let b = &sample.bounds;
    let payload = |record: usize| b[record] + 8 + 3;
    let length = |record: usize| b[record];
    for (flip, position) in [(payload(2), 3), (length(3), 4), (payload(0), 1)] {
        let mut flipped = sample.bytes.clone();
        flipped[flip] ^= 0x20;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log = dir.path().join(LOG_FILE);
        fs::write(&log, &flipped).expect("write the log");
        committed_through(dir.path(), 5);
        let refused = FileStore::open(dir.path(), membership());
        let Err(Error::Corrupt(why)) = refused else {
            panic!("a byte flipped at {flip} must be refused: {refused:?}");
        };
        assert!(
            why.contains(&format!(
                "the record of position {position} at offset {}",
                b[position - 1]
            )) && why.contains(LOG_FILE)
                && !why.contains('\n'),
            "one line that says where: {why}"
        );
        assert_eq!(fs::read(&log).expect("the log"), flipped, "the log is kept");
    }
}

#[tokio::test]
async fn unflushed_entries_are_gone_after_a_crash_and_flushed_ones_stay() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let flushed = [w.join(1), w.join(4)];
    store.append(&flushed).expect("append");
    store.flush().await.expect("flush");
    let unflushed = w.join(7);
    store
        .append(std::slice::from_ref(&unflushed))
        .expect("append");
    assert_eq!(store.durable(), Position(2));
    assert_eq!(
        store.entries_after(Position(1), 10).await.expect("read"),
        [flushed[1].clone(), unflushed],
        "durable and pending entries are read together"
    );
    drop(store);
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, 2);
    assert_eq!(recovery.cut, None);
    holds_and_continues(dir.path(), store, &flushed).await;
}

#[tokio::test]
async fn damage_past_what_was_durable_is_cut_though_sound_records_follow() {
    // A power loss in the middle of a flush of records 3 to 5 kept the sectors of 5 and
    // lost those of 4: none of them was durable, so none was acknowledged.
    let sample = sample().await;
    let b = &sample.bounds;
    let mut torn = sample.bytes.clone();
    torn[b[3] + 8 + 3] ^= 0x20;
    let dir = tempfile::tempdir().expect("a temporary folder");
    fs::write(dir.path().join(LOG_FILE), &torn).expect("write the log");
    committed_through(dir.path(), 2);
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, 3);
    assert_eq!(recovery.cut.map(|c| c.offset), Some(b[3] as u64));
    holds_and_continues(dir.path(), store, &sample.entries[..3]).await;
}
