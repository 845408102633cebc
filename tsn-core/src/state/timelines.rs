//! Posts, and the timelines they are delivered to.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::state::HashMap;

use crate::id::{Position, Time, UserId};
use crate::post::{Post, PostId};
use crate::state::posts::Posts;

/// A post on a user's timeline with its index there: 1 for the first post ever delivered
/// to that user, 2 for the next, and so on. Indices are the same on every replica, so a
/// client that has shown items up to index `k` resumes after a failover with `k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineItem {
    /// The item's place on its timeline, from 1.
    pub index: u64,
    /// The post.
    pub post: Post,
}

/// How many timeline items share one entry of [`Timeline::newest_up_to`].
const BLOCK: usize = 64;

/// One reader's timeline: the handles of the posts delivered, in delivery order (which is
/// the order of their log positions), and, per full block of [`BLOCK`] items, the newest
/// post time up to the end of that block (most readers hold less than a block: they have
/// no such list). Delivery order is nearly time order (only posts from other clusters
/// arrive late), so the newest posts are found by reading blocks from the end until every
/// earlier block holds only older posts.
#[derive(Clone, Debug, Default)]
struct Timeline {
    posts: Vec<u32>,
    newest_up_to: Vec<Time>,
    /// The newest post time among the items after the last full block.
    newest_since: Time,
}

impl Timeline {
    fn push(&mut self, post: u32, time: Time) {
        self.posts.push(post);
        self.newest_since = self.newest_since.max(time);
        if self.posts.len().is_multiple_of(BLOCK) {
            let before = self.newest_up_to.last().copied().unwrap_or_default();
            self.newest_up_to.push(before.max(self.newest_since));
            self.newest_since = Time::default();
        }
    }
}

/// Every post of the replica, by author and by timeline.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timelines {
    posts: Posts,
    authored: HashMap<UserId, Vec<u32>>,
    /// Per reader, the posts delivered to it.
    delivered: HashMap<UserId, Timeline>,
    /// Per (author, origin): the highest post `seq` applied. A client numbers its posts in
    /// the order it sends them and the log applies them in that order, so any `seq` at or
    /// below this is a post already applied.
    newest_seq: HashMap<(UserId, u64), u64>,
}

impl Timelines {
    /// Whether this post was applied already.
    pub(crate) fn contains(&self, author: UserId, id: PostId) -> bool {
        self.newest_seq
            .get(&(author, id.origin))
            .is_some_and(|&seq| id.seq <= seq)
    }

    /// Stores `post`, written at `position`; returns its handle for
    /// [`Timelines::deliver`], or `None` if it was applied already.
    pub(crate) fn add(&mut self, post: &Post, position: Position) -> Option<u32> {
        if self.contains(post.author, post.id) {
            return None;
        }
        let handle = self.posts.add(post, position);
        self.newest_seq
            .insert((post.author, post.id.origin), post.id.seq);
        self.authored.entry(post.author).or_default().push(handle);
        Some(handle)
    }

    /// Appends a stored post to `user`'s timeline; returns its index there.
    pub(crate) fn deliver(&mut self, user: UserId, post: u32) -> u64 {
        let time = self.posts.time(post);
        let timeline = self.delivered.entry(user).or_default();
        timeline.push(post, time);
        timeline.posts.len() as u64
    }

    /// The posts `author` wrote after its first `skip`, oldest first; the skipped ones cost
    /// nothing.
    pub(crate) fn authored_by(
        &self,
        author: UserId,
        skip: usize,
    ) -> impl Iterator<Item = Post> + '_ {
        let handles = self.authored.get(&author).map_or(&[][..], Vec::as_slice);
        handles
            .get(skip..)
            .unwrap_or_default()
            .iter()
            .map(|&h| self.posts.get(h))
    }

    /// How many posts there are.
    pub(crate) fn count(&self) -> usize {
        self.posts.len()
    }

    /// How many posts `user`'s timeline holds.
    pub(crate) fn len(&self, user: UserId) -> u64 {
        self.delivered
            .get(&user)
            .map_or(0, |t| t.posts.len() as u64)
    }

    /// The item at `index` (from 1) of `user`'s timeline.
    pub(crate) fn at(&self, user: UserId, index: u64) -> Option<TimelineItem> {
        let position = usize::try_from(index.checked_sub(1)?).ok()?;
        let post = *self.delivered.get(&user)?.posts.get(position)?;
        Some(self.item(position, post))
    }

    /// How many items of `user`'s timeline were delivered by entries up to `through`.
    pub(crate) fn len_through(&self, user: UserId, through: Position) -> u64 {
        self.settled(user, through).len() as u64
    }

    /// The items of `user`'s timeline delivered by entries up to `through`.
    fn settled(&self, user: UserId, through: Position) -> &[u32] {
        let timeline = self
            .delivered
            .get(&user)
            .map(|t| t.posts.as_slice())
            .unwrap_or_default();
        let end = timeline.partition_point(|&post| self.posts.position(post) <= through);
        &timeline[..end]
    }

    fn item(&self, index: usize, post: u32) -> TimelineItem {
        TimelineItem {
            index: index as u64 + 1,
            post: self.posts.get(post),
        }
    }

    /// The `count` newest posts of `user`'s timeline (by post time), newest first, among
    /// those delivered by entries up to `through`.
    pub(crate) fn newest(
        &self,
        user: UserId,
        count: usize,
        through: Position,
    ) -> Vec<TimelineItem> {
        let settled = self.settled(user, through);
        let Some(timeline) = self.delivered.get(&user).filter(|_| count > 0) else {
            return Vec::new();
        };
        // The `count` best (time, index) keys seen, the worst on top.
        let mut best: BinaryHeap<Reverse<(Time, usize)>> = BinaryHeap::with_capacity(count + 1);
        for block in (0..settled.len().div_ceil(BLOCK)).rev() {
            // Only a block that is not the first read here can stop the reading, and every
            // such block is full.
            let newest = timeline.newest_up_to.get(block);
            if best.len() == count
                && best
                    .peek()
                    .zip(newest)
                    .is_some_and(|(Reverse((worst, _)), newest)| newest <= worst)
            {
                break;
            }
            let end = ((block + 1) * BLOCK).min(settled.len());
            for i in (block * BLOCK..end).rev() {
                best.push(Reverse((self.posts.time(settled[i]), i)));
                if best.len() > count {
                    best.pop();
                }
            }
        }
        let mut newest: Vec<(Time, usize)> = best.into_iter().map(|Reverse(key)| key).collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        newest
            .into_iter()
            .map(|(_, i)| self.item(i, settled[i]))
            .collect()
    }

    /// The posts of `user`'s timeline after index `after`, in delivery order, among those
    /// delivered by entries up to `through`.
    pub(crate) fn after(
        &self,
        user: UserId,
        after: u64,
        through: Position,
    ) -> impl Iterator<Item = TimelineItem> + '_ {
        let settled = self.settled(user, through);
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(settled.len());
        (start..settled.len()).map(move |i| self.item(i, settled[i]))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::post::PostText;

    /// A timeline of user 1 holding posts with the given times, delivered in that order by
    /// entries at positions 1, 2, 3 ...
    fn timeline(times: &[u64]) -> Timelines {
        let mut timelines = Timelines::default();
        let reader = UserId::new(1).unwrap();
        for (i, &time) in times.iter().enumerate() {
            let post = Post {
                id: PostId {
                    origin: 1,
                    seq: i as u64 + 1,
                },
                author: UserId::new(2).unwrap(),
                time: Time(time),
                text: PostText::new("x").unwrap(),
            };
            let handle = timelines.add(&post, Position(i as u64 + 1)).unwrap();
            timelines.deliver(reader, handle);
        }
        timelines
    }

    proptest! {
        /// The block-wise search finds what sorting every settled item would.
        #[test]
        fn the_newest_are_those_a_full_sort_finds(
            times in proptest::collection::vec(0u64..500, 0..400),
            count in 0usize..30,
            through in 0u64..450,
        ) {
            let timelines = timeline(&times);
            let reader = UserId::new(1).unwrap();
            let found: Vec<u64> = timelines
                .newest(reader, count, Position(through))
                .iter()
                .map(|item| item.index)
                .collect();
            let settled = times.len().min(through as usize);
            let mut all: Vec<(u64, usize)> = times[..settled].iter().copied().zip(0..).collect();
            all.sort_unstable_by(|a, b| b.cmp(a));
            let expected: Vec<u64> = all.iter().take(count).map(|&(_, i)| i as u64 + 1).collect();
            prop_assert_eq!(found, expected);
        }
    }
}
