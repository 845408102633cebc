//! [`Local`]: the coordinator in this process, deciding alone with the core's [`Registry`]
//! and the system's clocks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use tsn_core::coordinator::{
    Assignment, Coordinator, LateMaster, Registry, RegistryConfig, Report, RoleChange, ServerRef,
};
use tsn_core::id::{Epoch, FolderId, UserId};
use tsn_core::{Error, Result};

use super::Ticking;
use crate::clock;

/// How long a routing question waits for a master while the registry is listening: less
/// than a client's call timeout, so that the client can retry.
pub const LISTENING_HOLD: Duration = Duration::from_millis(1500);

/// How often a held routing question looks again.
const LISTENING_POLL: Duration = Duration::from_millis(20);

/// A [`Coordinator`] that decides in this process with a [`Registry`] and the system's
/// monotonic clock. The coordinator program serves one over gRPC; an embedding program or
/// a test can call it directly.
#[derive(Debug)]
pub struct Local {
    registry: Mutex<Registry>,
}

impl Local {
    /// A coordinator that starts now, knowing nothing, and whose epochs start above the
    /// wall clock's milliseconds (see [`Registry::new`]).
    pub fn new(config: RegistryConfig) -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Local {
            registry: Mutex::new(Registry::new(config, clock::now(), Epoch(millis))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait]
impl Ticking for Local {
    async fn tick(&self) -> Vec<RoleChange> {
        let mut registry = self.lock();
        registry.tick(clock::now());
        registry.take_changes()
    }

    fn late_masters(&self, silence: Duration) -> Vec<LateMaster> {
        self.lock().late_masters(clock::now(), silence)
    }

    async fn found_down(&self, late: &LateMaster) -> Vec<RoleChange> {
        let mut registry = self.lock();
        registry.found_down(late, clock::now());
        registry.take_changes()
    }
}

#[async_trait]
impl Coordinator for Local {
    async fn heartbeat(&self, report: Report) -> Result<Assignment> {
        self.lock().heartbeat(&report, clock::now())
    }

    /// See [`route`].
    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>> {
        route(|now| {
            let mut registry = self.lock();
            (registry.server_for(user, now), registry.is_listening(now))
        })
        .await
    }

    async fn register_sync(&self, sync: ServerRef, folder: FolderId) -> Result<u32> {
        self.lock().register_sync(sync, folder, clock::now())
    }

    async fn sync_servers(&self) -> Result<Vec<ServerRef>> {
        Ok(self.lock().sync_servers(clock::now()))
    }
}

/// Answers a routing question with `ask`, which gives, at a moment, the master and whether
/// the registry is still listening. While it listens (it has just started), a cluster
/// without a known master may only not have reported yet: the question waits for its
/// master, up to [`LISTENING_HOLD`], and then fails as [`Error::Unavailable`] (worth
/// retrying).
pub(super) async fn route(
    mut ask: impl FnMut(Instant) -> (Option<ServerRef>, bool),
) -> Result<Option<ServerRef>> {
    let give_up = clock::now() + LISTENING_HOLD;
    loop {
        let now = clock::now();
        match ask(now) {
            (Some(master), _) => return Ok(Some(master)),
            (None, false) => return Ok(None),
            (None, true) if now >= give_up => {
                return Err(Error::Unavailable {
                    what: "the coordinator".into(),
                    reason: "it has just started and is still learning which servers are masters"
                        .into(),
                });
            }
            (None, true) => tokio::time::sleep(LISTENING_POLL).await,
        }
    }
}
