//! Checking on late masters: a master whose heartbeats are late by a quarter of the
//! failure timeout is checked on with a TCP connection to its address. When its host
//! answers that nothing listens there (the connection is refused), its process is gone —
//! killed, crashed or stopped — and it is counted down at once, without waiting out the
//! rest of the failure timeout. Anything else (the connection is taken, or times out, as
//! across a partition) says nothing, and the failure timeout decides as before: a master
//! that is only slow under load is never replaced by this check.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tsn_core::coordinator::LateMaster;
use tsn_server::coordinator::Ticking;

use super::log_change;

/// Checks on late masters, each once per silence.
pub(super) struct Prober {
    /// How long a master must have been silent to be checked on.
    silence: Duration,
    /// How long a check may take.
    patience: Duration,
    /// The masters checked on in their current silence.
    checked: Vec<LateMaster>,
}

impl Prober {
    /// A prober for a coordinator with `failure_timeout`.
    pub(super) fn new(failure_timeout: Duration) -> Self {
        Prober {
            silence: failure_timeout / 4,
            patience: failure_timeout / 8,
            checked: Vec::new(),
        }
    }

    /// Starts a check on every master of `coordinator` that has become late since the
    /// last call; a check that finds nothing listening counts the master down.
    pub(super) fn check_on_late<C: Ticking + 'static>(&mut self, coordinator: &Arc<C>) {
        let late = coordinator.late_masters(self.silence);
        self.checked.retain(|checked| late.contains(checked));
        for master in late {
            if self.checked.contains(&master) {
                continue;
            }
            self.checked.push(master.clone());
            let coordinator = Arc::clone(coordinator);
            let patience = self.patience;
            tokio::spawn(async move {
                if nothing_listens(&master, patience).await {
                    tracing::warn!(
                        cluster = %master.server.cluster,
                        server = %master.server.server,
                        address = %master.server.endpoint,
                        "master's heartbeats are late and its address refuses connections"
                    );
                    for change in coordinator.found_down(&master).await {
                        log_change(&change);
                    }
                }
            });
        }
    }
}

/// Whether the host of `master` refuses a connection to its address within `patience`.
async fn nothing_listens(master: &LateMaster, patience: Duration) -> bool {
    let endpoint = &master.server.endpoint;
    let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
    matches!(
        tokio::time::timeout(patience, connect).await,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused
    )
}
