//! [`Memory`]: a store that keeps its log in memory, for tests and examples.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::change::Entry;
use crate::error::Result;
use crate::id::{Membership, Position};
use crate::state::{Delivery, State};
use crate::store::Store;

/// A [`Store`] in memory. "Durable" means flushed: [`Memory::restart`] keeps what was
/// flushed and forgets the rest, as a crash would.
#[derive(Debug)]
pub struct Memory {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    log: Vec<Entry>,
    durable: Position,
}

impl Memory {
    /// An empty store for a replica of `membership.cluster`.
    pub fn new(membership: Membership) -> Self {
        Memory {
            inner: Mutex::new(Inner {
                state: State::new(membership),
                log: Vec::new(),
                durable: Position(0),
            }),
        }
    }

    /// The store as it would reopen after a crash: the flushed entries, replayed.
    pub fn restart(&self) -> Self {
        let inner = self.lock();
        let mut state = State::new(inner.state.membership());
        let log: Vec<Entry> = inner.log[..inner.durable.0 as usize].to_vec();
        for entry in &log {
            state.apply(entry).expect("a stored log replays");
        }
        Memory {
            inner: Mutex::new(Inner {
                state,
                log,
                durable: inner.durable,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait]
impl Store for Memory {
    fn append(&self, entries: &[Entry]) -> Result<Vec<Vec<Delivery>>> {
        let mut inner = self.lock();
        inner.state.check_follows(entries)?;
        let deliveries = entries
            .iter()
            .map(|entry| inner.state.apply(entry))
            .collect::<Result<Vec<_>>>()?;
        inner.log.extend_from_slice(entries);
        Ok(deliveries)
    }

    async fn flush(&self) -> Result<Position> {
        let mut inner = self.lock();
        inner.durable = inner.state.last().position;
        Ok(inner.durable)
    }

    fn durable(&self) -> Position {
        self.lock().durable
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock().state)
    }

    async fn entries_after(&self, after: Position, max: usize) -> Result<Vec<Entry>> {
        let inner = self.lock();
        let start = (after.0 as usize).min(inner.log.len());
        let end = start.saturating_add(max).min(inner.log.len());
        Ok(inner.log[start..end].to_vec())
    }

    async fn truncate_after(&self, keep: Position) -> Result<()> {
        let mut inner = self.lock();
        let keep = (keep.0 as usize).min(inner.log.len());
        inner.log.truncate(keep);
        let mut state = State::new(inner.state.membership());
        for entry in &inner.log {
            state.apply(entry)?;
        }
        inner.state = state;
        inner.durable = Position(keep as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, Harness};

    struct MemoryHarness;

    impl Harness for MemoryHarness {
        type Store = Memory;

        fn open(&mut self) -> Memory {
            Memory::new(conformance::membership())
        }

        fn reopen(&mut self, store: Memory) -> Memory {
            store.restart()
        }
    }

    #[tokio::test]
    async fn memory_store_meets_the_store_contract() {
        conformance::run_all(&mut MemoryHarness).await;
    }
}
