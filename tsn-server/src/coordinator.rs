//! [`Local`]: the coordinator in this process, deciding with the core's [`Registry`] and
//! the system's clocks.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use tsn_core::coordinator::{
    Assignment, Coordinator, Registry, RegistryConfig, Report, RoleChange, ServerRef,
};
use tsn_core::id::{Epoch, FolderId, UserId};
use tsn_core::{Error, Result};

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

    /// Checks for failed masters now and returns the role changes since the last call.
    pub fn tick(&self) -> Vec<RoleChange> {
        let mut registry = self.lock();
        registry.tick(clock::now());
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
        self.lock().heartbeat(&report, clock::now())
    }

    /// While the registry is still listening (it has just started), a cluster without a
    /// known master may only not have reported yet: the call waits for its master, up to
    /// [`LISTENING_HOLD`], and then fails as [`Error::Unavailable`] (worth retrying).
    async fn server_for(&self, user: UserId) -> Result<Option<ServerRef>> {
        let give_up = clock::now() + LISTENING_HOLD;
        loop {
            let now = clock::now();
            let (master, listening) = {
                let mut registry = self.lock();
                (registry.server_for(user, now), registry.is_listening(now))
            };
            match (master, listening) {
                (Some(master), _) => return Ok(Some(master)),
                (None, false) => return Ok(None),
                (None, true) if now >= give_up => {
                    return Err(Error::Unavailable {
                        what: "the coordinator".into(),
                        reason:
                            "it has just started and is still learning which servers are masters"
                                .into(),
                    });
                }
                (None, true) => tokio::time::sleep(LISTENING_POLL).await,
            }
        }
    }

    async fn register_sync(&self, sync: ServerRef, folder: FolderId) -> Result<u32> {
        self.lock().register_sync(sync, folder, clock::now())
    }

    async fn sync_servers(&self) -> Result<Vec<ServerRef>> {
        Ok(self.lock().sync_servers(clock::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsn_core::change::LogPoint;
    use tsn_core::coordinator::{Endpoint, Role};
    use tsn_core::id::{ClusterId, ServerId};

    /// A failure timeout short enough that the registry's listening is over at once.
    const TIMEOUT: Duration = Duration::from_millis(30);

    fn report(server: u32) -> Report {
        Report {
            server: ServerRef {
                cluster: ClusterId(1),
                server: ServerId(server),
                endpoint: Endpoint {
                    host: "127.0.0.1".into(),
                    port: 10_000 + server as u16,
                },
            },
            incarnation: 1,
            folder: FolderId(u64::from(server)),
            role: None,
            epoch: Epoch(0),
            log: LogPoint::default(),
            in_sync: Vec::new(),
        }
    }

    fn local() -> Local {
        Local::new(RegistryConfig {
            clusters: 1,
            failure_timeout: TIMEOUT,
        })
    }

    #[tokio::test]
    async fn a_routing_question_asked_while_listening_waits_for_the_master() {
        let coordinator = std::sync::Arc::new(local());
        let user = UserId::new(1).expect("a user");
        let asked = tokio::spawn({
            let coordinator = std::sync::Arc::clone(&coordinator);
            async move { coordinator.server_for(user).await }
        });
        // The server reports until the coordinator, done listening, names it master.
        let mut role = Role::Slave;
        for _ in 0..500 {
            role = coordinator
                .heartbeat(report(1))
                .await
                .expect("a heartbeat")
                .role;
            if role == Role::Master {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(role, Role::Master);
        let routed = asked.await.expect("the question").expect("an answer");
        assert_eq!(routed.map(|s| s.server), Some(ServerId(1)));
    }

    #[tokio::test]
    async fn a_cluster_without_a_server_has_no_master_once_listening_is_over() {
        let coordinator = local();
        let user = UserId::new(1).expect("a user");
        assert_eq!(coordinator.server_for(user).await.expect("an answer"), None);
        assert!(coordinator.tick().is_empty(), "nothing to decide");
    }
}
