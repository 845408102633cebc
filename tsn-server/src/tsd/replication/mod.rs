//! Replication between a cluster's master and its slaves, as the runtime speaks it.
//!
//! A slave opens a stream to its master ([`Upstream::open`]) and says where its log ends
//! ([`Hello`]). The master finds where the two logs part ([`reconcile`]); if the slave
//! holds entries the master never had, it tells it to drop them
//! ([`MasterMessage::TruncateAfter`]) and waits for a new `Hello`. Then it streams its log
//! from there ([`MasterMessage::Batch`]), and the slave acknowledges each batch once it is
//! durable ([`SlaveMessage::Ack`]); the master counts those towards its commit position.
//!
//! * `serve.rs`: the master's side ([`Tsd::replicate`](crate::tsd::Tsd::replicate)).
//! * `follow.rs`: the slave's side, run by the role task while the server is a slave.
//!
//! [`reconcile`]: tsn_core::failover::reconcile

mod follow;
mod serve;

pub(crate) use follow::follow;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tsn_core::Result;
use tsn_core::change::{Entry, LogPoint};
use tsn_core::coordinator::ServerRef;
use tsn_core::id::{ClusterId, Epoch, FolderId, Position, ServerId};

/// A slave's first message, and again after a truncation: who it is and where its log
/// ends (durably).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The slave's cluster.
    pub cluster: ClusterId,
    /// The slave's server id.
    pub server: ServerId,
    /// The epoch whose master the slave follows.
    pub epoch: Epoch,
    /// The last entry of its log.
    pub last: LogPoint,
    /// The data folder its replica lives in.
    pub folder: FolderId,
}

/// What a slave sends its master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlaveMessage {
    /// Who it is and where its log ends.
    Hello(Hello),
    /// Its log is durable up to this position.
    Ack {
        /// The last durable position.
        durable: Position,
    },
}

/// What a master sends a slave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterMessage {
    /// Drop every entry after `keep` (the master never had them), then say Hello again.
    TruncateAfter {
        /// The last entry both logs hold.
        keep: Position,
    },
    /// The next entries of the master's log.
    Batch {
        /// The master's epoch.
        epoch: Epoch,
        /// Consecutive entries, following what the slave holds.
        entries: Vec<Entry>,
        /// The master's commit position when it sent them.
        commit: Position,
    },
}

/// One direction of a replication stream, as its receiver reads it.
#[async_trait]
pub trait Incoming<T>: Send {
    /// The next message; `None` once the other side has ended the stream.
    async fn next(&mut self) -> Result<Option<T>>;
}

#[async_trait]
impl<T: Send> Incoming<T> for mpsc::Receiver<Result<T>> {
    async fn next(&mut self) -> Result<Option<T>> {
        self.recv().await.transpose()
    }
}

/// How a slave reaches its master: what a transport provides.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// Opens a replication stream to `master`, sending it what `outgoing` yields (a
    /// [`Hello`] is already queued there: the master answers only after it); returns the
    /// master's messages.
    async fn open(
        &self,
        master: &ServerRef,
        outgoing: mpsc::Receiver<SlaveMessage>,
    ) -> Result<Box<dyn Incoming<MasterMessage>>>;
}
