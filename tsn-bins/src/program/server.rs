//! Start-up shared by the server programs: network flags, the coordinator's client, the
//! change feeds of other servers, and opening a replica.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;
use tsn_core::change::LogPoint;
use tsn_core::coordinator::{Endpoint, ServerRef};
use tsn_core::failover::Node;
use tsn_core::id::{ClusterId, FolderId, Membership, ServerId};
use tsn_core::{Coordinator, Store, SyncPeer};
use tsn_fs::FileStore;
use tsn_grpc::coordinator::CoordClient;
use tsn_grpc::feed::FeedClient;
use tsn_server::routed::ConnectFeed;

use crate::cli::{Addresses, Fatal};

/// How long a server tries to reach the coordinator at start before giving up.
pub(crate) const COORDINATOR_AT_START: Duration = Duration::from_secs(5);

/// The network flags every server program takes.
#[derive(Args, Debug, Clone)]
pub struct ServerFlags {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Host name to announce to others (default: the bind address).
    #[arg(long)]
    pub advertise_host: Option<String>,
}

impl ServerFlags {
    /// The address to announce for `listener`: the advertised host (or the bind address)
    /// and the port actually bound.
    pub fn advertised(&self, listener: &TcpListener) -> Result<Endpoint, Fatal> {
        let port = listener
            .local_addr()
            .map_err(|e| Fatal::new("cannot read the listening address", e))?
            .port();
        Ok(Endpoint {
            host: self
                .advertise_host
                .clone()
                .unwrap_or_else(|| self.bind.clone()),
            port,
        })
    }

    /// Who this server is: server `server` of cluster `cluster`, announced at the
    /// [advertised](ServerFlags::advertised) address of `listener`.
    pub fn me(
        &self,
        listener: &TcpListener,
        cluster: u32,
        server: u32,
    ) -> Result<ServerRef, Fatal> {
        Ok(ServerRef {
            cluster: ClusterId(cluster),
            server: ServerId(server),
            endpoint: self.advertised(listener)?,
        })
    }
}

/// A client of the coordinators the `-h` flag names (`hosts`, at `port` where it names
/// none; connecting lazily), and their addresses.
pub fn coordinator_client(hosts: &str, port: u16) -> Result<(Addresses, Arc<CoordClient>), Fatal> {
    let at = Addresses::parse(hosts, port).map_err(|e| Fatal(format!("bad -h: {e}")))?;
    let client = at.coordinators()?;
    Ok((at, Arc::new(client)))
}

/// How a server of cluster `me` opens another server's change feed: over gRPC, asking for
/// the changes of the cluster it names.
pub fn connect_feed(me: ClusterId) -> Arc<ConnectFeed> {
    Arc::new(move |at: &Endpoint, source: ClusterId| {
        Ok(Arc::new(FeedClient::new(at, me, source)?) as Arc<dyn SyncPeer>)
    })
}

/// Opens this server's replica under `data_dir`, learning the number of clusters from the
/// coordinator (and checking it against what the replica was made with); returns it with
/// the identity of its folder. Fails when the folder is unusable, the coordinator cannot be
/// reached within a few seconds, or it refuses this server (a copy of it runs from
/// another folder).
pub async fn open_replica(
    data_dir: &Path,
    me: &ServerRef,
    incarnation: u64,
    coordinator: &impl Coordinator,
    coordinator_at: &Addresses,
) -> Result<(FileStore, FolderId), Fatal> {
    let dir = tsn_fs::replica_dir(data_dir, me.cluster, me.server);
    let unusable = |e| {
        Fatal::new(
            format_args!("cannot use the data folder {}", dir.display()),
            e,
        )
    };
    let recorded = tsn_fs::recorded_membership(&dir).map_err(unusable)?;
    // A replica that exists reports where its log ends, so that the coordinator can judge it.
    let existing = recorded
        .map(|membership| FileStore::open(&dir, membership))
        .transpose()
        .map_err(unusable)?;
    let log = existing
        .as_ref()
        .map(|(store, _)| store.read(|s| s.last()))
        .unwrap_or_default();
    let folder = tsn_fs::folder_id(&dir, tsn_fs::REPLICA_ID_FILE).map_err(unusable)?;
    let node = Node::new(me.clone(), incarnation, log.epoch).on_folder(folder);
    let clusters = ask_clusters(&node, log, coordinator, coordinator_at).await?;
    let membership = Membership {
        cluster: me.cluster,
        clusters,
    };
    let (store, recovery) = match (existing, recorded) {
        (Some(opened), Some(made)) if made == membership => opened,
        (Some(_), made) => {
            return Err(Fatal(format!(
                "the data in {} was made for {} clusters, but the coordinator has {clusters}",
                dir.display(),
                made.map_or(0, |m| m.clusters)
            )));
        }
        (None, _) => FileStore::open(&dir, membership).map_err(unusable)?,
    };
    tracing::info!(dir = %dir.display(), ?recovery, "replica opened");
    Ok((store, folder))
}

/// Asks the coordinator, with a first heartbeat, how many clusters there are.
async fn ask_clusters(
    node: &Node,
    log: LogPoint,
    coordinator: &impl Coordinator,
    coordinator_at: &Addresses,
) -> Result<u32, Fatal> {
    let report = node.report(log, Vec::new());
    let deadline = tokio::time::Instant::now() + COORDINATOR_AT_START;
    loop {
        match coordinator.heartbeat(report.clone()).await {
            Ok(assignment) => return Ok(assignment.clusters),
            Err(error) if !error.is_retryable() => {
                return Err(Fatal::new("the coordinator refused this server", error));
            }
            Err(error) if tokio::time::Instant::now() >= deadline => {
                return Err(Fatal::new(
                    format_args!("cannot reach the coordinator at {coordinator_at}"),
                    error,
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
