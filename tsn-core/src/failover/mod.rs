//! Failover from the servers' side: roles with epochs, the in-sync set and commit point of a
//! master, and how a returning slave finds where its log parts from the master's.
//!
//! All three are pure: [`Node`] turns coordinator answers into duties, [`InSyncSet`]
//! turns acknowledgements into a commit position, and [`reconcile`] compares two logs by
//! their epoch histories. The tsd carries the decisions out.
//!
//! # Why an acknowledged write survives a failover
//!
//! A master acknowledges an entry only when it is durable on itself and on every slave of
//! its in-sync set. It removes a slave from that set only after the coordinator has
//! confirmed the smaller set, and the coordinator promotes only members of the last set it
//! confirmed. So whichever server is promoted holds every acknowledged entry. A slave that
//! knows a newer epoch refuses entries from an older master, so a deposed master that
//! carries on (paused, then resumed) can no longer gather acknowledgements.

mod divergence;
mod in_sync;
mod role;

pub use divergence::{Agreement, reconcile};
pub use in_sync::InSyncSet;
pub use role::{Duty, Node, heartbeat};
