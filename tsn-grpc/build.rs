//! Compiles the protocol with protox (pure Rust), so no system `protoc` is needed, and
//! keeps the file descriptor set for server reflection; and, apart (TSN serves none of it),
//! the part of etcd's API that the coordinators use, for the client only.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "sns.proto",
    "coordinator.proto",
    "synchronizer.proto",
    "tsn.proto",
];

/// etcd's API, as far as TSN uses it.
const ETCD: &str = "etcd.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", dir.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&dir])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed={}", dir.join(ETCD).display());
    let etcd = protox::compile([ETCD], [&dir])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(etcd)?;
    Ok(())
}
