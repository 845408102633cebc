//! End-to-end tests: the real `coordinator`, `tsd` and `tsc` programs as separate
//! processes on loopback, driven as SPEC.md describes them.

mod support;

mod bad_input;
mod course_case1;
mod course_protocol;
mod course_servers;
mod duplicates;
mod etcd;
mod failover;
mod faults;
mod forgery;
mod hostile;
mod hosts;
mod local;
mod operators;
mod partitions;
mod restarts;
mod sessions;
mod startup;
mod sync;
mod terminal;
mod timeline_rules;
mod tls;
