//! [`CoordClient`]: a remote coordinator behind the [`Coordinator`] trait.

use async_trait::async_trait;
use tonic::transport::Channel;
use tsn_core::coordinator::{Assignment, Endpoint, Report, ServerRef};
use tsn_core::id::{FolderId, UserId};
use tsn_core::{Coordinator, Result};

use crate::coordinator::NO_MASTER;
use crate::error::from_status;
use crate::proto::csce438::coord_service_client::CoordServiceClient;
use crate::proto::csce438::{Empty, Id, ServerInfo};
use crate::transport::call_channel;

/// Calls the coordinator at an address. The connection is made on first use and remade
/// after failures; each call fails with [`Error::Unavailable`] after
/// [`CALL_TIMEOUT`](crate::CALL_TIMEOUT) or when the coordinator cannot be reached.
#[derive(Clone, Debug)]
pub struct CoordClient {
    client: CoordServiceClient<Channel>,
    name: String,
}

impl CoordClient {
    /// A client of the coordinator at `endpoint` (nothing is sent yet).
    pub fn new(endpoint: &Endpoint) -> Result<Self> {
        Ok(CoordClient {
            client: CoordServiceClient::new(call_channel(endpoint)?),
            name: format!("the coordinator at {endpoint}"),
        })
    }
}

#[async_trait]
impl Coordinator for CoordClient {
    async fn heartbeat(&self, report: Report) -> Result<Assignment> {
        let reply = self
            .client
            .clone()
            .heartbeat(ServerInfo::from(&report))
            .await
            .map_err(|s| from_status(&self.name, s))?;
        Assignment::try_from(reply.get_ref())
    }

    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>> {
        let id = Id {
            id: user.get() as i32,
        };
        match self.client.clone().get_server(id).await {
            Ok(reply) => named_server(reply.get_ref()).map(Some),
            Err(status) if status.metadata().contains_key(NO_MASTER) => Ok(None),
            Err(status) => Err(from_status(&self.name, status)),
        }
    }

    async fn register_sync(&self, sync: ServerRef, folder: FolderId) -> Result<u32> {
        let info = ServerInfo {
            folder_id: folder.0,
            ..ServerInfo::from(&sync)
        };
        let reply = self
            .client
            .clone()
            .register_sync_server(info)
            .await
            .map_err(|s| from_status(&self.name, s))?;
        match reply.into_inner().clusters {
            0 => Err(tsn_core::Error::Invalid(format!(
                "{} did not say how many clusters there are",
                self.name
            ))),
            clusters => Ok(clusters),
        }
    }

    async fn sync_servers(&self) -> Result<Vec<ServerRef>> {
        let reply = self
            .client
            .clone()
            .get_sync_servers(Empty {})
            .await
            .map_err(|s| from_status(&self.name, s))?;
        reply
            .get_ref()
            .servers
            .iter()
            .map(ServerRef::try_from)
            .collect()
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
