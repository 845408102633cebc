//! The course's `SNSService`: Login, List, Follow, UnFollow (and Timeline, in
//! [`timeline`](crate::tsd::timeline)).

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status, Streaming};
use tsn_core::Store;
use tsn_core::change::Change;
use tsn_core::command::{self, FollowRefused, Login, UnfollowRefused};
use tsn_core::id::{Time, UserId};
use tsn_core::session::{Admission, SessionToken};
use tsn_core::state::State;

use crate::error::to_status;
use crate::proto::csce438::sns_service_server::SnsService;
use crate::proto::csce438::{ListReply, Message, Reply, Request as SnsRequest};
use crate::replies as reply;
use crate::tsd::ACKNOWLEDGES;
use crate::tsd::request::{not_served, parse_user};
use crate::tsd::timeline::{self, TimelineStream};
use crate::tsd::wall_clock;
use tsn_server::master::Master;
use tsn_server::tsd::Tsd;

/// The one user a Follow or UnFollow names; `None` when it is no user id, which the
/// course's server answers as an unknown user (a `Reply`, not an error status).
fn single_argument(request: &SnsRequest) -> Result<Option<UserId>, Status> {
    match request.arguments.as_slice() {
        [target] => Ok(target.parse::<UserId>().ok()),
        [] => Err(Status::invalid_argument("no user id given")),
        _ => Err(Status::invalid_argument("exactly one user id is expected")),
    }
}

fn reply(msg: impl Into<String>) -> Response<Reply> {
    Response::new(Reply { msg: msg.into() })
}

/// Checks that `tsd` is master and serves `user` (logged in unless `logging_in`).
fn serving<S: Store>(
    tsd: &Tsd<S>,
    user: UserId,
    logging_in: bool,
) -> Result<Arc<Master<S>>, Status> {
    let master = tsd.master().map_err(to_status)?;
    tsd.store()
        .read(|state| command::check_served(state, user, logging_in))
        .map_err(not_served)?;
    Ok(master)
}

/// A Follow or UnFollow: `decide` (a [`command`] function) judges the request on the
/// current state; a change is appended and committed. Returns the refusal, if any:
/// `unknown` for a target that is no user id.
async fn relate<S: Store, R>(
    tsd: &Tsd<S>,
    request: SnsRequest,
    decide: impl FnOnce(&State, UserId, UserId, Time) -> Result<Change, R>,
    unknown: R,
) -> Result<Option<R>, Status> {
    let user = parse_user(&request.username, "username")?;
    let target = single_argument(&request)?;
    let master = serving(tsd, user, false)?;
    let Some(target) = target else {
        return Ok(Some(unknown));
    };
    let mut refused = None;
    let position = master
        .append(|state| {
            decide(state, user, target, wall_clock())
                .map_err(|r| refused = Some(r))
                .ok()
        })
        .map_err(to_status)?;
    master.committed(position).await.map_err(to_status)?;
    Ok(refused)
}

#[tonic::async_trait]
impl<S: Store> SnsService for Tsd<S> {
    async fn login(&self, request: Request<SnsRequest>) -> Result<Response<Reply>, Status> {
        let request = request.into_inner();
        let user = parse_user(&request.username, "username")?;
        let master = serving(self, user, true)?;
        let token = (!request.session.is_empty()).then(|| SessionToken(request.session.clone()));
        if self.sessions().login(user, token.as_ref(), Instant::now()) == Admission::Refused {
            return Ok(reply(reply::ALREADY_JOINED));
        }
        let mut returning = false;
        let position = master
            .append(|state| match command::login(state, user, wall_clock()) {
                Login::New(change) => Some(change),
                Login::Returning => {
                    returning = true;
                    None
                }
            })
            .map_err(to_status)?;
        master.committed(position).await.map_err(to_status)?;
        Ok(reply(if returning {
            format!("{} {user}", reply::WELCOME_BACK)
        } else {
            reply::LOGIN_NEW.to_owned()
        }))
    }

    async fn list(&self, request: Request<SnsRequest>) -> Result<Response<ListReply>, Status> {
        let user = parse_user(&request.get_ref().username, "username")?;
        let master = serving(self, user, false)?;
        // Answer from committed data only: nothing a failover could take back.
        let end = self.store().read(|state| state.last().position);
        master.committed(end).await.map_err(to_status)?;
        let (all_users, followers) = self.store().read(|state| {
            (
                state.users().map(|u| u.to_string()).collect(),
                state.followers(user).map(|u| u.to_string()).collect(),
            )
        });
        Ok(Response::new(ListReply {
            all_users,
            followers,
        }))
    }

    async fn follow(&self, request: Request<SnsRequest>) -> Result<Response<Reply>, Status> {
        let refused = relate(
            self,
            request.into_inner(),
            command::follow,
            FollowRefused::UnknownUser,
        )
        .await?;
        Ok(reply(match refused {
            None => reply::FOLLOW_DONE,
            Some(FollowRefused::UnknownUser) => reply::FOLLOW_UNKNOWN,
            Some(FollowRefused::AlreadyFollowing) => reply::ALREADY_JOINED,
        }))
    }

    async fn un_follow(&self, request: Request<SnsRequest>) -> Result<Response<Reply>, Status> {
        let refused = relate(
            self,
            request.into_inner(),
            command::unfollow,
            UnfollowRefused::UnknownUser,
        )
        .await?;
        Ok(reply(match refused {
            None => reply::UNFOLLOW_DONE,
            Some(UnfollowRefused::UnknownUser) => reply::UNFOLLOW_UNKNOWN,
            Some(UnfollowRefused::NotFollowing) => reply::NOT_A_FOLLOWER,
        }))
    }

    type TimelineStream = TimelineStream;

    async fn timeline(
        &self,
        request: Request<Streaming<Message>>,
    ) -> Result<Response<TimelineStream>, Status> {
        let (stream, acknowledges) = timeline::open(self, request.into_inner()).await?;
        let mut response = Response::new(stream);
        if acknowledges {
            response
                .metadata_mut()
                .insert(ACKNOWLEDGES, "1".parse().expect("ascii"));
        }
        Ok(response)
    }
}
