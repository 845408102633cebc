//! TSN over gRPC: the course's protocol (package `csce438`) and TSN's additions, and the
//! services and clients that carry the runtime (`tsn-server`) over it.
//!
//! # Layout
//!
//! * [`proto`] — the generated types, compiled from `proto/` with protox (no `protoc`).
//! * [`convert`] — the one place proto types and core types meet.
//! * [`coordinator`] — `CoordService` over any [`tsn_core::Coordinator`], and a
//!   [`tsn_core::Coordinator`] that calls a remote coordinator.
//! * [`client`] — what a client program needs: calls to a cluster's master in core terms.
//! * [`replies`] — the course's reply texts.
//! * [`feed`] — the change feed between synchronizers and the course's `SynchService`.
//! * [`tsd`] — a cluster server on the wire: the client service, sessions, and the
//!   replication stream between master and slaves.
//! * [`error`] — core errors to gRPC statuses and back; [`transport`] — channels to peers
//!   and servers; [`tls`] — mutual TLS between TSN's processes, and who may call what.

pub mod client;
pub mod convert;
pub mod coordinator;
pub mod error;
pub mod etcd;
pub mod feed;
pub mod proto;
pub mod replies;
pub mod tls;
pub mod transport;
pub mod tsd;

/// How long a call to a peer may take before it counts as failed.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
