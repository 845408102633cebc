//! [`Store`]: one replica's data, durable.
//!
//! A store is a change log plus the [`State`] it implies. The master of a cluster appends
//! what its clients do; a slave appends what its master sends, at the same positions. A
//! store is opened (by its implementation's constructor) with its log repaired and its
//! state rebuilt.
//!
//! Implementations: [`Memory`] (behind the `test-util` feature) here, and the file store of
//! `tsn-fs`. The [`conformance`] suite runs against both.

#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
#[cfg(any(test, feature = "test-util"))]
mod memory;

#[cfg(any(test, feature = "test-util"))]
pub use memory::Memory;

use async_trait::async_trait;

use crate::change::{Entry, LogPoint};
use crate::error::Result;
use crate::id::Position;
use crate::state::{Delivery, State};

/// One replica's durable data.
///
/// # Contract
///
/// * **Order.** Entries are appended in position order without gaps; [`Store::append`]
///   refuses anything else and leaves the store unchanged.
/// * **Visibility.** An appended entry is applied to the state at once, so every later
///   [`Store::read`] sees it, before it is durable.
/// * **Durability.** Entries up to [`Store::durable`] survive a crash of the process or the
///   machine. [`Store::flush`] makes everything appended before the call durable; callers
///   that flush concurrently share one disk sync (group commit).
/// * **Idempotence.** Applying a change already in effect (a known user, an applied post)
///   changes nothing but the log's end, so replaying a log is always safe.
/// * **Recovery.** After a crash a store reopens with every whole entry that was durable
///   and nothing after the first damaged one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends `entries` (the positions after the current last one, in order), applies
    /// them, and returns the timeline deliveries each one made. Not yet durable.
    fn append(&self, entries: &[Entry]) -> Result<Vec<Vec<Delivery>>>;

    /// Makes every entry appended before this call durable; returns the durable position.
    async fn flush(&self) -> Result<Position>;

    /// The last position known to be durable.
    fn durable(&self) -> Position;

    /// Runs `f` on the current state (every appended entry applied).
    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R
    where
        Self: Sized;

    /// The last entry appended, as [`State::last`] tells it. An implementation whose
    /// [`Store::read`] may wait for a long append answers without waiting for it: a server
    /// reports this in its heartbeat however busy its store is. The default reads the
    /// state.
    fn last(&self) -> LogPoint
    where
        Self: Sized,
    {
        self.read(State::last)
    }

    /// Up to `max` entries after position `after`, in order (fewer at the log's end).
    async fn entries_after(&self, after: Position, max: usize) -> Result<Vec<Entry>>;

    /// Drops every entry after `keep` and rebuilds the state from what remains: how a slave
    /// discards the part of its log that a new master never had. Durable when it returns.
    async fn truncate_after(&self, keep: Position) -> Result<()>;

    /// Notes that the entries up to `through` are committed (durable on the master and its
    /// in-sync slaves), for readers of the store from outside the process — the cluster's
    /// synchronizer exports only committed entries. Called by a master as its commit
    /// position grows; never fails (a store that cannot record it leaves readers behind,
    /// not wrong). The default records nothing.
    fn record_commit(&self, through: Position) {
        let _ = through;
    }
}

/// A shared store is a store: one replica can be served and read from several places (say,
/// a server and a synchronization peer in one process).
#[async_trait]
impl<S: Store> Store for std::sync::Arc<S> {
    fn append(&self, entries: &[Entry]) -> Result<Vec<Vec<Delivery>>> {
        (**self).append(entries)
    }

    async fn flush(&self) -> Result<Position> {
        (**self).flush().await
    }

    fn durable(&self) -> Position {
        (**self).durable()
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        (**self).read(f)
    }

    fn last(&self) -> LogPoint {
        (**self).last()
    }

    async fn entries_after(&self, after: Position, max: usize) -> Result<Vec<Entry>> {
        (**self).entries_after(after, max).await
    }

    async fn truncate_after(&self, keep: Position) -> Result<()> {
        (**self).truncate_after(keep).await
    }

    fn record_commit(&self, through: Position) {
        (**self).record_commit(through);
    }
}
