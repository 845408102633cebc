//! The [`Store`] contract as a test suite, run against every implementation.
//!
//! An implementation's tests provide a [`Harness`] (how to open a fresh store, and how to
//! reopen one as after a crash) and call [`run_all`]. Each check panics with a message
//! naming the broken promise.

use crate::change::{Change, Entry};
use crate::id::{ClusterId, Epoch, Membership, Position, Time, UserId};
use crate::post::{Post, PostId, PostText};
use crate::state::Delivery;
use crate::store::Store;

/// How the suite gets stores of one implementation.
pub trait Harness {
    /// The implementation under test.
    type Store: Store;

    /// A new, empty store for [`membership`].
    fn open(&mut self) -> Self::Store;

    /// `store` closed and opened again, as after a crash of its process.
    fn reopen(&mut self, store: Self::Store) -> Self::Store;
}

/// The membership every suite store uses: cluster 1 of 3 (users 1, 4, 7 ... are local).
pub fn membership() -> Membership {
    Membership {
        cluster: ClusterId(1),
        clusters: 3,
    }
}

/// Runs every check of the suite.
pub async fn run_all<H: Harness>(harness: &mut H) {
    appended_entries_are_visible_at_once(harness).await;
    bad_batches_change_nothing(harness).await;
    flushed_entries_survive_a_restart(harness).await;
    entries_are_read_back_by_position(harness).await;
    truncation_drops_the_tail_for_good(harness).await;
    any_post_text_comes_back_exactly(harness).await;
    a_repeated_post_is_applied_once(harness).await;
    concurrent_flushes_all_become_durable(harness).await;
}

fn user(n: u32) -> UserId {
    UserId::new(n).expect("a valid user id")
}

/// Checks that [`Store::last`] tells what the state does.
fn last_agrees<S: Store>(store: &S, when: &str) {
    assert_eq!(
        store.last(),
        store.read(|s| s.last()),
        "the store's last entry {when}"
    );
}

/// Builds entries at consecutive positions.
struct Writer {
    next: Position,
    epoch: Epoch,
}

impl Writer {
    fn after<S: Store>(store: &S) -> Self {
        let last = store.read(|s| s.last());
        Writer {
            next: last.position.next(),
            epoch: last.epoch.max(Epoch(1)),
        }
    }

    fn entry(&mut self, change: Change) -> Entry {
        let position = self.next;
        self.next = position.next();
        Entry {
            position,
            epoch: self.epoch,
            change,
        }
    }

    fn join(&mut self, n: u32) -> Entry {
        self.entry(Change::UserJoined {
            user: user(n),
            time: Time(n.into()),
        })
    }

    fn follow(&mut self, follower: u32, followee: u32) -> Entry {
        self.entry(Change::Followed {
            follower: user(follower),
            followee: user(followee),
            time: Time(100),
        })
    }

    fn post(&mut self, author: u32, seq: u64, text: &str) -> Entry {
        self.entry(Change::Posted(Post {
            id: PostId { origin: 42, seq },
            author: user(author),
            time: Time(1000 + seq),
            text: PostText::new(text).expect("a valid post"),
        }))
    }
}

async fn appended_entries_are_visible_at_once<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    let batch = [w.join(1), w.join(4), w.follow(1, 4), w.post(4, 1, "hello")];
    let deliveries = store.append(&batch).expect("append a valid batch");
    assert_eq!(
        deliveries,
        [
            vec![],
            vec![],
            vec![],
            vec![Delivery {
                user: user(1),
                index: 1
            }]
        ],
        "append reports the deliveries of each entry"
    );
    store.read(|s| {
        assert_eq!(s.users().collect::<Vec<_>>(), [user(1), user(4)]);
        assert!(s.is_following(user(1), user(4)));
        assert_eq!(s.timeline_len(user(1)), 1);
        assert_eq!(s.last().position, Position(4));
    });
    last_agrees(&store, "after an append");
    assert_eq!(store.flush().await.expect("flush"), Position(4));
    assert_eq!(store.durable(), Position(4));
}

async fn bad_batches_change_nothing<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    store.append(&[w.join(1)]).expect("append");
    let mut gap = Writer::after(&store);
    gap.next = Position(5);
    assert!(
        store.append(&[gap.join(4)]).is_err(),
        "a gap in positions is refused"
    );
    let mut bad = Writer::after(&store);
    let good = bad.join(7);
    let mut skipped = bad.join(10);
    skipped.position = Position(9);
    assert!(
        store.append(&[good, skipped]).is_err(),
        "a batch with a gap inside is refused"
    );
    store.read(|s| {
        assert_eq!(
            s.users().collect::<Vec<_>>(),
            [user(1)],
            "refused batches change nothing"
        );
        assert_eq!(s.last().position, Position(1));
    });
    last_agrees(&store, "after refused appends");
}

async fn flushed_entries_survive_a_restart<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    store
        .append(&[w.join(1), w.join(4), w.follow(4, 1), w.post(1, 1, "first")])
        .expect("append");
    store.flush().await.expect("flush");
    let store = harness.reopen(store);
    assert_eq!(
        store.durable(),
        Position(4),
        "durable entries are still durable"
    );
    last_agrees(&store, "after a restart");
    store.read(|s| {
        assert_eq!(s.users().collect::<Vec<_>>(), [user(1), user(4)]);
        assert_eq!(s.followers(user(1)).collect::<Vec<_>>(), [user(4)]);
        assert_eq!(s.posts_by(user(1)).count(), 1);
        assert_eq!(s.timeline_len(user(4)), 1);
    });
    let mut w = Writer::after(&store);
    store
        .append(&[w.join(7)])
        .expect("the log continues after a restart");
    store.flush().await.expect("flush");
    let store = harness.reopen(store);
    assert_eq!(store.read(|s| s.users().count()), 3);
}

async fn entries_are_read_back_by_position<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    let batch: Vec<Entry> = (1..=10).map(|n| w.join(n * 3 + 1)).collect();
    store.append(&batch[..6]).expect("append");
    store.flush().await.expect("flush");
    store.append(&batch[6..]).expect("append");
    let all = store.entries_after(Position(0), 100).await.expect("read");
    assert_eq!(
        all, batch,
        "flushed and unflushed entries read back in order"
    );
    let some = store.entries_after(Position(4), 3).await.expect("read");
    assert_eq!(some, batch[4..7], "a window of the log");
    assert!(
        store
            .entries_after(Position(10), 5)
            .await
            .expect("read")
            .is_empty(),
        "nothing after the end"
    );
}

async fn truncation_drops_the_tail_for_good<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    store
        .append(&[w.join(1), w.follow(1, 4), w.post(4, 1, "kept")])
        .expect("append");
    store.flush().await.expect("flush");
    store
        .append(&[w.post(4, 2, "dropped"), w.follow(1, 7)])
        .expect("append");
    store.flush().await.expect("flush");
    store.truncate_after(Position(3)).await.expect("truncate");
    let check = |store: &H::Store| {
        store.read(|s| {
            assert_eq!(s.last().position, Position(3));
            assert_eq!(s.timeline_len(user(1)), 1, "the dropped post is gone");
            assert!(
                !s.is_following(user(1), user(7)),
                "the dropped follow is gone"
            );
        })
    };
    check(&store);
    last_agrees(&store, "after a truncation");
    let store = harness.reopen(store);
    check(&store);
    let mut w = Writer::after(&store);
    store
        .append(&[w.post(4, 2, "rewritten")])
        .expect("the log continues after truncation");
    store.flush().await.expect("flush");
    let store = harness.reopen(store);
    let texts: Vec<String> =
        store.read(|s| s.posts_by(user(4)).map(|p| p.text.to_string()).collect());
    assert_eq!(texts, ["kept", "rewritten"]);
}

/// Texts that have broken stores before: record syntax, escapes, scripts, emoji.
pub const TRICKY_TEXTS: &[&str] = &[
    "\"double\" and 'single' quotes",
    "tab\there\tand\tthere",
    "back\\slash \\n not a newline \\\\",
    "T 2026-01-01 00:00:00",
    "U 4",
    "W looks like a record",
    "emoji 🎉🦀 and 日本語 and عربى and ünïcödé",
    " leading and trailing spaces ",
    "%s %d {} $HOME `cmd`",
];

async fn any_post_text_comes_back_exactly<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    let longest = "é".repeat(PostText::MAX_CHARS);
    let texts: Vec<&str> = TRICKY_TEXTS
        .iter()
        .copied()
        .chain([longest.as_str()])
        .collect();
    let mut batch = vec![w.join(1), w.join(4), w.follow(1, 4)];
    batch.extend(
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| w.post(4, i as u64 + 1, text)),
    );
    store.append(&batch).expect("append");
    store.flush().await.expect("flush");
    let store = harness.reopen(store);
    let stored: Vec<String> =
        store.read(|s| s.posts_by(user(4)).map(|p| p.text.to_string()).collect());
    assert_eq!(stored, texts, "post texts survive a restart byte for byte");
    let read_back = store.entries_after(Position(0), 100).await.expect("read");
    assert_eq!(read_back, batch, "the log reads back exactly");
}

async fn a_repeated_post_is_applied_once<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    store
        .append(&[w.join(1), w.follow(1, 4), w.post(4, 1, "once")])
        .expect("append");
    let again = store.append(&[w.post(4, 1, "once")]).expect("append");
    assert_eq!(again, [vec![]], "a repeated post is delivered to no one");
    store.flush().await.expect("flush");
    let store = harness.reopen(store);
    store.read(|s| {
        assert_eq!(s.posts_by(user(4)).count(), 1);
        assert_eq!(s.timeline_len(user(1)), 1);
    });
}

async fn concurrent_flushes_all_become_durable<H: Harness>(harness: &mut H) {
    let store = harness.open();
    let mut w = Writer::after(&store);
    let mut flushes = Vec::new();
    for n in 1..=20 {
        store.append(&[w.join(n)]).expect("append");
        flushes.push(store.flush());
    }
    for (i, durable) in futures::future::join_all(flushes)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(
            durable.expect("flush") >= Position(i as u64 + 1),
            "a flush covers what was appended before it"
        );
    }
    let store = harness.reopen(store);
    assert_eq!(store.read(|s| s.users().count()), 20);
}
