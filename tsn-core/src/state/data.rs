//! [`State`]: the replica's data, built by applying log entries.

use std::collections::{BTreeMap, BTreeSet};

use crate::change::{Change, Entry, LogPoint};
use crate::error::{Error, Result};
use crate::id::{ClusterId, Epoch, LogId, Membership, Position, Time, UserId};
use crate::post::Post;
use crate::state::epochs::EpochHistory;
use crate::state::follows::Follows;
use crate::state::timelines::{TimelineItem, Timelines};

/// A post that applying an entry put onto a timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Whose timeline.
    pub user: UserId,
    /// The post's index on that timeline (see [`TimelineItem::index`]).
    pub index: u64,
}

/// One replica's data: users, follows with their history, posts, timelines, and where its
/// log ends. See the [module docs](crate::state) for the delivery rule.
#[derive(Clone, Debug)]
pub struct State {
    membership: Membership,
    users: BTreeSet<UserId>,
    follows: Follows,
    timelines: Timelines,
    epochs: EpochHistory,
    last_time: Time,
    /// Per other cluster, the log merged from and the last position of it merged here.
    imported: BTreeMap<ClusterId, (LogId, Position)>,
}

impl State {
    /// An empty replica of `membership.cluster`.
    pub fn new(membership: Membership) -> Self {
        State {
            membership,
            users: BTreeSet::new(),
            follows: Follows::default(),
            timelines: Timelines::default(),
            epochs: EpochHistory::default(),
            last_time: Time::default(),
            imported: BTreeMap::new(),
        }
    }

    /// The cluster this replica belongs to, and how many there are.
    pub fn membership(&self) -> Membership {
        self.membership
    }

    /// Checks that `entries` can be applied in turn: consecutive positions from the one
    /// after [`State::last`], and epochs that never go back. A store calls this before
    /// applying a batch so that a bad batch changes nothing.
    pub fn check_follows(&self, entries: &[Entry]) -> Result<()> {
        let mut last = self.last();
        for entry in entries {
            let expected = last.position.next();
            if entry.position != expected {
                return Err(Error::OutOfOrder {
                    expected,
                    got: entry.position,
                });
            }
            if entry.epoch < last.epoch {
                return Err(Error::StaleEpoch {
                    current: last.epoch,
                    got: entry.epoch,
                });
            }
            last = LogPoint {
                epoch: entry.epoch,
                position: entry.position,
            };
        }
        Ok(())
    }

    /// Applies the next entry of the log and returns the timeline deliveries it made.
    ///
    /// The entry must pass [`State::check_follows`]; applying a change that is already in
    /// effect (a known user, a post already applied, a follow that holds) changes nothing
    /// but the log's end.
    pub fn apply(&mut self, entry: &Entry) -> Result<Vec<Delivery>> {
        self.check_follows(std::slice::from_ref(entry))?;
        self.epochs.push(entry.epoch, entry.position);
        if let Some(time) = entry.change.time() {
            self.last_time = self.last_time.max(time);
        }
        Ok(match &entry.change {
            Change::UserJoined { user, .. } => {
                self.users.insert(*user);
                Vec::new()
            }
            Change::Followed {
                follower,
                followee,
                time,
            } => {
                self.follows.follow(*follower, *followee, *time);
                Vec::new()
            }
            Change::Unfollowed {
                follower,
                followee,
                time,
            } => {
                self.follows.unfollow(*follower, *followee, *time);
                Vec::new()
            }
            Change::Posted(post) => self.add_post(post, entry.position),
            Change::MasterElected { .. } => Vec::new(),
            Change::Imported { from, through, log } => {
                let (merged_log, merged) = self.imported.entry(*from).or_default();
                if !log.is_unknown() && log != merged_log {
                    // Another log of that cluster than the cursor's (or the first named
                    // one): its positions start again.
                    (*merged_log, *merged) = (*log, *through);
                } else {
                    *merged = (*merged).max(*through);
                }
                Vec::new()
            }
        })
    }

    fn add_post(&mut self, post: &Post, position: Position) -> Vec<Delivery> {
        let Some(handle) = self.timelines.add(post, position) else {
            return Vec::new();
        };
        let (author, membership) = (post.author, self.membership);
        let timelines = &mut self.timelines;
        self.follows
            .followers_at(author, post.time)
            .filter(|&f| f != author && membership.is_local(f))
            .map(|user| Delivery {
                user,
                index: timelines.deliver(user, handle),
            })
            .collect()
    }

    /// The last entry applied.
    pub fn last(&self) -> LogPoint {
        self.epochs.last()
    }

    /// Which epoch wrote which part of the log.
    pub fn epochs(&self) -> &EpochHistory {
        &self.epochs
    }

    /// The latest time any applied change carries. A master stamps new changes later than
    /// this, so times never go backwards along a log, even across a failover.
    pub fn last_time(&self) -> Time {
        self.last_time
    }

    /// The time to stamp on a new change when the clock reads `now`: `now`, or just after
    /// [`State::last_time`] if the clock is behind it.
    pub fn next_time(&self, now: Time) -> Time {
        now.max(self.last_time.plus_nanos(1))
    }

    /// Whether `user` is known (logged in here, or learned from another cluster).
    pub fn has_user(&self, user: UserId) -> bool {
        self.users.contains(&user)
    }

    /// Every known user, in increasing order.
    pub fn users(&self) -> impl Iterator<Item = UserId> + '_ {
        self.users.iter().copied()
    }

    /// Whether `follower` follows `followee` now.
    pub fn is_following(&self, follower: UserId, followee: UserId) -> bool {
        self.follows.is_following(follower, followee)
    }

    /// Whom `user` follows now, in increasing order.
    pub fn following(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.follows.following(user)
    }

    /// Who follows `user` now, in increasing order.
    pub fn followers(&self, user: UserId) -> impl Iterator<Item = UserId> {
        self.follows.followers(user)
    }

    /// Who follows `user` now, in the order their follows began (a user who unfollowed and
    /// followed again, from the second follow).
    pub fn followers_in_order(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.follows.followers_in_order(user)
    }

    /// Who was following `user` at `time` (of any cluster, as far as this replica knows).
    pub fn followers_at(&self, user: UserId, time: Time) -> impl Iterator<Item = UserId> + '_ {
        self.follows.followers_at(user, time)
    }

    /// Whether the post was applied already (by author and id).
    pub fn has_post(&self, post: &Post) -> bool {
        self.timelines.contains(post.author, post.id)
    }

    /// The posts `author` wrote, oldest first.
    pub fn posts_by(&self, author: UserId) -> impl Iterator<Item = Post> + '_ {
        self.timelines.authored_by(author, 0)
    }

    /// The posts `author` wrote after its first `skip`, oldest first: what a copy holding
    /// the first `skip` lacks. The skipped ones cost nothing.
    pub fn posts_by_after(&self, author: UserId, skip: usize) -> impl Iterator<Item = Post> + '_ {
        self.timelines.authored_by(author, skip)
    }

    /// How many posts the replica holds.
    pub fn post_count(&self) -> usize {
        self.timelines.count()
    }

    /// How many posts `user`'s timeline holds.
    pub fn timeline_len(&self, user: UserId) -> u64 {
        self.timelines.len(user)
    }

    /// How many posts `user`'s timeline holds counting only deliveries by entries up to
    /// `through`: the highest index a view up to `through` can show.
    pub fn timeline_len_through(&self, user: UserId, through: Position) -> u64 {
        self.timelines.len_through(user, through)
    }

    /// What a client shows on entering the timeline: the `count` newest posts (by post
    /// time), newest first, counting only deliveries by entries up to `through` (the
    /// committed part of the log).
    pub fn timeline_newest(
        &self,
        user: UserId,
        count: usize,
        through: Position,
    ) -> Vec<TimelineItem> {
        self.timelines.newest(user, count, through)
    }

    /// The item at `index` of `user`'s timeline (1 for the first delivered), if there is
    /// one: what a [`Delivery`] delivered.
    pub fn timeline_item(&self, user: UserId, index: u64) -> Option<TimelineItem> {
        self.timelines.at(user, index)
    }

    /// What a client that has shown items up to index `after` missed, in delivery order,
    /// counting only deliveries by entries up to `through`. Each item is made as it is
    /// taken: taking a few of a long timeline costs those few.
    pub fn timeline_after(
        &self,
        user: UserId,
        after: u64,
        through: Position,
    ) -> impl Iterator<Item = TimelineItem> + '_ {
        self.timelines.after(user, after, through)
    }

    /// The last position of `from`'s log whose changes are merged here (0: none yet).
    pub fn imported_through(&self, from: ClusterId) -> Position {
        self.imported
            .get(&from)
            .map(|&(_, p)| p)
            .unwrap_or_default()
    }

    /// The log of `from` that [`State::imported_through`] is a position of.
    pub fn imported_log(&self, from: ClusterId) -> LogId {
        self.imported
            .get(&from)
            .map(|&(l, _)| l)
            .unwrap_or_default()
    }

    /// The epoch of the entry at `position`, if the log has one there.
    pub fn epoch_at(&self, position: Position) -> Option<Epoch> {
        self.epochs.epoch_at(position)
    }

    /// Which log this is: the epoch of its first entry ([`LogId::UNKNOWN`] while it has
    /// none).
    pub fn log_id(&self) -> LogId {
        LogId(self.epoch_at(Position(1)).map_or(0, |Epoch(e)| e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ClusterId;
    use crate::post::{PostId, PostText};

    fn u(n: u32) -> UserId {
        UserId::new(n).unwrap()
    }

    /// A replica of cluster 1 of 3 with a helper that appends changes at epoch 1.
    struct Log {
        state: State,
    }

    impl Log {
        fn new() -> Self {
            Log {
                state: State::new(Membership {
                    cluster: ClusterId(1),
                    clusters: 3,
                }),
            }
        }

        fn apply(&mut self, change: Change) -> Vec<Delivery> {
            let entry = Entry {
                position: self.state.last().position.next(),
                epoch: Epoch(1),
                change,
            };
            self.state.apply(&entry).unwrap()
        }

        fn join(&mut self, user: u32) {
            self.apply(Change::UserJoined {
                user: u(user),
                time: Time(0),
            });
        }

        fn follow(&mut self, follower: u32, followee: u32, time: u64) {
            self.apply(Change::Followed {
                follower: u(follower),
                followee: u(followee),
                time: Time(time),
            });
        }

        fn unfollow(&mut self, follower: u32, followee: u32, time: u64) {
            self.apply(Change::Unfollowed {
                follower: u(follower),
                followee: u(followee),
                time: Time(time),
            });
        }

        fn post(&mut self, author: u32, seq: u64, time: u64) -> Vec<Delivery> {
            self.apply(Change::Posted(Post {
                id: PostId { origin: 7, seq },
                author: u(author),
                time: Time(time),
                text: PostText::new(format!("post {seq} of {author}")).unwrap(),
            }))
        }

        fn timeline(&self, user: u32) -> Vec<String> {
            self.state
                .timeline_newest(u(user), 20, self.state.last().position)
                .into_iter()
                .map(|item| item.post.text.to_string())
                .collect()
        }
    }

    #[test]
    fn posts_reach_local_followers_while_they_follow() {
        let mut log = Log::new();
        for user in [1, 2, 4] {
            log.join(user);
        }
        log.post(4, 1, 5); // before anyone follows
        log.follow(1, 4, 10);
        log.follow(2, 4, 10); // user 2 lives in cluster 2: its cluster delivers to it
        assert_eq!(
            log.post(4, 2, 20),
            [Delivery {
                user: u(1),
                index: 1
            }]
        );
        log.unfollow(1, 4, 30);
        assert!(log.post(4, 3, 40).is_empty());
        assert_eq!(log.timeline(1), ["post 2 of 4"]);
        assert!(
            log.timeline(4).is_empty(),
            "own posts are not on one's timeline"
        );
    }

    #[test]
    fn a_late_post_is_delivered_by_its_time_not_its_arrival() {
        let mut log = Log::new();
        log.follow(1, 5, 100);
        log.unfollow(1, 5, 200);
        // Posts of user 5 (cluster 2) arriving after the unfollow was applied.
        assert_eq!(log.post(5, 1, 150).len(), 1, "made while following");
        assert!(log.post(5, 2, 250).is_empty(), "made after the unfollow");
        assert!(log.post(5, 3, 50).is_empty(), "made before the follow");
    }

    #[test]
    fn a_post_applied_twice_is_stored_and_delivered_once() {
        let mut log = Log::new();
        log.follow(1, 4, 1);
        assert_eq!(log.post(4, 1, 2).len(), 1);
        assert!(log.post(4, 1, 3).is_empty());
        assert_eq!(log.state.post_count(), 1);
    }

    #[test]
    fn the_view_shows_the_twenty_newest_newest_first() {
        let mut log = Log::new();
        log.follow(1, 4, 0);
        for seq in 1..=25 {
            log.post(4, seq, seq * 10);
        }
        let shown = log.timeline(1);
        assert_eq!(shown.len(), 20);
        assert_eq!(shown[0], "post 25 of 4");
        assert_eq!(shown[19], "post 6 of 4");
    }

    #[test]
    fn views_count_only_deliveries_up_to_the_given_position() {
        let mut log = Log::new();
        log.follow(1, 4, 0);
        log.post(4, 1, 1);
        let settled = log.state.last().position;
        log.post(4, 2, 2);
        let newest = log.state.timeline_newest(u(1), 20, settled);
        assert_eq!(newest.len(), 1);
        let missed = log.state.timeline_after(u(1), 0, log.state.last().position);
        assert_eq!(missed.map(|i| i.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(log.state.timeline_after(u(1), 2, Position(99)).count(), 0);
        let second = log.state.timeline_item(u(1), 2).expect("a second item");
        assert_eq!(second.post.text.as_str(), "post 2 of 4");
        assert_eq!(log.state.timeline_item(u(1), 0), None);
        assert_eq!(log.state.timeline_item(u(1), 3), None);
    }

    #[test]
    fn entries_must_come_in_order() {
        let mut log = Log::new();
        log.join(1);
        let skipped = Entry {
            position: Position(3),
            epoch: Epoch(1),
            change: Change::UserJoined {
                user: u(2),
                time: Time(0),
            },
        };
        assert!(matches!(
            log.state.apply(&skipped),
            Err(Error::OutOfOrder { .. })
        ));
        let stale = Entry {
            position: Position(2),
            epoch: Epoch(0),
            ..skipped
        };
        assert!(matches!(
            log.state.apply(&stale),
            Err(Error::StaleEpoch { .. })
        ));
    }
}
