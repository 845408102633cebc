//! A whole TSN deployment in one process, through the core's traits and in-memory parts:
//! no sockets, no files.
//!
//! * A [`coordinator::Local`] assigns each server its role from heartbeats (cluster 1 has a
//!   master and a slave, clusters 2 and 3 one server each) and routes users to masters.
//! * Each cluster's data is a [`store::Memory`]; logins, follows and posts are decided by
//!   the pure functions of [`tsn_core::command`] and appended to the user's home cluster.
//! * A [`timeline::Hub`] hands new timeline posts to a watcher.
//! * The clusters synchronize: one cluster's changes are read with a [`sync::StorePeer`],
//!   and [`sync::merge`] decides what another cluster writes of them.
//!
//! At the end, user 1 (cluster 1) has received the post of user 2 (cluster 2).
//!
//! Run it with:
//!
//! ```sh
//! cargo run --example in_process
//! ```

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio::time::Instant;
use tsn_core::change::{Change, Entry, LogPoint};
use tsn_core::command::{self, Login, Posting};
use tsn_core::coordinator::{Endpoint, RegistryConfig, ServerRef};
use tsn_core::failover::{self, Duty, Node};
use tsn_core::id::{ClusterId, Epoch, Membership, ServerId, Time, UserId};
use tsn_core::post::{PostId, PostText};
use tsn_core::state::State;
use tsn_core::sync::{self, StorePeer};
use tsn_core::timeline::{self, Timeline};
use tsn_core::{Coordinator, Store, SyncPeer, store};
use tsn_server::coordinator;

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

const CLUSTERS: u32 = 3;

/// How long anything this example waits for may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result {
    println!("== The coordinator assigns roles from heartbeats");
    let coordinator = coordinator::Local::new(RegistryConfig {
        clusters: CLUSTERS,
        failure_timeout: Duration::from_millis(100),
    });
    let mut servers: Vec<Node> = [(1, 1), (1, 2), (2, 1), (3, 1)]
        .into_iter()
        .map(|(cluster, server)| Node::new(server_ref(cluster, server), 1, Epoch(0)))
        .collect();
    // A new coordinator listens for one failure timeout before it promotes anyone.
    assign_roles(&coordinator, &mut servers).await?;
    let mut clusters = Vec::new(); // cluster 1, 2, 3, each kept by its master
    for server in &servers {
        let (cluster, id) = (server.me().cluster, server.me().server);
        match server.duty() {
            Duty::Master { epoch } => {
                println!("cluster {cluster} server {id}: master");
                clusters.push(Cluster::new(cluster, *epoch));
            }
            Duty::Slave { master, .. } => {
                println!(
                    "cluster {cluster} server {id}: slave of server {}",
                    master.server
                )
            }
            Duty::Waiting => {}
        }
    }
    let at = |cluster: ClusterId| &clusters[cluster.0 as usize - 1];
    let home = |user: u32| at(tsn_core::id::home_cluster(u(user), CLUSTERS));

    println!("\n== Users log in where the coordinator routes them: their cluster's master");
    for user in [1, 2, 3, 4] {
        let master = coordinator.server_for(u(user)).await?.ok_or("no master")?;
        let (cluster, server) = (master.cluster, master.server);
        let reply = at(cluster).login(u(user)).await?;
        println!("user {user} -> cluster {cluster} server {server}: {reply}");
    }
    // Cluster 1 knows no user 2 until it synchronizes with cluster 2.
    println!("user 1 follows 2: {}", home(1).follow(u(1), u(2)).await?);

    println!("\n== A synchronization round: each cluster merges the others' changes");
    sync_round(&clusters).await?;

    println!("\n== Follows, across clusters and within one");
    for (follower, followee) in [(1, 2), (1, 4), (3, 2)] {
        let reply = home(follower).follow(u(follower), u(followee)).await?;
        println!("user {follower} follows {followee}: {reply}");
    }

    println!("\n== User 1 watches its timeline; users 4 and 2 post");
    let mut watcher = home(1).hub.subscribe(u(1));
    let mut shown = 0;
    home(4).post(u(4), 1, "hi from cluster 1").await?;
    home(2).post(u(2), 1, "hello from cluster 2").await?;
    println!("user 1 receives the post of user 4 (same cluster) at once:");
    shown = receive(home(1), u(1), &mut watcher, shown).await?;
    sync_round(&clusters).await?;
    println!("and the post of user 2 after a synchronization round:");
    receive(home(1), u(1), &mut watcher, shown).await?;
    Ok(())
}

/// One cluster's data, as its master keeps it, and the hub of its timeline watchers.
struct Cluster {
    id: ClusterId,
    epoch: Epoch,
    store: Arc<store::Memory>,
    hub: timeline::Hub,
}

impl Cluster {
    fn new(id: ClusterId, epoch: Epoch) -> Self {
        let membership = Membership {
            cluster: id,
            clusters: CLUSTERS,
        };
        let store = Arc::new(store::Memory::new(membership));
        let hub = timeline::Hub::new();
        Cluster {
            id,
            epoch,
            store,
            hub,
        }
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.store.read(f)
    }

    /// What a master does with every write: appends the changes at the next positions,
    /// makes them durable, and tells the watchers of the timelines they delivered posts to.
    async fn write(&self, changes: Vec<Change>) -> Result {
        let mut position = self.read(|s| s.last().position);
        let mut entries = Vec::new();
        for change in changes {
            position = position.next();
            let epoch = self.epoch;
            entries.push(Entry {
                position,
                epoch,
                change,
            });
        }
        let deliveries = self.store.append(&entries)?;
        self.store.flush().await?;
        self.hub.deliver(&deliveries.concat());
        Ok(())
    }

    async fn login(&self, user: UserId) -> Result<&'static str> {
        match self.read(|s| command::login(s, user, now())) {
            Login::New(change) => self.write(vec![change]).await.map(|()| "Login Successful!"),
            Login::Returning => Ok("Welcome Back"),
        }
    }

    async fn follow(&self, follower: UserId, followee: UserId) -> Result<String> {
        match self.read(|s| command::follow(s, follower, followee, now())) {
            Ok(change) => self.write(vec![change]).await?,
            Err(refused) => return Ok(format!("refused ({refused:?})")),
        }
        Ok("Follow Successful".into())
    }

    /// A post with the id its client chose (a random origin and a count), so that a retried
    /// post is stored once.
    async fn post(&self, author: UserId, seq: u64, text: &str) -> Result {
        println!("user {author} posts {text:?}");
        let (id, text) = (PostId { origin: 7, seq }, PostText::new(text)?);
        match self.read(|s| command::post(s, author, id, text, now())) {
            Posting::New(change) => self.write(vec![change]).await,
            Posting::Duplicate => Ok(()),
        }
    }
}

/// Every cluster merges what each other cluster wrote since it last looked.
async fn sync_round(clusters: &[Cluster]) -> Result {
    for to in clusters {
        for from in clusters.iter().filter(|c| c.id != to.id) {
            // A synchronizer would fetch these over the network; here they are read straight
            // from the other cluster's store, which its master keeps writing to.
            let peer = StorePeer::new(Arc::clone(&from.store));
            let cursor = to.read(|s| s.imported_through(from.id));
            let changes = peer.changes_after(cursor, 1000).await?;
            let writes = to.read(|s| sync::merge(s, from.id, &changes));
            if !writes.is_empty() {
                let merged: Vec<String> = writes.iter().filter_map(describe).collect();
                let (to_id, from_id, merged) = (to.id, from.id, merged.join(", "));
                println!("cluster {to_id} <- cluster {from_id}: {merged}");
                to.write(writes).await?;
            }
        }
    }
    Ok(())
}

/// Every server reports to the coordinator every 20 ms, as a tsd does, and takes up the role
/// it is told, until each has one.
async fn assign_roles(coordinator: &coordinator::Local, servers: &mut [Node]) -> Result {
    let deadline = Instant::now() + DEADLINE;
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    while servers.iter().any(|s| *s.duty() == Duty::Waiting) {
        if Instant::now() >= deadline {
            return Err("the coordinator assigned no roles in time".into());
        }
        interval.tick().await;
        for server in servers.iter_mut() {
            // A tsd reports where its log ends and, as master, which slaves hold all of it;
            // here the logs live in the `Cluster`s.
            failover::heartbeat(coordinator, server, LogPoint::default(), Vec::new()).await?;
        }
    }
    Ok(())
}

/// Waits, up to the deadline, for `reader`'s timeline, watched at `cluster`, to grow beyond
/// index `shown`, and prints the new posts, read from the replica; returns the last index
/// shown.
async fn receive(
    cluster: &Cluster,
    reader: UserId,
    watcher: &mut timeline::Subscription,
    shown: u64,
) -> Result<u64> {
    let grown = tokio::time::timeout(DEADLINE, watcher.beyond(shown))
        .await?
        .ok_or("the timeline feed ended")?;
    for index in shown + 1..=grown {
        let item = cluster.read(|s| s.timeline_item(reader, index));
        let item = item.ok_or("a delivered post")?;
        let post = &item.post;
        println!("  #{} {} >> {}", item.index, post.author, post.text);
    }
    Ok(grown)
}

/// What a merge writes, in words; `None` for its import mark.
fn describe(change: &Change) -> Option<String> {
    Some(match change {
        Change::UserJoined { user, .. } => format!("user {user} joined"),
        Change::Followed {
            follower, followee, ..
        } => format!("{follower} follows {followee}"),
        Change::Posted(post) => format!("post of {}", post.author),
        _ => return None,
    })
}

fn u(n: u32) -> UserId {
    UserId::new(n).expect("a user id in range")
}

fn server_ref(cluster: u32, server: u32) -> ServerRef {
    ServerRef {
        cluster: ClusterId(cluster),
        server: ServerId(server),
        // Nothing listens in this example: the address is only a label.
        endpoint: Endpoint {
            host: "127.0.0.1".into(),
            port: 0,
        },
    }
}

/// The core reads no clock: callers pass the time in.
fn now() -> Time {
    let since = UNIX_EPOCH.elapsed().unwrap_or_default();
    Time::from_unix(since.as_secs(), since.subsec_nanos())
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() {
        super::main().expect("the example runs to completion");
    }
}
