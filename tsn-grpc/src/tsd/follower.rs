//! The slave's side of replication: copying the master's log.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tsn_core::change::Entry;
use tsn_core::coordinator::ServerRef;
use tsn_core::id::{Epoch, Position};
use tsn_core::{Error, Result, Store};

use crate::error::from_status;
use crate::proto::tsn::replication_client::ReplicationClient;
use crate::proto::tsn::{Ack, Hello, SlaveMessage, master_message, slave_message};
use crate::transport::stream_channel;
use crate::tsd::server::Server;

/// The first and the longest pause between attempts to reach the master.
const RETRY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(500));

/// Copies the log of `master` (master of `epoch`) into this server's store until the task
/// is aborted (the heartbeat task does that when the role changes).
pub(crate) async fn follow<S: Store>(server: Arc<Server<S>>, master: ServerRef, epoch: Epoch) {
    let mut pause = RETRY.0;
    loop {
        match follow_once(&server, &master, epoch).await {
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

fn hello<S: Store>(server: &Server<S>, epoch: Epoch) -> SlaveMessage {
    let last = server.store.read(|s| s.last());
    SlaveMessage {
        kind: Some(slave_message::Kind::Hello(Hello {
            server_id: server.config.me.server.0 as i32,
            cluster_id: server.config.me.cluster.0,
            epoch: epoch.0,
            log_position: last.position.0,
            log_epoch: last.epoch.0,
            folder_id: server.config.folder.0,
        })),
    }
}

fn ack(durable: Position) -> SlaveMessage {
    SlaveMessage {
        kind: Some(slave_message::Kind::Ack(Ack { durable: durable.0 })),
    }
}

async fn follow_once<S: Store>(server: &Server<S>, master: &ServerRef, epoch: Epoch) -> Result<()> {
    let what = format!("the master at {}", master.endpoint);
    let mut client = ReplicationClient::new(stream_channel(&master.endpoint)?);
    // The Hello says where the log ends, and the master counts that as held: it must be
    // durable (an aborted earlier attempt may have appended without flushing).
    server.store.flush().await?;
    let (tx, rx) = mpsc::channel(16);
    // Queue the Hello before awaiting the call: the master answers only after it.
    tx.send(hello(server, epoch)).await.map_err(|_| closed())?;
    let mut inbound = client
        .replicate(ReceiverStream::new(rx))
        .await
        .map_err(|s| from_status(&what, s))?
        .into_inner();
    while let Some(message) = inbound.message().await.map_err(|s| from_status(&what, s))? {
        match message.kind {
            Some(master_message::Kind::TruncateAfter(keep)) => {
                tracing::warn!(keep, "dropping log entries the master never had");
                server.store.truncate_after(Position(keep)).await?;
                tx.send(hello(server, epoch)).await.map_err(|_| closed())?;
            }
            Some(master_message::Kind::Batch(batch)) => {
                if Epoch(batch.epoch) < epoch {
                    return Err(Error::StaleEpoch {
                        current: epoch,
                        got: Epoch(batch.epoch),
                    });
                }
                let entries = batch
                    .entries
                    .into_iter()
                    .map(Entry::try_from)
                    .collect::<Result<Vec<_>>>()?;
                server.store.append(&entries)?;
                let durable = server.store.flush().await?;
                tx.send(ack(durable)).await.map_err(|_| closed())?;
            }
            None => return Err(Error::Invalid("an empty message from the master".into())),
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
