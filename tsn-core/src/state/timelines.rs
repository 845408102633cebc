//! Posts, and the timelines they are delivered to.

use std::collections::HashMap;

use crate::id::{Position, UserId};
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

/// Every post of the replica, by author and by timeline.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timelines {
    posts: Posts,
    authored: HashMap<UserId, Vec<u32>>,
    /// Per reader, the handles of the posts delivered to it, in delivery order (which is
    /// the order of their log positions).
    delivered: HashMap<UserId, Vec<u32>>,
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
        let timeline = self.delivered.entry(user).or_default();
        timeline.push(post);
        timeline.len() as u64
    }

    /// The posts `author` wrote, oldest first.
    pub(crate) fn authored_by(&self, author: UserId) -> impl Iterator<Item = Post> + '_ {
        self.authored
            .get(&author)
            .into_iter()
            .flatten()
            .map(|&h| self.posts.get(h))
    }

    /// How many posts there are.
    pub(crate) fn count(&self) -> usize {
        self.posts.len()
    }

    /// How many posts `user`'s timeline holds.
    pub(crate) fn len(&self, user: UserId) -> u64 {
        self.delivered.get(&user).map_or(0, |t| t.len() as u64)
    }

    /// The item at `index` (from 1) of `user`'s timeline.
    pub(crate) fn at(&self, user: UserId, index: u64) -> Option<TimelineItem> {
        let position = usize::try_from(index.checked_sub(1)?).ok()?;
        let post = *self.delivered.get(&user)?.get(position)?;
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
            .map(Vec::as_slice)
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
        let mut order: Vec<usize> = (0..settled.len()).collect();
        let key = |&i: &usize| (self.posts.time(settled[i]), i);
        if order.len() > count {
            let older = order.len() - count;
            order.select_nth_unstable_by_key(older, key);
            order.drain(..older);
        }
        order.sort_unstable_by_key(|i| std::cmp::Reverse(key(i)));
        order
            .into_iter()
            .map(|i| self.item(i, settled[i]))
            .collect()
    }

    /// The posts of `user`'s timeline after index `after`, in delivery order, among those
    /// delivered by entries up to `through`.
    pub(crate) fn after(&self, user: UserId, after: u64, through: Position) -> Vec<TimelineItem> {
        let settled = self.settled(user, through);
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(settled.len());
        (start..settled.len())
            .map(|i| self.item(i, settled[i]))
            .collect()
    }
}
