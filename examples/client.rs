//! Driving a TSN deployment from Rust code, as a client program does.
//!
//! The example starts, in this process and on loopback ports, a coordinator and a cluster
//! of two tsd servers, a master and its slave, each keeping its replica in a
//! [`FileStore`] under a temporary folder. Then it acts as the clients of users 1 and 4:
//! each asks the coordinator which server serves its user and logs in there with
//! [`SnsClient`]; user 1 follows user 4, user 4 lists the users, both open their
//! timelines, and user 4's posts show up on user 1's. At the end the slave's replica holds
//! everything the clients did.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --example client
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tsn_core::Store;
use tsn_core::coordinator::Endpoint;
use tsn_core::id::{ClusterId, Membership, ServerId};
use tsn_fs::FileStore;
use tsn_grpc::client::TimelineEvent;
use tsn_grpc::coordinator::CoordClient;

#[path = "support/mod.rs"]
mod support;

use support::{DEADLINE, Result, Task, log_in, next_event, start_coordinator};

#[tokio::main]
async fn main() -> Result {
    let data = tempfile::tempdir()?;
    let (stop, stopped) = watch::channel(());
    let (coordinator_at, coordinator_task) = start_coordinator(stopped.clone()).await?;
    let coordinator = CoordClient::new(std::slice::from_ref(&coordinator_at))?;

    // Server 1 starts first and becomes master; server 2 then joins as its slave.
    let (master, master_task) =
        start_replica(data.path(), 1, &coordinator_at, stopped.clone()).await?;
    let one = log_in(&coordinator, 1).await?;
    let (slave, slave_task) = start_replica(data.path(), 2, &coordinator_at, stopped).await?;
    let four = log_in(&coordinator, 4).await?;

    println!("\n-- the clients of users 1 and 4 (both in cluster 1) send commands");
    println!("[user 1] FOLLOW 4: {:?}", one.follow("4").await?);
    println!("[user 1] FOLLOW 7: {:?}", one.follow("7").await?);
    let listing = four.list().await?;
    let (users, followers) = (listing.users.join(", "), listing.followers.join(", "));
    println!("[user 4] LIST: all users {users}; followers {followers}");

    println!("\n-- both enter their timelines; user 4 posts");
    let mut timeline_one = one.open_timeline(None).await?;
    let mut timeline_four = four.open_timeline(None).await?;
    // A post's id: a number its client picked at random, and the client's count of posts.
    let origin = u64::from(std::process::id());
    for (seq, text) in [
        (1, "hello from user 4"),
        (2, "Grüße 👋, \"any\" text is kept"),
    ] {
        timeline_four.post(origin, seq, text).await?;
        // Acknowledged once durable on the master and on its in-sync slaves.
        let TimelineEvent::Acked { error: None, .. } = next_event(&mut timeline_four).await? else {
            return Err(format!("post {seq} was not acknowledged").into());
        };
        println!("[user 4] posted {text:?}");
        let TimelineEvent::Post(post) = next_event(&mut timeline_one).await? else {
            return Err("user 1's timeline showed no post".into());
        };
        let time = tsn_core::course::time_text(post.time);
        println!("[user 1] {} ({time} UTC) >> {}", post.author, post.text);
    }
    one.logout().await?;
    four.logout().await?;

    println!("\n-- behind the scenes");
    let end = master.read(|s| s.last().position);
    wait_until(|| slave.durable() >= end).await?;
    let (users, posts) = slave.read(|s| (s.users().count(), s.post_count()));
    println!("the slave holds all {end} log entries of the master: {users} users, {posts} posts");

    drop(stop); // the servers shut down when the sender goes
    for task in [slave_task, master_task, coordinator_task] {
        tokio::time::timeout(DEADLINE, task).await???; // in time, without panic or error
    }
    Ok(())
}

/// Serves server `id` of cluster 1 with its replica in a [`FileStore`] in
/// `<data>/cluster_1/<id>/`, until `stopped` fires.
async fn start_replica(
    data: &std::path::Path,
    id: u32,
    coordinator: &Endpoint,
    stopped: watch::Receiver<()>,
) -> Result<(Arc<FileStore>, Task)> {
    let membership = Membership {
        cluster: ClusterId(1),
        clusters: 1,
    };
    let dir = tsn_fs::replica_dir(data, membership.cluster, ServerId(id));
    let store = Arc::new(FileStore::open(&dir, membership)?.0);
    let task = support::start_tsd(Arc::clone(&store), id, coordinator, stopped).await?;
    Ok((store, task))
}

/// Waits until `done` holds, looking every 10 ms, up to the deadline.
async fn wait_until(done: impl Fn() -> bool) -> Result {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        if Instant::now() >= deadline {
            return Err("gave up waiting".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() {
        super::main().expect("the example runs to completion");
    }
}
