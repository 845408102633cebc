//! [`Tsd`]: a server of one cluster — its replica, its role, its clients' sessions — with
//! no transport of its own.
//!
//! * [`roles`] keeps the role in step with the coordinator (the heartbeat loop) and
//!   carries out each change: starting a [`Master`] and its imports, or following a master
//!   as its slave.
//! * [`runtime`] runs the role on a thread of its own ([`runtime::RoleThread`]), so that
//!   a busy server's heartbeats do not wait behind its clients' work; [`serving`] is the
//!   runtime the role's duties run on, with the pulse that says it still runs.
//! * [`replication`] is the conversation between a master and its slaves: the master's
//!   side ([`Tsd::replicate`]) and the slave's ([`replication::Upstream`], the one thing a
//!   transport provides).
//!
//! A transport (`tsn-grpc`) serves a `Tsd`'s clients from [`Tsd::master`], [`Tsd::store`],
//! [`Tsd::hub`] and [`Tsd::sessions`], and reports [`Tsd::serving`] to health checks.

pub mod committed;
pub mod replication;
pub mod roles;
pub mod runtime;
pub mod serving;

use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tsn_core::coordinator::ServerRef;
use tsn_core::id::{ClusterId, Epoch, FolderId};
use tsn_core::session::Sessions;
use tsn_core::timeline::Hub;
use tsn_core::{Error, Result, Store, SyncPeer};

use crate::master::Master;
use replication::Upstream;

/// How a tsd runs.
#[derive(Clone)]
pub struct Config {
    /// This server: its cluster, id, and the address it announces.
    pub me: ServerRef,
    /// A random number picked when the process started (see
    /// [`Report::incarnation`](tsn_core::coordinator::Report::incarnation)).
    pub incarnation: u64,
    /// The identity of the data folder its replica lives in (see
    /// [`Report::folder`](tsn_core::coordinator::Report::folder)).
    pub folder: FolderId,
    /// How often it reports to the coordinator.
    pub heartbeat_interval: Duration,
    /// How long a client's session lives without a keep-alive.
    pub session_timeout: Duration,
    /// How long an in-sync slave may make no progress before the master stops waiting for
    /// it (after the coordinator confirms).
    pub replication_timeout: Duration,
    /// Where to read the changes of each other cluster from (the cluster's synchronizer
    /// brings them); merged while this server is master.
    pub imports: Vec<(ClusterId, Arc<dyn SyncPeer>)>,
}

/// A tsd's shared parts. The role task ([`roles::keep_role`]) alone changes the role;
/// everything else reads it through [`Tsd::master`].
pub struct Tsd<S> {
    this: Weak<Tsd<S>>,
    config: Config,
    store: Arc<S>,
    hub: Hub,
    sessions: Mutex<Sessions>,
    upstream: Arc<dyn Upstream>,
    master: RwLock<Option<Arc<Master<S>>>>,
    /// Epochs newer than ours that peers mentioned, for the role task.
    epochs_seen: mpsc::UnboundedSender<Epoch>,
    epochs_seen_rx: Mutex<Option<mpsc::UnboundedReceiver<Epoch>>>,
    /// Wakes the role task for an immediate report.
    report_now: Arc<Notify>,
    /// Whether the master's services are served (true while master).
    serving: watch::Sender<bool>,
}

impl<S: Store> Tsd<S> {
    /// A server with `store` as its replica, reaching its masters (while slave) through
    /// `upstream`. It serves nothing until [`roles::keep_role`] runs it.
    pub fn new(config: Config, store: Arc<S>, upstream: Arc<dyn Upstream>) -> Arc<Self> {
        let (epochs_seen, rx) = mpsc::unbounded_channel();
        Arc::new_cyclic(|this| Tsd {
            this: this.clone(),
            sessions: Mutex::new(Sessions::new(config.session_timeout)),
            config,
            store,
            hub: Hub::new(),
            upstream,
            master: RwLock::new(None),
            epochs_seen,
            epochs_seen_rx: Mutex::new(Some(rx)),
            report_now: Arc::new(Notify::new()),
            serving: watch::Sender::new(false),
        })
    }

    /// How it runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its replica of the cluster.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Where committed timeline posts are published to their readers' streams.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The clients' sessions, locked.
    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the master's services are served: true from the moment the master role is
    /// taken up until it ends.
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// This server, for tasks that outlive a request.
    pub fn arc(&self) -> Arc<Self> {
        self.this
            .upgrade()
            .expect("a server is used only while it lives")
    }

    /// The master role, if this server holds it; [`Error::NotMaster`] otherwise, which
    /// sends a client back to the coordinator.
    pub fn master(&self) -> Result<Arc<Master<S>>> {
        self.master
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|m| !m.is_stopped())
            .ok_or_else(|| {
                Error::NotMaster(format!(
                    "server {} of cluster {} is not the cluster's master; ask the coordinator again",
                    self.config.me.server, self.config.me.cluster
                ))
            })
    }

    /// Installs (or, with `None`, ends) the master role; an old master is stopped.
    fn set_master(&self, master: Option<Arc<Master<S>>>) {
        let serving = master.is_some();
        let mut current = self.master.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = std::mem::replace(&mut *current, master) {
            old.stop();
            self.hub.close_all();
        }
        self.serving.send_replace(serving);
    }

    /// Stops serving as master at once if `epoch` is newer than the master's (another
    /// server was elected since), and tells the role task.
    pub fn saw_epoch(&self, epoch: Epoch) {
        {
            // Under the role's lock, so that a new role installed meanwhile is not
            // reported as not serving.
            let current = self.master.write().unwrap_or_else(|p| p.into_inner());
            if let Some(master) = current.as_ref()
                && epoch > master.epoch()
            {
                master.stop();
                self.hub.close_all();
                self.serving.send_replace(false);
            }
        }
        let _ = self.epochs_seen.send(epoch);
        self.report_now.notify_one();
    }

    /// The receiving end of [`Tsd::saw_epoch`], taken once by the role task.
    fn take_epochs_seen(&self) -> mpsc::UnboundedReceiver<Epoch> {
        self.epochs_seen_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("one role task per server")
    }

    /// Ends every role at shutdown.
    pub fn stop_serving(&self) {
        self.set_master(None);
    }
}

#[cfg(test)]
mod tests;
