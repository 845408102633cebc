//! Where a tsd's work runs: the **serving runtime** takes clients, replicates, imports and
//! commits; the role's heartbeats run on a **thread of their own**.
//!
//! A master at full load keeps its serving runtime busy: every task ready to run waits for
//! its turn, and a timer there fires hundreds of milliseconds late (`tsn-bench --soak`
//! measured up to 0.8 s on a 2-core machine). A heartbeat that waits in that queue reaches
//! the coordinator after its failure timeout, and a busy master was taken for a dead one.
//! On its own thread, with its own connections to the coordinator, the heartbeat waits
//! only for the machine's scheduler.
//!
//! A thread of its own must not report a server whose serving runtime no longer runs (a
//! deadlock, a task that never yields): the serving runtime beats a [`Serving`] pulse, and
//! the role stops reporting when the pulse has been silent for
//! [`STALL_BEATS`](crate::tsd::serving::STALL_BEATS) heartbeat intervals, so that the
//! coordinator replaces the server as if it had died.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;
use tsn_core::{Coordinator, Store};

use crate::tsd::Tsd;
use crate::tsd::roles::keep_role;
use crate::tsd::serving::Serving;

/// The role task ([`keep_role`]) running on a thread of its own. [`RoleThread::stop`]
/// ends it; dropping it asks it to end without waiting.
#[derive(Debug)]
pub struct RoleThread {
    stop: Option<oneshot::Sender<()>>,
    ended: oneshot::Receiver<()>,
}

impl RoleThread {
    /// Starts the role of `tsd` on a new thread, its duties on the runtime this is called
    /// on. `coordinator` is called on that thread, so that the connections of the client it
    /// makes are driven there and not behind the serving runtime's queue.
    pub fn start<S, C, M>(tsd: Arc<Tsd<S>>, coordinator: M) -> std::io::Result<Self>
    where
        S: Store,
        C: Coordinator + 'static,
        M: FnOnce() -> Arc<C> + Send + 'static,
    {
        let serving = Serving::current(tsd.config().heartbeat_interval);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let (done, ended) = oneshot::channel();
        std::thread::Builder::new()
            .name("tsd-role".into())
            .spawn(move || {
                runtime.block_on(until(stopped, async move {
                    keep_role(tsd, coordinator(), serving).await
                }));
                // Its connections and timers end with it, before `stop` returns.
                drop(runtime);
                let _ = done.send(());
            })?;
        Ok(RoleThread {
            stop: Some(stop),
            ended,
        })
    }

    /// Ends the role task, and returns once it has ended: from then on it changes no role.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.ended).await;
    }
}

impl Drop for RoleThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs `work` until `stopped` fires (or its sender is dropped); `work` is dropped first.
async fn until(stopped: oneshot::Receiver<()>, work: impl Future<Output = ()>) {
    tokio::select! {
        () = work => {}
        _ = stopped => {}
    }
}
