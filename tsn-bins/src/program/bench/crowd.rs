//! A crowd: protocol clients for many users of every cluster, over few connections — one
//! to a cluster's master per so many users — as a load tool plays thousands of users
//! without thousands of sockets.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use tsn_core::Coordinator;
use tsn_core::coordinator::Endpoint;
use tsn_core::id::{UserId, home_cluster};
use tsn_grpc::client::{FollowReply, SnsClient};
use tsn_grpc::coordinator::CoordClient;

use super::PATIENCE;
use crate::cli::Fatal;

/// How many calls a crowd has in flight at once while it logs users in or follows.
const CALLS_IN_FLIGHT: usize = 64;

/// Clients of the masters of every cluster, handed out to users.
pub(super) struct Crowd {
    clusters: u32,
    /// How many users share one connection (HTTP/2 streams on it).
    users_per_connection: usize,
    masters: BTreeMap<u32, Endpoint>,
    /// Per cluster, its connections; the last one takes the next users.
    connections: BTreeMap<u32, Vec<(SnsClient, usize)>>,
}

impl Crowd {
    /// A crowd for a deployment of `clusters` clusters, whose masters `coordinator` names,
    /// with `users_per_connection` users on each connection: one for users who read or
    /// write much (a connection's flow control is shared by its streams), more for many
    /// users who each read little.
    pub(super) async fn new(
        coordinator: &CoordClient,
        clusters: u32,
        users_per_connection: usize,
    ) -> Result<Crowd, Fatal> {
        let mut masters = BTreeMap::new();
        for cluster in 1..=clusters {
            // User `cluster` lives in cluster `cluster`.
            let user = UserId::new(cluster).expect("a user");
            let master = coordinator
                .server_for(user)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| Fatal(format!("cluster {cluster} has no master")))?;
            masters.insert(cluster, master.endpoint);
        }
        Ok(Crowd {
            clusters,
            users_per_connection: users_per_connection.max(1),
            masters,
            connections: BTreeMap::new(),
        })
    }

    /// A client of `user` at its cluster's master, sharing a connection with other users.
    pub(super) fn client(&mut self, user: UserId) -> Result<SnsClient, Fatal> {
        let cluster = home_cluster(user, self.clusters).0;
        let connections = self.connections.entry(cluster).or_default();
        match connections.last_mut() {
            Some((client, seated)) if *seated < self.users_per_connection => {
                *seated += 1;
                Ok(client.as_user(user, format!("crowd-{user}")))
            }
            _ => {
                let client = SnsClient::new(
                    self.masters[&cluster].clone(),
                    user,
                    format!("crowd-{user}"),
                )
                .map_err(|e| Fatal::new("a crowd's connection", e))?;
                connections.push((client.clone(), 1));
                Ok(client)
            }
        }
    }

    /// Clients of `users`, each logged in.
    pub(super) async fn logged_in(&mut self, users: &[UserId]) -> Result<Vec<SnsClient>, Fatal> {
        let clients = users
            .iter()
            .map(|&user| self.client(user))
            .collect::<Result<Vec<_>, _>>()?;
        in_flight(clients.iter().map(|client| async move {
            client
                .login()
                .await
                .map(|_| ())
                .map_err(|e| Fatal::new("a crowd's login", e))
        }))
        .await?;
        Ok(clients)
    }
}

/// Has each `(client, followee)` follow, once the followee is known in the client's
/// cluster (a user of another cluster arrives with the synchronizers).
pub(super) async fn follow_all(follows: &[(SnsClient, UserId)]) -> Result<(), Fatal> {
    in_flight(follows.iter().map(|(client, followee)| async move {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match client.follow(&followee.to_string()).await {
                Ok(FollowReply::Done | FollowReply::AlreadyFollowing) => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(Fatal(format!(
                        "user {followee} could not be followed within {} s",
                        PATIENCE.as_secs()
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }))
    .await
}

/// Runs `calls`, [`CALLS_IN_FLIGHT`] at a time; the first failure.
async fn in_flight(
    calls: impl Iterator<Item = impl Future<Output = Result<(), Fatal>>>,
) -> Result<(), Fatal> {
    futures::stream::iter(calls)
        .buffer_unordered(CALLS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}
