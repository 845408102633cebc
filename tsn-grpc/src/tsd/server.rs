//! [`Server`]: what every part of a tsd shares.

use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::sync::{Notify, mpsc};
use tonic::Status;
use tsn_core::Store;
use tsn_core::id::Epoch;
use tsn_core::session::Sessions;
use tsn_core::timeline::Hub;

use crate::transport::Health;
use crate::tsd::Config;
use tsn_server::master::Master;

/// How many posts a timeline watcher may fall behind before it is cut off.
const WATCHER_BACKLOG: usize = 4096;

/// A tsd's shared parts. The heartbeat task alone changes the role; everything else reads
/// it through [`Server::master`].
pub(crate) struct Server<S> {
    this: Weak<Server<S>>,
    pub(crate) config: Config,
    pub(crate) store: Arc<S>,
    pub(crate) hub: Hub,
    pub(crate) sessions: Mutex<Sessions>,
    master: RwLock<Option<Arc<Master<S>>>>,
    /// Epochs newer than ours that peers mentioned, for the heartbeat task.
    epochs_seen: mpsc::UnboundedSender<Epoch>,
    epochs_seen_rx: Mutex<Option<mpsc::UnboundedReceiver<Epoch>>>,
    /// Wakes the heartbeat task for an immediate report.
    pub(crate) report_now: Arc<Notify>,
    /// What the health service says of the services only a master serves.
    health: Health,
    master_services: Vec<&'static str>,
}

impl<S: Store> Server<S> {
    /// A server whose `master_services` (full gRPC names) `health` reports serving only
    /// while it is master.
    pub(crate) fn new(
        config: Config,
        store: Arc<S>,
        health: Health,
        master_services: Vec<&'static str>,
    ) -> Arc<Self> {
        let (epochs_seen, rx) = mpsc::unbounded_channel();
        Arc::new_cyclic(|this| Server {
            this: this.clone(),
            sessions: Mutex::new(Sessions::new(config.session_timeout)),
            config,
            store,
            hub: Hub::new(WATCHER_BACKLOG),
            master: RwLock::new(None),
            epochs_seen,
            epochs_seen_rx: Mutex::new(Some(rx)),
            report_now: Arc::new(Notify::new()),
            health,
            master_services,
        })
    }

    /// Tells the health service whether the master's services are served now.
    pub(crate) async fn report_health(&self, master: bool) {
        self.health.set(&self.master_services, master).await;
    }

    /// This server, for tasks that outlive a request.
    pub(crate) fn arc(&self) -> Arc<Self> {
        self.this
            .upgrade()
            .expect("a server is used only while it lives")
    }

    /// The master role, if this server holds it; `UNAVAILABLE` otherwise, which sends a
    /// client back to the coordinator.
    pub(crate) fn master(&self) -> Result<Arc<Master<S>>, Status> {
        self.master
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|m| !m.is_stopped())
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "server {} of cluster {} is not the cluster's master; ask the coordinator again",
                    self.config.me.server, self.config.me.cluster
                ))
            })
    }

    /// Installs (or, with `None`, ends) the master role; an old master is stopped.
    pub(crate) fn set_master(&self, master: Option<Arc<Master<S>>>) {
        let old = std::mem::replace(
            &mut *self.master.write().unwrap_or_else(|p| p.into_inner()),
            master,
        );
        if let Some(old) = old {
            old.stop();
            self.hub.close_all();
        }
    }

    /// Stops serving as master at once (a newer epoch exists) and tells the heartbeat task.
    pub(crate) fn saw_epoch(&self, epoch: Epoch) {
        if let Ok(master) = self.master()
            && epoch > master.epoch()
        {
            master.stop();
            self.hub.close_all();
        }
        let _ = self.epochs_seen.send(epoch);
        self.report_now.notify_one();
    }

    /// The receiving end of [`Server::saw_epoch`], taken once by the heartbeat task.
    pub(crate) fn take_epochs_seen(&self) -> mpsc::UnboundedReceiver<Epoch> {
        self.epochs_seen_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("one heartbeat task per server")
    }

    /// Ends every role at shutdown.
    pub(crate) fn stop_serving(&self) {
        self.set_master(None);
    }

    /// The sessions, locked.
    pub(crate) fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}
