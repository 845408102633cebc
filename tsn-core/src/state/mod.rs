//! One replica's data in memory, as a pure function of its change log.
//!
//! [`State`] applies [`Entry`](crate::change::Entry)s in log order and answers the
//! questions the servers ask: who exists, who follows whom, what is on a timeline. It reads
//! no clock and touches no file; stores keep one and rebuild it from their log at start.
//!
//! # Delivery rule
//!
//! A post of `a` goes onto the timeline of `f` when `f` lives in this cluster, is not `a`,
//! and was following `a` at the post's time. Follow and unfollow times come from the
//! follower's own cluster and post times from the author's; all servers of a deployment
//! read one clock (they share a host), so "a post made after the follow returned" is
//! delivered however late it arrives. Deliveries are derived while applying, never logged,
//! so every replica derives the same timelines in the same order.

mod data;
pub(crate) mod epochs;
mod follows;
mod posts;
mod timelines;

pub use data::{Delivery, State};
pub use epochs::EpochHistory;
pub use timelines::TimelineItem;

/// The state's maps, keyed by user ids: hashed with aHash, several times faster than the
/// standard library's SipHash on such small keys, and keyed randomly per map, so that
/// chosen user ids cannot make a map's lookups slow.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
