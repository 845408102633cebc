//! The course view: its files hold exactly what the log says, and are rebuilt the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;

use tsn_core::Store;
use tsn_core::change::Entry;
use tsn_core::course::{PostRecord, parse_post_records};
use tsn_core::id::{Position, Time};
use tsn_core::store::conformance::TRICKY_TEXTS;
use tsn_fs::{FileStore, VIEW_POS_FILE};

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

    // Closed cleanly: the marker says the view is current, and the open writes nothing.
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 0, "nothing to rewrite");
    store.settle_view().await;
    assert_eq!(view_files(dir.path()), before, "left identical");
    drop(store);

    // Lost and stale files: the open writes the lost ones again and removes the others.
    fs::remove_file(dir.path().join("4.txt")).expect("remove");
    fs::remove_file(dir.path().join("all_users.txt")).expect("remove");
    fs::write(
        dir.path().join("10_timeline.txt"),
        "a user the log never named",
    )
    .expect("write");
    fs::write(dir.path().join(".4.txt.tmp"), "a rebuild cut short").expect("write");
    fs::write(dir.path().join("notes.md"), "not ours").expect("write");
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 2, "the two lost files");
    let mut after = view_files(dir.path());
    assert_eq!(
        after.remove("notes.md").as_deref(),
        Some("not ours"),
        "other files are left alone"
    );
    assert_eq!(after, before, "the view is whole again");
    drop(store);

    // A file damaged behind the store's back: the marker cannot tell (the view is not
    // read at open); removing the marker makes the open rebuild the whole view, which
    // writes the files that differ.
    fs::write(dir.path().join("1_timeline.txt"), "T garbage").expect("damage");
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 0);
    drop(store);
    fs::remove_file(dir.path().join(VIEW_POS_FILE)).expect("remove the marker");
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 1, "the damaged file");
    let mut after = view_files(dir.path());
    after.remove("notes.md");
    assert_eq!(after, before, "the view is whole again");
    drop(store);

    // No marker and no view: every file is written.
    fs::remove_file(dir.path().join(VIEW_POS_FILE)).expect("remove the marker");
    for name in before.keys() {
        fs::remove_file(dir.path().join(name)).expect("remove a view file");
    }
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, expected.len());
    let mut after = view_files(dir.path());
    after.remove("notes.md");
    assert_eq!(after, before, "rebuilt identical");
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while marker(dir.path()) != log.len() as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the marker names the kept position"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(store);
    let (_store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, log.len() as u64);
    assert_eq!(recovery.view_files, 0, "the view was current");
    assert_eq!(view_files(dir.path()), expected);
}

/// The view a full rebuild writes from the log in `dir`: the log (and membership record)
/// copied to a folder of their own, opened there.
fn rebuilt(dir: &std::path::Path) -> BTreeMap<String, String> {
    let copy = tempfile::tempdir().expect("a temporary folder");
    for name in [tsn_fs::LOG_FILE, tsn_fs::MEMBERSHIP_FILE] {
        fs::copy(dir.join(name), copy.path().join(name)).expect("copy");
    }
    let (store, recovery) = open(copy.path());
    assert!(recovery.view_files > 0, "a full rebuild");
    drop(store);
    view_files(copy.path())
}

fn marker(dir: &std::path::Path) -> u64 {
    let bytes = fs::read(dir.join(VIEW_POS_FILE)).expect("read the marker");
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

fn set_marker(dir: &std::path::Path, value: u64) {
    fs::write(dir.join(VIEW_POS_FILE), value.to_le_bytes()).expect("write the marker");
}

#[tokio::test]
async fn a_store_closed_cleanly_reopens_without_writing_the_view() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let (log, expected) = scenario(&store);
    for batch in log.chunks(3) {
        store.append(batch).expect("append");
        store.flush().await.expect("flush");
    }
    drop(store);
    assert_eq!(
        marker(dir.path()),
        log.len() as u64,
        "the marker names the log's end"
    );
    assert_eq!(view_files(dir.path()), expected, "written by the close");
    let times = || {
        expected
            .keys()
            .map(|name| {
                let meta = fs::metadata(dir.path().join(name)).expect("a view file");
                (meta.modified().expect("a time"), meta.ino())
            })
            .collect::<Vec<_>>()
    };
    let before = times();
    for _ in 0..3 {
        let (store, recovery) = open(dir.path());
        assert_eq!(recovery.entries, log.len() as u64);
        assert_eq!(recovery.view_files, 0, "nothing written");
        drop(store);
    }
    assert_eq!(times(), before, "no file touched");
    assert_eq!(view_files(dir.path()), expected);
}

#[tokio::test]
async fn the_view_shows_only_durable_entries_unless_settled() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    store
        .append(&[w.join(1), w.join(4), w.follow(1, 4, 10)])
        .expect("append");
    store.flush().await.expect("flush");
    store.settle_view().await;
    let durable = view_files(dir.path());
    store
        .append(&[w.post(4, 1, at(1), "not durable")])
        .expect("append");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(view_files(dir.path()), durable, "held back until flushed");

    // Settling writes it anyway, and the marker stops promising anything.
    store.settle_view().await;
    assert_eq!(
        view_files(dir.path())["4.txt"],
        record(4, at(1), "not durable")
    );
    assert_eq!(marker(dir.path()), u64::MAX);
    // Dropped without a flush: the log loses the post, and the open rebuilds the view.
    drop(store);
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, 3);
    assert_eq!(recovery.view_files, 2, "4.txt and 1_timeline.txt");
    assert_eq!(view_files(dir.path()), durable);

    // Flushed after a settle, the marker catches up.
    let mut w = Writer::after(&store);
    store
        .append(&[w.post(4, 2, at(2), "durable soon")])
        .expect("append");
    store.settle_view().await;
    assert_eq!(marker(dir.path()), u64::MAX);
    store.flush().await.expect("flush");
    store.settle_view().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while marker(dir.path()) != 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the marker catches up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    drop(store);
    let (_store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 0);
}

#[tokio::test]
async fn a_view_behind_its_marker_is_repaired_where_the_later_entries_touch() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let (log, first) = scenario(&store);
    store.append(&log).expect("append");
    store.flush().await.expect("flush");
    drop(store);
    assert_eq!(marker(dir.path()), log.len() as u64);

    // More entries, written to the log and the view.
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let more = [
        w.join(10),
        w.follow(10, 4, at(300).0),
        w.unfollow(1, 7, at(301).0),
        w.post(4, 300, at(302), "for 1 and 10"),
    ];
    store.append(&more).expect("append more");
    store.flush().await.expect("flush");
    drop(store);
    let last = view_files(dir.path());
    assert_eq!(last, rebuilt(dir.path()));
    let touched = [
        "all_users.txt",
        "10_following.txt",
        "10_followers.txt",
        "10.txt",
        "10_timeline.txt",
        "4_followers.txt",
        "1_following.txt",
        "7_followers.txt",
        "4.txt",
        "1_timeline.txt",
    ];
    let changed: BTreeSet<&str> = last
        .keys()
        .filter(|name| first.get(*name) != last.get(*name))
        .map(String::as_str)
        .collect();
    assert_eq!(
        changed,
        touched.into_iter().collect(),
        "what the later entries change"
    );

    // A crash with the marker behind, the view written all the same: nothing to write.
    set_marker(dir.path(), log.len() as u64);
    let (store, recovery) = open(dir.path());
    assert_eq!(
        recovery.view_files, 0,
        "the touched files hold what they should"
    );
    drop(store);
    assert_eq!(marker(dir.path()), (log.len() + more.len()) as u64);

    // A crash with the marker behind and the view as it was then; a file no later entry
    // touches is damaged too, which only a full rebuild would see.
    set_marker(dir.path(), log.len() as u64);
    for name in last.keys() {
        match first.get(name) {
            Some(text) => fs::write(dir.path().join(name), text).expect("restore"),
            None => fs::remove_file(dir.path().join(name)).expect("remove"),
        }
    }
    fs::write(dir.path().join("4.txt"), &first["4.txt"][..20]).expect("cut short");
    fs::write(dir.path().join("7_timeline.txt"), "untouched and damaged").expect("damage");
    let (store, recovery) = open(dir.path());
    assert_eq!(
        recovery.view_files,
        touched.len(),
        "the touched files, no other"
    );
    drop(store);
    let mut repaired = view_files(dir.path());
    assert_eq!(
        repaired
            .insert("7_timeline.txt".to_owned(), last["7_timeline.txt"].clone())
            .as_deref(),
        Some("untouched and damaged"),
        "an untouched file is not read"
    );
    assert_eq!(
        repaired, last,
        "the touched files as a full rebuild writes them"
    );

    // A marker ahead of the log (a log cut short): the whole view is rebuilt.
    set_marker(dir.path(), 1_000);
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 1, "the damaged file");
    drop(store);
    assert_eq!(view_files(dir.path()), last);

    // A torn record at the log's end: cut, and the whole view rebuilt.
    fs::write(dir.path().join("7_timeline.txt"), "damaged again").expect("damage");
    let mut log_file = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(tsn_fs::LOG_FILE))
        .expect("open the log");
    std::io::Write::write_all(&mut log_file, &[9, 0, 0, 0, 1, 2]).expect("tear");
    drop(log_file);
    let (store, recovery) = open(dir.path());
    assert!(recovery.cut.is_some());
    assert_eq!(recovery.view_files, 1, "the damaged file");
    drop(store);
    assert_eq!(view_files(dir.path()), last);
}

#[tokio::test]
async fn a_burst_of_posts_leaves_the_view_a_full_rebuild_writes() {
    const USERS: u32 = 3_000; // 1,000 local ones
    const POSTS: u64 = 100_000;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let mut setup: Vec<Entry> = (1..=USERS).map(|u| w.join(u)).collect();
    for u in 1..=USERS {
        for k in [1, 7, 300] {
            setup.push(w.follow(u, (u + k - 1) % USERS + 1, 10));
        }
    }
    store.append(&setup).expect("append the users");
    store.flush().await.expect("flush");
    let mut batch = Vec::with_capacity(1_000);
    for seq in 1..=POSTS {
        let author = (seq * 7 % u64::from(USERS)) as u32 + 1;
        batch.push(w.post(author, seq, at(seq), &format!("burst post {seq}")));
        if batch.len() == batch.capacity() {
            store.append(&batch).expect("append a burst");
            batch.clear();
            store.flush().await.expect("flush");
        }
    }
    // Some unfollows in the middle of it, and more posts.
    store
        .append(&[
            w.unfollow(1, 2, at(POSTS + 1).0),
            w.unfollow(4, 5, at(POSTS + 1).0),
        ])
        .expect("append");
    for seq in POSTS + 1..=POSTS + 1_000 {
        let author = (seq % u64::from(USERS)) as u32 + 1;
        store
            .append(&[w.post(author, seq, at(seq), "after")])
            .expect("append");
    }
    store.flush().await.expect("flush");
    store.settle_view().await;
    let files = view_files(dir.path());
    assert_eq!(files.len(), 1 + 4 * 1_000);
    assert_eq!(files, rebuilt(dir.path()), "the view a full rebuild writes");
    drop(store);
    let (_store, recovery) = open(dir.path());
    assert_eq!(recovery.view_files, 0);
}

#[tokio::test]
async fn files_far_behind_are_repaired_in_parts_to_what_a_rebuild_writes() {
    // One author's posts file and its readers' timelines, tens of thousands of records
    // each: more than the writer's queue holds, so the view goes stale, and more than one
    // repair step takes of a file at a time.
    const USERS: u32 = 30;
    const POSTS: u64 = 40_000;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let mut w = Writer::after(&store);
    let mut setup: Vec<Entry> = (1..=USERS).map(|u| w.join(u)).collect();
    for reader in [4, 7, 10] {
        setup.push(w.follow(reader, 1, 10));
    }
    store.append(&setup).expect("append the users");
    store.flush().await.expect("flush");
    let mut batch = Vec::with_capacity(2_000);
    for seq in 1..=POSTS {
        batch.push(w.post(1, seq, at(seq), &format!("post {seq} of a long run")));
        if batch.len() == batch.capacity() {
            store.append(&batch).expect("append");
            batch.clear();
        }
    }
    store.flush().await.expect("flush");
    store.settle_view().await;
    let files = view_files(dir.path());
    let timeline = files.get("4_timeline.txt").expect("a reader's timeline");
    assert_eq!(timeline.matches("W post ").count(), POSTS as usize);
    assert_eq!(files, rebuilt(dir.path()), "the view a full rebuild writes");
}

#[tokio::test]
async fn an_audit_reads_the_log_back_and_finds_every_view_file_that_differs() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let (log, _) = scenario(&store);
    store.append(&log).expect("append");
    store.flush().await.expect("flush");
    store.settle_view().await;
    drop(store);

    let clean = tsn_fs::audit(dir.path()).expect("an audit");
    assert_eq!(clean.entries, log, "every entry, in order");
    assert_eq!(clean.damage, None);
    assert!(
        clean.view_differences.is_empty(),
        "{:?}",
        clean.view_differences
    );

    // A timeline that lost its last record, a following file gone, a file of nobody.
    let timeline = dir.path().join("1_timeline.txt");
    let text = fs::read_to_string(&timeline).expect("read");
    fs::write(&timeline, &text[..text.len() - 5]).expect("write");
    fs::remove_file(dir.path().join("4_following.txt")).expect("remove");
    fs::write(dir.path().join("9_timeline.txt"), "").expect("write");
    let audit = tsn_fs::audit(dir.path()).expect("an audit");
    let named: Vec<&str> = audit
        .view_differences
        .iter()
        .map(|d| d.split(' ').next().expect("a name"))
        .collect();
    assert_eq!(
        named,
        ["1_timeline.txt", "4_following.txt", "9_timeline.txt"],
        "{:?}",
        audit.view_differences
    );
    assert_eq!(audit.entries, log);
    assert!(
        dir.path().join("9_timeline.txt").exists(),
        "an audit repairs nothing"
    );
}
