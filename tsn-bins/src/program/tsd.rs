//! The tsd: a server of one cluster, master or slave as the coordinator decides.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser};
use tsn_core::id::ClusterId;
use tsn_core::{Coordinator, Store, SyncPeer};
use tsn_grpc::tls::Identity;
use tsn_grpc::tsd;
use tsn_server::routed::{Routed, Target};

use crate::cli::{self, Fatal};
use crate::program::server::{self, ServerFlags};
use crate::program::tls::TlsFlags;

/// The tsd's flags.
#[derive(Parser, Debug)]
#[command(
    name = "tsd",
    allow_negative_numbers = true,
    version,
    about = "TSN server: serves one cluster's users as master, or keeps a copy as slave",
    disable_help_flag = true
)]
struct Flags {
    /// The cluster this server belongs to (1..N).
    #[arg(short = 'c', long = "cluster", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_CLUSTERS as i64))]
    cluster: u32,
    /// This server's id within its cluster.
    #[arg(short = 's', long = "server", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    server: u32,
    #[arg(short = 'h', long = "coordinator-host", default_value = "127.0.0.1", help = crate::cli::COORDINATOR_HOSTS_HELP)]
    coordinator_host: String,
    /// Port of the coordinator.
    #[arg(short = 'k', long = "coordinator-port", default_value_t = 9090, value_parser = clap::value_parser!(u16).range(1..))]
    coordinator_port: u16,
    /// Port to listen on (0 picks a free one).
    #[arg(short = 'p', long = "port", default_value_t = 10000)]
    port: u16,
    /// Folder holding the data; this server keeps its copy in <data-dir>/cluster_<c>/<s>/.
    #[arg(long, default_value = "tsn-data")]
    data_dir: PathBuf,
    /// How often to report to the coordinator (e.g. 200ms, 10s).
    #[arg(long, default_value = "200ms", value_parser = cli::duration)]
    heartbeat_interval: Duration,
    /// How long a client's session lives without a keep-alive.
    #[arg(long, default_value = "3s", value_parser = cli::duration)]
    session_timeout: Duration,
    /// How long the master waits for a silent slave before acknowledging without it.
    #[arg(long, default_value = "1s", value_parser = cli::duration)]
    replication_timeout: Duration,
    #[command(flatten)]
    network: ServerFlags,
    #[command(flatten)]
    tls: TlsFlags,
    /// With TLS on: take plaintext calls from clients too (the course's tsc on a private
    /// network); calls between servers always need TLS.
    #[arg(long)]
    allow_plaintext_clients: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// Runs a tsd with `args` (the first being the program's name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    cli::run_program("tsd", args, run)
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    cli::init_logging();
    let identity = Identity::Tsd {
        cluster: flags.cluster,
        server: flags.server,
    };
    flags.tls.install(identity, flags.allow_plaintext_clients)?;
    let listener = cli::listen(&flags.network.bind, flags.port).await?;
    let me = flags.network.me(&listener, flags.cluster, flags.server)?;
    let (coordinator_at, coordinator) =
        server::coordinator_client(&flags.coordinator_host, flags.coordinator_port)?;
    let incarnation = rand::random::<u64>();
    let (store, folder) = server::open_replica(
        &flags.data_dir,
        &me,
        incarnation,
        &*coordinator,
        &coordinator_at,
    )
    .await?;
    println!(
        "tsd cluster {} server {} listening on {}",
        me.cluster, me.server, me.endpoint
    );
    let clusters = store.read(|s| s.membership().clusters);
    // Each other cluster's changes, read through this cluster's synchronizer.
    let imports = (1..=clusters)
        .map(ClusterId)
        .filter(|&from| from != me.cluster)
        .map(|from| {
            let through_synchronizer = Routed::new(
                Arc::clone(&coordinator) as Arc<dyn Coordinator>,
                Target::SynchronizerOf(me.cluster),
                from,
                server::connect_feed(me.cluster),
            );
            (from, Arc::new(through_synchronizer) as Arc<dyn SyncPeer>)
        })
        .collect();
    let config = tsd::Config {
        me,
        incarnation,
        folder,
        heartbeat_interval: flags.heartbeat_interval,
        session_timeout: flags.session_timeout,
        replication_timeout: flags.replication_timeout,
        imports,
    };
    // The role reports on a thread of its own, through connections of its own.
    let reporting = move || Arc::new(coordinator.with_own_connections());
    tsd::serve(
        config,
        Arc::new(store),
        reporting,
        listener,
        cli::shutdown_signal(),
    )
    .await
    .map_err(|e| Fatal::new("the server stopped", e))
}
