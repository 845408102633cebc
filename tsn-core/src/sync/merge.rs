//! [`merge`]: what a cluster writes of another cluster's changes.

use std::collections::{BTreeMap, BTreeSet};

use crate::change::Change;
use crate::id::{ClusterId, Position, UserId};
use crate::state::State;
use crate::sync::{Changes, origin, starts_again};

/// How far an import cursor may lag behind what was read before a batch that merges
/// nothing still records its progress. Keeps restarts cheap without writing a mark for
/// every batch: two clusters whose only news is each other's marks stop answering each
/// other after a few rounds.
pub const IMPORT_LAG: u64 = 1024;

/// Decides what this cluster writes for `changes` of cluster `from`, on top of `state`.
///
/// It takes, in order, the changes after `state.imported_through(from)` that originate
/// in `from`, and writes:
///
/// * a user not known yet (for LIST, and so that it can be followed);
/// * a follow or unfollow of a user of this cluster by a user of `from` (for LIST's
///   followers), when it changes something;
/// * a post not applied yet, when some user of this cluster was following its author at
///   the post's time (the delivery rule of [`State`] puts it on their timelines).
///
/// Everything else (follows among other clusters' users, posts nobody here reads) is
/// passed over for good. The batch ends with [`Change::Imported`] when it wrote anything,
/// or when the cursor would otherwise lag by [`IMPORT_LAG`] or more. Deterministic, and
/// idempotent: a batch already merged yields nothing.
///
/// A batch of another log of `from` than the cursor's yields only an import mark that
/// starts the cursor again from 0 in that log: the caller then reads the log from its
/// start.
pub fn merge(state: &State, from: ClusterId, changes: &Changes) -> Vec<Change> {
    if starts_again(state, from, changes.log) {
        // Another log of `from` than the one merged so far: its positions mean nothing
        // against the cursor. Start the cursor again from 0, in the new log.
        return vec![Change::Imported {
            from,
            through: Position(0),
            log: changes.log,
        }];
    }
    let cursor = state.imported_through(from);
    if changes.through <= cursor {
        return Vec::new();
    }
    let membership = state.membership();
    let mut pending = Pending::default();
    let mut writes = Vec::new();
    let fresh = changes.entries.iter().filter(|e| e.position > cursor);
    for entry in fresh.filter(|e| origin(e, membership.clusters) == Some(from)) {
        let write = match &entry.change {
            Change::UserJoined { user, .. } => pending.join(state, *user),
            Change::Followed {
                follower, followee, ..
            } => {
                membership.is_local(*followee)
                    && pending.set_follow(state, *follower, *followee, true)
            }
            Change::Unfollowed {
                follower, followee, ..
            } => {
                membership.is_local(*followee)
                    && pending.set_follow(state, *follower, *followee, false)
            }
            Change::Posted(post) => {
                !state.has_post(post)
                    && state
                        .followers_at(post.author, post.time)
                        .any(|reader| membership.is_local(reader))
            }
            Change::MasterElected { .. } | Change::Imported { .. } => false,
        };
        if write {
            writes.push(entry.change.clone());
        }
    }
    if !writes.is_empty() || changes.through.0 - cursor.0 >= IMPORT_LAG {
        writes.push(Change::Imported {
            from,
            through: changes.through,
            log: changes.log,
        });
    }
    writes
}

/// What the batch has decided so far, on top of the state.
#[derive(Default)]
struct Pending {
    joined: BTreeSet<UserId>,
    follows: BTreeMap<(UserId, UserId), bool>,
}

impl Pending {
    /// Whether `user` is new (and now counts as known).
    fn join(&mut self, state: &State, user: UserId) -> bool {
        !state.has_user(user) && self.joined.insert(user)
    }

    /// Whether setting the follow to `on` changes it (and now counts as set).
    fn set_follow(&mut self, state: &State, follower: UserId, followee: UserId, on: bool) -> bool {
        let now = self
            .follows
            .get(&(follower, followee))
            .copied()
            .unwrap_or_else(|| state.is_following(follower, followee));
        self.follows.insert((follower, followee), on);
        now != on
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Entry;
    use crate::id::LogId;
    use crate::id::{Epoch, Membership, Position, Time};
    use crate::post::{Post, PostId, PostText};

    /// Cluster 1 of 3, as the scenarios below build it.
    struct Cluster {
        state: State,
    }

    fn u(n: u32) -> UserId {
        UserId::new(n).unwrap()
    }

    fn joined(n: u32) -> Change {
        Change::UserJoined {
            user: u(n),
            time: Time(1),
        }
    }

    fn follows(f: u32, a: u32, t: u64) -> Change {
        Change::Followed {
            follower: u(f),
            followee: u(a),
            time: Time(t),
        }
    }

    fn unfollows(f: u32, a: u32, t: u64) -> Change {
        Change::Unfollowed {
            follower: u(f),
            followee: u(a),
            time: Time(t),
        }
    }

    fn post(author: u32, seq: u64, t: u64) -> Change {
        Change::Posted(Post {
            id: PostId { origin: 5, seq },
            author: u(author),
            time: Time(t),
            text: PostText::new(format!("{author}/{seq}")).unwrap(),
        })
    }

    /// A stretch of cluster 2's log: `changes` at positions 1, 2, ...
    fn from_two(changes: Vec<Change>) -> Changes {
        let entries: Vec<Entry> = changes
            .into_iter()
            .enumerate()
            .map(|(i, change)| Entry {
                position: Position(i as u64 + 1),
                epoch: Epoch(1),
                change,
            })
            .collect();
        let through = entries.last().map_or(Position(0), |e| e.position);
        Changes {
            entries,
            through,
            log: LogId(1),
        }
    }

    const TWO: ClusterId = ClusterId(2);

    impl Cluster {
        fn with(changes: Vec<Change>) -> Self {
            let mut cluster = Cluster {
                state: State::new(Membership {
                    cluster: ClusterId(1),
                    clusters: 3,
                }),
            };
            cluster.write(changes);
            cluster
        }

        fn write(&mut self, changes: Vec<Change>) {
            for change in changes {
                let position = self.state.last().position.next();
                self.state
                    .apply(&Entry {
                        position,
                        epoch: Epoch(1),
                        change,
                    })
                    .unwrap();
            }
        }

        /// Merges and applies; returns what was written.
        fn import(&mut self, changes: &Changes) -> Vec<Change> {
            let writes = merge(&self.state, TWO, changes);
            self.write(writes.clone());
            writes
        }
    }

    #[test]
    fn remote_users_and_their_follows_of_local_users_are_merged() {
        let mut one = Cluster::with(vec![joined(1)]);
        let batch = from_two(vec![
            joined(2),
            joined(5),
            follows(2, 1, 10),
            follows(2, 5, 11),
        ]);
        let writes = one.import(&batch);
        assert_eq!(
            writes,
            [
                joined(2),
                joined(5),
                follows(2, 1, 10),
                Change::Imported {
                    from: TWO,
                    through: Position(4),
                    log: LogId(1),
                },
            ],
            "a follow between two remote users is not this cluster's business"
        );
        assert_eq!(one.state.followers(u(1)).collect::<Vec<_>>(), [u(2)]);
        assert_eq!(one.state.imported_through(TWO), Position(4));
    }

    #[test]
    fn the_same_batch_twice_writes_nothing_the_second_time() {
        let mut one = Cluster::with(vec![joined(1)]);
        let batch = from_two(vec![joined(2), follows(2, 1, 10), post(2, 1, 20)]);
        assert!(!one.import(&batch).is_empty());
        assert!(one.import(&batch).is_empty());
    }

    #[test]
    fn posts_are_merged_for_local_readers_who_followed_at_the_time() {
        let mut one = Cluster::with(vec![
            joined(1),
            joined(4),
            joined(2),
            follows(1, 2, 100),
            unfollows(1, 2, 300),
        ]);
        let batch = from_two(vec![post(2, 1, 50), post(2, 2, 200), post(2, 3, 400)]);
        let writes = one.import(&batch);
        assert_eq!(
            writes,
            [
                post(2, 2, 200),
                Change::Imported {
                    from: TWO,
                    through: Position(3),
                    log: LogId(1),
                }
            ]
        );
        assert_eq!(one.state.timeline_len(u(1)), 1);
        assert_eq!(one.state.timeline_len(u(4)), 0);
    }

    #[test]
    fn changes_that_originate_elsewhere_are_passed_over() {
        let mut one = Cluster::with(vec![joined(1)]);
        // Cluster 2's log holds what it imported from cluster 3, and its bookkeeping.
        let batch = from_two(vec![
            joined(3),
            follows(3, 1, 5),
            Change::MasterElected {
                server: crate::id::ServerId(1),
                time: Time(6),
            },
            Change::Imported {
                from: ClusterId(3),
                through: Position(9),
                log: LogId::UNKNOWN,
            },
        ]);
        assert!(
            one.import(&batch).is_empty(),
            "nothing of cluster 2's own, and little lag"
        );
        assert_eq!(one.state.imported_through(TWO), Position(0));
    }

    #[test]
    fn a_long_stretch_with_nothing_to_merge_still_moves_the_cursor() {
        let mut one = Cluster::with(vec![joined(1)]);
        let nothing = Changes {
            entries: vec![],
            through: Position(IMPORT_LAG),
            log: LogId(1),
        };
        assert_eq!(
            one.import(&nothing),
            [Change::Imported {
                from: TWO,
                through: Position(IMPORT_LAG),
                log: LogId(1),
            }]
        );
    }

    #[test]
    fn follow_and_unfollow_in_one_batch_end_where_the_remote_cluster_ended() {
        let mut one = Cluster::with(vec![joined(1)]);
        let batch = from_two(vec![
            joined(2),
            follows(2, 1, 10),
            unfollows(2, 1, 11),
            follows(2, 1, 12),
        ]);
        one.import(&batch);
        assert!(one.state.is_following(u(2), u(1)));
        let again = from_two(vec![
            joined(2),
            follows(2, 1, 10),
            unfollows(2, 1, 11),
            follows(2, 1, 12),
            unfollows(2, 1, 13),
        ]);
        assert_eq!(
            one.import(&again),
            [
                unfollows(2, 1, 13),
                Change::Imported {
                    from: TWO,
                    through: Position(5),
                    log: LogId(1),
                }
            ]
        );
        assert!(!one.state.is_following(u(2), u(1)));
    }

    #[test]
    fn a_new_log_of_the_other_cluster_starts_the_cursor_again_and_is_merged_whole() {
        let mut one = Cluster::with(vec![joined(1)]);
        one.import(&from_two(vec![
            joined(2),
            joined(4),
            joined(6),
            follows(2, 1, 5),
        ]));
        assert_eq!(one.state.imported_through(TWO), Position(4));
        // Cluster 2 lost its data and started a new log: position 1 is user 8's login.
        let mut fresh = from_two(vec![joined(8), follows(8, 1, 20)]);
        fresh.log = LogId(9);
        assert_eq!(
            one.import(&fresh),
            [Change::Imported {
                from: TWO,
                through: Position(0),
                log: LogId(9)
            }],
            "only the restart of the cursor"
        );
        assert_eq!(
            (one.state.imported_log(TWO), one.state.imported_through(TWO)),
            (LogId(9), Position(0))
        );
        let merged = one.import(&fresh);
        assert!(
            merged.contains(&joined(8)) && merged.contains(&follows(8, 1, 20)),
            "{merged:?}"
        );
        assert!(one.state.has_user(u(8)) && one.state.is_following(u(8), u(1)));
        assert_eq!(one.state.imported_through(TWO), Position(2));
    }

    #[test]
    fn a_cursor_recorded_before_logs_were_named_starts_again_in_the_first_named_log() {
        let mut one = Cluster::with(vec![joined(1)]);
        let mut unnamed = from_two(vec![joined(2), joined(5)]);
        unnamed.log = LogId::UNKNOWN;
        one.import(&unnamed);
        assert_eq!(
            (one.state.imported_log(TWO), one.state.imported_through(TWO)),
            (LogId::UNKNOWN, Position(2))
        );
        // It may be a cursor of any log: the first named batch starts it again, and the
        // log is merged again whole, which adds nothing it had.
        let named = from_two(vec![joined(2), joined(5), joined(8)]);
        assert_eq!(
            one.import(&named),
            [Change::Imported {
                from: TWO,
                through: Position(0),
                log: LogId(1)
            }]
        );
        assert_eq!(
            one.import(&named),
            [
                joined(8),
                Change::Imported {
                    from: TWO,
                    through: Position(3),
                    log: LogId(1)
                }
            ]
        );
    }
}
