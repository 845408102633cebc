//! Merging other clusters' changes into this one, while this server is master.

use std::sync::Arc;
use std::time::Duration;

use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::{merge, starts_again};
use tsn_core::{Store, SyncPeer};

use crate::master::Master;

/// How many changes one merge takes at most.
const IMPORT_BATCH: usize = 1024;
/// The first and the longest pause after a failed read.
const RETRY: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(500));

/// Reads the changes of cluster `from` from `peer` and merges them through the master's
/// write path — committed, replicated and published like the master's own writes — until
/// the role ends. The merge records its cursor in the log, so the next master resumes
/// there.
pub async fn run<S: Store>(master: Arc<Master<S>>, from: ClusterId, peer: Arc<dyn SyncPeer>) {
    // What was read but merged nothing (and so moved no cursor in the log), and in which
    // log of `from`.
    let (mut read, mut read_log) = (Position(0), LogId::UNKNOWN);
    let mut pause = RETRY.0;
    loop {
        let cursor = master.store().read(|s| s.imported_through(from)).max(read);
        let answer = tokio::select! {
            answer = peer.changes_after(cursor, IMPORT_BATCH) => answer,
            () = master.ended() => return,
        };
        match answer {
            Ok(changes) => {
                pause = RETRY.0;
                let recorded = master.store().read(|s| starts_again(s, from, changes.log));
                if recorded || changes.log.differs_from(read_log) {
                    // A new log of `from`: the answer came after a cursor of another one.
                    // The merge records a cursor of 0 in the new log (when the log holds a
                    // cursor of another), and the import asks again from there.
                    tracing::info!(%from, log = changes.log.0, "the other cluster has a new log; importing it from its start");
                    if recorded
                        && let Err(error) = master.append_all(|state| merge(state, from, &changes))
                    {
                        tracing::debug!(%from, %error, "import stopped");
                        return;
                    }
                    (read, read_log) = (Position(0), changes.log);
                    continue;
                }
                if changes.through <= cursor {
                    continue;
                }
                if let Err(error) = master.append_all(|state| merge(state, from, &changes)) {
                    tracing::debug!(%from, %error, "import stopped");
                    return;
                }
                (read, read_log) = (changes.through, changes.log);
            }
            Err(error) => {
                tracing::debug!(%from, %error, "cannot read the changes of another cluster");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Instant;

    use async_trait::async_trait;
    use tokio::sync::Notify;
    use tsn_core::change::{Change, Entry};
    use tsn_core::id::{Epoch, Membership, ServerId, Time, UserId};
    use tsn_core::store::Memory;
    use tsn_core::sync::{Changes, UserRecord};
    use tsn_core::timeline::Hub;

    use super::*;

    const TWO: ClusterId = ClusterId(2);

    /// Cluster 2, answering from a script: each question takes the next answer; once the
    /// script is done it has nothing new (after a short wait, as a peer may). Records the
    /// cursors asked.
    struct Scripted {
        answers: Mutex<Vec<Changes>>,
        asked: Mutex<Vec<u64>>,
    }

    #[async_trait]
    impl SyncPeer for Scripted {
        async fn users(&self) -> tsn_core::Result<Vec<UserRecord>> {
            Ok(Vec::new())
        }

        async fn changes_after(&self, cursor: Position, _max: usize) -> tsn_core::Result<Changes> {
            self.asked.lock().unwrap().push(cursor.0);
            let next = {
                let mut answers = self.answers.lock().unwrap();
                (!answers.is_empty()).then(|| answers.remove(0))
            };
            match next {
                Some(answer) => Ok(answer),
                None => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Err(tsn_core::Error::Unavailable {
                        what: "cluster 2".into(),
                        reason: "nothing new".into(),
                    })
                }
            }
        }
    }

    fn entry(position: u64, epoch: u64, change: Change) -> Entry {
        Entry {
            position: Position(position),
            epoch: Epoch(epoch),
            change,
        }
    }

    fn user(n: u32) -> UserId {
        UserId::new(n).expect("a user")
    }

    /// Imports from `peer` into the master of cluster 1 of 2 until `done` holds of its
    /// state (or 10 s pass), and returns the cursors asked.
    async fn import_until(
        peer: Arc<Scripted>,
        done: impl Fn(&tsn_core::state::State) -> bool,
    ) -> Vec<u64> {
        import_on(cluster_1(), peer, done).await
    }

    /// The empty store of cluster 1 of 2.
    fn cluster_1() -> Arc<Memory> {
        Arc::new(Memory::new(Membership {
            cluster: ClusterId(1),
            clusters: 2,
        }))
    }

    /// Like [`import_until`], on `store`.
    async fn import_on(
        store: Arc<Memory>,
        peer: Arc<Scripted>,
        done: impl Fn(&tsn_core::state::State) -> bool,
    ) -> Vec<u64> {
        let master = Master::start(
            store,
            Arc::new(Hub::new()),
            Epoch(1),
            ServerId(1),
            Duration::from_secs(60),
            Arc::new(Notify::new()),
        )
        .expect("the master role");
        let importing = tokio::spawn(run(
            Arc::clone(&master),
            TWO,
            peer.clone() as Arc<dyn SyncPeer>,
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !master.store().read(&done) {
            assert!(
                Instant::now() < deadline,
                "the import did not get there; asked {:?}",
                peer.asked.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        master.stop();
        tokio::time::timeout(Duration::from_secs(10), importing)
            .await
            .expect("the import ends with the role")
            .expect("the import task");
        peer.asked.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_new_log_of_the_other_cluster_is_imported_from_its_start_even_before_any_mark() {
        let old = LogId(1);
        let new = LogId(7);
        // The old log's answer merges nothing (a follow between two users of cluster 2),
        // so no cursor is recorded; then cluster 2 answers from a new, shorter log.
        let follows = Change::Followed {
            follower: user(2),
            followee: user(4),
            time: Time(1),
        };
        let peer = Arc::new(Scripted {
            answers: Mutex::new(vec![
                Changes {
                    entries: vec![entry(5, 1, follows)],
                    through: Position(5),
                    log: old,
                },
                Changes {
                    entries: vec![],
                    through: Position(5),
                    log: new,
                },
                Changes {
                    entries: vec![entry(
                        1,
                        7,
                        Change::UserJoined {
                            user: user(6),
                            time: Time(2),
                        },
                    )],
                    through: Position(1),
                    log: new,
                },
            ]),
            asked: Mutex::new(Vec::new()),
        });
        let asked = import_until(peer, |s| s.has_user(user(6))).await;
        assert_eq!(
            asked[..3],
            [0, 5, 0],
            "asked again from the new log's start"
        );
    }

    #[tokio::test]
    async fn a_batch_answered_twice_is_merged_once() {
        let joined = Change::UserJoined {
            user: user(2),
            time: Time(1),
        };
        let batch = Changes {
            entries: vec![entry(1, 1, joined.clone())],
            through: Position(1),
            log: LogId(1),
        };
        let peer = Arc::new(Scripted {
            answers: Mutex::new(vec![batch.clone(), batch]),
            asked: Mutex::new(Vec::new()),
        });
        let store_entries = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&store_entries);
        import_until(Arc::clone(&peer), move |s| {
            *counted.lock().unwrap() = s.last().position.0;
            // A third question: the second answer is dealt with.
            s.has_user(user(2)) && peer.asked.lock().unwrap().len() >= 3
        })
        .await;
        // The election, the user, the import mark: the second answer wrote nothing.
        assert_eq!(*store_entries.lock().unwrap(), 3);
    }

    #[tokio::test]
    async fn an_import_resumes_after_the_mark_its_log_holds() {
        // What an earlier master merged of cluster 2 (through 5), as its log recorded it.
        let store = cluster_1();
        store
            .append(&[entry(
                1,
                1,
                Change::Imported {
                    from: TWO,
                    through: Position(5),
                    log: LogId(1),
                },
            )])
            .expect("the mark");
        store.flush().await.expect("durable");
        let peer = Arc::new(Scripted {
            answers: Mutex::new(vec![Changes {
                entries: vec![entry(
                    6,
                    1,
                    Change::UserJoined {
                        user: user(2),
                        time: Time(1),
                    },
                )],
                through: Position(6),
                log: LogId(1),
            }]),
            asked: Mutex::new(Vec::new()),
        });
        let asked = import_on(store, peer, |s| s.has_user(user(2))).await;
        assert_eq!(
            asked.first(),
            Some(&5),
            "the first question starts after the mark"
        );
    }
}
