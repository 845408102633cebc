//! Throughput: posts per second one master acknowledges from pipelining clients, with
//! online followers, and whether the slave stayed in the in-sync set throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tsn_core::Coordinator;
use tsn_core::id::UserId;
use tsn_grpc::client::{SnsClient, TimelineEvent};
use tsn_grpc::coordinator::CoordClient;

use super::Flags;
use crate::cli::Fatal;
use crate::harness::Deployment;

/// What the throughput measurement found.
pub(super) struct Throughput {
    pub(super) posts_per_second: f64,
    /// Whether the coordinator logged no change of cluster 1's in-sync set during the run.
    pub(super) slave_in_sync: bool,
    /// Posts shown on the followers' timelines.
    pub(super) delivered: u64,
}

/// `--clients` protocol clients of cluster 1 each pipeline `--client-posts` posts on a
/// timeline stream, each followed by `--followers` online users of cluster 1 whose
/// timelines are open; posts per second acknowledged (durable on master and slave), and
/// whether the slave stayed in the in-sync set throughout, by the coordinator's log.
pub(super) async fn throughput(
    deployment: &Deployment,
    coordinator: &CoordClient,
    flags: &Flags,
) -> Result<Throughput, Fatal> {
    let (clients, posts) = (flags.clients, flags.client_posts);
    let first = UserId::new(1).expect("a user");
    let master = coordinator
        .server_for(first)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| Fatal("cluster 1 has no master".into()))?;
    let session = |user: UserId| {
        SnsClient::new(master.endpoint.clone(), user, format!("bench-{user}"))
            .map_err(|e| Fatal::new("a throughput client", e))
    };
    let mut streams = Vec::new();
    for n in 0..clients {
        // Users 3001, 3004, ... of cluster 1, apart from the users above.
        let user = UserId::new(3001 + 3 * n).expect("a user");
        let client = session(user)?;
        client
            .login()
            .await
            .map_err(|e| Fatal::new("a throughput login", e))?;
        streams.push(
            client
                .open_timeline(None)
                .await
                .map_err(|e| Fatal::new("a throughput stream", e))?,
        );
    }
    // The followers: users 6001, 6004, ... of cluster 1, each following one author.
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for n in 0..clients * flags.followers {
        let user = UserId::new(6001 + 3 * n).expect("a user");
        let author = 3001 + 3 * (n % clients);
        let client = session(user)?;
        client
            .login()
            .await
            .map_err(|e| Fatal::new("a follower's login", e))?;
        client
            .follow(&author.to_string())
            .await
            .map_err(|e| Fatal::new("a follow", e))?;
        let mut stream = client
            .open_timeline(None)
            .await
            .map_err(|e| Fatal::new("a follower's stream", e))?;
        let delivered = Arc::clone(&delivered);
        readers.push(tokio::spawn(async move {
            while let Ok(Some(event)) = stream.next().await {
                if matches!(event, TimelineEvent::Post(_)) {
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let in_sync_changes = || {
        deployment
            .log("coordinator")
            .matches("in-sync set cluster=1 ")
            .count()
    };
    let changes_before = in_sync_changes();
    let text = "a post of about fifty characters, as in a feed";
    let started = Instant::now();
    let senders: Vec<_> = streams
        .into_iter()
        .zip(1u64..)
        .map(|(mut stream, origin)| {
            let poster = stream.poster();
            tokio::spawn(async move {
                let sending = tokio::spawn(async move {
                    for seq in 1..=posts {
                        poster.post(origin, seq, text).await?;
                    }
                    Ok::<_, tsn_grpc::client::CallError>(())
                });
                loop {
                    match stream.next().await {
                        Ok(Some(TimelineEvent::Acked {
                            seq, error: None, ..
                        })) if seq == posts => {
                            break;
                        }
                        Ok(Some(TimelineEvent::Acked {
                            error: Some(error), ..
                        })) => {
                            return Err(Fatal(format!("a post was refused: {error}")));
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => return Err(Fatal("a throughput stream broke".into())),
                    }
                }
                sending
                    .await
                    .map_err(|e| Fatal::new("a sender", e))?
                    .map_err(|e| Fatal::new("sending", e))
            })
        })
        .collect();
    for sender in futures::future::join_all(senders).await {
        sender.map_err(|e| Fatal::new("a throughput client", e))??;
    }
    let took = started.elapsed();
    let slave_in_sync = in_sync_changes() == changes_before;
    for reader in readers {
        reader.abort();
    }
    Ok(Throughput {
        posts_per_second: (u64::from(clients) * posts) as f64 / took.as_secs_f64(),
        slave_in_sync,
        delivered: delivered.load(Ordering::Relaxed),
    })
}
