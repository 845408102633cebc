//! Who follows whom, now and at any past moment.

use crate::state::HashMap;

use crate::id::{Time, UserId};

/// A stretch of time during which `follower` followed a user; `until` is [`HOLDS`] while the
/// follow holds.
#[derive(Clone, Copy, Debug)]
struct Span {
    follower: UserId,
    since: Time,
    until: Time,
}

/// The end of a span that has not ended: no time is later (a follow that ended at the
/// largest time there is would count as holding at that one instant).
const HOLDS: Time = Time(u64::MAX);

/// Follow relations with their history. Following an already-followed user or unfollowing
/// a user not followed changes nothing.
///
/// Kept compact for replicas of many users: per followed user, one list of every follow
/// span it ever had (which answers "who followed at that time" by a scan of that list), and
/// per follower, a sorted list of whom it follows now.
#[derive(Clone, Debug, Default)]
pub(crate) struct Follows {
    spans: HashMap<UserId, Vec<Span>>,
    following: HashMap<UserId, Vec<UserId>>,
}

impl Follows {
    /// Starts `follower` following `followee` at `time`; false if it already did.
    pub(crate) fn follow(&mut self, follower: UserId, followee: UserId, time: Time) -> bool {
        let following = self.following.entry(follower).or_default();
        let Err(at) = following.binary_search(&followee) else {
            return false;
        };
        following.insert(at, followee);
        self.spans.entry(followee).or_default().push(Span {
            follower,
            since: time,
            until: HOLDS,
        });
        true
    }

    /// Stops `follower` following `followee` at `time`; false if it did not follow.
    pub(crate) fn unfollow(&mut self, follower: UserId, followee: UserId, time: Time) -> bool {
        let Some(following) = self.following.get_mut(&follower) else {
            return false;
        };
        let Ok(at) = following.binary_search(&followee) else {
            return false;
        };
        following.remove(at);
        if let Some(open) = self
            .spans
            .get_mut(&followee)
            .and_then(|spans| spans.iter_mut().rev().find(|s| s.follower == follower))
        {
            open.until = time;
        }
        true
    }

    /// Whether `follower` follows `followee` now.
    pub(crate) fn is_following(&self, follower: UserId, followee: UserId) -> bool {
        self.following
            .get(&follower)
            .is_some_and(|users| users.binary_search(&followee).is_ok())
    }

    /// Who was following `user` at `time`, in the order they began (each once: the spans
    /// of one follower never overlap).
    pub(crate) fn followers_at(
        &self,
        user: UserId,
        time: Time,
    ) -> impl Iterator<Item = UserId> + '_ {
        self.spans
            .get(&user)
            .into_iter()
            .flatten()
            .filter(move |s| s.since <= time && time < s.until)
            .map(|s| s.follower)
    }

    /// Whom `user` follows now, in increasing order.
    pub(crate) fn following(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.following.get(&user).into_iter().flatten().copied()
    }

    /// Who follows `user` now, in increasing order.
    pub(crate) fn followers(&self, user: UserId) -> impl Iterator<Item = UserId> {
        let mut now: Vec<UserId> = self.followers_in_order(user).collect();
        now.sort_unstable();
        now.into_iter()
    }

    /// Who follows `user` now, in the order their follows began.
    pub(crate) fn followers_in_order(&self, user: UserId) -> impl Iterator<Item = UserId> + '_ {
        self.spans
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|s| s.until == HOLDS)
            .map(|s| s.follower)
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
        let at = |t| f.followers_at(u(2), Time(t)).collect::<Vec<_>>() == [u(1)];
        assert_eq!(
            [at(9), at(10), at(19), at(20), at(29), at(30), at(99)],
            [false, true, true, false, false, true, true]
        );
        assert_eq!(f.followers(u(2)).collect::<Vec<_>>(), [u(1)]);
        assert_eq!(f.following(u(1)).collect::<Vec<_>>(), [u(2)]);
    }

    #[test]
    fn lists_are_in_increasing_order() {
        let mut f = Follows::default();
        for follower in [9, 3, 7, 1] {
            f.follow(u(follower), u(5), Time(1));
        }
        for followee in [8, 2, 6] {
            f.follow(u(1), u(followee), Time(1));
        }
        f.unfollow(u(7), u(5), Time(2));
        assert_eq!(f.followers(u(5)).collect::<Vec<_>>(), [u(1), u(3), u(9)]);
        assert_eq!(
            f.following(u(1)).collect::<Vec<_>>(),
            [u(2), u(5), u(6), u(8)]
        );
        assert!(f.is_following(u(1), u(6)) && !f.is_following(u(7), u(5)));
    }

    #[test]
    fn followers_in_order_are_in_the_order_the_follows_that_hold_began() {
        let mut f = Follows::default();
        for follower in [9, 3, 7, 1] {
            f.follow(u(follower), u(5), Time(1));
        }
        f.unfollow(u(7), u(5), Time(2));
        f.follow(u(7), u(5), Time(3));
        f.unfollow(u(3), u(5), Time(4));
        assert_eq!(
            f.followers_in_order(u(5)).collect::<Vec<_>>(),
            [u(9), u(1), u(7)]
        );
    }
}
