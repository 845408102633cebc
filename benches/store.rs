//! The file store: durable writes, and the timeline view a client sees on entering its
//! timeline.
//!
//! Every write of a cluster is appended to the master's [`FileStore`] and made durable by
//! `flush` (one `write` and one `fdatasync` for everything appended meanwhile) before it is
//! acknowledged, so the cost of a durable append bounds how fast a cluster takes posts.
//! The store is opened in a temporary folder (under `TMPDIR`, so on a real disk unless
//! `TMPDIR` is a RAM disk), as a replica of cluster 1 of 3 whose 100 users each follow 10
//! others: every post is delivered to 10 timelines, and the store's background thread
//! appends it to 11 files of the course view, as a server's store does.
//!
//! * `store/append_flush/one` — append one post, then flush: the latency of one durable
//!   write when nothing else is in flight (one disk sync per post). The view writer is
//!   left to run behind, as in a server; each bench starts with it caught up.
//! * `store/append_flush/group/<n>` — `n` single-post appends, then one flush: the group
//!   commit, as when `n` requests arrive during one disk sync. Throughput is per post.
//! * `store/append_flush/group_view/<n>` — the same, then waits until the course view
//!   holds the `n` posts (`settle_view`): what a post costs when the view's background
//!   writer must keep up, as it must under a sustained load.
//! * `store/append_flush/concurrent/<n>` — `n` requests at once, each an append of its
//!   post and a flush of its own, as a master's request handlers do: the flushes share
//!   the disk sync.
//! * `store/append_flush/memory` — the same append and flush on `tsn_core`'s in-memory
//!   store, which syncs nothing: the cost of the in-memory part of a write.
//! * `store/timeline_newest/<n>` — `timeline_newest(user, 20, durable)` read through the
//!   store, for a user whose timeline holds `n` posts (10, 1,000, 100,000). A tenth of the
//!   posts come from other clusters, a second late, so the timeline is not in post-time
//!   order, as in a running deployment.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use futures::future::try_join_all;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tsn_core::Store;
use tsn_core::change::{Change, Entry};
use tsn_core::id::{ClusterId, Epoch, Membership, Position, Time, UserId};
use tsn_core::post::{Post, PostId, PostText};
use tsn_core::store::Memory;
use tsn_fs::FileStore;

/// The replica's cluster, of 3.
const MEMBERSHIP: Membership = Membership {
    cluster: ClusterId(1),
    clusters: 3,
};
/// Local users in the writers' store.
const USERS: u32 = 100;
/// Whom each of them follows.
const FOLLOWS: u32 = 10;
/// The group sizes of the group-commit benches.
const GROUPS: [u64; 2] = [10, 100];
/// The timeline lengths of the view benches.
const TIMELINES: [u64; 3] = [10, 1_000, 100_000];
/// The epoch every entry is written in.
const EPOCH: Epoch = Epoch(1);
/// The first post time: nanoseconds since the Unix epoch.
const START: u64 = 1_700_000_000_000_000_000;

/// The `k`-th user (from 0) of `cluster` of 3.
fn user_of(cluster: u32, k: u32) -> UserId {
    UserId::new(k * 3 + cluster).expect("a valid user id")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A file store in a temporary folder that goes with it.
fn file_store() -> (TempDir, FileStore) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = FileStore::open(&dir.path().join("1"), MEMBERSHIP).expect("the store opens");
    (dir, store)
}

/// The post `seq` of `author` at `time`.
fn post(author: UserId, seq: u64, time: u64) -> Change {
    Change::Posted(Post {
        id: PostId { origin: 1, seq },
        author,
        time: Time(time),
        text: PostText::new(format!(
            "post {seq} of user {author}: about as long as people write them"
        ))
        .expect("a valid post"),
    })
}

/// Appends `changes` at the next positions of `store`.
fn append<S: Store>(store: &S, changes: impl IntoIterator<Item = Change>) {
    let next = store.read(|s| s.last().position.next());
    let entries: Vec<Entry> = changes
        .into_iter()
        .zip(next.0..)
        .map(|(change, position)| Entry {
            position: Position(position),
            epoch: EPOCH,
            change,
        })
        .collect();
    store.append(&entries).expect("the entries follow the log");
}

/// A store of 100 users who each follow 10 others, and the posts they write next.
struct Writer<S> {
    store: S,
    posts: u64,
}

impl<S: Store> Writer<S> {
    fn new(rt: &Runtime, store: S) -> Self {
        let users = || (0..USERS).map(|k| user_of(1, k));
        append(
            &store,
            users().map(|user| Change::UserJoined {
                user,
                time: Time(START),
            }),
        );
        append(
            &store,
            (0..USERS).flat_map(|k| {
                (1..=FOLLOWS).map(move |i| Change::Followed {
                    follower: user_of(1, k),
                    followee: user_of(1, (k + i) % USERS),
                    time: Time(START),
                })
            }),
        );
        rt.block_on(store.flush()).expect("the store flushes");
        Writer { store, posts: 0 }
    }

    /// The next post, by the users in turn.
    fn next_post(&mut self) -> Change {
        self.posts += 1;
        let author = user_of(1, (self.posts % u64::from(USERS)) as u32);
        post(author, self.posts, START + self.posts * 1_000)
    }

    /// One request of a master: append a post, and return once it is durable.
    async fn request(&self, change: Change) -> tsn_core::Result<Position> {
        append(&self.store, [change]);
        self.store.flush().await
    }
}

impl Writer<FileStore> {
    /// Appends `n` posts, one append each, and flushes once.
    async fn group(&mut self, n: u64) -> tsn_core::Result<Position> {
        for _ in 0..n {
            let change = self.next_post();
            append(&self.store, [change]);
        }
        self.store.flush().await
    }
}

/// Durable appends: one at a time, in groups, concurrently; and in memory for comparison.
fn append_flush(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = file_store();
    let mut writer = Writer::new(&rt, store);
    let mut group = c.benchmark_group("store/append_flush");
    // Each bench starts with the view writer done with the posts of the one before.
    let settle = |writer: &Writer<FileStore>| rt.block_on(writer.store.settle_view());

    group.throughput(Throughput::Elements(1));
    group.bench_function("one", |b| {
        b.iter(|| {
            let change = writer.next_post();
            rt.block_on(writer.request(change))
                .expect("a durable append")
        });
    });

    for n in GROUPS {
        settle(&writer);
        group.throughput(Throughput::Elements(n));
        group.bench_function(BenchmarkId::new("group", n), |b| {
            b.iter(|| rt.block_on(writer.group(n)).expect("a durable flush"));
        });
    }

    let n = *GROUPS.last().expect("a group size");
    settle(&writer);
    group.bench_function(BenchmarkId::new("group_view", n), |b| {
        b.iter(|| {
            rt.block_on(async {
                let durable = writer.group(n).await.expect("a durable flush");
                writer.store.settle_view().await;
                durable
            })
        });
    });

    settle(&writer);
    group.bench_function(BenchmarkId::new("concurrent", n), |b| {
        b.iter(|| {
            let changes: Vec<Change> = (0..n).map(|_| writer.next_post()).collect();
            let writer = &writer;
            let requests = changes.into_iter().map(|change| writer.request(change));
            rt.block_on(try_join_all(requests))
                .expect("durable appends")
        });
    });

    let mut memory = Writer::new(&rt, Memory::new(MEMBERSHIP));
    group.throughput(Throughput::Elements(1));
    group.bench_function("memory", |b| {
        b.iter(|| {
            let change = memory.next_post();
            rt.block_on(memory.request(change)).expect("an append")
        });
    });
    group.finish();
}

/// The 20-newest view of timelines of 10, 1,000 and 100,000 posts.
fn timeline_newest(c: &mut Criterion) {
    let rt = runtime();
    let started = Instant::now();
    let (_dir, store) = file_store();
    // One reader per timeline length, each following authors of its own; the longest
    // timeline's authors include users of the other two clusters.
    let readers: Vec<(u64, UserId, Vec<UserId>)> = TIMELINES
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let k = 10 * i as u32;
            let authors = if i + 1 == TIMELINES.len() {
                vec![user_of(1, k + 1), user_of(2, k), user_of(3, k)]
            } else {
                vec![user_of(1, k + 1)]
            };
            (len, user_of(1, k), authors)
        })
        .collect();
    append(
        &store,
        readers.iter().flat_map(|(_, reader, authors)| {
            authors.iter().map(|&followee| Change::Followed {
                follower: *reader,
                followee,
                time: Time(START - 60_000_000_000),
            })
        }),
    );
    let mut seq = 0;
    for (len, _, authors) in &readers {
        let mut chunk = Vec::with_capacity(1_000);
        for i in 0..*len {
            seq += 1;
            let author = authors[i as usize % authors.len()];
            let time = START + seq * 1_000;
            // A post from another cluster arrives a second after it was made.
            let late = author.get() % 3 != 1 && i % 10 == 0;
            let time = if late { time - 1_000_000_000 } else { time };
            chunk.push(post(author, seq, time));
            if chunk.len() == chunk.capacity() {
                append(&store, chunk.drain(..));
            }
        }
        append(&store, chunk);
    }
    rt.block_on(store.flush()).expect("the store flushes");
    rt.block_on(store.settle_view());
    let through = store.durable();
    eprintln!(
        "store benches: timelines of {TIMELINES:?} posts written in {:.1?}",
        started.elapsed()
    );

    let mut group = c.benchmark_group("store/timeline_newest");
    for (len, reader, _) in &readers {
        assert_eq!(store.read(|s| s.timeline_len(*reader)), *len);
        group.bench_with_input(BenchmarkId::from_parameter(len), reader, |b, &reader| {
            b.iter(|| store.read(|s| s.timeline_newest(black_box(reader), 20, through)));
        });
    }
    group.finish();
}

fn main() {
    // What `criterion_group!` and `criterion_main!` expand to, written out: the macros make
    // an undocumented `pub fn`, which the workspace's `missing_docs` lint flags.
    let mut criterion = Criterion::default().configure_from_args();
    append_flush(&mut criterion);
    timeline_newest(&mut criterion);
    criterion.final_summary();
}
