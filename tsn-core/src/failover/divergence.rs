//! Where a slave's log parts from its master's.

use crate::change::LogPoint;
use crate::id::Position;
use crate::state::EpochHistory;

/// What a slave must do before it takes entries from its master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// The slave's log is a prefix of the master's: it takes the entries after `after`.
    Continue {
        /// The slave's last entry, which the master holds too.
        after: Position,
    },
    /// The slave holds entries the master never had: it drops everything after `keep` and
    /// asks again.
    Truncate {
        /// The last position the two logs may share.
        keep: Position,
    },
}

/// Compares a slave's last entry with the master's log.
///
/// Two logs that hold an entry of the same epoch at the same position hold the same
/// entries up to there (each epoch's master writes a position once, and a slave appends
/// only after agreeing). If the slave's last entry is not in the master's log, everything
/// the slave wrote in that epoch past the master's end of that epoch is foreign; the slave
/// drops it and asks again, which ends because each answer shortens its log.
pub fn reconcile(master: &EpochHistory, slave_last: LogPoint) -> Agreement {
    if slave_last.position == Position(0)
        || master.epoch_at(slave_last.position) == Some(slave_last.epoch)
    {
        return Agreement::Continue {
            after: slave_last.position,
        };
    }
    let shared = master.end_of(slave_last.epoch);
    Agreement::Truncate {
        keep: shared.min(Position(slave_last.position.0 - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Epoch;
    use crate::state::epochs::history;

    fn last(epoch: u64, position: u64) -> LogPoint {
        LogPoint {
            epoch: Epoch(epoch),
            position: Position(position),
        }
    }

    /// Plays the conversation between a slave log and a master log to its end.
    fn settle(master: &[u64], slave: &[u64]) -> (usize, Position) {
        let master = history(master);
        let mut slave = slave.to_vec();
        for round in 1..=slave.len() + 1 {
            let point = slave
                .last()
                .map_or(LogPoint::default(), |&e| last(e, slave.len() as u64));
            match reconcile(&master, point) {
                Agreement::Continue { after } => return (round, after),
                Agreement::Truncate { keep } => slave.truncate(keep.0 as usize),
            }
        }
        panic!("reconciliation did not end");
    }

    #[test]
    fn a_slave_behind_continues_where_it_is() {
        assert_eq!(settle(&[1, 1, 2, 2], &[1, 1, 2]), (1, Position(3)));
        assert_eq!(settle(&[1, 1], &[]), (1, Position(0)));
    }

    #[test]
    fn a_deposed_master_drops_what_it_never_replicated() {
        // The old master wrote positions 3 and 4 in epoch 1; the new one wrote 3.. in 2.
        assert_eq!(settle(&[1, 1, 2, 2, 2], &[1, 1, 1, 1]), (2, Position(2)));
    }

    #[test]
    fn a_slave_ahead_in_the_same_epoch_is_cut_to_the_master() {
        assert_eq!(settle(&[1, 1, 1], &[1, 1, 1, 1, 1]), (2, Position(3)));
    }

    #[test]
    fn interleaved_epochs_settle_in_a_few_rounds() {
        assert_eq!(settle(&[1, 2, 2, 4], &[1, 3, 3]).1, Position(1));
        assert_eq!(settle(&[1, 1, 3, 3, 5], &[1, 1, 2, 2, 2, 4]).1, Position(2));
    }
}
