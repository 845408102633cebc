//! The core of TSN, the Tiny Social Network: its domain, the four traits its parts plug
//! into, and the algorithms that make it correct under failure.
//!
//! Nothing here opens a socket, touches a file or reads a clock: time comes in as an
//! argument, and the async code that carries decisions out lives in `tsn-grpc` and
//! `tsn-bins`.
//!
//! # Layout
//!
//! * [`id`], [`post`], [`change`] — the vocabulary: users, clusters, epochs, log positions,
//!   posts, and the changes a cluster's log records.
//! * [`state`] — one replica's data as a pure function of its log, with the delivery rule
//!   and the timeline view.
//! * [`command`] — what a master decides for each client request.
//! * [`store`] — the [`Store`] trait (one replica's durable data) and its contract.
//! * [`coordinator`] — the [`Coordinator`] trait, and the registry that assigns roles and
//!   detects failures.
//! * [`failover`] — roles with epochs on the servers' side, the in-sync set and commit
//!   point, and log reconciliation.
//! * [`session`] — one live session per user.
//! * [`timeline`] — the [`Timeline`] trait: delivery to online clients.
//! * [`sync`] — the [`SyncPeer`] trait: what one cluster asks of another.
//!
//! In-memory implementations for tests live behind the `test-util` feature, with mockall
//! mocks of the traits.

pub mod change;
pub mod command;
pub mod coordinator;
pub mod course;
mod error;
pub mod failover;
pub mod id;
pub mod post;
pub mod session;
pub mod state;
pub mod store;
pub mod sync;
pub mod timeline;

/// The attribute the traits are written with; implement them with `#[tsn_core::async_trait]`.
pub use async_trait::async_trait;
pub use coordinator::Coordinator;
pub use error::{Error, Result};
pub use store::Store;
pub use sync::SyncPeer;
pub use timeline::Timeline;
