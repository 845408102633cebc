//! The synchronizer: copies users, follows and posts between its cluster and the others.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser};
use tsn_core::Coordinator;
use tsn_core::coordinator::ServerRef;
use tsn_core::id::{ClusterId, FolderId};
use tsn_grpc::tls::Identity;
use tsn_server::synchronizer::{self, Relay, keep_registered};

use crate::cli::{self, Addresses, Fatal};
use crate::program::server::{self, COORDINATOR_AT_START, ServerFlags};
use crate::program::tls::TlsFlags;

/// The synchronizer's flags.
#[derive(Parser, Debug)]
#[command(
    name = "synchronizer",
    version,
    allow_negative_numbers = true,
    about = "TSN synchronizer: brings the users, follows and posts of the other clusters into its cluster",
    disable_help_flag = true
)]
struct Flags {
    #[arg(short = 'h', long = "coordinator-host", default_value = "127.0.0.1", help = cli::COORDINATOR_HOSTS_HELP)]
    coordinator_host: String,
    /// Port of the coordinator.
    #[arg(short = 'j', long = "coordinator-port", default_value_t = 9090, value_parser = clap::value_parser!(u16).range(1..))]
    coordinator_port: u16,
    /// The cluster this synchronizer serves (1..N).
    #[arg(short = 'n', long = "cluster", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=crate::cli::MAX_CLUSTERS as i64))]
    cluster: u32,
    /// Port to listen on (0 picks a free one).
    #[arg(short = 'p', long = "port", default_value_t = 1234)]
    port: u16,
    /// Folder of this synchronizer's identity: it keeps <data-dir>/synchronizer_<n>/ (and no
    /// data: it meets its cluster's master over the network).
    #[arg(long, default_value = "tsn-data")]
    data_dir: PathBuf,
    /// How often to register with the coordinator (its heartbeat).
    #[arg(long, default_value = "200ms", value_parser = cli::duration)]
    register_interval: Duration,
    /// Least time between two reads from another cluster; 0 reads changes as they come
    /// (the course's synchronizers run a round every 20s).
    #[arg(long, default_value = "0s", value_parser = cli::duration_or_zero)]
    round_interval: Duration,
    #[command(flatten)]
    network: ServerFlags,
    #[command(flatten)]
    tls: TlsFlags,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// Runs a synchronizer with `args` (the first being the program's name).
pub fn main(args: Vec<OsString>) -> ExitCode {
    cli::run_program("synchronizer", args, run)
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    cli::init_logging();
    let identity = Identity::Synchronizer {
        cluster: flags.cluster,
    };
    flags.tls.install(identity, false)?;
    let dir = tsn_fs::synchronizer_dir(&flags.data_dir, ClusterId(flags.cluster));
    let _claim = tsn_fs::SynchronizerClaim::take(&dir).map_err(|e| {
        Fatal::new(
            format_args!(
                "cannot claim the folder of cluster {}'s synchronizer",
                flags.cluster
            ),
            e,
        )
    })?;
    let folder = tsn_fs::folder_id(&dir, tsn_fs::SYNCHRONIZER_ID_FILE)
        .map_err(|e| Fatal::new("cannot read this synchronizer's identity", e))?;
    let listener = cli::listen(&flags.network.bind, flags.port).await?;
    let me = flags.network.me(&listener, flags.cluster, flags.cluster)?;
    let (coordinator_at, coordinator) =
        server::coordinator_client(&flags.coordinator_host, flags.coordinator_port)?;
    let clusters = register(&me, folder, &*coordinator, &coordinator_at).await?;
    println!(
        "synchronizer cluster {} listening on {}",
        me.cluster, me.endpoint
    );
    let config = synchronizer::Config {
        me,
        folder,
        clusters,
        register_interval: flags.register_interval,
        round_interval: flags.round_interval,
    };
    let relay = Relay::new(
        config.clone(),
        Arc::clone(&coordinator) as Arc<dyn Coordinator>,
        server::connect_feed(config.me.cluster),
    );
    let registering = tokio::spawn(keep_registered(config, coordinator));
    let served = tsn_grpc::feed::serve(Arc::new(relay), listener, cli::shutdown_signal()).await;
    registering.abort();
    served.map_err(|e| Fatal::new("the synchronizer stopped", e))
}

/// Registers with the coordinator, retrying for a few seconds; returns the number of
/// clusters.
async fn register(
    me: &ServerRef,
    folder: FolderId,
    coordinator: &impl Coordinator,
    at: &Addresses,
) -> Result<u32, Fatal> {
    let deadline = tokio::time::Instant::now() + COORDINATOR_AT_START;
    loop {
        match coordinator.register_sync(me.clone(), folder).await {
            Ok(clusters) => return Ok(clusters),
            Err(error) if !error.is_retryable() => {
                return Err(Fatal::new(
                    "the coordinator refused this synchronizer",
                    error,
                ));
            }
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(Fatal::new(
                    format_args!("cannot reach the coordinator at {at}"),
                    error,
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
