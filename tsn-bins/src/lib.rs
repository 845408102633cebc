//! The TSN programs' shared parts: flag handling, start-up, and the client `tsc`.
//!
//! The executables in `src/bin` are thin: they parse flags, set up logging, and call into
//! this crate or `tsn-grpc`.

pub mod cli;
pub mod client;
pub mod harness;
pub mod program;
