//! End-to-end tests: the real `coordinator`, `tsd` and `tsc` programs as separate
//! processes on loopback, driven as SPEC.md describes them.

mod support;

mod course_case1;
mod failover;
