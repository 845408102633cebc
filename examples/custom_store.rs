//! Plugging a store of your own into a real tsd.
//!
//! `Audited<S>` is a [`Store`] that hands every call to another store and prints the writes
//! it is asked to make: appends, flushes, commit marks, truncations. The example first runs
//! the core's conformance suite against it ([`conformance::run_all`]), which checks that it
//! keeps the `Store` contract; then it serves it with [`tsd::serve`] on a loopback port,
//! beside a coordinator, and drives that tsd with [`SnsClient`]: user 1 follows user 2, who
//! posts. Each `store |` line is a call the tsd made on the custom store.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --example custom_store
//! ```

use std::sync::Arc;

use tokio::sync::watch;
use tsn_core::Store;
use tsn_core::change::{Change, Entry};
use tsn_core::id::{ClusterId, Membership, Position};
use tsn_core::state::{Delivery, State};
use tsn_core::store::{self, conformance};
use tsn_grpc::client::TimelineEvent;
use tsn_grpc::coordinator::CoordClient;

#[path = "support/mod.rs"]
mod support;

use support::{DEADLINE, Result, log_in, next_event, start_coordinator, start_tsd};

#[tokio::main]
async fn main() -> Result {
    println!("== The Store conformance suite, run against Audited<Memory>");
    conformance::run_all(&mut AuditedHarness).await; // panics if a promise is broken
    println!("passed\n");

    println!("== A coordinator and a tsd on loopback, the tsd storing into Audited<Memory>");
    let (stop, stopped) = watch::channel(());
    let (coordinator_at, coordinator_task) = start_coordinator(stopped.clone()).await?;
    let membership = Membership {
        cluster: ClusterId(1),
        clusters: 1,
    };
    let store = Arc::new(Audited::new(store::Memory::new(membership), true));
    let tsd_task = start_tsd(Arc::clone(&store), 1, &coordinator_at, stopped).await?;
    let coordinator = CoordClient::new(std::slice::from_ref(&coordinator_at))?;

    println!("\n== User 1 follows user 2, who posts");
    let one = log_in(&coordinator, 1).await?;
    let two = log_in(&coordinator, 2).await?;
    println!("client: user 1 follows 2: {:?}", one.follow("2").await?);
    let mut timeline_one = one.open_timeline(None).await?;
    let mut timeline_two = two.open_timeline(None).await?;
    // A post's id: a number its client picked at random, and the client's count of posts.
    let origin = u64::from(std::process::id());
    timeline_two.post(origin, 1, "hello, custom store").await?;
    let TimelineEvent::Acked { error: None, .. } = next_event(&mut timeline_two).await? else {
        return Err("the post was not acknowledged".into());
    };
    println!("client: user 2's post is acknowledged: it is durable");
    let TimelineEvent::Post(post) = next_event(&mut timeline_one).await? else {
        return Err("user 1's timeline showed no post".into());
    };
    let (author, text) = (post.author, post.text);
    println!("client: user 1's timeline shows {author} >> {text}");

    drop(stop); // both servers shut down when the sender goes
    for task in [tsd_task, coordinator_task] {
        tokio::time::timeout(DEADLINE, task).await???; // in time, without panic or error
    }
    let (users, posts) = store.read(|s| (s.users().count(), s.post_count()));
    println!("\nthe store holds {users} users and {posts} post");
    Ok(())
}

/// A [`Store`] that hands every call to `S`, printing the writes.
struct Audited<S> {
    inner: S,
    print: bool,
}

impl<S> Audited<S> {
    fn new(inner: S, print: bool) -> Self {
        Audited { inner, print }
    }

    fn note(&self, line: String) {
        if self.print {
            println!("   store | {line}");
        }
    }
}

#[tsn_core::async_trait]
impl<S: Store> Store for Audited<S> {
    fn append(&self, entries: &[Entry]) -> tsn_core::Result<Vec<Vec<Delivery>>> {
        let deliveries = self.inner.append(entries)?;
        for (entry, delivered) in entries.iter().zip(&deliveries) {
            let mut line = format!("append #{} {}", entry.position, describe(&entry.change));
            for Delivery { user, .. } in delivered {
                line += &format!(", onto the timeline of {user}");
            }
            self.note(line);
        }
        Ok(deliveries)
    }

    async fn flush(&self) -> tsn_core::Result<Position> {
        let durable = self.inner.flush().await?;
        self.note(format!("flush: durable through #{durable}"));
        Ok(durable)
    }

    fn durable(&self) -> Position {
        self.inner.durable()
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.inner.read(f)
    }

    async fn entries_after(&self, after: Position, max: usize) -> tsn_core::Result<Vec<Entry>> {
        self.inner.entries_after(after, max).await
    }

    async fn truncate_after(&self, keep: Position) -> tsn_core::Result<()> {
        self.inner.truncate_after(keep).await?;
        self.note(format!("truncate: everything after #{keep} dropped"));
        Ok(())
    }

    fn record_commit(&self, through: Position) {
        self.note(format!("commit: committed through #{through}"));
        self.inner.record_commit(through);
    }
}

/// How the conformance suite opens fresh stores, and reopens one as after a crash.
struct AuditedHarness;

impl conformance::Harness for AuditedHarness {
    type Store = Audited<store::Memory>;

    fn open(&mut self) -> Self::Store {
        Audited::new(store::Memory::new(conformance::membership()), false)
    }

    fn reopen(&mut self, store: Self::Store) -> Self::Store {
        Audited::new(store.inner.restart(), false)
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::UserJoined { user, .. } => format!("user {user} joined"),
        Change::Followed {
            follower, followee, ..
        } => format!("{follower} follows {followee}"),
        Change::Posted(post) => format!("post by {}: {:?}", post.author, post.text.as_str()),
        Change::MasterElected { server, .. } => format!("server {server} is master"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() {
        super::main().expect("the example runs to completion");
    }
}
