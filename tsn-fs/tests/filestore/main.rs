//! Tests of [`tsn_fs`] through its public API: the file store (the core's conformance
//! suite, crash repair, the course view, bad folders), and the files of cross-cluster sync
//! (the commit marker, `LogTail`, the inbox).

mod common;
mod concurrency;
mod conformance;
mod open;
mod reads;
mod repair;
mod view;
