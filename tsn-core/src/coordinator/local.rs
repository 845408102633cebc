//! [`Local`]: the coordinator in this process.

use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use crate::coordinator::{
    Assignment, Coordinator, Registry, RegistryConfig, Report, RoleChange, ServerRef,
};
use crate::error::Result;
use crate::id::UserId;

/// A [`Coordinator`] that decides in this process with a [`Registry`] and the system's
/// monotonic clock. The coordinator program serves one over gRPC; an embedding program or
/// a test can call it directly.
#[derive(Debug)]
pub struct Local {
    registry: Mutex<Registry>,
}

impl Local {
    /// A coordinator that starts now, knowing nothing (see [`Registry::new`]).
    pub fn new(config: RegistryConfig) -> Self {
        Local {
            registry: Mutex::new(Registry::new(config, Instant::now())),
        }
    }

    /// Checks for failed masters now and returns the role changes since the last call.
    pub fn tick(&self) -> Vec<RoleChange> {
        let mut registry = self.lock();
        registry.tick(Instant::now());
        registry.take_changes()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait]
impl Coordinator for Local {
    async fn heartbeat(&self, report: Report) -> Result<Assignment> {
        self.lock().heartbeat(&report, Instant::now())
    }

    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>> {
        Ok(self.lock().server_for(user, Instant::now()))
    }

    async fn register_sync(&self, sync: ServerRef) -> Result<()> {
        self.lock().register_sync(sync, Instant::now())
    }

    async fn sync_servers(&self) -> Result<Vec<ServerRef>> {
        Ok(self.lock().sync_servers(Instant::now()))
    }
}
