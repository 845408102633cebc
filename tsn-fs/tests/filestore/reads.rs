//! Reading a long log back (the store keeps where only some records start): entries from
//! any position, and truncations at any position, before and after a reopen.

use tsn_core::Store;
use tsn_core::id::{Position, Time};

use crate::common::{Writer, open};

/// How many entries the log holds: a few strides of the store's index and a part of one.
const ENTRIES: u64 = 300;

/// A store holding [`ENTRIES`] durable entries: users 1 to 3 joined, then posts.
async fn long_log(dir: &std::path::Path) -> tsn_fs::FileStore {
    let (store, _) = open(dir);
    let mut writer = Writer::after(&store);
    let mut entries = vec![writer.join(1), writer.join(2), writer.join(3)];
    for seq in 1..=ENTRIES - 3 {
        entries.push(writer.post(1, seq, Time(seq), &format!("post {seq}")));
    }
    for chunk in entries.chunks(37) {
        store.append(chunk).expect("append");
        store.flush().await.expect("flush");
    }
    store
}

/// The positions `entries_after(after, max)` returns.
async fn positions(store: &tsn_fs::FileStore, after: u64, max: usize) -> Vec<u64> {
    store
        .entries_after(Position(after), max)
        .await
        .expect("read")
        .iter()
        .map(|entry| entry.position.0)
        .collect()
}

#[tokio::test]
async fn entries_come_back_from_any_position() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = long_log(dir.path()).await;
    for after in [0, 1, 62, 63, 64, 65, 127, 128, 200, 255, 256, 299, 300] {
        for max in [1, 5, 64, 1000] {
            let expected: Vec<u64> = (after + 1..=ENTRIES).take(max).collect();
            assert_eq!(
                positions(&store, after, max).await,
                expected,
                "after {after}, at most {max}"
            );
        }
    }

    // Reopened: the index is rebuilt from the log.
    drop(store);
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, ENTRIES);
    for after in [0, 63, 64, 65, 190, 299] {
        let expected: Vec<u64> = (after + 1..=ENTRIES).take(70).collect();
        assert_eq!(
            positions(&store, after, 70).await,
            expected,
            "after {after}"
        );
    }
}

#[tokio::test]
async fn entries_come_back_alike_from_memory_from_the_file_and_from_both() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    drop(long_log(dir.path()).await);
    // Reopened, the store holds no entry in memory; ten more are appended and made
    // durable (in memory too), and five are appended but not yet durable.
    let (store, _) = open(dir.path());
    let mut writer = Writer::after(&store);
    let more: Vec<_> = (1..=15)
        .map(|n| writer.post(2, n, Time(1000 + n), &format!("more {n}")))
        .collect();
    store.append(&more[..10]).expect("append");
    store.flush().await.expect("flush");
    store.append(&more[10..]).expect("append");
    let last = ENTRIES + 15;
    for after in [0, 290, 299, 300, 301, 305, 309, 310, 312, 314, 315] {
        for max in [1, 3, 12, 1000] {
            let expected: Vec<u64> = (after + 1..=last).take(max).collect();
            assert_eq!(
                positions(&store, after, max).await,
                expected,
                "after {after}, at most {max}"
            );
        }
    }
    let texts: Vec<String> = store
        .entries_after(Position(ENTRIES), 15)
        .await
        .expect("read")
        .into_iter()
        .map(|entry| match entry.change {
            tsn_core::change::Change::Posted(post) => post.text.to_string(),
            other => panic!("a post was expected, not {other:?}"),
        })
        .collect();
    let expected: Vec<String> = (1..=15).map(|n| format!("more {n}")).collect();
    assert_eq!(
        texts, expected,
        "the entries themselves, not only their positions"
    );
}

#[tokio::test]
async fn a_truncation_at_any_position_keeps_exactly_what_it_should() {
    for keep in [0, 1, 63, 64, 65, 150, 256, 299] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = long_log(dir.path()).await;
        store
            .truncate_after(Position(keep))
            .await
            .expect("truncate");
        let expected: Vec<u64> = (1..=keep).collect();
        assert_eq!(positions(&store, 0, 1000).await, expected, "keep {keep}");

        // Appends go on from there, and a reopen finds the same log.
        let mut writer = Writer::after(&store);
        let next = writer.join(9);
        store.append(&[next]).expect("append");
        store.flush().await.expect("flush");
        drop(store);
        let (store, recovery) = open(dir.path());
        assert_eq!(recovery.entries, keep + 1, "keep {keep}");
        assert!(recovery.cut.is_none(), "keep {keep}: {:?}", recovery.cut);
        let expected: Vec<u64> = (1..=keep + 1).collect();
        assert_eq!(positions(&store, 0, 1000).await, expected, "keep {keep}");
    }
}
