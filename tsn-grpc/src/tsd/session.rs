//! TSN's `Session` service: keep-alive and logout for TSN's clients.

use std::time::Instant;

use tonic::{Request, Response, Status};
use tsn_core::Store;
use tsn_core::session::SessionToken;

use crate::error::to_status;
use crate::proto::tsn::session_server::Session;
use crate::proto::tsn::{SessionReply, SessionRequest};
use crate::tsd::request::parse_user;
use tsn_server::tsd::Tsd;

#[tonic::async_trait]
impl<S: Store> Session for Tsd<S> {
    async fn keep_alive(
        &self,
        request: Request<SessionRequest>,
    ) -> Result<Response<SessionReply>, Status> {
        let request = request.into_inner();
        let user = parse_user(&request.username, "username")?;
        self.master().map_err(to_status)?;
        let alive =
            self.sessions()
                .keep_alive(user, &SessionToken(request.session), Instant::now());
        Ok(Response::new(SessionReply { alive }))
    }

    async fn logout(
        &self,
        request: Request<SessionRequest>,
    ) -> Result<Response<SessionReply>, Status> {
        let request = request.into_inner();
        let user = parse_user(&request.username, "username")?;
        self.sessions().logout(user, &SessionToken(request.session));
        Ok(Response::new(SessionReply { alive: false }))
    }
}
