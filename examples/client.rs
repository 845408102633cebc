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

use std::error::Error;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tsn_core::coordinator::{Endpoint, Local, RegistryConfig, ServerRef};
use tsn_core::id::{ClusterId, Membership, ServerId, UserId};
use tsn_core::{Coordinator, Store};
use tsn_fs::FileStore;
use tsn_grpc::client::{CallError, SnsClient, TimelineConn, TimelineEvent};
use tsn_grpc::coordinator::CoordClient;
use tsn_grpc::tsd;

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// A server running in a task of this process.
type Task = JoinHandle<tsn_core::Result<()>>;

/// How long anything this example waits for may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(10);

/// How long the coordinator waits for a heartbeat; it also listens that long after it
/// starts before it elects the first master.
const FAILURE_TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::main]
async fn main() -> Result {
    let data = tempfile::tempdir()?;
    let (stop, stopped) = watch::channel(());
    let (coordinator_at, coordinator_task) = start_coordinator(stopped.clone()).await?;
    let coordinator = CoordClient::new(&coordinator_at)?;

    // Server 1 starts first and becomes master; server 2 then joins as its slave.
    let (master, master_task) = start_tsd(data.path(), 1, &coordinator_at, stopped.clone()).await?;
    let one = log_in(&coordinator, 1).await?;
    let (slave, slave_task) = start_tsd(data.path(), 2, &coordinator_at, stopped).await?;
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

/// Serves a coordinator of one cluster on a free loopback port until `stopped` fires.
async fn start_coordinator(stopped: watch::Receiver<()>) -> Result<(Endpoint, Task)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = loopback(&listener)?;
    let coordinator = Arc::new(Local::new(RegistryConfig {
        clusters: 1,
        failure_timeout: FAILURE_TIMEOUT,
    }));
    let serve =
        tsn_grpc::coordinator::serve(coordinator, listener, FAILURE_TIMEOUT, until(stopped));
    println!("coordinator at {endpoint}");
    Ok((endpoint, tokio::spawn(serve)))
}

/// Serves server `id` of cluster 1 on a free loopback port until `stopped` fires, with its
/// replica in `<data>/cluster_1/<id>/`.
async fn start_tsd(
    data: &Path,
    id: u32,
    coordinator: &Endpoint,
    stopped: watch::Receiver<()>,
) -> Result<(Arc<FileStore>, Task)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let me = ServerRef {
        cluster: ClusterId(1),
        server: ServerId(id),
        endpoint: loopback(&listener)?,
    };
    println!("tsd {id} at {}", me.endpoint);
    let membership = Membership {
        cluster: me.cluster,
        clusters: 1,
    };
    let dir = tsn_fs::replica_dir(data, me.cluster, me.server);
    let store = Arc::new(FileStore::open(&dir, membership)?.0);
    let config = tsd::Config {
        me,
        incarnation: std::process::id().into(),
        heartbeat_interval: Duration::from_millis(50),
        session_timeout: Duration::from_secs(10),
        replication_timeout: Duration::from_secs(1),
        imports: Vec::new(), // one cluster: nothing to import from others
    };
    let coordinator = Arc::new(CoordClient::new(coordinator)?);
    let serve = tsd::serve(
        config,
        Arc::clone(&store),
        coordinator,
        listener,
        until(stopped),
    );
    Ok((store, tokio::spawn(serve)))
}

/// A client of `user`, logged in at the server the coordinator names. Retries, up to the
/// deadline, while there is no master yet: the coordinator elects one a failure timeout
/// after it starts, and the server learns it on its next heartbeat.
async fn log_in(coordinator: &CoordClient, user: u32) -> Result<SnsClient> {
    let user = UserId::new(user).ok_or("not a user id")?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(master)) = coordinator.server_for(user).await {
            // A client sends a session token of its own: a user has one live session.
            let client = SnsClient::new(master.endpoint, user, format!("example-{user}"))?;
            match client.login().await {
                Ok(reply) => {
                    println!("[user {user}] LOGIN at {}: {reply:?}", client.endpoint());
                    return Ok(client);
                }
                Err(CallError::Unreachable(_)) => {} // not master yet: ask again
                Err(error) => return Err(error.into()),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no master served user {user} in time").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next event of a timeline stream, within the deadline.
async fn next_event(stream: &mut TimelineConn) -> Result<TimelineEvent> {
    let event = tokio::time::timeout(DEADLINE, stream.next()).await??;
    Ok(event.ok_or("the timeline stream ended")?)
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

/// Completes when `stopped`'s sender sends or goes.
async fn until(mut stopped: watch::Receiver<()>) {
    let _ = stopped.changed().await;
}

fn loopback(listener: &TcpListener) -> Result<Endpoint> {
    let port = listener.local_addr()?.port();
    let host = "127.0.0.1".into();
    Ok(Endpoint { host, port })
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() {
        super::main().expect("the example runs to completion");
    }
}
