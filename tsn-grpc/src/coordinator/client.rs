//! [`CoordClient`]: remote coordinators behind the [`Coordinator`] trait.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tonic::Status;
use tonic::transport::Channel;
use tsn_core::coordinator::{Assignment, Endpoint, Report, ServerRef};
use tsn_core::id::{FolderId, UserId};
use tsn_core::{Coordinator, Error, Result};

use crate::coordinator::NO_MASTER;
use crate::error::from_status;
use crate::proto::csce438::coord_service_client::CoordServiceClient;
use crate::proto::csce438::{Empty, Id, ServerInfo};
use crate::transport::call_endpoint;

/// One coordinator: its client, how to connect to it again, and how to name it.
#[derive(Clone, Debug)]
struct Remote {
    client: CoordServiceClient<Channel>,
    at: tonic::transport::Endpoint,
    name: String,
}

impl Remote {
    fn new(at: tonic::transport::Endpoint, name: String) -> Self {
        Remote {
            client: CoordServiceClient::new(crate::transport::connect_lazy_to(
                &at,
                crate::tls::Identity::Coordinator,
            )),
            at,
            name,
        }
    }
}

/// Calls the coordinators at a list of addresses (one, in the course's deployment; any
/// number of stateless ones sharing etcd otherwise). Each call goes to the one that last
/// answered, and, when it cannot be reached, to the next, until one answers; connections
/// are made on first use and remade after failures. A call fails with
/// [`Error::Unavailable`] when none answers within [`CALL_TIMEOUT`](crate::CALL_TIMEOUT)
/// each, and with a coordinator's own refusal as soon as one refuses.
#[derive(Clone, Debug)]
pub struct CoordClient {
    remotes: Arc<Vec<Remote>>,
    preferred: Arc<AtomicUsize>,
}

impl CoordClient {
    /// A client of the coordinators at `endpoints` (nothing is sent yet).
    pub fn new(endpoints: &[Endpoint]) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::Invalid("no coordinator address given".into()));
        }
        let remotes = endpoints
            .iter()
            .map(|endpoint| {
                Ok(Remote::new(
                    call_endpoint(endpoint)?,
                    format!("the coordinator at {endpoint}"),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CoordClient {
            remotes: Arc::new(remotes),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A client of the same coordinators with connections of its own, made and driven on
    /// the runtime this is called on (a clone shares this one's connections).
    pub fn with_own_connections(&self) -> Self {
        let remotes = self
            .remotes
            .iter()
            .map(|remote| Remote::new(remote.at.clone(), remote.name.clone()))
            .collect();
        CoordClient {
            remotes: Arc::new(remotes),
            preferred: Arc::new(AtomicUsize::new(self.preferred.load(Ordering::Relaxed))),
        }
    }

    /// Makes a call with `call` at one coordinator after the other, starting with the
    /// preferred one, until one answers or refuses; `answer` reads the answer (or the
    /// failure, given the coordinator's name), and says whether another coordinator
    /// could do better ([`Error::Unavailable`]).
    async fn call<R, T, F, Fut>(
        &self,
        call: F,
        answer: impl Fn(&str, std::result::Result<R, Status>) -> Result<T>,
    ) -> Result<T>
    where
        F: Fn(CoordServiceClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, Status>>,
    {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failed = None;
        for i in 0..self.remotes.len() {
            let at = (first + i) % self.remotes.len();
            let remote = &self.remotes[at];
            let reply = call(remote.client.clone()).await;
            match answer(&remote.name, reply.map(tonic::Response::into_inner)) {
                Err(error @ Error::Unavailable { .. }) => failed = Some(error),
                outcome => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return outcome;
                }
            }
        }
        Err(failed.expect("at least one coordinator"))
    }
}

#[async_trait]
impl Coordinator for CoordClient {
    async fn heartbeat(&self, report: Report) -> Result<Assignment> {
        let info = ServerInfo::from(&report);
        self.call(
            |mut c| {
                let info = info.clone();
                async move { c.heartbeat(info).await }
            },
            |name, reply| Assignment::try_from(&reply.map_err(|s| from_status(name, s))?),
        )
        .await
    }

    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>> {
        let id = Id {
            id: user.get() as i32,
        };
        self.call(
            |mut c| async move { c.get_server(id).await },
            |name, reply| match reply {
                Ok(info) => named_server(&info).map(Some),
                Err(status) if status.metadata().contains_key(NO_MASTER) => Ok(None),
                Err(status) => Err(from_status(name, status)),
            },
        )
        .await
    }

    async fn register_sync(&self, sync: ServerRef, folder: FolderId) -> Result<u32> {
        let info = ServerInfo {
            folder_id: folder.0,
            ..ServerInfo::from(&sync)
        };
        self.call(
            |mut c| {
                let info = info.clone();
                async move { c.register_sync_server(info).await }
            },
            |name, reply| match reply.map_err(|s| from_status(name, s))?.clusters {
                0 => Err(Error::Invalid(format!(
                    "{name} did not say how many clusters there are"
                ))),
                clusters => Ok(clusters),
            },
        )
        .await
    }

    async fn sync_servers(&self) -> Result<Vec<ServerRef>> {
        self.call(
            |mut c| async move { c.get_sync_servers(Empty {}).await },
            |name, reply| {
                reply
                    .map_err(|s| from_status(name, s))?
                    .servers
                    .iter()
                    .map(ServerRef::try_from)
                    .collect()
            },
        )
        .await
    }
}

/// The server a `GetServer` answer names. The course's coordinator leaves `clusterID`
/// empty; a client needs only the address, so a cluster that cannot be read counts as 0
/// (not said).
fn named_server(info: &ServerInfo) -> Result<ServerRef> {
    if info.cluster_id.parse::<u32>().is_ok() {
        return ServerRef::try_from(info);
    }
    let said = ServerInfo {
        cluster_id: "0".into(),
        ..info.clone()
    };
    ServerRef::try_from(&said)
}
