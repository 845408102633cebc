//! The generated protocol types: the course's package `csce438`, TSN's package `tsn`, and
//! the part of etcd's API (`etcdserverpb`) that TSN's coordinators use.
//!
//! These types never leave this crate's API boundary except through
//! [`convert`](crate::convert); clients that speak the course protocol directly (tests,
//! other programs) may use them as they are.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The course's protocol, with TSN's added fields.
pub mod csce438 {
    tonic::include_proto!("csce438");
}

/// TSN's own services.
pub mod tsn {
    tonic::include_proto!("tsn");
}

/// etcd's v3 API, the part TSN's coordinators use (client side only).
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

/// The encoded file descriptor set of every `.proto` file, for server reflection.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
