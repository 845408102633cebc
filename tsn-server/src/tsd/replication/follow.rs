//! The slave's side of replication: copying the master's log.

use std::time::Duration;

use tokio::sync::mpsc;
use tsn_core::coordinator::ServerRef;
use tsn_core::id::{Epoch, Position};
use tsn_core::{Error, Result, Store};

use super::{Hello, MasterMessage, SlaveMessage};
use crate::tsd::Tsd;

/// The first and the longest pause between attempts to reach the master.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(500));

/// How many of the slave's messages may wait for the stream.
const OUTGOING_BUFFER: usize = 16;

/// Copies the log of `master` (master of `epoch`) into this server's store until the task
/// is aborted (the role task does that when the role changes).
pub(crate) async fn follow<S: Store>(tsd: &Tsd<S>, master: ServerRef, epoch: Epoch) {
    let mut pause = RETRY.0;
    loop {
        match follow_once(tsd, &master, epoch).await {
            Ok(()) => tracing::info!(master = %master.endpoint, "the master ended replication"),
            Err(error) if error.is_retryable() => {
                tracing::debug!(master = %master.endpoint, %error, "replication interrupted")
            }
            Err(error) => {
                tracing::warn!(master = %master.endpoint, %error, "replication refused")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY.1);
    }
}

/// This slave's Hello to the master of `epoch`: where its log ends now.
fn hello<S: Store>(tsd: &Tsd<S>, epoch: Epoch) -> SlaveMessage {
    let me = &tsd.config().me;
    SlaveMessage::Hello(Hello {
        cluster: me.cluster,
        server: me.server,
        epoch,
        last: tsd.store().read(|s| s.last()),
        folder: tsd.config().folder,
    })
}

/// One replication stream, from its Hello until either side ends it.
async fn follow_once<S: Store>(tsd: &Tsd<S>, master: &ServerRef, epoch: Epoch) -> Result<()> {
    let store = tsd.store();
    // The Hello says where the log ends, and the master counts that as held: it must be
    // durable (an aborted earlier attempt may have appended without flushing).
    store.flush().await?;
    let (tx, rx) = mpsc::channel(OUTGOING_BUFFER);
    // Queue the Hello before opening: the master answers only after it.
    tx.send(hello(tsd, epoch)).await.map_err(|_| closed())?;
    let mut inbound = tsd.upstream.open(master, rx).await?;
    while let Some(message) = inbound.next().await? {
        match message {
            MasterMessage::TruncateAfter { keep } => {
                tracing::warn!(%keep, "dropping log entries the master never had");
                store.truncate_after(keep).await?;
                tx.send(hello(tsd, epoch)).await.map_err(|_| closed())?;
            }
            MasterMessage::Batch {
                epoch: sent_in,
                entries,
                ..
            } => {
                if sent_in < epoch {
                    return Err(Error::StaleEpoch {
                        current: epoch,
                        got: sent_in,
                    });
                }
                store.append(&entries)?;
                let durable: Position = store.flush().await?;
                tx.send(SlaveMessage::Ack { durable })
                    .await
                    .map_err(|_| closed())?;
            }
        }
    }
    Ok(())
}

fn closed() -> Error {
    Error::Unavailable {
        what: "the replication stream".into(),
        reason: "closed".into(),
    }
}
