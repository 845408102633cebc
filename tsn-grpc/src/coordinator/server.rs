//! [`CoordServer`]: `CoordService` over a [`Coordinator`].

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tsn_core::Coordinator;
use tsn_core::Error;
use tsn_core::coordinator::{Report, ServerRef};
use tsn_core::id::{FolderId, UserId};

use crate::coordinator::NO_MASTER;
use crate::error::to_status;
use crate::proto::csce438::coord_service_server::CoordService;
use crate::proto::csce438::{AllSyncServers, Confirmation, Empty, Id, ServerInfo};
use crate::tls::{self, Identity};

/// Serves the course's `CoordService` with the decisions of `C`.
#[derive(Debug)]
pub struct CoordServer<C> {
    coordinator: Arc<C>,
}

impl<C> CoordServer<C> {
    /// Serves `coordinator`.
    pub fn new(coordinator: Arc<C>) -> Self {
        CoordServer { coordinator }
    }
}

#[tonic::async_trait]
impl<C: Coordinator + 'static> CoordService for CoordServer<C> {
    async fn heartbeat(
        &self,
        request: Request<ServerInfo>,
    ) -> Result<Response<Confirmation>, Status> {
        let report = Report::try_from(request.get_ref()).map_err(to_status)?;
        let me = Identity::Tsd {
            cluster: report.server.cluster.0,
            server: report.server.server.0,
        };
        let method = "/csce438.CoordService/Heartbeat";
        tls::access::require(&request, method, |peer| peer == me, &me.to_string())?;
        let assignment = self.coordinator.heartbeat(report).await.map_err(refusal)?;
        Ok(Response::new(Confirmation::from(&assignment)))
    }

    async fn get_server(&self, request: Request<Id>) -> Result<Response<ServerInfo>, Status> {
        let id = request.get_ref().id;
        let user = u32::try_from(id)
            .ok()
            .and_then(UserId::new)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{id} is not a user id: user ids go from 1 to 2147483647"
                ))
            })?;
        match self.coordinator.server_for(user).await.map_err(to_status)? {
            Some(server) => Ok(Response::new(ServerInfo {
                r#type: "master".into(),
                ..ServerInfo::from(&server)
            })),
            None => {
                let mut status = Status::unavailable(format!(
                    "no live server serves the cluster of user {user}"
                ));
                status
                    .metadata_mut()
                    .insert(NO_MASTER, "1".parse().expect("ascii"));
                Err(status)
            }
        }
    }

    async fn get_sync_servers(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<AllSyncServers>, Status> {
        let servers = self.coordinator.sync_servers().await.map_err(to_status)?;
        Ok(Response::new(AllSyncServers {
            servers: servers
                .iter()
                .map(|s| ServerInfo {
                    r#type: "synchronizer".into(),
                    ..ServerInfo::from(s)
                })
                .collect(),
        }))
    }

    async fn register_sync_server(
        &self,
        request: Request<ServerInfo>,
    ) -> Result<Response<Confirmation>, Status> {
        let sync = ServerRef::try_from(request.get_ref()).map_err(to_status)?;
        let me = Identity::Synchronizer {
            cluster: sync.cluster.0,
        };
        let method = "/csce438.CoordService/RegisterSyncServer";
        tls::access::require(&request, method, |peer| peer == me, &me.to_string())?;
        let folder = FolderId(request.get_ref().folder_id);
        let clusters = self
            .coordinator
            .register_sync(sync, folder)
            .await
            .map_err(refusal)?;
        Ok(Response::new(Confirmation {
            status: true,
            r#type: "synchronizer".into(),
            clusters,
            ..Default::default()
        }))
    }
}

/// The status for a heartbeat or a registration that failed; a second copy of a live
/// process, or a claim nobody granted, is also logged, for the operator watching the
/// coordinator.
fn refusal(error: Error) -> Status {
    if let Error::Duplicate(why) | Error::Refused(why) = &error {
        tracing::warn!("{why}");
    }
    to_status(error)
}
