//! The course view: its files hold exactly what the log says, and are rebuilt the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use tsn_core::Store;
use tsn_core::change::Entry;
use tsn_core::course::{PostRecord, parse_post_records};
use tsn_core::id::{Position, Time};
use tsn_core::store::conformance::TRICKY_TEXTS;
use tsn_fs::FileStore;

use crate::common::{Writer, open, user, view_files};

const BASE: u64 = 1_700_000_000;

fn at(seconds: u64) -> Time {
    Time::from_unix(BASE + seconds, 250_000_000)
}

/// The course record, written here independently of the crate.
fn record(author: u32, time: Time, text: &str) -> String {
    let shown = chrono::DateTime::from_timestamp(time.unix_seconds() as i64, 0)
        .expect("a time")
        .format("%Y-%m-%d %H:%M:%S");
    // The tricky texts hold no control characters but tabs: only `\` is escaped.
    format!(
        "T {shown}\nU {author}\nW {}\n\n",
        text.replace('\\', "\\\\")
    )
}

/// Cluster 1 of 3: users 1, 4, 7 are local, 2 is not. Returns the log and the expected
/// view files.
fn scenario(store: &FileStore) -> (Vec<Entry>, BTreeMap<String, String>) {
    let mut w = Writer::after(store);
    let mut log = vec![
        w.join(1),
        w.join(4),
        w.join(2),
        w.join(7),
        w.join(4), // known already: no second line
        w.follow(1, 4, 10),
        w.follow(7, 4, 10),
        w.follow(2, 4, 10), // a remote follower of a local user
        w.follow(1, 7, 10),
        w.follow(4, 1, 10),
        w.follow(1, 2, 10), // a local user following a remote one
        w.follow(1, 4, 11), // already following: nothing changes
    ];
    let mut posts_of_4 = String::new();
    for (i, text) in TRICKY_TEXTS.iter().enumerate() {
        let seq = i as u64 + 1;
        log.push(w.post(4, seq, at(seq), text));
        posts_of_4.push_str(&record(4, at(seq), text));
    }
    let seen_by_7 = posts_of_4.clone();
    log.push(w.post(4, 1, at(1), TRICKY_TEXTS[0])); // a repeat: applied once
    log.push(w.unfollow(7, 4, at(100).0));
    log.push(w.unfollow(7, 4, at(101).0)); // not following any more: nothing changes
    log.push(w.post(4, 100, at(200), "after the unfollow"));
    posts_of_4.push_str(&record(4, at(200), "after the unfollow"));
    log.push(w.post(2, 1, at(201), "from cluster 2 \\o/"));
    log.push(w.post(1, 1, at(202), "one's own"));
    let timeline_of_1 = posts_of_4.clone() + &record(2, at(201), "from cluster 2 \\o/");

    let files = [
        ("all_users.txt", "1\n4\n2\n7\n".to_owned()),
        ("1_following.txt", "4\n7\n2\n".to_owned()),
        ("1_followers.txt", "4\n".to_owned()),
        ("1.txt", record(1, at(202), "one's own")),
        ("1_timeline.txt", timeline_of_1),
        ("4_following.txt", "1\n".to_owned()),
        ("4_followers.txt", "1\n2\n".to_owned()),
        ("4.txt", posts_of_4),
        ("4_timeline.txt", record(1, at(202), "one's own")),
        ("7_following.txt", String::new()),
        ("7_followers.txt", "1\n".to_owned()),
        ("7.txt", String::new()),
        ("7_timeline.txt", seen_by_7),
    ];
    let files = files
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text))
        .collect();
    (log, files)
}

#[tokio::test]
async fn the_view_holds_exactly_what_the_log_says() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let (log, expected) = scenario(&store);
    for batch in log.chunks(5) {
        store.append(batch).expect("append");
    }
    store.settle_view().await;
    let files = view_files(dir.path());
    assert_eq!(
        files.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "one set of files per local user, none for user 2"
    );
    for (name, text) in &expected {
        assert_eq!(&files[name], text, "{name}");
    }

    // The records read back to the posts, texts unescaped.
    let posts: Vec<PostRecord> = parse_post_records(&files["4.txt"]).expect("parse 4.txt");
    let texts: Vec<&str> = posts.iter().map(|p| p.text.as_str()).collect();
    let mut expected_texts = TRICKY_TEXTS.to_vec();
    expected_texts.push("after the unfollow");
    assert_eq!(texts, expected_texts);
    assert!(posts.iter().all(|p| p.author == user(4)));
    store.read(|s| {
        let stored: Vec<String> = s.posts_by(user(4)).map(|p| p.text.to_string()).collect();
        assert_eq!(stored, texts);
    });
}

#[tokio::test]
async fn the_view_is_rebuilt_identical_at_open_and_repaired() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let (log, expected) = scenario(&store);
    store.append(&log).expect("append");
    store.flush().await.expect("flush");
    store.settle_view().await;
    let before = view_files(dir.path());
    assert_eq!(before, expected);
    drop(store);

    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, expected.len());
    store.settle_view().await;
    assert_eq!(view_files(dir.path()), before, "rebuilt identical");
    drop(store);

    // Lost, damaged and stale files.
    fs::remove_file(dir.path().join("4.txt")).expect("remove");
    fs::remove_file(dir.path().join("all_users.txt")).expect("remove");
    fs::write(dir.path().join("1_timeline.txt"), "T garbage").expect("damage");
    fs::write(
        dir.path().join("10_timeline.txt"),
        "a user the log never named",
    )
    .expect("write");
    fs::write(dir.path().join(".4.txt.tmp"), "a rebuild cut short").expect("write");
    fs::write(dir.path().join("notes.md"), "not ours").expect("write");
    let (store, _) = open(dir.path());
    let mut after = view_files(dir.path());
    assert_eq!(
        after.remove("notes.md").as_deref(),
        Some("not ours"),
        "other files are left alone"
    );
    assert_eq!(after, before, "the view is whole again");
    drop(store);
}

#[tokio::test]
async fn truncation_rebuilds_the_view_as_a_fresh_open_would() {
    let (log, expected) = {
        let dir = tempfile::tempdir().expect("a temporary folder");
        scenario(&open(dir.path()).0)
    };
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    store.append(&log).expect("append");
    store.flush().await.expect("flush");
    let mut w = Writer::after(&store);
    store
        .append(&[
            w.join(10),
            w.follow(10, 4, 10),
            w.follow(7, 4, at(300).0),
            w.post(4, 101, at(400), "dropped"),
        ])
        .expect("append a tail");
    store.settle_view().await;
    assert!(dir.path().join("10_timeline.txt").exists());
    store
        .truncate_after(Position(log.len() as u64))
        .await
        .expect("truncate");
    store.settle_view().await;
    assert_eq!(
        view_files(dir.path()),
        expected,
        "the tail is gone from the view"
    );
    drop(store);
    let (_store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, log.len() as u64);
    assert_eq!(view_files(dir.path()), expected);
}
