//! [`Coordinator`]: who is master where, and who serves whom.
//!
//! Servers report to the coordinator with [`Coordinator::heartbeat`] at a fixed interval and
//! are told their [`Role`] in reply; clients ask it which server serves a user; the
//! synchronizers register with it and learn of each other from it. The decisions are made
//! by [`Registry`], a pure state machine that takes the time as an argument; `tsn-server`'s
//! `Local` puts it behind the trait in one process, with the system's clocks, and
//! `tsn-grpc` serves that over the network. (The core reads no clock.)

mod registry;

pub use registry::{ClusterState, EPOCH_LEAD, LateMaster, Registry, RegistryConfig, RoleChange};

use std::fmt;

use serde::{Deserialize, Serialize};

use async_trait::async_trait;

use crate::change::LogPoint;
use crate::error::Result;
use crate::id::{ClusterId, Epoch, FolderId, ServerId, UserId};

/// What a server does in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Serves the cluster's clients and writes its log.
    Master,
    /// Holds a copy of the master's log, ready to take over.
    Slave,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Slave => "slave",
        })
    }
}

/// Where a process can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host name or address, as the process announces it.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A server (or a synchronizer) of a cluster and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerRef {
    /// Its cluster.
    pub cluster: ClusterId,
    /// Its id within the cluster.
    pub server: ServerId,
    /// Its address.
    pub endpoint: Endpoint,
}

/// What a server tells the coordinator in each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Who is reporting.
    pub server: ServerRef,
    /// A number the server's process picks at random when it starts: a change tells the
    /// coordinator that the server restarted.
    pub incarnation: u64,
    /// The data folder the server's replica lives in: while the server is live, a report
    /// naming it from another folder is a second copy and is refused. Unknown for servers
    /// that do not say.
    pub folder: FolderId,
    /// The role the server is acting in; `None` for a server that has just started.
    pub role: Option<Role>,
    /// The newest epoch the server knows.
    pub epoch: Epoch,
    /// The end of the server's log.
    pub log: LogPoint,
    /// From a master: the slaves that hold every entry it has acknowledged (its in-sync
    /// set, itself not included). Empty from a slave.
    pub in_sync: Vec<ServerId>,
}

/// The coordinator's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The role the server must act in.
    pub role: Role,
    /// The cluster's current epoch.
    pub epoch: Epoch,
    /// The cluster's master, if it has a live one (the server itself, when it is master).
    pub master: Option<ServerRef>,
    /// How many clusters the deployment has.
    pub clusters: u32,
    /// Whether the in-sync set the master reported is confirmed: from then on only its
    /// members may be promoted. False while a restarted coordinator is still listening.
    pub in_sync_confirmed: bool,
}

/// The coordinator, as servers, clients and synchronizers use it.
///
/// Every method may fail with [`Error::Unavailable`](crate::Error::Unavailable) when the
/// coordinator cannot be reached; callers retry on their own schedule.
#[cfg_attr(any(test, feature = "test-util"), mockall::automock)]
#[async_trait]
pub trait Coordinator: Send + Sync {
    /// Reports a server as alive and returns its assignment.
    ///
    /// Fails with [`Error::Duplicate`](crate::Error::Duplicate) while the same server of the
    /// cluster is live on another data folder ([`Report::folder`]), and with
    /// [`Error::Refused`](crate::Error::Refused) for a report of an epoch, or a claim to
    /// mastership, that the coordinator never granted.
    ///
    /// A master that reports a smaller in-sync set may count only on the remaining slaves
    /// once this returns with `role == Master` at its epoch: from then on the coordinator
    /// will promote no slave outside that set.
    async fn heartbeat(&self, report: Report) -> Result<Assignment>;

    /// The live master of `user`'s cluster, or `None` when the cluster has none.
    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>>;

    /// Registers (or re-registers, as a keep-alive) the synchronizer of a cluster, running
    /// on the data folder `folder`; returns the number of clusters of the deployment.
    ///
    /// Fails with [`Error::Duplicate`](crate::Error::Duplicate) while the cluster has a live
    /// synchronizer on another folder.
    async fn register_sync(&self, sync: ServerRef, folder: FolderId) -> Result<u32>;

    /// The synchronizers registered recently enough to count as alive, by cluster.
    async fn sync_servers(&self) -> Result<Vec<ServerRef>>;
}
