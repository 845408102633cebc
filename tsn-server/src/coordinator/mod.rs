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

use async_trait::async_trait;
use tsn_core::coordinator::{Coordinator, RoleChange};

/// A coordinator that also decides on a timer: a master that stops sending heartbeats is
/// noticed when none comes.
#[async_trait]
pub trait Ticking: Coordinator {
    /// Checks for failed masters now, and promotes; the role changes since the last call.
    async fn tick(&self) -> Vec<RoleChange>;
}

#[cfg(test)]
mod tests;
