//! The process harness: TSN's programs as child processes, as `tsn-local`, `tsn-bench`,
//! `tsn-faults` and the end-to-end tests start them.
//!
//! * [`topology`]: what a deployment is made of, its members' names and flags.
//! * [`launch`]: how a program is started — this executable under the program's name
//!   ([`run_as`]), or a built binary.
//! * [`process`] and [`output`]: one started program, its outputs collected as they come,
//!   and the signals a person sends it (SIGKILL, SIGSTOP, SIGCONT, SIGTERM).
//! * [`Deployment`] and [`Member`]: a whole local deployment, member by member.
//! * [`Screen`]: a `tsc` driven through pipes, line by line.
//! * [`hosts`]: simulated hosts (network namespaces on a bridge) to run programs on.
//! * [`etcd`]: a cluster of real etcd members, for coordination on etcd.
//! * [`certs`]: a certificate authority and the processes' certificates, for TLS.
//!
//! On Linux the kernel sends a child SIGTERM when the thread that started it ends, and a
//! [`Process`] is killed when dropped: no child outlives its harness.

pub mod certs;
pub mod deployment;
pub mod etcd;
pub mod hosts;
pub mod launch;
pub mod member;
pub mod output;
pub mod process;
pub mod screen;
pub mod topology;

pub use deployment::{Deployment, Starting};
pub use etcd::EtcdCluster;
pub use hosts::{Host, Network, Partition};
pub use launch::{Launcher, run_as};
pub use member::Member;
pub use process::{Process, Setup};
pub use screen::Screen;
pub use topology::{
    COORDINATOR, SECOND_COORDINATOR, Timers, Topology, free_port, synchronizer_name, tsd_name,
};
