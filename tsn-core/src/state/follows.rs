//! Who follows whom, now and at any past moment.

use std::collections::{BTreeSet, HashMap};

use crate::id::{Time, UserId};

/// The stretches of time a follow held: `(since, until)`, the last open while it holds.
type Spans = Vec<(Time, Option<Time>)>;

/// Follow relations with their history: for every pair, the stretches of time during which
/// the follow held. Following an already-followed user or unfollowing a user not followed
/// changes nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Follows {
    /// Per (follower, followee): `(since, until)` stretches, the last open while it holds.
    spans: HashMap<(UserId, UserId), Spans>,
    following: HashMap<UserId, BTreeSet<UserId>>,
    followers: HashMap<UserId, BTreeSet<UserId>>,
    /// Everyone who ever followed a user, in the order they first did.
    ever_followed_by: HashMap<UserId, Vec<UserId>>,
}

impl Follows {
    /// Starts `follower` following `followee` at `time`; false if it already did.
    pub(crate) fn follow(&mut self, follower: UserId, followee: UserId, time: Time) -> bool {
        if !self.following.entry(follower).or_default().insert(followee) {
            return false;
        }
        self.followers.entry(followee).or_default().insert(follower);
        let spans = self.spans.entry((follower, followee)).or_default();
        if spans.is_empty() {
            self.ever_followed_by
                .entry(followee)
                .or_default()
                .push(follower);
        }
        spans.push((time, None));
        true
    }

    /// Stops `follower` following `followee` at `time`; false if it did not follow.
    pub(crate) fn unfollow(&mut self, follower: UserId, followee: UserId, time: Time) -> bool {
        let removed = self
            .following
            .get_mut(&follower)
            .is_some_and(|set| set.remove(&followee));
        if removed {
            if let Some(set) = self.followers.get_mut(&followee) {
                set.remove(&follower);
            }
            if let Some(open) = self
                .spans
                .get_mut(&(follower, followee))
                .and_then(|spans| spans.last_mut())
            {
                open.1 = Some(time);
            }
        }
        removed
    }

    /// Whether `follower` follows `followee` now.
    pub(crate) fn is_following(&self, follower: UserId, followee: UserId) -> bool {
        self.following
            .get(&follower)
            .is_some_and(|set| set.contains(&followee))
    }

    /// Whether `follower` was following `followee` at `time`.
    pub(crate) fn was_following_at(&self, follower: UserId, followee: UserId, time: Time) -> bool {
        self.spans.get(&(follower, followee)).is_some_and(|spans| {
            spans
                .iter()
                .any(|&(since, until)| since <= time && until.is_none_or(|until| time < until))
        })
    }

    /// Whom `user` follows now, in increasing order.
    pub(crate) fn following(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.following.get(&user).into_iter().flatten().copied()
    }

    /// Who follows `user` now, in increasing order.
    pub(crate) fn followers(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.followers.get(&user).into_iter().flatten().copied()
    }

    /// Everyone who ever followed `user`.
    pub(crate) fn ever_followed_by(&self, user: UserId) -> &[UserId] {
        self.ever_followed_by
            .get(&user)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u32) -> UserId {
        UserId::new(n).unwrap()
    }

    #[test]
    fn history_answers_for_any_moment() {
        let mut f = Follows::default();
        assert!(f.follow(u(1), u(2), Time(10)));
        assert!(!f.follow(u(1), u(2), Time(11)), "already following");
        assert!(f.unfollow(u(1), u(2), Time(20)));
        assert!(!f.unfollow(u(1), u(2), Time(21)), "no longer following");
        assert!(f.follow(u(1), u(2), Time(30)));
        let at = |t| f.was_following_at(u(1), u(2), Time(t));
        assert_eq!(
            [at(9), at(10), at(19), at(20), at(29), at(30), at(99)],
            [false, true, true, false, false, true, true]
        );
        assert_eq!(f.ever_followed_by(u(2)), [u(1)]);
        assert_eq!(f.followers(u(2)).collect::<Vec<_>>(), [u(1)]);
        assert_eq!(f.following(u(1)).collect::<Vec<_>>(), [u(2)]);
    }
}
