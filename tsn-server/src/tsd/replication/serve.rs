//! The master's side of replication: serving one slave's stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tsn_core::failover::{Agreement, reconcile};
use tsn_core::id::{Position, ServerId};
use tsn_core::{Error, Result, Store};

use super::{Hello, Incoming, MasterMessage, SlaveMessage};
use crate::clock;
use crate::master::Master;
use crate::tsd::Tsd;

/// Numbers the slaves' connections, so that the end of a replaced one is told apart.
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// How many entries one batch carries at most.
const BATCH_ENTRIES: usize = 1024;

/// How many messages wait for a slow stream before the master holds back.
const OUTGOING_BUFFER: usize = 4;

type Outgoing = mpsc::Sender<Result<MasterMessage>>;

impl<S: Store> Tsd<S> {
    /// Serves a slave's replication stream, whose messages `inbound` yields; returns the
    /// master's answers, which end with an error if the master refuses or stops serving
    /// the slave. Refused at once ([`Error::NotMaster`]) unless this server is master.
    pub fn replicate(
        &self,
        inbound: impl Incoming<SlaveMessage> + 'static,
    ) -> Result<mpsc::Receiver<Result<MasterMessage>>> {
        let master = self.master()?;
        let (tx, rx) = mpsc::channel(OUTGOING_BUFFER);
        let tsd = self.arc();
        tokio::spawn(async move {
            if let Err(error) = serve_slave(&tsd, &master, inbound, &tx).await {
                tracing::debug!(%error, "replication stream ended");
                // Not waited on: a slave that reads nothing (stopped) must not keep the
                // role alive.
                let _ = tx.try_send(Err(error));
            }
        });
        Ok(rx)
    }
}

/// The slave's Hello, or a protocol error.
async fn next_hello(inbound: &mut impl Incoming<SlaveMessage>) -> Result<Option<Hello>> {
    match inbound.next().await? {
        None => Ok(None),
        Some(SlaveMessage::Hello(hello)) => Ok(Some(hello)),
        Some(_) => Err(Error::Invalid(
            "a replication stream starts with a Hello".into(),
        )),
    }
}

/// Serves one slave: agree on where its log parts from ours, then stream entries and take
/// acknowledgements until either side goes away.
async fn serve_slave<S: Store>(
    tsd: &Tsd<S>,
    master: &Arc<Master<S>>,
    mut inbound: impl Incoming<SlaveMessage>,
    outgoing: &Outgoing,
) -> Result<()> {
    let (slave, folder, cursor) = loop {
        let Some(hello) = next_hello(&mut inbound).await? else {
            return Ok(());
        };
        // Another cluster's epochs say nothing of this one's: refused before they are read.
        let me = &tsd.config().me;
        if hello.cluster != me.cluster {
            return Err(Error::Invalid(format!(
                "server {} of cluster {} cannot replicate the log of cluster {}",
                hello.server, hello.cluster, me.cluster
            )));
        }
        if hello.epoch > master.epoch() {
            tsd.saw_epoch(hello.epoch);
            return Err(Error::StaleEpoch {
                current: hello.epoch,
                got: master.epoch(),
            });
        }
        // A second copy is refused before anything is agreed with it.
        if let Err(refused) = master.update(|r| r.admits(hello.server, hello.folder)) {
            tracing::warn!("{refused}");
            return Err(refused);
        }
        match master
            .store()
            .read(|state| reconcile(state.epochs(), hello.last))
        {
            Agreement::Continue { after } => break (hello.server, hello.folder, after),
            Agreement::Truncate { keep } => {
                let message = MasterMessage::TruncateAfter { keep };
                if outgoing.send(Ok(message)).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    master
        .update(|r| r.connected(slave, folder, connection, cursor, clock::now()))
        .inspect_err(|refused| tracing::warn!("{refused}"))?;
    tracing::info!(%slave, from = %cursor, "slave connected");
    let result = tokio::select! {
        sent = send_entries(master, cursor, outgoing) => sent,
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
    outgoing: &Outgoing,
) -> Result<()> {
    let mut appended = master.appended_watch();
    loop {
        let end = *appended.borrow_and_update();
        if cursor < end {
            let entries = master.store().entries_after(cursor, BATCH_ENTRIES).await?;
            let Some(last) = entries.last() else {
                return Err(Error::Corrupt(format!(
                    "the log ends at {cursor}, before its end position {end}"
                )));
            };
            cursor = last.position;
            let batch = MasterMessage::Batch {
                epoch: master.epoch(),
                entries,
                commit: master.commit_position(),
            };
            tokio::select! {
                sent = outgoing.send(Ok(batch)) => if sent.is_err() { return Ok(()) },
                // A slave that reads nothing (stopped) must not keep an ended role alive.
                () = master.ended() => return Err(Error::NotMaster("this server is no longer the master".into())),
            }
            continue;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return Ok(()) },
            () = master.ended() => return Err(Error::NotMaster("this server is no longer the master".into())),
        }
    }
}

/// Records the slave's acknowledgements until it leaves.
async fn take_acks<S: Store>(
    master: &Arc<Master<S>>,
    slave: ServerId,
    inbound: &mut impl Incoming<SlaveMessage>,
) -> Result<()> {
    while let Some(message) = inbound.next().await? {
        match message {
            SlaveMessage::Ack { durable } => {
                master.update(|r| r.acked(slave, durable, clock::now()));
            }
            SlaveMessage::Hello(_) => {
                return Err(Error::Invalid(
                    "after agreeing, a slave sends only acknowledgements".into(),
                ));
            }
        }
    }
    Ok(())
}
