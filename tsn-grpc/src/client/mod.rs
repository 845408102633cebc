//! Calls to a cluster's master, for client programs, in the core's terms.
//!
//! [`SnsClient`] wraps the course's `SNSService` and TSN's `Session` service at one
//! server; [`TimelineConn`] is an open Timeline stream. Failures come as [`CallError`],
//! which says whether asking the coordinator for another server may help.

mod timeline;

pub use timeline::{Committed, Delivered, Poster, TimelineConn, TimelineEvent};

use tonic::transport::Channel;
use tonic::{Code, Status};
use tsn_core::coordinator::Endpoint;
use tsn_core::id::UserId;

use crate::error::describe;
use crate::proto::csce438::Request;
use crate::proto::csce438::sns_service_client::SnsServiceClient;
use crate::proto::tsn::SessionRequest;
use crate::proto::tsn::session_client::SessionClient;
use crate::replies;
use crate::transport::{call_channel, client_stream_channel};

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server could not be reached, or is not (or no longer) the master: ask the
    /// coordinator again and retry there.
    #[error("{0}")]
    Unreachable(String),
    /// The request was malformed (a bad user id, a missing argument).
    #[error("{0}")]
    Invalid(String),
    /// The server refused the request as it stands (say, the user is not logged in there).
    #[error("{0}")]
    Refused(String),
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        let message = describe(&status);
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => CallError::Invalid(message),
            Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::NotFound
            | Code::AlreadyExists => CallError::Refused(message),
            _ => CallError::Unreachable(message),
        }
    }
}

/// The answer to a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginReply {
    /// Logged in (for the first time, or again).
    Welcome,
    /// Another client holds the user's live session.
    AlreadyJoined,
}

/// The answer to a follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowReply {
    /// Done.
    Done,
    /// No such user.
    UnknownUser,
    /// Already following, or the user itself.
    AlreadyFollowing,
    /// A reply this client does not know.
    Other(String),
}

/// The answer to an unfollow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnfollowReply {
    /// Done.
    Done,
    /// No such user, or the user itself.
    UnknownUser,
    /// Was not following.
    NotFollowing,
    /// A reply this client does not know.
    Other(String),
}

/// The answer to a session keep-alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// The session is this client's.
    Alive,
    /// The session lapsed or is another client's: log in again.
    Lapsed,
    /// The server keeps no sessions (it is of the course's design).
    Unsupported,
}

/// The answer to a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Every user of the system, as the server wrote them.
    pub users: Vec<String>,
    /// The asker's followers, as the server wrote them.
    pub followers: Vec<String>,
}

/// The client of one server, acting for one user with one session token (empty for no
/// session, as the course's clients do).
#[derive(Clone, Debug)]
pub struct SnsClient {
    endpoint: Endpoint,
    user: UserId,
    session: String,
    calls: Channel,
    streams: Channel,
}

impl SnsClient {
    /// A client of the server at `endpoint` (nothing is sent yet).
    pub fn new(endpoint: Endpoint, user: UserId, session: String) -> Result<Self, CallError> {
        let calls = call_channel(&endpoint).map_err(|e| CallError::Invalid(e.to_string()))?;
        let streams =
            client_stream_channel(&endpoint).map_err(|e| CallError::Invalid(e.to_string()))?;
        Ok(SnsClient {
            endpoint,
            user,
            session,
            calls,
            streams,
        })
    }

    /// A client of the same server acting for `user` with `session`, over this client's
    /// connections: many users' calls and streams share them (HTTP/2 multiplexes them),
    /// as in a load tool that plays thousands of users.
    pub fn as_user(&self, user: UserId, session: String) -> SnsClient {
        SnsClient {
            user,
            session,
            ..self.clone()
        }
    }

    /// The server's address.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn request(&self, arguments: Vec<String>) -> Request {
        Request {
            username: self.user.to_string(),
            arguments,
            session: self.session.clone(),
        }
    }

    fn sns(&self) -> SnsServiceClient<Channel> {
        SnsServiceClient::new(self.calls.clone())
    }

    fn sessions(&self) -> SessionClient<Channel> {
        SessionClient::new(self.calls.clone())
    }

    /// Logs the user in, claiming (or resuming) its session.
    pub async fn login(&self) -> Result<LoginReply, CallError> {
        let reply = self.sns().login(self.request(vec![])).await?.into_inner();
        Ok(if reply.msg == replies::ALREADY_JOINED {
            LoginReply::AlreadyJoined
        } else {
            LoginReply::Welcome
        })
    }

    /// Every user, and the user's followers.
    pub async fn list(&self) -> Result<Listing, CallError> {
        let reply = self.sns().list(self.request(vec![])).await?.into_inner();
        Ok(Listing {
            users: reply.all_users,
            followers: reply.followers,
        })
    }

    /// Follows `target` (any text: the server judges it).
    pub async fn follow(&self, target: &str) -> Result<FollowReply, CallError> {
        let reply = self
            .sns()
            .follow(self.request(vec![target.to_owned()]))
            .await?
            .into_inner();
        Ok(match reply.msg.as_str() {
            replies::FOLLOW_DONE => FollowReply::Done,
            replies::FOLLOW_UNKNOWN => FollowReply::UnknownUser,
            replies::ALREADY_JOINED => FollowReply::AlreadyFollowing,
            _ => FollowReply::Other(reply.msg),
        })
    }

    /// Stops following `target`.
    pub async fn unfollow(&self, target: &str) -> Result<UnfollowReply, CallError> {
        let reply = self
            .sns()
            .un_follow(self.request(vec![target.to_owned()]))
            .await?
            .into_inner();
        Ok(match reply.msg.as_str() {
            replies::UNFOLLOW_DONE => UnfollowReply::Done,
            replies::UNFOLLOW_UNKNOWN => UnfollowReply::UnknownUser,
            replies::NOT_A_FOLLOWER => UnfollowReply::NotFollowing,
            _ => UnfollowReply::Other(reply.msg),
        })
    }

    /// Keeps the session alive, and shows that the server answers.
    pub async fn keep_alive(&self) -> Result<SessionState, CallError> {
        let request = SessionRequest {
            username: self.user.to_string(),
            session: self.session.clone(),
        };
        match self.sessions().keep_alive(request).await {
            Ok(reply) if reply.get_ref().alive => Ok(SessionState::Alive),
            Ok(_) => Ok(SessionState::Lapsed),
            Err(status) if status.code() == Code::Unimplemented => Ok(SessionState::Unsupported),
            Err(status) => Err(status.into()),
        }
    }

    /// Ends the session, so that the user may log in again elsewhere at once.
    pub async fn logout(&self) -> Result<(), CallError> {
        let request = SessionRequest {
            username: self.user.to_string(),
            session: self.session.clone(),
        };
        self.sessions().logout(request).await?;
        Ok(())
    }

    /// Opens the user's timeline: the 20 newest posts first, or with `resume_after` every
    /// post after that index.
    pub async fn open_timeline(
        &self,
        resume_after: Option<u64>,
    ) -> Result<TimelineConn, CallError> {
        TimelineConn::open(self.streams.clone(), self.user, &self.session, resume_after).await
    }
}
