//! Which epoch wrote which stretch of a log.

use crate::change::LogPoint;
use crate::id::{Epoch, Position};

/// The first position of every epoch in a log, in order. Entries of one epoch are
/// contiguous, and epochs only grow along a log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochHistory {
    starts: Vec<(Epoch, Position)>,
    last: LogPoint,
}

impl EpochHistory {
    /// Records that the entry at `position` (the next one) was written in `epoch`.
    pub fn push(&mut self, epoch: Epoch, position: Position) {
        if self.starts.last().is_none_or(|&(last, _)| epoch > last) {
            self.starts.push((epoch, position));
        }
        self.last = LogPoint { epoch, position };
    }

    /// The last entry.
    pub fn last(&self) -> LogPoint {
        self.last
    }

    /// The epoch of the entry at `position`, or `None` past the end or at 0.
    pub fn epoch_at(&self, position: Position) -> Option<Epoch> {
        if position.0 == 0 || position > self.last.position {
            return None;
        }
        let i = self.starts.partition_point(|&(_, start)| start <= position);
        Some(self.starts[i - 1].0)
    }

    /// The last position written in `epoch` or an earlier one: how much of this log a
    /// replica whose last entry was written in `epoch` may share with it.
    pub fn end_of(&self, epoch: Epoch) -> Position {
        match self.starts.iter().find(|&&(e, _)| e > epoch) {
            Some(&(_, start)) => Position(start.0 - 1),
            None => self.last.position,
        }
    }
}

/// A history whose entry at position `i + 1` was written in epoch `epochs[i]`.
#[cfg(test)]
pub(crate) fn history(epochs: &[u64]) -> EpochHistory {
    let mut h = EpochHistory::default();
    for (i, &e) in epochs.iter().enumerate() {
        h.push(Epoch(e), Position(i as u64 + 1));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_of_each_entry() {
        let h = history(&[1, 1, 2, 2, 2, 5]);
        let epochs: Vec<_> = (0..=7)
            .map(|p| h.epoch_at(Position(p)).map(|e| e.0))
            .collect();
        assert_eq!(
            epochs,
            [
                None,
                Some(1),
                Some(1),
                Some(2),
                Some(2),
                Some(2),
                Some(5),
                None
            ]
        );
        assert_eq!(
            h.last(),
            LogPoint {
                epoch: Epoch(5),
                position: Position(6)
            }
        );
    }

    #[test]
    fn end_of_an_epoch_is_where_the_next_one_starts() {
        let h = history(&[1, 1, 2, 2, 2, 5]);
        assert_eq!(h.end_of(Epoch(0)), Position(0));
        assert_eq!(h.end_of(Epoch(1)), Position(2));
        assert_eq!(h.end_of(Epoch(3)), Position(5));
        assert_eq!(h.end_of(Epoch(5)), Position(6));
        assert_eq!(h.end_of(Epoch(9)), Position(6));
    }
}
