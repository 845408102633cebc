//! What a deployment is made of: its [`Topology`], its members' names, and the flags each
//! member is started with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tsn_core::id::{ClusterId, ServerId};

use crate::cli::Fatal;

/// The name of the coordinator's member.
pub const COORDINATOR: &str = "coordinator";

/// The name of the second coordinator's member, with coordination on etcd.
pub const SECOND_COORDINATOR: &str = "coordinator-2";

/// The name of the member that is tsd `server` of `cluster`: `tsd-<cluster>-<server>`.
pub fn tsd_name(cluster: u32, server: u32) -> String {
    member_name("tsd", Some(cluster), Some(server))
}

/// The name of the member that is the synchronizer of `cluster`: `synchronizer-<cluster>`.
pub fn synchronizer_name(cluster: u32) -> String {
    member_name("synchronizer", Some(cluster), None)
}

/// The name of a member running `program`, for `cluster` and `server` where it has them.
pub fn member_name(program: &str, cluster: Option<u32>, server: Option<u32>) -> String {
    match (cluster, server) {
        (Some(c), Some(s)) => format!("{program}-{c}-{s}"),
        (Some(c), None) => format!("{program}-{c}"),
        _ => program.to_owned(),
    }
}

/// A free loopback port (it was free a moment ago).
pub fn free_port() -> Result<u16, Fatal> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Fatal::new("cannot find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Fatal::new("cannot find a free port", e))
}

/// The timers a deployment runs with; the flags of the programs that start deployments.
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// How often servers report to the coordinator.
    #[arg(long = "heartbeat-interval", default_value = "200ms", value_parser = crate::cli::duration)]
    pub heartbeat_interval: Duration,
    /// How long a silent server counts as alive (the coordinator's failure timeout).
    #[arg(long = "failure-timeout", default_value = "1s", value_parser = crate::cli::duration)]
    pub failure_timeout: Duration,
}

impl Timers {
    /// Refuses timers that cannot work: a failure timeout shorter than two heartbeat
    /// intervals declares live servers failed between two of their heartbeats, and the
    /// cluster's master flaps forever.
    pub fn check(&self) -> Result<(), Fatal> {
        if self.failure_timeout < self.heartbeat_interval * 2 {
            return Err(Fatal(format!(
                "--failure-timeout ({}) must be at least twice --heartbeat-interval ({}), or \
                 live servers count as failed between two heartbeats",
                text(self.failure_timeout),
                text(self.heartbeat_interval)
            )));
        }
        Ok(())
    }
}

/// A duration as the programs' flags take it (`200ms`, `1s`).
fn text(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// The flags of a coordinator of `clusters` clusters on `port` (0: a free one).
pub fn coordinator_flags(port: u16, clusters: u32, timers: &Timers) -> Vec<String> {
    vec![
        "-p".to_owned(),
        port.to_string(),
        "--clusters".into(),
        clusters.to_string(),
        "--failure-timeout".into(),
        text(timers.failure_timeout),
    ]
}

/// The flags of tsd `server` of `cluster` on `port` (0: a free one), reporting to the
/// coordinator at `coordinator_port`, its data under `data_dir`; with `timers`, or with the
/// programs' defaults.
pub fn tsd_flags(
    cluster: u32,
    server: u32,
    coordinator_port: u16,
    port: u16,
    data_dir: &Path,
    timers: Option<&Timers>,
) -> Vec<String> {
    let mut flags = vec![
        "-c".to_owned(),
        cluster.to_string(),
        "-s".into(),
        server.to_string(),
        "-k".into(),
        coordinator_port.to_string(),
        "-p".into(),
        port.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    if let Some(timers) = timers {
        flags.extend([
            "--heartbeat-interval".into(),
            text(timers.heartbeat_interval),
            "--replication-timeout".into(),
            text(timers.failure_timeout),
        ]);
    }
    flags
}

/// The flags of the synchronizer of `cluster` on `port` (0: a free one), registering with
/// the coordinator at `coordinator_port`, meeting its cluster under `data_dir`; with
/// `timers`, or with the programs' defaults.
pub fn synchronizer_flags(
    cluster: u32,
    coordinator_port: u16,
    port: u16,
    data_dir: &Path,
    timers: Option<&Timers>,
) -> Vec<String> {
    let mut flags = vec![
        "-n".to_owned(),
        cluster.to_string(),
        "-j".into(),
        coordinator_port.to_string(),
        "-p".into(),
        port.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    if let Some(timers) = timers {
        flags.extend([
            "--register-interval".into(),
            text(timers.heartbeat_interval),
        ]);
    }
    flags
}

/// The shape of a local deployment.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Number of clusters.
    pub clusters: u32,
    /// Port of the coordinator.
    pub coordinator_port: u16,
    /// Servers on free ports instead of the course's 10000, 10001, 20000 ...
    pub free_ports: bool,
    /// Folder of the data; logs go to its `logs` folder.
    pub data_dir: PathBuf,
    /// The heartbeat interval and failure timeout.
    pub timers: Timers,
    /// Servers per cluster: a master and `servers - 1` slaves.
    pub servers: u32,
    /// Whether each cluster gets its synchronizer.
    pub synchronizers: bool,
    /// Whether each member runs on a simulated host of its own ([`hosts`](super::hosts)),
    /// with a data folder of its own, `<data_dir>/<member>`.
    pub hosts: bool,
    /// Whether the coordination runs on etcd: a cluster of 3 etcd members (in
    /// `<data_dir>/etcd`) and two coordinators on it, [`COORDINATOR`] and
    /// [`SECOND_COORDINATOR`]; every other member is given both.
    pub etcd: bool,
    /// How long a member may take to start listening, and the servers to take up roles
    /// ([`START_TIMEOUT`] unless a replica is known to be large).
    pub start_timeout: Duration,
    /// Whether every connection is TLS: a certificate authority and a certificate per
    /// member are made in `<data_dir>/tls` (see [`certs`](super::certs)).
    pub tls: bool,
}

/// How long a member of a [`Topology::standard`] deployment may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Topology {
    /// The course's deployment: on the course's ports unless `free_ports`, a master, a
    /// slave and a synchronizer per cluster.
    pub fn standard(
        clusters: u32,
        coordinator_port: u16,
        free_ports: bool,
        data_dir: PathBuf,
        timers: Timers,
    ) -> Self {
        Topology {
            clusters,
            coordinator_port,
            free_ports,
            data_dir,
            timers,
            servers: 2,
            synchronizers: true,
            hosts: false,
            etcd: false,
            start_timeout: START_TIMEOUT,
            tls: false,
        }
    }

    /// The port of server `server` of `cluster`: the course's, or 0 for a free one.
    fn server_port(&self, cluster: u32, server: u32) -> u16 {
        if self.free_ports {
            0
        } else {
            u16::try_from(10000 * cluster + server - 1).unwrap_or(0)
        }
    }

    /// The coordinator's flags.
    pub fn coordinator_args(&self) -> Vec<String> {
        coordinator_flags(self.coordinator_port, self.clusters, &self.timers)
    }

    /// The second coordinator's flags (with coordination on etcd), on a free port.
    pub fn second_coordinator_args(&self) -> Vec<String> {
        coordinator_flags(0, self.clusters, &self.timers)
    }

    /// The data folder of the member called `name`: its own on a host of its own, the
    /// deployment's otherwise (each server keeps to its own folders there).
    pub fn data_dir_of(&self, name: &str) -> PathBuf {
        if self.hosts {
            self.data_dir.join(name)
        } else {
            self.data_dir.clone()
        }
    }

    /// The folder of the certificates, with [`Topology::tls`].
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// The folder of the replica of tsd `server` of `cluster`.
    pub fn replica_dir(&self, cluster: u32, server: u32) -> PathBuf {
        tsn_fs::replica_dir(
            &self.data_dir_of(&tsd_name(cluster, server)),
            ClusterId(cluster),
            ServerId(server),
        )
    }

    /// The flags of the synchronizer of `cluster`.
    pub fn synchronizer_args(&self, cluster: u32) -> Vec<String> {
        let port = if self.free_ports { 0 } else { 1233 + cluster };
        synchronizer_flags(
            cluster,
            self.coordinator_port,
            u16::try_from(port).unwrap_or(0),
            &self.data_dir_of(&synchronizer_name(cluster)),
            Some(&self.timers),
        )
    }

    /// The flags of tsd `server` of `cluster`.
    pub fn tsd_args(&self, cluster: u32, server: u32) -> Vec<String> {
        tsd_flags(
            cluster,
            server,
            self.coordinator_port,
            self.server_port(cluster, server),
            &self.data_dir_of(&tsd_name(cluster, server)),
            Some(&self.timers),
        )
    }
}
