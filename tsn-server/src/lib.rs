//! TSN's runtime: the parts that carry out the core's decisions in a process — reading its
//! clocks, sleeping on its timers — written against the core's traits only (no transport,
//! no files). `tsn-grpc` serves them over the network; `tsn-bins` configures and runs them.
//!
//! * [`tsd::Tsd`]: a cluster's server — its role kept in step with the coordinator
//!   ([`tsd::roles`]), replication between master and slaves ([`tsd::replication`]).
//! * [`master::Master`]: a cluster master's write path — decide, append, group commit,
//!   replicate, commit point, publish.
//! * [`import`]: a master's merge of another cluster's changes, through that write path.
//! * [`synchronizer`]: the synchronizer, a relay of committed changes between clusters
//!   that holds nothing; [`routed::Routed`], a feed found through the coordinator.
//! * [`coordinator::Local`]: the coordinator in this process, its [`Registry`] fed with the
//!   monotonic clock.
//! * [`clock`]: the clocks, the one place the runtime reads them.
//!
//! [`Registry`]: tsn_core::coordinator::Registry

pub mod clock;
pub mod coordinator;
pub mod import;
pub mod master;
pub mod routed;
pub mod synchronizer;
pub mod tsd;
