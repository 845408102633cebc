//! [`InboxWriter`]: the synchronizer's side of an inbox file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use tsn_core::change::Entry;
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::{Changes, Handover};
use tsn_core::{Error, Result};

use super::{Batch, BatchRef, file_name};
use crate::log::{At, EncodeError, Record, Scanner, encode_value};

/// The size past which [`Handover::compact`](tsn_core::sync::Handover::compact) starts the file afresh: 4 MiB.
pub const INBOX_COMPACT_LIMIT: u64 = 4 << 20;

/// Appends the batches a synchronizer receives from one other cluster to that cluster's
/// file in the inbox ([`inbox_file`](crate::inbox_file)). The only writer of the file:
/// it holds a lock (`flock`) on it while open, and a second writer is refused.
///
/// Appends are not synced (the inbox is a buffer, see the [module docs](crate::inbox_dir)).
/// At open, a record that a crash cut short at the end of the file is cut off, so that
/// the next append starts at a record boundary.
#[derive(Debug)]
pub struct InboxWriter {
    dir: PathBuf,
    path: PathBuf,
    from: ClusterId,
    /// The file, opened to append and locked.
    file: File,
    /// Its length: the end of its last record.
    len: u64,
    written_through: Position,
    /// The log of the other cluster the batches in the file are from.
    log: LogId,
    compact_limit: u64,
}

impl InboxWriter {
    /// Opens (creating the folder and the file if missing) the file of `inbox_dir` that
    /// holds what comes from cluster `from`, reads what it holds and cuts a damaged tail.
    /// Fails with [`Error::Storage`] when it cannot, or when another writer has it open.
    pub fn open(inbox_dir: &Path, from: ClusterId) -> Result<InboxWriter> {
        let path = inbox_dir.join(file_name(from));
        let at = |what: &str| format!("{what} {}", path.display());
        std::fs::create_dir_all(inbox_dir).map_err(|e| {
            Error::storage(format!("creating the inbox {}", inbox_dir.display()), e)
        })?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::storage(at("opening the inbox file"), e))?;
        lock(&file, WRITER_HOLDER).map_err(|e| Error::storage(at("locking the inbox file"), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::storage(at("reading the inbox file"), e))?
            .len();
        let mut scanner = Scanner::new(BufReader::with_capacity(1 << 16, At::new(&file, 0, len)));
        let (mut end, mut written_through, mut log) = (0, Position(0), LogId::UNKNOWN);
        loop {
            match scanner
                .next::<Batch>()
                .map_err(|e| Error::storage(at("reading the inbox file"), e))?
            {
                Record::End => break,
                Record::Whole { value, len, .. } => {
                    end += len;
                    written_through = written_through.max(value.through);
                    log = value.log;
                }
                Record::Damaged(damage) => {
                    file.set_len(end)
                        .map_err(|e| Error::storage(at("repairing the inbox file"), e))?;
                    tracing::warn!(
                        inbox = %path.display(),
                        offset = end,
                        bytes = len - end,
                        %damage,
                        "cut a damaged tail from the inbox file"
                    );
                    break;
                }
            }
        }
        Ok(InboxWriter {
            dir: inbox_dir.to_path_buf(),
            path,
            from,
            file,
            len: end,
            written_through,
            log,
            compact_limit: INBOX_COMPACT_LIMIT,
        })
    }

    /// The same writer, compacting at `bytes` instead of [`INBOX_COMPACT_LIMIT`].
    pub fn with_compact_limit(mut self, bytes: u64) -> InboxWriter {
        self.compact_limit = bytes;
        self
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cluster whose changes the file holds.
    pub fn from(&self) -> ClusterId {
        self.from
    }

    /// Replaces the file by an empty one: written under a temporary name and renamed over
    /// it, so that a reader sees a new file (a new inode) and reads it from its start.
    fn start_afresh(&mut self) -> Result<()> {
        let temporary = self.dir.join(format!(".{}.tmp", file_name(self.from)));
        let fresh = || -> std::io::Result<File> {
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .truncate(false)
                .open(&temporary)?;
            file.set_len(0)?;
            lock(&file, WRITER_HOLDER)?;
            std::fs::rename(&temporary, &self.path)?;
            Ok(file)
        };
        match fresh() {
            Ok(file) => {
                self.file = file;
                self.len = 0;
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                Err(Error::storage(
                    format!("compacting the inbox file {}", self.path.display()),
                    e,
                ))
            }
        }
    }
}

/// The inbox file as the synchronizer's [`Handover`] to the cluster's master.
impl Handover for InboxWriter {
    /// The log of the other cluster that the file's batches are from (unknown for an empty
    /// file), and the highest `through` of the batches in the file (written by this writer
    /// or found at open): 0 for an empty file.
    fn written(&self) -> (LogId, Position) {
        (self.log, self.written_through)
    }

    /// Appends `changes` as one record (several if it is over the record limit) with one
    /// write; not synced. A batch with no entries whose `through` is not past
    /// [`written`](Handover::written) says nothing and is not written.
    /// A failed write is cut off again, so the file stays whole.
    ///
    /// A file holds batches of one log of the other cluster: a batch of another log (the
    /// other cluster started a new one, see [`tsn_core::sync`]) starts the file afresh, as
    /// [`Handover::compact`] does, first.
    fn append(&mut self, changes: &Changes) -> Result<()> {
        if changes.log.differs_from(self.log) {
            self.start_afresh()?;
            self.written_through = Position(0);
            tracing::info!(inbox = %self.path.display(), log = changes.log.0, "the other cluster has a new log: started the inbox file afresh");
        }
        if changes.entries.is_empty() && changes.through <= self.written_through {
            return Ok(());
        }
        let mut bytes = Vec::new();
        encode_batch(changes.through, &changes.entries, changes.log, &mut bytes)?;
        if let Err(e) = (&self.file).write_all(&bytes) {
            if let Err(undo) = self.file.set_len(self.len) {
                tracing::warn!(
                    inbox = %self.path.display(),
                    error = %undo,
                    "could not cut off a failed write; the next open does"
                );
            }
            return Err(Error::storage(
                format!("writing the inbox file {}", self.path.display()),
                e,
            ));
        }
        self.len += bytes.len() as u64;
        self.written_through = self.written_through.max(changes.through);
        if !changes.log.is_unknown() {
            self.log = changes.log;
        }
        Ok(())
    }

    /// Starts the file afresh when it is over the compaction limit and everything in it is
    /// merged (`merged`, the cursor the cluster's log records, is at least
    /// [`written`](Handover::written)). Returns whether it did.
    fn compact(&mut self, merged: Position) -> Result<bool> {
        if self.len <= self.compact_limit || merged < self.written_through {
            return Ok(false);
        }
        self.start_afresh()?;
        tracing::info!(inbox = %self.path.display(), through = %self.written_through, "compacted the inbox: the cluster has merged all it held");
        Ok(true)
    }
}

/// Takes the file's lock, or fails with `holder` (who has it) as the error's message.
pub(super) fn lock(file: &File, holder: &str) -> std::io::Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            holder.to_owned(),
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Who holds an inbox file's lock when [`InboxWriter`] cannot take it.
const WRITER_HOLDER: &str = "another synchronizer (or writer) has this inbox file open";

/// Appends the records of a batch to `out`, split in halves while a record would be over
/// the limit; each half but the last covers through its own last entry.
fn encode_batch(through: Position, entries: &[Entry], log: LogId, out: &mut Vec<u8>) -> Result<()> {
    let batch = BatchRef {
        through,
        entries,
        log,
    };
    match encode_value(&batch, out) {
        Ok(_) => Ok(()),
        Err(EncodeError::TooLong(_)) if entries.len() > 1 => {
            let (first, second) = entries.split_at(entries.len() / 2);
            let first_through = first.last().map_or(through, |e| e.position.min(through));
            encode_batch(first_through, first, log, out)?;
            encode_batch(through, second, log, out)
        }
        Err(e) => Err(e.into_error(&format!(
            "a batch of {} changes through position {through}",
            entries.len()
        ))),
    }
}
