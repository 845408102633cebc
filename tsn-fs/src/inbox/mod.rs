//! The inbox: what a cluster's synchronizer receives from other clusters, handed to the
//! cluster's master through files.
//!
//! `<data-dir>/cluster_<c>/inbox/` ([`inbox_dir`]) holds one file per source cluster `x`,
//! `from_<x>.log` ([`inbox_file`]). The synchronizer of cluster `c` is its only writer
//! ([`InboxWriter`]); the master of the cluster reads it ([`InboxPeer`], a
//! [`SyncPeer`](tsn_core::SyncPeer)), merges what it reads and appends that to its log,
//! with the merge cursor, through its normal write path.
//!
//! The file is a sequence of records framed like the change log's (`[u32 LE length][u32 LE
//! CRC-32][payload]`), the payload being the JSON of one batch of changes, a
//! [`Changes`](tsn_core::sync::Changes): `{"through":P,"entries":[...]}`. A batch whose
//! JSON would pass the record limit (1 MiB) is written as several records, each but the
//! last covering through its own last entry.
//!
//! Nothing in the inbox is synced: it is a buffer. What the master merged is in its log,
//! durable and replicated, with the cursor; after any crash the synchronizer fetches again
//! from that cursor, and merging a batch twice changes nothing.

mod peer;
mod writer;

pub use peer::InboxPeer;
pub use writer::{INBOX_COMPACT_LIMIT, InboxWriter};

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tsn_core::change::Entry;
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Position};
use tsn_core::{Error, Result};

/// The inbox folder of cluster `cluster`: `<data_dir>/cluster_<cluster>/inbox`.
pub fn inbox_dir(data_dir: &Path, cluster: ClusterId) -> PathBuf {
    crate::cluster_dir(data_dir, cluster).join("inbox")
}

/// The file of an inbox that holds what came from cluster `from`: `from_<from>.log`.
pub fn inbox_file(inbox_dir: &Path, from: ClusterId) -> PathBuf {
    inbox_dir.join(file_name(from))
}

/// The file of an inbox that its synchronizer holds locked while it runs.
pub const SYNCHRONIZER_LOCK_FILE: &str = "synchronizer.lock";

/// An inbox claimed by one synchronizer process: a second synchronizer of the same cluster
/// on the same data folder is refused while the first runs. Released when dropped (or
/// when the process dies, however it dies).
#[derive(Debug)]
pub struct InboxClaim {
    _lock: File,
}

impl InboxClaim {
    /// Claims `inbox_dir` (creating it if missing). Fails with [`Error::Storage`] when it
    /// cannot, or when another synchronizer holds it.
    pub fn take(inbox_dir: &Path) -> Result<InboxClaim> {
        let path = inbox_dir.join(SYNCHRONIZER_LOCK_FILE);
        let failed = |e| Error::storage(format!("claiming the inbox {}", inbox_dir.display()), e);
        std::fs::create_dir_all(inbox_dir).map_err(failed)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(failed)?;
        writer::lock(
            &file,
            "another synchronizer of this cluster runs on this data folder",
        )
        .map_err(failed)?;
        Ok(InboxClaim { _lock: file })
    }
}

fn file_name(from: ClusterId) -> String {
    format!("from_{}.log", from.0)
}

/// A batch as written: a [`Changes`](tsn_core::sync::Changes), borrowed.
#[derive(Serialize)]
struct BatchRef<'a> {
    through: Position,
    entries: &'a [Entry],
    #[serde(skip_serializing_if = "LogId::is_unknown")]
    log: LogId,
}

/// A batch as read back.
#[derive(Debug, Deserialize)]
struct Batch {
    through: Position,
    entries: Vec<Entry>,
    #[serde(default)]
    log: LogId,
}
