//! Compiles the protocol with protox (pure Rust), so no system `protoc` is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "sns.proto",
    "coordinator.proto",
    "synchronizer.proto",
    "tsn.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", dir.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&dir])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
