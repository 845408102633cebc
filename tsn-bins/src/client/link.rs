//! The client's connection to its cluster: finding the master, logging in, keeping the
//! session alive, and finding the new master after a failover.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tsn_core::Coordinator;
use tsn_core::coordinator::{Endpoint, ServerRef};
use tsn_core::id::UserId;
use tsn_grpc::client::{LoginReply, SnsClient};
use tsn_grpc::coordinator::CoordClient;

use crate::client::console::Console;
use crate::client::format;

/// How often the session is kept alive.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// The first and the longest pause between attempts to find the master.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(500));
/// How long the first connection may take.
const FIRST_CONNECT: Duration = Duration::from_secs(3);

/// Why the client could not connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Another client holds the user's live session.
    Refused,
    /// The cluster has no live master.
    NoServer,
    /// The coordinator or the master could not be reached in time.
    Unreachable,
}

/// The connection of one user's client.
pub struct Link {
    coordinator: CoordClient,
    user: UserId,
    session: String,
    server: Option<SnsClient>,
    keep_alive: Option<JoinHandle<()>>,
}

impl Link {
    /// A client of `user` that asks the coordinator at `coordinator` for its server.
    pub fn new(coordinator: &Endpoint, user: UserId) -> Result<Link, String> {
        let coordinator = CoordClient::new(coordinator).map_err(|e| e.to_string())?;
        Ok(Link {
            coordinator,
            user,
            session: format!("{:032x}", rand::random::<u128>()),
            server: None,
            keep_alive: None,
        })
    }

    /// The user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The connected server. Panics before the first successful [`Link::connect`].
    pub fn server(&self) -> &SnsClient {
        self.server.as_ref().expect("connected before use")
    }

    /// Finds the master and logs in. The first connection fails at once when the cluster
    /// has no master or the login is refused, and after a few seconds when nothing answers;
    /// later ones (`deadline: None`) keep trying.
    pub async fn connect(
        &mut self,
        console: &Console,
        deadline: Option<Instant>,
    ) -> Result<(), ConnectError> {
        let first = self.server.is_none();
        let deadline = deadline.or_else(|| first.then(|| Instant::now() + FIRST_CONNECT));
        let mut announced: Option<Endpoint> = None;
        let mut pause = RETRY.0;
        loop {
            match self.coordinator.server_for(self.user).await {
                Ok(Some(server)) => {
                    if announced.as_ref() != Some(&server.endpoint) {
                        console.say(&format::reconnecting(&server.endpoint));
                        announced = Some(server.endpoint.clone());
                    }
                    match self.login_at(&server).await {
                        Ok(()) => return Ok(()),
                        Err(ConnectError::Refused) => return Err(ConnectError::Refused),
                        Err(_) => {}
                    }
                }
                Ok(None) if first => return Err(ConnectError::NoServer),
                Ok(None) | Err(_) => {}
            }
            if deadline.is_some_and(|d| Instant::now() + pause > d) {
                return Err(ConnectError::Unreachable);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY.1);
        }
    }

    async fn login_at(&mut self, server: &ServerRef) -> Result<(), ConnectError> {
        let client = SnsClient::new(server.endpoint.clone(), self.user, self.session.clone())
            .map_err(|_| ConnectError::Unreachable)?;
        match client.login().await {
            Ok(LoginReply::Welcome) => {
                self.keep_alive_at(client.clone());
                self.server = Some(client);
                Ok(())
            }
            Ok(LoginReply::AlreadyJoined) => Err(ConnectError::Refused),
            Err(_) => Err(ConnectError::Unreachable),
        }
    }

    fn keep_alive_at(&mut self, client: SnsClient) {
        if let Some(task) = self.keep_alive.take() {
            task.abort();
        }
        self.keep_alive = Some(tokio::spawn(async move {
            let mut interval = tokio::time::interval(KEEP_ALIVE);
            loop {
                interval.tick().await;
                if let Ok(false) = client.keep_alive().await {
                    // The session lapsed (the client was stopped for a while): claim it again.
                    let _ = client.login().await;
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
