//! [`Board`]: where coordinators that share their work keep what they must agree on.

use async_trait::async_trait;
use tokio::sync::mpsc;
use tsn_core::Result;
use tsn_core::coordinator::{ClusterState, Report, ServerRef};
use tsn_core::id::{ClusterId, FolderId, ServerId};

/// A board's revision: it grows with every write, and each record carries the revision of
/// its last write (0: never written).
pub type Revision = i64;

/// Something written on the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A server's last heartbeat, as one of the coordinators received it.
    Heartbeat {
        /// The report.
        report: Report,
        /// The revision it was written at.
        revision: Revision,
    },
    /// A synchronizer's registration, as one of the coordinators received it.
    Sync {
        /// The synchronizer.
        sync: ServerRef,
        /// Its data folder.
        folder: FolderId,
        /// The revision it was written at.
        revision: Revision,
    },
    /// A coordinator's pulse: it writes one every little while, and while it sees its own
    /// come back it knows the board and its watch are live.
    Pulse {
        /// The coordinator's random id.
        from: u64,
    },
    /// A cluster's record: its epoch, master and in-sync set.
    Cluster {
        /// The cluster.
        cluster: ClusterId,
        /// What the record holds.
        state: ClusterState,
        /// The revision it was written at.
        revision: Revision,
    },
}

/// Everything on the board at one revision.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every record.
    pub notices: Vec<Notice>,
    /// The revision it was read at: a watch from the next one misses nothing.
    pub revision: Revision,
}

/// What [`Board::swap_cluster`] came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swap {
    /// Written, at this revision.
    Done(Revision),
    /// Not written: the record had changed, or the guard's server had sent a heartbeat.
    /// What the record holds now, and its revision (`None`: no record).
    Lost(Option<(ClusterState, Revision)>),
}

/// A store that coordinators share: their records, written by any of them, every write
/// seen by all through a watch, and cluster records changed only by compare-and-swap.
#[async_trait]
pub trait Board: Send + Sync + 'static {
    /// Every record, and the revision they were read at.
    async fn snapshot(&self) -> Result<Snapshot>;

    /// The records written after revision `after`, in the order written, as they come;
    /// the channel ends, or brings an error, when the watch breaks (read a snapshot and
    /// watch again).
    async fn watch(&self, after: Revision) -> Result<mpsc::Receiver<Result<Vec<Notice>>>>;

    /// Writes a server's heartbeat; the revision it was written at.
    async fn post_heartbeat(&self, report: &Report) -> Result<Revision>;

    /// Writes coordinator `from`'s pulse.
    async fn pulse(&self, from: u64) -> Result<()>;

    /// Writes a synchronizer's registration.
    async fn post_sync(&self, sync: &ServerRef, folder: FolderId) -> Result<()>;

    /// Writes `state` as `cluster`'s record if the record was last written at `expected`
    /// (0: there is none) and, with a `guard` `(server, revision)`, if that server's last
    /// heartbeat is still the one written at that revision; otherwise writes nothing.
    async fn swap_cluster(
        &self,
        cluster: ClusterId,
        expected: Revision,
        state: &ClusterState,
        guard: Option<(ServerId, Revision)>,
    ) -> Result<Swap>;
}
