//! Coordinators in this process: [`Local`], deciding alone with its [`Registry`] in memory,
//! and [`Shared`], one of any number of coordinators that share their records on a
//! [`Board`] (etcd, over the network; [`MemoryBoard`] in one process), each deciding with a
//! registry of its own, fed from the board, and only one of them winning each decision.
//!
//! [`Registry`]: tsn_core::coordinator::Registry

mod board;
mod local;
mod memory;
mod shared;

pub use board::{Board, Notice, Revision, Snapshot, Swap};
pub use local::{LISTENING_HOLD, Local};
pub use memory::MemoryBoard;
pub use shared::Shared;

use std::time::Duration;

use async_trait::async_trait;
use tsn_core::coordinator::{Coordinator, LateMaster, RoleChange};

/// A coordinator that also decides on a timer: a master that stops sending heartbeats is
/// noticed when none comes.
#[async_trait]
pub trait Ticking: Coordinator {
    /// Checks for failed masters now, and promotes; the role changes since the last call.
    async fn tick(&self) -> Vec<RoleChange>;

    /// The masters silent for `silence` or longer, not yet for the failure timeout: worth
    /// checking on by other means (see [`Registry::late_masters`]).
    ///
    /// [`Registry::late_masters`]: tsn_core::coordinator::Registry::late_masters
    fn late_masters(&self, silence: Duration) -> Vec<LateMaster>;

    /// Counts `late` down now unless it was heard since, and promotes a replacement at
    /// once (see [`Registry::found_down`]); the role changes since the last call.
    ///
    /// [`Registry::found_down`]: tsn_core::coordinator::Registry::found_down
    async fn found_down(&self, late: &LateMaster) -> Vec<RoleChange>;
}

#[cfg(test)]
mod tests;
