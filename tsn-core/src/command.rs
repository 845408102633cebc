//! What a master decides for each client request, as pure functions of its state.
//!
//! Each function either refuses (with a reason the protocol turns into the course's reply
//! text) or returns the change to append. Writing, waiting for durability and replying is
//! the server's job.

use crate::change::Change;
use crate::id::{ClusterId, Time, UserId, home_cluster};
use crate::post::{Post, PostId, PostText};
use crate::state::State;

/// Why a user may not make requests at this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotServed {
    /// The user lives in another cluster.
    #[error("user {user} belongs to cluster {home}, not to this server's cluster")]
    WrongCluster {
        /// The user.
        user: UserId,
        /// Where it lives.
        home: ClusterId,
    },
    /// The user never logged in.
    #[error("user {0} has not logged in")]
    NotLoggedIn(UserId),
}

/// Checks that `user` lives in this replica's cluster and, unless `logging_in`, exists.
pub fn check_served(state: &State, user: UserId, logging_in: bool) -> Result<(), NotServed> {
    let membership = state.membership();
    if !membership.is_local(user) {
        return Err(NotServed::WrongCluster {
            user,
            home: home_cluster(user, membership.clusters),
        });
    }
    if !logging_in && !state.has_user(user) {
        return Err(NotServed::NotLoggedIn(user));
    }
    Ok(())
}

/// The outcome of a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// Seen for the first time: append the change, then welcome.
    New(Change),
    /// Logged in before.
    Returning,
}

/// Decides a login by `user` (already checked with [`check_served`]).
pub fn login(state: &State, user: UserId, now: Time) -> Login {
    if state.has_user(user) {
        Login::Returning
    } else {
        Login::New(Change::UserJoined {
            user,
            time: state.next_time(now),
        })
    }
}

/// Why a follow is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowRefused {
    /// No such user anywhere in the system (as far as this cluster knows).
    UnknownUser,
    /// Already following, or following oneself.
    AlreadyFollowing,
}

/// Decides `follower` following `followee`.
pub fn follow(
    state: &State,
    follower: UserId,
    followee: UserId,
    now: Time,
) -> Result<Change, FollowRefused> {
    if !state.has_user(followee) {
        return Err(FollowRefused::UnknownUser);
    }
    if follower == followee || state.is_following(follower, followee) {
        return Err(FollowRefused::AlreadyFollowing);
    }
    Ok(Change::Followed {
        follower,
        followee,
        time: state.next_time(now),
    })
}

/// Why an unfollow is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnfollowRefused {
    /// No such user, or the user itself.
    UnknownUser,
    /// Was not following.
    NotFollowing,
}

/// Decides `follower` unfollowing `followee`.
pub fn unfollow(
    state: &State,
    follower: UserId,
    followee: UserId,
    now: Time,
) -> Result<Change, UnfollowRefused> {
    if follower == followee || !state.has_user(followee) {
        return Err(UnfollowRefused::UnknownUser);
    }
    if !state.is_following(follower, followee) {
        return Err(UnfollowRefused::NotFollowing);
    }
    Ok(Change::Unfollowed {
        follower,
        followee,
        time: state.next_time(now),
    })
}

/// The outcome of a post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posting {
    /// A new post: append the change.
    New(Change),
    /// The post was applied before (a retry after a failover): acknowledge it again.
    Duplicate,
}

/// Decides a post by `author` with the id its client chose.
pub fn post(state: &State, author: UserId, id: PostId, text: PostText, now: Time) -> Posting {
    let post = Post {
        id,
        author,
        time: state.next_time(now),
        text,
    };
    if state.has_post(&post) {
        Posting::Duplicate
    } else {
        Posting::New(Change::Posted(post))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Entry;
    use crate::id::{Epoch, Membership};

    fn u(n: u32) -> UserId {
        UserId::new(n).unwrap()
    }

    fn state_with(changes: Vec<Change>) -> State {
        let mut state = State::new(Membership {
            cluster: ClusterId(1),
            clusters: 3,
        });
        for change in changes {
            let position = state.last().position.next();
            state
                .apply(&Entry {
                    position,
                    epoch: Epoch(1),
                    change,
                })
                .unwrap();
        }
        state
    }

    fn joined(n: u32) -> Change {
        Change::UserJoined {
            user: u(n),
            time: Time(1),
        }
    }

    #[test]
    fn only_local_users_are_served() {
        let state = state_with(vec![joined(1)]);
        assert_eq!(check_served(&state, u(1), false), Ok(()));
        assert_eq!(check_served(&state, u(4), true), Ok(()));
        assert_eq!(
            check_served(&state, u(4), false),
            Err(NotServed::NotLoggedIn(u(4)))
        );
        assert_eq!(
            check_served(&state, u(2), true),
            Err(NotServed::WrongCluster {
                user: u(2),
                home: ClusterId(2)
            })
        );
    }

    #[test]
    fn login_welcomes_new_and_returning_users() {
        let state = state_with(vec![joined(1)]);
        assert_eq!(login(&state, u(1), Time(5)), Login::Returning);
        assert!(matches!(
            login(&state, u(4), Time(5)),
            Login::New(Change::UserJoined { .. })
        ));
    }

    #[test]
    fn follow_and_unfollow_refusals() {
        let state = state_with(vec![
            joined(1),
            joined(4),
            Change::Followed {
                follower: u(1),
                followee: u(4),
                time: Time(2),
            },
        ]);
        assert_eq!(
            follow(&state, u(1), u(7), Time(3)),
            Err(FollowRefused::UnknownUser)
        );
        assert_eq!(
            follow(&state, u(1), u(1), Time(3)),
            Err(FollowRefused::AlreadyFollowing)
        );
        assert_eq!(
            follow(&state, u(1), u(4), Time(3)),
            Err(FollowRefused::AlreadyFollowing)
        );
        assert!(follow(&state, u(4), u(1), Time(3)).is_ok());
        assert_eq!(
            unfollow(&state, u(1), u(1), Time(3)),
            Err(UnfollowRefused::UnknownUser)
        );
        assert_eq!(
            unfollow(&state, u(1), u(7), Time(3)),
            Err(UnfollowRefused::UnknownUser)
        );
        assert_eq!(
            unfollow(&state, u(4), u(1), Time(3)),
            Err(UnfollowRefused::NotFollowing)
        );
        assert!(unfollow(&state, u(1), u(4), Time(3)).is_ok());
    }

    #[test]
    fn new_changes_are_stamped_after_everything_in_the_log() {
        let state = state_with(vec![
            joined(1),
            Change::UserJoined {
                user: u(4),
                time: Time(100),
            },
        ]);
        let Login::New(change) = login(&state, u(7), Time(50)) else {
            panic!("user 7 is new")
        };
        assert_eq!(
            change.time(),
            Some(Time(101)),
            "a clock behind the log does not go backwards"
        );
    }

    #[test]
    fn a_post_seen_before_is_a_duplicate() {
        let text = PostText::new("hi").unwrap();
        let id = PostId { origin: 9, seq: 1 };
        let state = state_with(vec![
            joined(1),
            Change::Posted(Post {
                id,
                author: u(1),
                time: Time(2),
                text: text.clone(),
            }),
        ]);
        assert_eq!(
            post(&state, u(1), id, text.clone(), Time(3)),
            Posting::Duplicate
        );
        let next = PostId { origin: 9, seq: 2 };
        assert!(matches!(
            post(&state, u(1), next, text, Time(3)),
            Posting::New(_)
        ));
    }
}
