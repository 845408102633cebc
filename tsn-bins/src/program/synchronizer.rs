//! The synchronizer: copies users, follows and posts between its cluster and the others.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser};
use tsn_core::coordinator::{Endpoint, ServerRef};
use tsn_core::id::{ClusterId, FolderId, Membership};
use tsn_core::sync::Handover;
use tsn_core::{Coordinator, SyncPeer};
use tsn_fs::{ClusterFiles, InboxWriter};
use tsn_grpc::feed::FeedClient;
use tsn_server::synchronizer::{self, Links, follow_peers};

use crate::cli::{self, Fatal};
use crate::program::server::{self, COORDINATOR_AT_START, ServerFlags};

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
    /// Host of the coordinator.
    #[arg(short = 'h', long = "coordinator-host", default_value = "127.0.0.1")]
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
    /// The data folder the cluster's servers use (the same as their --data-dir).
    #[arg(long, default_value = "tsn-data")]
    data_dir: PathBuf,
    /// How often to register with the coordinator and look for other synchronizers.
    #[arg(long, default_value = "200ms", value_parser = cli::duration)]
    register_interval: Duration,
    /// How often to look at the cluster's files when no change notification came.
    #[arg(long, default_value = "100ms", value_parser = cli::duration)]
    poll_interval: Duration,
    /// Least time between two reads from another cluster; 0 reads changes as they come
    /// (the course's synchronizers run a round every 20s).
    #[arg(long, default_value = "0s", value_parser = cli::duration_or_zero)]
    round_interval: Duration,
    /// Bytes past which a file of the inbox is started afresh, once the cluster has merged
    /// (and committed) all it holds.
    #[arg(long, default_value_t = tsn_fs::INBOX_COMPACT_LIMIT, value_parser = clap::value_parser!(u64).range(1..))]
    inbox_compact_limit: u64,
    #[command(flatten)]
    network: ServerFlags,
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
    check_data_dir(&flags.data_dir)?;
    let inbox = tsn_fs::inbox_dir(&flags.data_dir, ClusterId(flags.cluster));
    let _claim = tsn_fs::InboxClaim::take(&inbox).map_err(|e| {
        Fatal::new(
            format_args!("cannot claim the inbox of cluster {}", flags.cluster),
            e,
        )
    })?;
    let folder = tsn_fs::folder_id(&inbox, tsn_fs::SYNCHRONIZER_ID_FILE)
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
        register_interval: flags.register_interval,
        round_interval: flags.round_interval,
    };
    let membership = Membership {
        cluster: config.me.cluster,
        clusters,
    };
    let local = Arc::new(ClusterFiles::new(membership));
    let follower = tokio::spawn({
        let local = Arc::clone(&local);
        let cluster_dir = tsn_fs::cluster_dir(&flags.data_dir, membership.cluster);
        async move { local.follow(cluster_dir, flags.poll_interval).await }
    });
    let links = files_and_feeds(&local, inbox, flags.inbox_compact_limit, membership.cluster);
    let peers = tokio::spawn(follow_peers(config, links, coordinator));
    let served = tsn_grpc::feed::serve(local, listener, cli::shutdown_signal()).await;
    follower.abort();
    peers.abort();
    served.map_err(|e| Fatal::new("the synchronizer stopped", e))
}

/// What the synchronizer of cluster `me` reaches: its cluster through the data folder
/// (what is merged, from `local`; the inbox files in `inbox`, started afresh past
/// `compact_limit` bytes), the other synchronizers through their feeds.
fn files_and_feeds(
    local: &Arc<ClusterFiles>,
    inbox: PathBuf,
    compact_limit: u64,
    me: ClusterId,
) -> Links {
    let local = Arc::clone(local);
    Links {
        merged: Arc::new(move |from| {
            local.read(|s| (s.imported_log(from), s.imported_through(from)))
        }),
        handover: Arc::new(move |from| {
            let writer = InboxWriter::open(&inbox, from)?.with_compact_limit(compact_limit);
            Ok(Box::new(writer) as Box<dyn Handover>)
        }),
        feed: Arc::new(move |peer| Ok(Arc::new(FeedClient::new(peer, me)?) as Arc<dyn SyncPeer>)),
    }
}

/// Refuses, in one line, a data folder that does not exist or is not a folder: the
/// synchronizer meets its cluster's servers there, so a wrong one would leave it serving
/// nothing while it replaced the cluster's real synchronizer.
fn check_data_dir(dir: &Path) -> Result<(), Fatal> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Fatal(format!(
            "the data folder {} is not a folder; give the --data-dir of the cluster's servers",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Fatal(format!(
            "the data folder {} does not exist; give the --data-dir of the cluster's servers",
            dir.display()
        ))),
        Err(e) => Err(Fatal::new(
            format_args!("cannot read the data folder {}", dir.display()),
            e,
        )),
    }
}

/// Registers with the coordinator, retrying for a few seconds; returns the number of
/// clusters.
async fn register(
    me: &ServerRef,
    folder: FolderId,
    coordinator: &impl Coordinator,
    at: &Endpoint,
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
