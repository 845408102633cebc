//! The programs, as functions of their arguments, so that the executables stay one line
//! and `tsn-local` can run any of them as a child process of its own binary.

pub mod bench;
pub mod coordinator;
pub mod data_folder;
pub mod faults;
pub mod local;
pub mod server;
pub mod synchronizer;
pub mod tls;
pub mod tsc;
pub mod tsd;
