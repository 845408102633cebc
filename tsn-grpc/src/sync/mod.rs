//! Synchronization between clusters over gRPC: [`FeedServer`] serves a cluster's changes
//! (TSN's `Feed`) and its users (the course's `SynchService`) from any
//! [`tsn_core::SyncPeer`] standing for the local cluster; [`FeedClient`] is a
//! [`tsn_core::SyncPeer`] that reads another cluster's synchronizer.

mod client;
mod server;

pub use client::FeedClient;
pub use server::FeedServer;

use std::time::Duration;

/// How many entries a feed batch carries at most.
pub const FEED_BATCH: usize = 1024;

/// How long an idle feed waits before a cursor-only batch is worth sending: one is sent
/// when positions that carry nothing for the reader pile up, so its cursor keeps up.
pub const CURSOR_ONLY_EVERY: u64 = tsn_core::sync::IMPORT_LAG;

/// How long `FeedClient::changes_after` waits for news before answering with nothing.
pub const LONG_POLL: Duration = Duration::from_secs(1);
