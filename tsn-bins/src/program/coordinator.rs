//! The coordinator: assigns roles in every cluster, detects failed masters, and tells clients
//! which server serves them.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{self, Fatal};
use clap::Parser;
use tsn_core::coordinator::RegistryConfig;
use tsn_server::coordinator::Local;

/// The coordinator's flags.
#[derive(Parser, Debug)]
#[command(
    name = "coordinator",
    allow_negative_numbers = true,
    version,
    about = "TSN coordinator: heartbeats, roles, failover and routing for every cluster"
)]
struct Flags {
    /// Port to listen on (0 picks a free one).
    #[arg(short = 'p', long = "port", default_value_t = 9090)]
    port: u16,
    /// Number of clusters N; user u lives in cluster ((u-1) mod N)+1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_CLUSTERS as i64))]
    clusters: u32,
    /// How long a server may miss heartbeats before it counts as failed (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = cli::duration)]
    failure_timeout: Duration,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Host name to announce to others (default: the bind address).
    #[arg(long)]
    advertise_host: Option<String>,
}

/// Runs the coordinator with `args` (the first being the program's name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    cli::run_program("coordinator", args, run)
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    cli::init_logging();
    let listener = cli::listen(&flags.bind, flags.port).await?;
    let port = listener
        .local_addr()
        .map_err(|e| Fatal::new("cannot read the listening address", e))?
        .port();
    let coordinator = Arc::new(Local::new(RegistryConfig {
        clusters: flags.clusters,
        failure_timeout: flags.failure_timeout,
    }));
    println!(
        "coordinator listening on {}:{port} ({} clusters, failure timeout {})",
        flags.advertise_host.as_deref().unwrap_or(&flags.bind),
        flags.clusters,
        humantime::format_duration(flags.failure_timeout)
    );
    tsn_grpc::coordinator::serve(
        coordinator,
        listener,
        flags.failure_timeout,
        cli::shutdown_signal(),
    )
    .await
    .map_err(|e| Fatal::new("the coordinator stopped", e))
}
