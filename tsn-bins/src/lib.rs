//! The TSN programs' shared parts: flag handling and start-up ([`cli`], [`program`]), the
//! client `tsc` ([`client`]), and the process harness that starts whole deployments
//! ([`harness`]).
//!
//! The executables in `src/bin` are thin: they parse flags, set up logging, and call into
//! this crate, which wires `tsn-server`'s runtime to `tsn-grpc` and `tsn-fs`.

pub mod cli;
pub mod client;
pub mod harness;
pub mod program;
