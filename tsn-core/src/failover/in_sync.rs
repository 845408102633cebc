//! [`InSyncSet`]: a master's view of its slaves, and the position it may acknowledge.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::id::{FolderId, Position, ServerId};

#[derive(Clone, Debug)]
struct Slave {
    /// The data folder of the slave's replica: only a connection from it counts for the
    /// slave while it is connected or in sync.
    folder: FolderId,
    connected: bool,
    /// The connection its acknowledgements come on; an older one's end changes nothing.
    connection: u64,
    acked: Position,
    last_progress: Instant,
    /// Commits wait for it.
    in_sync: bool,
    /// The commit position when it joined: it counts for the coordinator once it holds
    /// that much, every entry acknowledged without it.
    joined_at: Position,
    /// Removal from the in-sync set is proposed and awaits the coordinator.
    leaving: bool,
}

/// How far behind the master's log a slave may be and still join the in-sync set. A slave
/// that joins holds commits back until it has caught up, so under a steady stream of
/// writes a slave always a batch or two behind still gets in, at the cost of a short
/// pause — where requiring it to hold everything committed might never happen.
const JOIN_LAG: u64 = 4096;

/// A master's replication bookkeeping: what is durable where, which slaves are in sync,
/// and so the commit position: the last entry durable on the master and on every in-sync
/// slave, which the master may acknowledge and publish.
///
/// A slave joins the in-sync set once it is at most [`JOIN_LAG`] entries behind the log:
/// from then on commits wait for it, and it is reported to the coordinator (who may then
/// promote it) once it holds everything committed before it joined. It leaves when it
/// disconnects or makes no progress for the lag timeout, but only after the coordinator
/// has confirmed a set without it: until then commits wait for it (see the
/// [failover docs](crate::failover)). The commit position never goes back.
#[derive(Clone, Debug)]
pub struct InSyncSet {
    lag_timeout: Duration,
    appended: Position,
    durable: Position,
    committed: Position,
    slaves: BTreeMap<ServerId, Slave>,
}

impl InSyncSet {
    /// Bookkeeping for a master whose log ends (durably) at `end`.
    pub fn new(end: Position, lag_timeout: Duration) -> Self {
        InSyncSet {
            lag_timeout,
            appended: end,
            durable: end,
            committed: end,
            slaves: BTreeMap::new(),
        }
    }

    /// The master appended entries up to `position` at `now`. A slave that held everything
    /// before counts as making progress from now on: it cannot have acknowledged entries
    /// it was not sent yet.
    pub fn appended(&mut self, position: Position, now: Instant) {
        for s in self.slaves.values_mut() {
            if s.acked >= self.appended {
                s.last_progress = now;
            }
        }
        self.appended = self.appended.max(position);
    }

    /// The master's own log is durable up to `position`.
    pub fn durable(&mut self, position: Position) {
        self.durable = self.durable.max(position);
        self.settle();
    }

    /// A slave connected on `connection` (a number unique to each connection) from its
    /// replica in the data folder `folder`, holding the master's log up to `holds`.
    ///
    /// Fails with [`Error::Duplicate`], changing nothing, while the same slave is connected
    /// or in sync from another folder: a second copy of it was started by mistake.
    pub fn connected(
        &mut self,
        slave: ServerId,
        folder: FolderId,
        connection: u64,
        holds: Position,
        now: Instant,
    ) -> Result<()> {
        self.admits(slave, folder)?;
        let entry = self.slaves.entry(slave).or_insert(Slave {
            folder,
            connected: true,
            connection,
            acked: holds,
            last_progress: now,
            in_sync: false,
            joined_at: Position(0),
            leaving: false,
        });
        entry.folder = folder;
        entry.connected = true;
        entry.connection = connection;
        entry.acked = holds;
        entry.last_progress = now;
        self.settle();
        Ok(())
    }

    /// Whether a connection of `slave` from its replica in the data folder `folder` may
    /// count: [`Error::Duplicate`] while the same slave is connected or in sync from another
    /// folder.
    pub fn admits(&self, slave: ServerId, folder: FolderId) -> Result<()> {
        match self.slaves.get(&slave) {
            Some(held) if (held.connected || held.in_sync) && held.folder.differs_from(folder) => {
                Err(Error::Duplicate(format!(
                    "server {slave} already replicates from this master from another data \
                     folder; refusing a second copy"
                )))
            }
            _ => Ok(()),
        }
    }

    /// A slave made its log durable up to `position`.
    pub fn acked(&mut self, slave: ServerId, position: Position, now: Instant) {
        if let Some(s) = self.slaves.get_mut(&slave)
            && position > s.acked
        {
            s.acked = position;
            s.last_progress = now;
        }
        self.settle();
    }

    /// A slave's connection ended; if the slave has connected again since, nothing changes.
    pub fn disconnected(&mut self, slave: ServerId, connection: u64) {
        if let Some(s) = self.slaves.get_mut(&slave)
            && s.connection == connection
        {
            s.connected = false;
            if s.in_sync {
                s.leaving = true;
            } else {
                self.slaves.remove(&slave);
            }
        }
    }

    /// Marks in-sync slaves that lag behind for the lag timeout as leaving; true if any did
    /// (the master should report to the coordinator at once).
    pub fn tick(&mut self, now: Instant) -> bool {
        let appended = self.appended;
        let mut proposed = false;
        for s in self.slaves.values_mut() {
            let stalled =
                s.acked < appended && now.duration_since(s.last_progress) >= self.lag_timeout;
            if s.in_sync && !s.leaving && stalled {
                s.leaving = true;
                proposed = true;
            }
        }
        proposed
    }

    /// Whether a removal awaits the coordinator's confirmation.
    pub fn has_leaving(&self) -> bool {
        self.slaves.values().any(|s| s.leaving)
    }

    /// The in-sync set to report to the coordinator: members not leaving.
    pub fn report(&self) -> Vec<ServerId> {
        self.slaves
            .iter()
            .filter(|(_, s)| s.in_sync && !s.leaving && s.acked >= s.joined_at)
            .map(|(&id, _)| id)
            .collect()
    }

    /// The coordinator accepted `reported` (an earlier [`InSyncSet::report`]) as the
    /// in-sync set: members left out of it that were leaving stop counting.
    pub fn confirmed(&mut self, reported: &[ServerId]) {
        self.slaves.retain(|id, s| {
            if s.leaving && !reported.contains(id) {
                s.in_sync = false;
                s.leaving = false;
                s.connected
            } else {
                true
            }
        });
        self.settle();
    }

    /// The last position durable on the master and on every in-sync slave (never less
    /// than it has been).
    pub fn commit(&self) -> Position {
        self.committed
    }

    /// Where the slave's acknowledged log ends, if it is connected.
    pub fn acked_by(&self, slave: ServerId) -> Option<Position> {
        self.slaves
            .get(&slave)
            .filter(|s| s.connected)
            .map(|s| s.acked)
    }

    /// Moves the commit position as far as the in-sync set allows, then lets slaves close
    /// enough join, and leaving slaves that caught up stay.
    fn settle(&mut self) {
        // The broken build (for checking the checker) lets a leaving slave go unconfirmed.
        let unconfirmed = cfg!(feature = "broken-unconfirmed-in-sync");
        let reachable = self
            .slaves
            .values()
            .filter(|s| s.in_sync && !(unconfirmed && s.leaving))
            .map(|s| s.acked)
            .fold(self.durable, Position::min);
        self.committed = self.committed.max(reachable);
        let (committed, appended) = (self.committed, self.appended);
        for s in self.slaves.values_mut() {
            let close = s.acked >= committed || appended.0.saturating_sub(s.acked.0) <= JOIN_LAG;
            if s.connected && !s.in_sync && close {
                s.in_sync = true;
                s.joined_at = committed;
            }
            if s.connected && s.leaving && s.acked >= committed && s.acked >= appended {
                s.leaving = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_millis(500);

    fn s(id: u32) -> ServerId {
        ServerId(id)
    }

    /// The data folder of slave `id`.
    fn f(id: u32) -> FolderId {
        FolderId(100 + u64::from(id))
    }

    #[test]
    fn alone_the_master_commits_what_is_durable_on_it() {
        let mut r = InSyncSet::new(Position(3), LAG);
        r.appended(Position(5), Instant::now());
        assert_eq!(r.commit(), Position(3));
        r.durable(Position(5));
        assert_eq!(r.commit(), Position(5));
    }

    #[test]
    fn a_slave_counts_once_it_has_caught_up() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(10), LAG);
        r.connected(s(2), f(2), 2, Position(4), t).unwrap();
        assert_eq!(r.report(), [], "still catching up");
        assert_eq!(
            r.commit(),
            Position(10),
            "a catching-up slave does not hold commits back"
        );
        r.acked(s(2), Position(10), t);
        assert_eq!(r.report(), [s(2)]);
        r.appended(Position(12), t);
        r.durable(Position(12));
        assert_eq!(r.commit(), Position(10), "now commits wait for it");
        r.acked(s(2), Position(12), t);
        assert_eq!(r.commit(), Position(12));
    }

    #[test]
    fn a_lost_slave_stops_counting_only_once_the_coordinator_confirms() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 2, Position(0), t).unwrap();
        r.appended(Position(1), t);
        r.durable(Position(1));
        r.disconnected(s(2), 2);
        assert!(r.has_leaving());
        assert_eq!(r.commit(), Position(0), "held back until confirmed");
        let report = r.report();
        assert_eq!(report, []);
        r.confirmed(&report);
        assert_eq!(r.commit(), Position(1));
        assert!(!r.has_leaving());
    }

    #[test]
    fn a_stalled_slave_is_proposed_for_removal_after_the_lag_timeout() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 2, Position(0), t).unwrap();
        r.connected(s(3), f(3), 3, Position(0), t).unwrap();
        r.appended(Position(1), t);
        r.durable(Position(1));
        r.acked(s(3), Position(1), t + LAG / 2);
        assert!(!r.tick(t + LAG / 2));
        assert!(
            r.tick(t + LAG),
            "slave 2 made no progress for the lag timeout"
        );
        assert_eq!(r.report(), [s(3)]);
        r.confirmed(&[s(3)]);
        assert_eq!(r.commit(), Position(1));
        assert_eq!(
            r.acked_by(s(2)),
            Some(Position(0)),
            "still connected, catching up"
        );
        r.acked(s(2), Position(1), t + LAG * 2);
        assert_eq!(r.report(), [s(2), s(3)], "and back in sync");
    }

    #[test]
    fn a_slave_idle_for_long_is_not_stalled_by_the_next_write() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 2, Position(0), t).unwrap();
        let later = t + LAG * 10;
        r.appended(Position(1), later);
        assert!(!r.tick(later + LAG / 2), "it has had no time to answer yet");
        assert!(
            r.tick(later + LAG),
            "but it must answer within the lag timeout"
        );
    }

    #[test]
    fn a_slave_a_little_behind_a_busy_master_joins_and_holds_commits_until_it_catches_up() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(1000), LAG);
        r.appended(Position(1100), t);
        r.durable(Position(1100));
        assert_eq!(r.commit(), Position(1100));
        // Behind what is committed, but by less than the join lag.
        r.connected(s(2), f(2), 1, Position(1050), t).unwrap();
        assert_eq!(
            r.report(),
            [],
            "not counted before it holds what was acknowledged"
        );
        r.appended(Position(1200), t);
        r.durable(Position(1200));
        assert_eq!(r.commit(), Position(1100), "commits now wait for it");
        r.acked(s(2), Position(1150), t);
        assert_eq!(r.commit(), Position(1150));
        assert_eq!(
            r.report(),
            [s(2)],
            "it holds everything acknowledged without it"
        );
    }

    #[test]
    fn a_slave_far_behind_catches_up_before_it_joins() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.appended(Position(10_000), t);
        r.durable(Position(10_000));
        r.connected(s(2), f(2), 1, Position(0), t).unwrap();
        r.appended(Position(10_100), t);
        r.durable(Position(10_100));
        assert_eq!(
            r.commit(),
            Position(10_100),
            "commits do not wait for a slave far behind"
        );
        r.acked(s(2), Position(8_000), t);
        assert_eq!(r.commit(), Position(10_100));
        assert_eq!(r.report(), []);
    }

    #[test]
    fn the_end_of_a_replaced_connection_changes_nothing() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 1, Position(0), t).unwrap();
        r.connected(s(2), f(2), 2, Position(0), t).unwrap();
        r.disconnected(s(2), 1);
        assert!(!r.has_leaving());
        assert_eq!(r.report(), [s(2)]);
    }

    #[test]
    fn a_confirmation_without_a_removal_changes_nothing() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 2, Position(0), t).unwrap();
        r.confirmed(&[s(2)]);
        assert_eq!(r.report(), [s(2)]);
    }

    #[test]
    fn a_second_copy_of_a_slave_is_refused_and_the_first_keeps_its_place() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 1, Position(0), t).unwrap();
        r.appended(Position(3), t);
        r.durable(Position(3));
        r.acked(s(2), Position(3), t);
        assert_eq!(r.report(), [s(2)]);
        let copy = r.connected(s(2), FolderId(7), 2, Position(0), t);
        assert!(matches!(copy, Err(Error::Duplicate(_))), "{copy:?}");
        assert_eq!(
            r.acked_by(s(2)),
            Some(Position(3)),
            "the real slave's standing"
        );
        assert_eq!(r.report(), [s(2)]);
        r.disconnected(s(2), 2);
        assert!(!r.has_leaving(), "the refused copy's end changes nothing");
        r.connected(s(2), f(2), 3, Position(3), t)
            .expect("the real slave reconnects from its own folder");
        assert_eq!(r.report(), [s(2)]);
    }

    #[test]
    fn a_slave_whose_folder_was_replaced_is_taken_once_its_old_self_is_gone() {
        let t = Instant::now();
        let mut r = InSyncSet::new(Position(0), LAG);
        r.connected(s(2), f(2), 1, Position(0), t).unwrap();
        r.disconnected(s(2), 1);
        assert!(
            r.connected(s(2), FolderId(7), 2, Position(0), t).is_err(),
            "still in sync"
        );
        r.confirmed(&r.report());
        r.connected(s(2), FolderId(7), 3, Position(0), t)
            .expect("out of the in-sync set, the new folder is the slave");
    }
}
