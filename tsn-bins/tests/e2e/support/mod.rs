//! Real processes for the end-to-end tests: a coordinator, tsd servers and tsc clients on
//! free loopback ports, with data in a temporary folder and short timers. Every wait has a
//! deadline; every process is killed when its handle drops.

#![allow(dead_code)]

mod deployment;
mod etcd;
mod process;
mod protocol;
mod text;
mod tls;

pub(crate) use deployment::*;
pub(crate) use etcd::*;
pub(crate) use process::*;
pub(crate) use protocol::*;
pub(crate) use text::*;
pub(crate) use tls::*;
