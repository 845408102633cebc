//! The client's connection to its cluster: finding the master, logging in, keeping the
//! session alive, and finding the new master after a failover.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tsn_core::Coordinator;
use tsn_core::coordinator::{Endpoint, ServerRef};
use tsn_core::id::UserId;
use tsn_grpc::client::{LoginReply, SessionState, SnsClient};
use tsn_grpc::coordinator::CoordClient;

use crate::cli::Addresses;
use crate::client::console::Console;
use crate::client::format;

/// How often the session is kept alive. A keep-alive that fails (within the call timeout,
/// 2 s) says the server stopped answering: the client moves on (see [`Link::lost`]).
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The pause between attempts to find the master, while a failover may be under way
/// ([`QUIET_RECONNECT`]), and the longest pause after it (the pause doubles up to it):
/// a client sees a new master within 50 ms of its promotion, and a cluster down for
/// longer is asked twice a second.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(500));
/// How long the first connection, or a command's reconnection, may take before it fails.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(3);
/// How long a reconnection tries in silence: a failover is usually over by then, and the
/// only line is the one naming the new master. Past it, the client says what it tries.
const QUIET_RECONNECT: Duration = Duration::from_secs(2);

/// Why the client could not connect; `Display` says it to the person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Another client holds the user's live session.
    #[error("user {0} already has a live session in another client")]
    Refused(UserId),
    /// The cluster has no live master.
    #[error("no server serves the cluster of user {0}")]
    NoServer(UserId),
    /// The coordinator or the master could not be reached in time.
    #[error("cannot connect through the coordinator at {coordinator}: {reason}")]
    Unreachable {
        /// The coordinators' addresses.
        coordinator: Addresses,
        /// The last failure.
        reason: String,
    },
}

/// The connection of one user's client.
pub struct Link {
    coordinator: CoordClient,
    coordinator_at: Addresses,
    user: UserId,
    session: String,
    server: Option<SnsClient>,
    keep_alive: Option<JoinHandle<()>>,
    /// Numbers the logins; the keep-alives of one watch its connection.
    connection: u64,
    /// The number of the last connection the keep-alives found unanswering.
    lost: watch::Sender<u64>,
}

impl Link {
    /// A client of `user` that asks the coordinators at `coordinators` for its server.
    pub fn new(coordinators: Addresses, user: UserId) -> Result<Link, String> {
        let coordinator = CoordClient::new(coordinators.endpoints()).map_err(|e| e.to_string())?;
        let coordinator_at = coordinators;
        Ok(Link {
            coordinator,
            coordinator_at,
            user,
            session: format!("{:032x}", rand::random::<u128>()),
            server: None,
            keep_alive: None,
            connection: 0,
            lost: watch::Sender::new(0),
        })
    }

    /// Changes to the number of a connection (see [`Link::connection`]) whose server stopped
    /// answering the session's keep-alives: a server stopped, or cut off, keeps its
    /// connections open, and only this tells. A server of the course's design keeps no
    /// sessions, and is not watched.
    pub fn lost(&self) -> watch::Receiver<u64> {
        self.lost.subscribe()
    }

    /// The number of the current connection (each login makes a new one): a loss
    /// [`Link::lost`] tells of an earlier one is already dealt with.
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// The user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The connected server. Panics before the first successful [`Link::connect`].
    pub fn server(&self) -> &SnsClient {
        self.server.as_ref().expect("connected before use")
    }

    /// Finds the master and logs in, saying `Reconnecting to <host>:<port>...` for the
    /// server it connects to. The first connection says it before trying, and fails at once
    /// when the cluster has no master or the login is refused, and after [`CONNECT_LIMIT`]
    /// when nothing answers. Later ones (`deadline: None`: keep trying) say it once they
    /// are in, so that the line names the new master, not a dead one the coordinator still
    /// names; and, when nothing answers for [`QUIET_RECONNECT`], for the server they try
    /// (the one the coordinator names, else the one they lost), so that the person knows.
    pub async fn connect(
        &mut self,
        console: &Console,
        deadline: Option<Instant>,
    ) -> Result<(), ConnectError> {
        let first = self.server.is_none();
        let started = Instant::now();
        let deadline = deadline.or_else(|| first.then(|| started + CONNECT_LIMIT));
        let mut announced: Option<Endpoint> = None;
        let mut announce = |console: &Console, at: &Endpoint| {
            if announced.as_ref() != Some(at) {
                console.say(&format::reconnecting(at));
                announced = Some(at.clone());
            }
        };
        let mut pause = RETRY.0;
        loop {
            let mut trying = self.server.as_ref().map(|s| s.endpoint().clone());
            let failure = match self.coordinator.server_for(self.user).await {
                Ok(Some(server)) => {
                    if first {
                        announce(console, &server.endpoint);
                    }
                    trying = Some(server.endpoint.clone());
                    match self.login_at(&server).await {
                        Ok(()) => {
                            announce(console, &server.endpoint);
                            return Ok(());
                        }
                        Err(refused @ ConnectError::Refused(_)) => return Err(refused),
                        Err(other) => other,
                    }
                }
                Ok(None) if first => return Err(ConnectError::NoServer(self.user)),
                Ok(None) => ConnectError::NoServer(self.user),
                // Asking again cannot help (this client may not connect, as it is).
                Err(error @ tsn_core::Error::Refused(_)) => return Err(self.unreachable(error)),
                Err(error) => self.unreachable(error),
            };
            if deadline.is_some_and(|d| Instant::now() + pause > d) {
                return Err(failure);
            }
            if let Some(at) = &trying
                && started.elapsed() >= QUIET_RECONNECT
            {
                announce(console, at);
            }
            tokio::time::sleep(pause).await;
            if started.elapsed() >= QUIET_RECONNECT {
                pause = (pause * 2).min(RETRY.1);
            }
        }
    }

    pub(crate) fn unreachable(&self, reason: impl std::fmt::Display) -> ConnectError {
        ConnectError::Unreachable {
            coordinator: self.coordinator_at.clone(),
            reason: reason.to_string(),
        }
    }

    async fn login_at(&mut self, server: &ServerRef) -> Result<(), ConnectError> {
        let client = SnsClient::new(server.endpoint.clone(), self.user, self.session.clone())
            .map_err(|e| self.unreachable(e))?;
        match client.login().await {
            Ok(LoginReply::Welcome) => {
                self.connection += 1;
                self.keep_alive_at(client.clone());
                self.server = Some(client);
                Ok(())
            }
            Ok(LoginReply::AlreadyJoined) => Err(ConnectError::Refused(self.user)),
            Err(error) => {
                Err(self.unreachable(format_args!("the server at {}: {error}", server.endpoint)))
            }
        }
    }

    fn keep_alive_at(&mut self, client: SnsClient) {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
        let (lost, connection) = (self.lost.clone(), self.connection);
        self.keep_alive = Some(tokio::spawn(async move {
            let mut interval = tokio::time::interval(KEEP_ALIVE);
            let mut failing = false;
            loop {
                interval.tick().await;
                match client.keep_alive().await {
                    Ok(SessionState::Alive) => failing = false,
                    // The session lapsed (the client was stopped for a while): claim it again.
                    Ok(SessionState::Lapsed) => {
                        failing = false;
                        let _ = client.login().await;
                    }
                    Ok(SessionState::Unsupported) => return,
                    // Told once per run of failures; the keep-alives go on, in case the
                    // server answers again before anyone moves.
                    Err(_) if !failing => {
                        failing = true;
                        lost.send_replace(connection);
                    }
                    Err(_) => {}
                }
            }
        }));
    }

    /// Ends the session, so that the user can log in again at once.
    pub async fn logout(&mut self) {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
        if let Some(server) = &self.server {
            let _ = server.logout().await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
    }
}
