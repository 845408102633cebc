//! The role task: keeps a server's role in step with the coordinator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tsn_core::coordinator::Role;
use tsn_core::failover::{self, Duty, Node};
use tsn_core::id::Position;
use tsn_core::{Coordinator, Error, Store};

use crate::clock;
use crate::import;
use crate::master::Master;
use crate::tsd::Tsd;
use crate::tsd::replication;
use crate::tsd::serving::{STALL_BEATS, Serving};

/// Reports to the coordinator every heartbeat interval (and at once when asked, or when a
/// peer mentions a newer epoch), and carries out the duties it assigns on `serving`, until
/// aborted. It reports nothing while `serving` has run nothing for [`STALL_BEATS`]
/// intervals. One runs per [`Tsd`], on a thread of its own
/// ([`RoleThread`](crate::tsd::runtime::RoleThread)).
pub async fn keep_role<S: Store, C: Coordinator>(
    tsd: Arc<Tsd<S>>,
    coordinator: Arc<C>,
    serving: Serving,
) {
    let config = tsd.config();
    let mut node = Node::new(
        config.me.clone(),
        config.incarnation,
        tsd.store().last().epoch,
    )
    .on_folder(config.folder);
    let mut epochs_seen = tsd.take_epochs_seen();
    let mut interval = tokio::time::interval(config.heartbeat_interval);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stall_limit = config.heartbeat_interval * STALL_BEATS;
    let mut duties = Duties {
        tsd: Arc::clone(&tsd),
        serving,
        follower: None,
    };
    let mut reachable = true;
    let mut wedged = false;
    let mut stall = Stall::new(config.replication_timeout);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = tsd.report_now.notified() => {}
            Some(epoch) = epochs_seen.recv() => {
                if let Some(duty) = node.saw_epoch(epoch) {
                    duties.take_up(duty, &mut node).await;
                }
                continue;
            }
        }
        let silent = duties.serving.silent_for();
        if silent >= stall_limit {
            if !wedged {
                tracing::error!(
                    ?silent,
                    "the server's runtime has run nothing for this long; no longer reporting, so that the coordinator replaces this server"
                );
                wedged = true;
            }
            continue;
        }
        if wedged {
            tracing::info!("the server's runtime runs again; reporting again");
            wedged = false;
        }
        let now = clock::now();
        tsd.sessions().expire(now);
        // Not `read`: the state's lock may be held by a long append meanwhile.
        let log = tsd.store().last();
        let in_sync = tsd
            .master()
            .map(|m| m.in_sync_report(now).0)
            .unwrap_or_default();
        stall.stalled(tsd.master().ok().as_deref(), now);
        // An answer slower than two intervals is no answer: the role must not wait on it.
        let answer = tokio::time::timeout(
            config.heartbeat_interval * 2,
            failover::heartbeat(&*coordinator, &mut node, log, in_sync.clone()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable {
                what: "the coordinator".into(),
                reason: "no answer within two heartbeat intervals".into(),
            })
        });
        match answer {
            Ok((assignment, change)) => {
                tracing::debug!(role = %assignment.role, epoch = %assignment.epoch, log = %log.position, ?in_sync, confirmed = assignment.in_sync_confirmed, "the coordinator answered");
                if !reachable {
                    tracing::info!("the coordinator answers again");
                    reachable = true;
                }
                if let Some(duty) = change {
                    duties.take_up(duty, &mut node).await;
                }
                if let Ok(master) = tsd.master()
                    && assignment.role == Role::Master
                    && assignment.epoch == master.epoch()
                    && assignment.in_sync_confirmed
                {
                    // On the serving runtime: the commit the confirmation allows may
                    // publish many posts, and the role thread must not wait for that.
                    duties.serving.handle().spawn(async move {
                        master.update(|r| r.confirmed(&in_sync));
                    });
                }
            }
            Err(error @ Error::Duplicate(_)) => {
                // Another copy of this server, on another folder, holds its place (this one
                // was silent too long): it must not act on a role the coordinator gave away.
                if *node.duty() != Duty::Waiting {
                    tracing::error!(%error, "the coordinator counts another copy of this server; stepping down until it is gone");
                    node.give_up();
                    duties.take_up(Duty::Waiting, &mut node).await;
                }
            }
            Err(error @ Error::Refused(_)) => {
                // The coordinator does not take what this server claims (an epoch it never
                // granted it, or an identity its certificate does not give): it acts on no
                // role until the coordinator takes its reports again.
                if *node.duty() != Duty::Waiting {
                    tracing::error!(%error, "the coordinator refuses this server's report; stepping down until it takes it");
                    node.give_up();
                    duties.take_up(Duty::Waiting, &mut node).await;
                }
            }
            Err(error) => {
                if reachable {
                    tracing::warn!(%error, "heartbeat failed; carrying on in the current role");
                    reachable = false;
                }
                if stall.stalled(tsd.master().ok().as_deref(), clock::now()) {
                    // Cut off from the coordinator, and its writes do not commit: its slave
                    // has most likely been promoted. Its clients must look elsewhere.
                    tracing::warn!(waited = ?stall.limit, "the coordinator does not answer and no write has committed for the replication timeout; stepping down");
                    node.give_up();
                    duties.take_up(Duty::Waiting, &mut node).await;
                }
            }
        }
    }
}

/// Watches a master's commits. A master that cannot reach the coordinator may have been
/// replaced: the coordinator promotes its slave after the failure timeout, and from then
/// on its writes wait for a slave that follows another master. It cannot know; but writes
/// that have waited for the replication timeout without any commit, while the coordinator
/// does not answer, say so well enough that it steps down and its clients look for the
/// cluster's master elsewhere. (With the coordinator down and the slave still following,
/// writes commit, and the master carries on.)
struct Stall {
    limit: Duration,
    /// The commit position last seen, and since when no write has committed while some
    /// waited.
    commit: Position,
    since: Instant,
}

impl Stall {
    fn new(limit: Duration) -> Self {
        Stall {
            limit,
            commit: Position(0),
            since: clock::now(),
        }
    }

    /// Whether `master`'s writes have waited `limit` without a commit, as of `now`.
    fn stalled<S: Store>(&mut self, master: Option<&Master<S>>, now: Instant) -> bool {
        let Some(master) = master else {
            self.since = now;
            return false;
        };
        let commit = master.commit_position();
        let waiting = *master.appended_watch().borrow() > commit;
        if !waiting || commit != self.commit {
            self.commit = commit;
            self.since = now;
        }
        waiting && now.duration_since(self.since) >= self.limit
    }
}

/// The running parts of the current duty, on the serving runtime.
struct Duties<S: Store> {
    tsd: Arc<Tsd<S>>,
    serving: Serving,
    follower: Option<JoinHandle<()>>,
}

impl<S: Store> Duties<S> {
    /// Stops the current duty and starts `duty`. If the master role cannot be taken up (a
    /// store failure), the node gives it up and says so in its next heartbeat.
    async fn take_up(&mut self, duty: Duty, node: &mut Node) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
            // Let it finish dying: it must not append once the master role starts.
            let _ = follower.await;
        }
        let tsd = &self.tsd;
        let me = &tsd.config().me;
        match duty {
            Duty::Waiting => {
                tracing::info!(cluster = %me.cluster, server = %me.server, "waiting for the cluster to have a master");
                tsd.set_master(None);
            }
            Duty::Master { epoch } => {
                tsd.set_master(None);
                // The master's own tasks start on the serving runtime.
                let _serving = self.serving.handle().enter();
                let started = Master::start(
                    Arc::clone(tsd.store()),
                    Arc::new(tsd.hub().clone()),
                    epoch,
                    me.server,
                    tsd.config().replication_timeout,
                    Arc::clone(&tsd.report_now),
                );
                match started {
                    Ok(master) => {
                        tracing::info!(cluster = %me.cluster, server = %me.server, %epoch, "serving as master");
                        for (from, peer) in &tsd.config().imports {
                            self.serving.handle().spawn(import::run(
                                Arc::clone(&master),
                                *from,
                                Arc::clone(peer),
                            ));
                        }
                        tsd.set_master(Some(master));
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot take up the master role");
                        node.give_up();
                    }
                }
            }
            Duty::Slave { epoch, master } => {
                tracing::info!(cluster = %me.cluster, server = %me.server, %epoch, master = %master.endpoint, "serving as slave");
                tsd.set_master(None);
                let tsd = Arc::clone(tsd);
                self.follower = Some(
                    self.serving
                        .handle()
                        .spawn(async move { replication::follow(&tsd, master, epoch).await }),
                );
            }
        }
    }
}

impl<S: Store> Drop for Duties<S> {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
    }
}
