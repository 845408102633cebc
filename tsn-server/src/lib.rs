//! TSN's runtime: the parts that carry out the core's decisions in a process — reading its
//! clocks, sleeping on its timers — written against the core's traits only (no transport,
//! no files). `tsn-grpc` serves them over the network; `tsn-bins` configures and runs them.
//!
//! * [`coordinator::Local`]: the coordinator in this process, its [`Registry`] fed with the
//!   monotonic clock.
//!
//! [`Registry`]: tsn_core::coordinator::Registry

pub mod coordinator;
