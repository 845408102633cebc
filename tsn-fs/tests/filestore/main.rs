//! Tests of [`tsn_fs::FileStore`] through its public API: the core's conformance suite,
//! crash repair, the course view, and bad folders.

mod common;
mod concurrency;
mod conformance;
mod open;
mod repair;
mod view;
