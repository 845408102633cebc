//! The master's side of replication: the `Replication` service a slave connects to.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tsn_core::Store;
use tsn_core::change::LogPoint;
use tsn_core::failover::{Agreement, reconcile};
use tsn_core::id::{Epoch, FolderId, Position, ServerId};

use crate::error::to_status;
use crate::proto::tsn::replication_server::Replication;
use crate::proto::tsn::{
    self, Batch, Hello, MasterMessage, SlaveMessage, master_message, slave_message,
};
use crate::tsd::server::Server;
use tsn_server::master::Master;

/// Numbers the slaves' connections, so that the end of a replaced one is told apart.
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// How many entries one batch carries at most.
const BATCH_ENTRIES: usize = 1024;

type Outbound = mpsc::Sender<Result<MasterMessage, Status>>;

#[tonic::async_trait]
impl<S: Store> Replication for Server<S> {
    type ReplicateStream = Pin<Box<dyn Stream<Item = Result<MasterMessage, Status>> + Send>>;

    async fn replicate(
        &self,
        request: Request<Streaming<SlaveMessage>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        let master = self.master()?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let server = self.arc();
        tokio::spawn(async move {
            let outcome = serve_slave(&server, &master, inbound, &tx).await;
            if let Err(status) = outcome {
                tracing::debug!("replication stream ended: {}", status.message());
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The slave's Hello, or a protocol error.
async fn next_hello(inbound: &mut Streaming<SlaveMessage>) -> Result<Option<Hello>, Status> {
    match inbound.next().await {
        None => Ok(None),
        Some(Err(status)) => Err(status),
        Some(Ok(SlaveMessage {
            kind: Some(slave_message::Kind::Hello(hello)),
        })) => Ok(Some(hello)),
        Some(Ok(_)) => Err(Status::invalid_argument(
            "a replication stream starts with a Hello",
        )),
    }
}

/// Serves one slave: agree on where its log parts from ours, then stream entries and take
/// acknowledgements until either side goes away.
async fn serve_slave<S: Store>(
    server: &Server<S>,
    master: &Arc<Master<S>>,
    mut inbound: Streaming<SlaveMessage>,
    outbound: &Outbound,
) -> Result<(), Status> {
    let (slave, folder, cursor) = loop {
        let Some(hello) = next_hello(&mut inbound).await? else {
            return Ok(());
        };
        if Epoch(hello.epoch) > master.epoch() {
            server.saw_epoch(Epoch(hello.epoch));
            return Err(Status::failed_precondition(format!(
                "this master's epoch {} is older than the slave's {}",
                master.epoch(),
                hello.epoch
            )));
        }
        let slave = u32::try_from(hello.server_id)
            .map(ServerId)
            .map_err(|_| Status::invalid_argument("a negative server id"))?;
        // A second copy is refused before anything is agreed with it.
        let folder = FolderId(hello.folder_id);
        if let Err(refused) = master.update(|r| r.admits(slave, folder)) {
            tracing::warn!("{refused}");
            return Err(to_status(refused));
        }
        let last = LogPoint {
            epoch: Epoch(hello.log_epoch),
            position: Position(hello.log_position),
        };
        match master.store().read(|state| reconcile(state.epochs(), last)) {
            Agreement::Continue { after } => break (slave, folder, after),
            Agreement::Truncate { keep } => {
                let message = master_message::Kind::TruncateAfter(keep.0);
                if outbound
                    .send(Ok(MasterMessage {
                        kind: Some(message),
                    }))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
    };
    let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    if let Err(refused) =
        master.update(|r| r.connected(slave, folder, connection, cursor, Instant::now()))
    {
        tracing::warn!("{refused}");
        return Err(to_status(refused));
    }
    tracing::info!(%slave, from = %cursor, "slave connected");
    let result = tokio::select! {
        sent = send_entries(master, cursor, outbound) => sent,
        taken = take_acks(master, slave, &mut inbound) => taken,
    };
    master.update(|r| r.disconnected(slave, connection));
    tracing::info!(%slave, "slave disconnected");
    result
}

/// Streams the log after `cursor` as it grows, until the role ends or the slave leaves.
async fn send_entries<S: Store>(
    master: &Arc<Master<S>>,
    mut cursor: Position,
    outbound: &Outbound,
) -> Result<(), Status> {
    let mut appended = master.appended_watch();
    loop {
        let end = *appended.borrow_and_update();
        if cursor < end {
            let entries = master
                .store()
                .entries_after(cursor, BATCH_ENTRIES)
                .await
                .map_err(to_status)?;
            let Some(last) = entries.last() else {
                return Err(Status::internal("the log ended before its end position"));
            };
            cursor = last.position;
            let batch = Batch {
                epoch: master.epoch().0,
                entries: entries.iter().map(tsn::Entry::from).collect(),
                commit: master.commit_position().0,
            };
            let message = MasterMessage {
                kind: Some(master_message::Kind::Batch(batch)),
            };
            if outbound.send(Ok(message)).await.is_err() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return Ok(()) },
            () = master.ended() => return Err(Status::unavailable("this server is no longer the master")),
        }
    }
}

/// Records the slave's acknowledgements until it leaves.
async fn take_acks<S: Store>(
    master: &Arc<Master<S>>,
    slave: ServerId,
    inbound: &mut Streaming<SlaveMessage>,
) -> Result<(), Status> {
    while let Some(message) = inbound.next().await {
        match message?.kind {
            Some(slave_message::Kind::Ack(ack)) => {
                master.update(|r| r.acked(slave, Position(ack.durable), Instant::now()));
            }
            _ => {
                return Err(Status::invalid_argument(
                    "after agreeing, a slave sends only acknowledgements",
                ));
            }
        }
    }
    Ok(())
}
