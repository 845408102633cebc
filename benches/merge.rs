//! The synchronizer's merge: what a cluster writes of another cluster's changes.
//!
//! A master imports the changes that originate in every other cluster through
//! [`tsn_core::sync::merge`], which decides on its in-memory [`State`] what to write, and
//! then applies what it wrote through its store. These benches put a replica of cluster 1
//! (of 3) in front of cluster 2's feed:
//!
//! * **History.** The replica holds 30,000 users (10,000 per cluster), 160,000 follows
//!   (each local user follows 10 users of any cluster; each remote user follows 3 local
//!   users) and a large number of posts (by default 1,000,000; set
//!   `TSN_BENCH_HISTORY_POSTS` to change it), half by local users and half imported from
//!   remote users that local users follow. It is built once per run, on first use.
//! * **Batches.** A batch is the next stretch of cluster 2's log, with the mix a feed
//!   carries: of every 10 changes, 1 new user of cluster 2, 2 follows of cluster-1 users by
//!   cluster-2 users (one by the new user, one by an existing user), 6 posts of cluster-2
//!   users that cluster-1 users follow, and 1 post by a cluster-2 user no one in cluster 1
//!   follows (passed over by the merge).
//!
//! Groups:
//!
//! * `merge/batch/<n>` — `merge` alone, of a batch of `n` changes (10, 1,000, 10,000),
//!   into the untouched history. The merge is a pure function of the state, so the history
//!   stays as built; each iteration merges a fresh batch (the next stretch of cluster 2's
//!   log, made outside the measurement), so that neither the batch nor the parts of the
//!   state it touches are left in the caches by the previous iteration.
//! * `merge/apply/<n>` — `State::apply` of every change that `merge` wrote for a batch of
//!   `n` changes (about 9 in 10 of them, and the `Imported` mark), as the master's write
//!   path does in memory (without the log's I/O: see the `store` benches). Only the apply
//!   is measured; the import of a batch costs `merge/batch` plus `merge/apply`. Cloning a
//!   million-post state per iteration would cost far more than the apply, so the history
//!   is cloned once and each iteration imports the *next* stretch of cluster 2's log into
//!   the copy, as a running cluster does. A fresh copy first imports one untimed batch of
//!   [`SETTLING_BATCH`] changes: a clone's vectors have no spare capacity, and the first
//!   push to each would copy it, which a store's state (built by appending) rarely does.
//!   The copy is made afresh once it has taken in [`GROWTH_BUDGET`] changes.
//! * `merge/import/<n>` — the whole import of a fresh batch of `n` changes into a file
//!   store (in a temporary folder) that holds the large history, as a master's import
//!   does: `merge` on the store's state, the append of what it wrote (the log's write, the
//!   state's apply, the course view's edits queued for its writer thread) and the flush
//!   (one disk sync). Before each iteration, untimed, the course view's writer catches up
//!   (as between the imports of a running cluster, which come as other clusters write):
//!   back to back, imports of 10,000 changes outrun the view's writer, whose repairs then
//!   hold the store's lock. The store keeps what each iteration imported, as a running
//!   cluster does.
//! * `merge/idle/<kind>/<posts>` — an idle round, over histories of 10,000 and of the
//!   large number of posts, to show that its cost does not grow with the history:
//!   `empty` (the feed's answer when nothing is new: no entries, `through` at the cursor),
//!   `replayed` (a batch of 1,000 changes that is merged already, as after a restart of
//!   the synchronizer) and `nothing_for_us` (1,000 new changes of cluster 2 of which this
//!   cluster writes nothing: posts nobody here follows, follows among remote users).

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use tsn_core::change::{Change, Entry};
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Epoch, Membership, Position, ServerId, Time, UserId};
use tsn_core::post::{Post, PostId, PostText};
use tsn_core::state::State;
use tsn_core::sync::{Changes, merge};
use tsn_core::{Result, Store};
use tsn_fs::FileStore;

/// The number of clusters of the deployment.
const CLUSTERS: u32 = 3;
/// The cluster whose replica merges.
const HERE: ClusterId = ClusterId(1);
/// The cluster whose changes it merges.
const FROM: ClusterId = ClusterId(2);
/// Where the replica sits.
const MEMBERSHIP: Membership = Membership {
    cluster: HERE,
    clusters: CLUSTERS,
};
/// Users per cluster in the history.
const USERS_PER_CLUSTER: u32 = 10_000;
/// Whom each local user follows (users of any cluster).
const LOCAL_FOLLOWS: u32 = 10;
/// How many local users each remote user follows.
const REMOTE_FOLLOWS: u32 = 3;
/// Posts in the small history of the idle round.
const SMALL_POSTS: usize = 10_000;
/// Posts in the large history, unless `TSN_BENCH_HISTORY_POSTS` says otherwise.
const LARGE_POSTS: usize = 1_000_000;
/// The batch sizes of the import benches.
const BATCHES: [usize; 3] = [10, 1_000, 10_000];
/// How many changes `merge/apply` may add to its copy of the history before the copy is
/// made afresh.
const GROWTH_BUDGET: usize = 300_000;
/// The size of the untimed batch a fresh copy of the history imports first.
const SETTLING_BATCH: usize = 20_000;
/// The epoch every entry of the history is written in.
const EPOCH: Epoch = Epoch(1);
/// Nanoseconds between consecutive changes.
const STEP: u64 = 1_000;

fn user(n: u32) -> UserId {
    UserId::new(n).expect("a valid user id")
}

/// The `k`-th user (from 0) of `cluster`: users are spread round robin over clusters.
fn user_of(cluster: ClusterId, k: u32) -> UserId {
    user(k * CLUSTERS + cluster.0)
}

/// A small, fast, deterministic random number generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn post(author: UserId, origin: u64, seq: u64, time: Time) -> Change {
    Change::Posted(Post {
        id: PostId { origin, seq },
        author,
        time,
        text: PostText::new(format!(
            "post {seq} of user {author}: about as long as people write them"
        ))
        .expect("a valid post"),
    })
}

/// Applies `changes` to `state` at the next positions.
fn apply_all(state: &mut State, changes: impl IntoIterator<Item = Change>) {
    for change in changes {
        let entry = Entry {
            position: state.last().position.next(),
            epoch: EPOCH,
            change,
        };
        state.apply(&entry).expect("the entry follows the log");
    }
}

/// Where a history is built: a state, and a file store that takes the same entries, or
/// none.
struct Target<'a> {
    state: State,
    store: Option<&'a FileStore>,
}

impl Target<'_> {
    /// Applies `changes` at the next positions, to the store too.
    fn apply_all(&mut self, changes: impl IntoIterator<Item = Change>) {
        let Some(store) = self.store else {
            return apply_all(&mut self.state, changes);
        };
        let entries: Vec<Entry> = changes
            .into_iter()
            .zip(self.state.last().position.0 + 1..)
            .map(|(change, position)| Entry {
                position: Position(position),
                epoch: EPOCH,
                change,
            })
            .collect();
        for chunk in entries.chunks(10_000) {
            store.append(chunk).expect("the store takes the history");
        }
        for entry in &entries {
            self.state.apply(entry).expect("the entry follows the log");
        }
    }
}

/// A replica of cluster 1 with its history, and what a feed of cluster 2 needs to know of
/// it to make realistic batches.
struct History {
    state: State,
    posts: usize,
    /// Users of cluster 2 that some user of cluster 1 follows.
    followed: Vec<UserId>,
    /// Users of cluster 2 that no user of cluster 1 follows.
    unfollowed: Vec<UserId>,
    /// The last time in the history.
    time: u64,
}

impl History {
    /// A history with `posts` posts, written into `store` too when there is one.
    fn build(posts: usize, store: Option<&FileStore>) -> History {
        let started = Instant::now();
        let mut rng = Rng(posts as u64);
        let mut target = Target {
            state: State::new(MEMBERSHIP),
            store,
        };
        let mut time = 1_700_000_000_000_000_000;
        let mut next_time = || {
            time += STEP;
            Time(time)
        };
        let n = USERS_PER_CLUSTER;
        let clusters = || (1..=CLUSTERS).map(ClusterId);
        target.apply_all([Change::MasterElected {
            server: ServerId(1),
            time: next_time(),
        }]);
        let joins: Vec<Change> = (0..n)
            .flat_map(|k| clusters().map(move |c| user_of(c, k)))
            .map(|user| Change::UserJoined {
                user,
                time: Time(0),
            })
            .collect();
        target.apply_all(joins);
        let mut follows = Vec::new();
        for k in 0..n {
            let follower = user_of(HERE, k);
            for _ in 0..LOCAL_FOLLOWS {
                let followee = user(rng.below(u64::from(n * CLUSTERS)) as u32 + 1);
                if followee != follower {
                    follows.push((follower, followee));
                }
            }
        }
        for cluster in clusters().filter(|&c| c != HERE) {
            for k in 0..n {
                for _ in 0..REMOTE_FOLLOWS {
                    let followee = user_of(HERE, rng.below(u64::from(n)) as u32);
                    follows.push((user_of(cluster, k), followee));
                }
            }
        }
        let follows: Vec<Change> = follows
            .into_iter()
            .map(|(follower, followee)| Change::Followed {
                follower,
                followee,
                time: next_time(),
            })
            .collect();
        target.apply_all(follows);

        let (remote_followed, followed, unfollowed) = {
            let state = &target.state;
            let membership = state.membership();
            let has_local_follower = |u: UserId| state.followers(u).any(|f| membership.is_local(f));
            let remote_followed: Vec<UserId> = (0..n)
                .flat_map(|k| {
                    clusters()
                        .filter(|&c| c != HERE)
                        .map(move |c| user_of(c, k))
                })
                .filter(|&u| has_local_follower(u))
                .collect();
            let (followed, unfollowed): (Vec<UserId>, Vec<UserId>) = (0..n)
                .map(|k| user_of(FROM, k))
                .partition(|&u| has_local_follower(u));
            (remote_followed, followed, unfollowed)
        };

        let mut seqs = vec![0u64; (n * CLUSTERS + 1) as usize];
        let mut batch = Vec::with_capacity(100_000);
        for i in 0..posts {
            let author = if i % 2 == 0 {
                user_of(HERE, rng.below(u64::from(n)) as u32)
            } else {
                rng.pick(&remote_followed)
            };
            let seq = &mut seqs[author.get() as usize];
            *seq += 1;
            batch.push(post(author, 1, *seq, next_time()));
            if batch.len() == batch.capacity() {
                target.apply_all(batch.drain(..));
            }
        }
        target.apply_all(batch);
        let imported = clusters()
            .filter(|&c| c != HERE)
            .map(|from| Change::Imported {
                from,
                through: Position(10_000_000),
                log: LogId::UNKNOWN,
            });
        target.apply_all(imported.collect::<Vec<_>>());
        eprintln!(
            "merge benches: a history of {posts} posts, {} entries, built in {:.1?}",
            target.state.last().position,
            started.elapsed()
        );
        History {
            state: target.state,
            posts,
            followed,
            unfollowed,
            time,
        }
    }

    fn cursor(&self) -> Position {
        self.state.imported_through(FROM)
    }
}

/// The history of the idle round's small case.
fn small() -> &'static History {
    static SMALL: OnceLock<History> = OnceLock::new();
    SMALL.get_or_init(|| History::build(SMALL_POSTS, None))
}

/// The large history, built once and shared by every group.
fn large() -> &'static History {
    static LARGE: OnceLock<History> = OnceLock::new();
    LARGE.get_or_init(|| History::build(large_posts(), None))
}

/// The number of posts of the large history.
fn large_posts() -> usize {
    std::env::var("TSN_BENCH_HISTORY_POSTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(LARGE_POSTS)
}

/// Cluster 2's log as its feed serves it, from a position on.
struct Feed<'a> {
    history: &'a History,
    rng: Rng,
    /// The last position served.
    position: u64,
    /// The index (within cluster 2) of the next new user.
    next_user: u32,
    time: u64,
    /// The post id origin of the last batch: each batch's posts come from a new client.
    origin: u64,
}

impl<'a> Feed<'a> {
    /// The feed right after what `history` merged.
    fn after(history: &'a History) -> Self {
        Feed::at(history, history.cursor())
    }

    fn at(history: &'a History, position: Position) -> Self {
        Feed {
            history,
            rng: Rng(position.0),
            position: position.0,
            next_user: USERS_PER_CLUSTER,
            time: history.time,
            origin: 1_000,
        }
    }

    fn entry(&mut self, change: Change) -> Entry {
        self.position += 1;
        Entry {
            position: Position(self.position),
            epoch: EPOCH,
            change,
        }
    }

    fn changes(&self, entries: Vec<Entry>) -> Changes {
        Changes {
            entries,
            through: Position(self.position),
            log: LogId::UNKNOWN,
        }
    }

    fn existing_user(&mut self) -> UserId {
        user_of(FROM, self.rng.below(u64::from(USERS_PER_CLUSTER)) as u32)
    }

    /// The next `size` changes, in the realistic mix of the module docs.
    fn batch(&mut self, size: usize) -> Changes {
        self.origin += 1;
        let (origin, mut seq) = (self.origin, 0);
        let mut newest = None;
        let mut entries = Vec::with_capacity(size);
        for i in 0..size {
            self.time += STEP;
            let time = Time(self.time);
            let followee = user_of(HERE, self.rng.below(u64::from(USERS_PER_CLUSTER)) as u32);
            let change = match i % 10 {
                0 => {
                    let user = user_of(FROM, self.next_user);
                    self.next_user += 1;
                    newest = Some(user);
                    Change::UserJoined { user, time }
                }
                1 | 2 => Change::Followed {
                    follower: match newest.take() {
                        Some(new) => new,
                        None => self.existing_user(),
                    },
                    followee,
                    time,
                },
                3..=8 => {
                    seq += 1;
                    post(self.rng.pick(&self.history.followed), origin, seq, time)
                }
                _ => {
                    seq += 1;
                    post(self.rng.pick(&self.history.unfollowed), origin, seq, time)
                }
            };
            entries.push(self.entry(change));
        }
        self.changes(entries)
    }

    /// The next `size` changes, none of which this cluster writes: posts by users nobody
    /// here follows, and follows among remote users.
    fn irrelevant(&mut self, size: usize) -> Changes {
        self.origin += 1;
        let origin = self.origin;
        let mut entries = Vec::with_capacity(size);
        for i in 0..size {
            self.time += STEP;
            let time = Time(self.time);
            let change = if i % 5 == 0 {
                Change::Followed {
                    follower: self.existing_user(),
                    followee: user_of(ClusterId(3), self.rng.below(1_000) as u32),
                    time,
                }
            } else {
                post(
                    self.rng.pick(&self.history.unfollowed),
                    origin,
                    i as u64 + 1,
                    time,
                )
            };
            entries.push(self.entry(change));
        }
        self.changes(entries)
    }
}

/// `merge` alone, of fresh batches of 10, 1,000 and 10,000 changes, over the large history.
fn batch(c: &mut Criterion) {
    let history = large();
    let mut feed = Feed::after(history);
    let mut group = c.benchmark_group("merge/batch");
    for size in BATCHES {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_batched_ref(
                || feed.batch(size),
                |changes| merge(&history.state, FROM, changes),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

/// Imports `changes` into `state`: merges them and applies what the merge wrote. Returns
/// how many writes there were, and how long applying them took.
fn import(state: &mut State, changes: &Changes) -> (usize, Duration) {
    let writes = merge(state, FROM, changes);
    let written = writes.len();
    let start = Instant::now();
    apply_all(state, writes);
    (written, start.elapsed())
}

/// A copy of the large history that imports one stretch of cluster 2's log after another.
struct Importer {
    state: State,
    feed: Feed<'static>,
    imported: usize,
}

impl Importer {
    fn fresh() -> Self {
        let history = large();
        let mut importer = Importer {
            state: history.state.clone(),
            feed: Feed::after(history),
            imported: 0,
        };
        let settling = importer.feed.batch(SETTLING_BATCH);
        importer.imported += import(&mut importer.state, &settling).0;
        importer
    }
}

/// The application of what `merge` wrote for fresh batches, over the large history.
fn apply(c: &mut Criterion) {
    let mut importer: Option<Importer> = None;
    let mut group = c.benchmark_group("merge/apply");
    group.sample_size(20);
    for size in BATCHES {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    if importer.as_ref().is_none_or(|i| i.imported > GROWTH_BUDGET) {
                        // Dropping the old copy is not measured either.
                        importer = None;
                        importer = Some(Importer::fresh());
                    }
                    let importer = importer.as_mut().expect("made above");
                    let changes = importer.feed.batch(size);
                    let (written, took) = import(&mut importer.state, &changes);
                    importer.imported += written;
                    spent += took;
                }
                spent
            });
        });
    }
    group.finish();
}

/// An idle round over a small and a large history: it costs the same.
fn idle(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge/idle");
    for history in [small(), large()] {
        let cursor = history.cursor();
        let empty = Changes {
            entries: Vec::new(),
            through: cursor,
            log: LogId::UNKNOWN,
        };
        let replayed = Feed::at(history, Position(cursor.0 - 1_000)).batch(1_000);
        let nothing_for_us = Feed::after(history).irrelevant(1_000);
        assert!(merge(&history.state, FROM, &empty).is_empty());
        assert!(merge(&history.state, FROM, &replayed).is_empty());
        assert!(merge(&history.state, FROM, &nothing_for_us).is_empty());
        for (kind, changes) in [
            ("empty", &empty),
            ("replayed", &replayed),
            ("nothing_for_us", &nothing_for_us),
        ] {
            let id = BenchmarkId::new(kind, history.posts);
            group.bench_with_input(id, changes, |b, changes| {
                b.iter(|| merge(&history.state, FROM, black_box(changes)));
            });
        }
    }
    group.finish();
}

/// The whole import of fresh batches into a file store holding the large history, as a
/// master's import does: the merge on the store's state, the append (the log's write and
/// the state's apply, the course view's edits queued) and the flush (the disk sync).
fn whole_import(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = FileStore::open(&dir.path().join("1"), MEMBERSHIP).expect("a store");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let history = History::build(large_posts(), Some(&store));
    runtime
        .block_on(store.flush())
        .expect("the history is durable");
    let mut feed = Feed::after(&history);
    let mut group = c.benchmark_group("merge/import");
    group.sample_size(20);
    for size in BATCHES {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let changes = feed.batch(size);
                    runtime.block_on(store.settle_view());
                    let started = Instant::now();
                    import_into(&store, &changes).expect("the import");
                    runtime
                        .block_on(store.flush())
                        .expect("the import is durable");
                    spent += started.elapsed();
                }
                spent
            });
        });
    }
    group.finish();
}

/// Merges `changes` on `store`'s state and appends what the merge wrote.
fn import_into(store: &FileStore, changes: &Changes) -> Result<()> {
    let entries: Vec<Entry> = store.read(|state| {
        let next = state.last().position.0 + 1;
        merge(state, FROM, changes)
            .into_iter()
            .zip(next..)
            .map(|(change, position)| Entry {
                position: Position(position),
                epoch: EPOCH,
                change,
            })
            .collect()
    });
    store.append(&entries).map(drop)
}

fn main() {
    // What `criterion_group!` and `criterion_main!` expand to, written out: the macros make
    // an undocumented `pub fn`, which the workspace's `missing_docs` lint flags.
    let mut criterion = Criterion::default().configure_from_args();
    batch(&mut criterion);
    apply(&mut criterion);
    idle(&mut criterion);
    whole_import(&mut criterion);
    criterion.final_summary();
}
