//! The coordinator: assigns roles in every cluster, detects failed masters, and tells clients
//! which server serves them. Alone, with its records in memory; or, with `--etcd`, as one
//! of any number of coordinators that keep their records on an etcd cluster.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{self, Addresses, Fatal};
use crate::program::tls::TlsFlags;
use clap::Parser;
use tsn_core::coordinator::RegistryConfig;
use tsn_grpc::coordinator::EtcdBoard;
use tsn_grpc::etcd::Etcd;
use tsn_grpc::tls::Identity;
use tsn_server::coordinator::{Local, Shared};

/// etcd's client port, for `--etcd` members named without one.
const ETCD_PORT: u16 = 2379;

/// How long a coordinator on etcd tries to read etcd at start before giving up.
const ETCD_AT_START: Duration = Duration::from_secs(10);

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
    /// Keep the records on this etcd cluster, shared with any other coordinators on it:
    /// its members, comma-separated, each `host` (at port 2379) or `host:port`. Without it,
    /// the records are in this process's memory.
    #[arg(long, value_name = "MEMBERS")]
    etcd: Option<String>,
    #[command(flatten)]
    tls: TlsFlags,
    /// With TLS on: take plaintext calls from clients too (the course's tsc on a private
    /// network); calls from servers always need TLS.
    #[arg(long)]
    allow_plaintext_clients: bool,
}

/// Runs the coordinator with `args` (the first being the program's name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    cli::run_program("coordinator", args, run)
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    cli::init_logging();
    flags
        .tls
        .install(Identity::Coordinator, flags.allow_plaintext_clients)?;
    let listener = cli::listen(&flags.bind, flags.port).await?;
    let port = listener
        .local_addr()
        .map_err(|e| Fatal::new("cannot read the listening address", e))?
        .port();
    let config = RegistryConfig {
        clusters: flags.clusters,
        failure_timeout: flags.failure_timeout,
    };
    let etcd = match &flags.etcd {
        Some(members) => Some(
            Addresses::parse(members, ETCD_PORT).map_err(|e| Fatal(format!("bad --etcd: {e}")))?,
        ),
        None => None,
    };
    let records = etcd
        .as_ref()
        .map_or_else(|| "in memory".to_owned(), |e| format!("on etcd at {e}"));
    let announce = || {
        println!(
            "coordinator listening on {}:{port} ({} clusters, failure timeout {}, records {records})",
            flags.advertise_host.as_deref().unwrap_or(&flags.bind),
            flags.clusters,
            humantime::format_duration(flags.failure_timeout)
        );
    };
    let shutdown = cli::shutdown_signal();
    let served = match etcd {
        None => {
            announce();
            let coordinator = Arc::new(Local::new(config));
            tsn_grpc::coordinator::serve(coordinator, listener, flags.failure_timeout, shutdown)
                .await
        }
        Some(members) => {
            let coordinator = on_etcd(config, &members).await?;
            announce();
            tsn_grpc::coordinator::serve(coordinator, listener, flags.failure_timeout, shutdown)
                .await
        }
    };
    served.map_err(|e| Fatal::new("the coordinator stopped", e))
}

/// A coordinator whose records are on the etcd cluster at `members`, once it has read
/// them; tries for [`ETCD_AT_START`].
async fn on_etcd(
    config: RegistryConfig,
    members: &Addresses,
) -> Result<Arc<Shared<EtcdBoard>>, Fatal> {
    let etcd = Etcd::new(members.endpoints()).map_err(|e| Fatal::new("bad --etcd", e))?;
    let board = Arc::new(EtcdBoard::new(etcd));
    let deadline = tokio::time::Instant::now() + ETCD_AT_START;
    loop {
        match Shared::start(config, Arc::clone(&board)).await {
            Ok(coordinator) => return Ok(coordinator),
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(Fatal::new(
                    format_args!("cannot read etcd at {members}"),
                    error,
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
