//! TSN, the Tiny Social Network, as one library: the core, the file store and the gRPC transport.
pub use tsn_core as core;
pub use tsn_fs as fs;
pub use tsn_grpc as grpc;
