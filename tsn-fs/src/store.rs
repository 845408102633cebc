//! [`FileStore`]: the change log, the state it implies and the course view, tied together.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{OwnedMutexGuard, RwLock, oneshot};
use tsn_core::change::Entry;
use tsn_core::id::{ClusterId, Membership, Position, ServerId};
use tsn_core::state::{Delivery, State};
use tsn_core::{Error, Result, Store};

use crate::commit::Marker;
use crate::layout::Layout;
use crate::log::{self, Record, Scanner};
use crate::recovery::{Cut, Recovery, replay};
use crate::view::{self, Op};

/// The change log's file name in a replica folder.
pub const LOG_FILE: &str = "changes.log";

/// The folder of one cluster: `<data_dir>/cluster_<cluster>`, holding a folder per
/// replica and the inbox.
pub fn cluster_dir(data_dir: &Path, cluster: ClusterId) -> PathBuf {
    data_dir.join(format!("cluster_{}", cluster.0))
}

/// The folder of one replica: `<data_dir>/cluster_<cluster>/<server>`.
pub fn replica_dir(data_dir: &Path, cluster: ClusterId, server: ServerId) -> PathBuf {
    cluster_dir(data_dir, cluster).join(server.0.to_string())
}

/// A [`Store`] in a folder of the local file system: a change log, fsynced in groups, and
/// the course's readable files kept current beside it. See the [crate docs](crate).
///
/// Dropping the store waits for the view writer to finish what is queued; what was
/// appended but not flushed is lost, as in a crash.
#[derive(Debug)]
pub struct FileStore {
    shared: Arc<Shared>,
    view: Option<JoinHandle<()>>,
}

/// What the store's handle and its blocking tasks share.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    log_path: PathBuf,
    /// The log, opened to append (writes always go to its end) and locked against other
    /// processes; reads are positioned.
    file: File,
    inner: Mutex<Inner>,
    /// The last durable position.
    durable: AtomicU64,
    /// Held by the one flush (or truncation) writing to the log at a time.
    flusher: Arc<tokio::sync::Mutex<()>>,
    /// Held shared by readers of the log file, exclusively by a truncation.
    gate: RwLock<()>,
    /// The commit marker, for readers in other processes.
    commit: Mutex<Marker>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    layout: Layout,
    /// Where each durable record starts: `offsets[i]` is the record of position `i + 1`.
    offsets: Vec<u64>,
    /// The end of the last durable record: the log file's length.
    end: u64,
    /// Entries appended and not yet durable, in order, with their records' lengths.
    unflushed: VecDeque<(Entry, u64)>,
    /// The records of the `unflushed` entries that no flush has taken yet.
    buffer: Vec<u8>,
    /// Why the log can take no more writes: a failed write whose undoing failed too.
    broken: Option<String>,
    /// The view writer's queue; `None` once the store is being dropped.
    view: Option<Sender<Op>>,
}

impl FileStore {
    /// Opens the replica in `dir` (creating the folder if missing): reads the change log,
    /// cuts a damaged tail off it, rebuilds the state and the whole course view.
    ///
    /// Records `membership` in the folder on first open, and refuses a different one later
    /// ([`Error::Invalid`]). Fails with [`Error::Storage`], naming the path, when the
    /// folder or the log cannot be created, read or locked (another process has the
    /// replica open).
    pub fn open(dir: &Path, membership: Membership) -> Result<(FileStore, Recovery)> {
        let at = |what: &str, path: &Path| format!("{what} {}", path.display());
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::storage(at("creating the replica folder", dir), e))?;
        let log_path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(|e| Error::storage(at("opening the change log", &log_path), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::storage(
                    at("locking the change log", &log_path),
                    "another process (or store) has this replica open",
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::storage(at("locking the change log", &log_path), e));
            }
        }
        sync_dir(dir).map_err(|e| Error::storage(at("syncing the replica folder", dir), e))?;
        crate::membership::record(dir, membership)?;

        let len = file
            .metadata()
            .map_err(|e| Error::storage(at("reading the change log", &log_path), e))?
            .len();
        let found = replay(&file, membership, len)
            .map_err(|e| Error::storage(at("reading the change log", &log_path), e))?;
        let cut = match found.damage {
            Some(damage) => {
                file.set_len(found.end)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::storage(at("repairing the change log", &log_path), e))?;
                let cut = Cut {
                    offset: found.end,
                    bytes: len - found.end,
                    damage,
                };
                tracing::warn!(log = %log_path.display(), "repaired the change log: {cut}");
                Some(cut)
            }
            None => None,
        };

        let commit = Marker::open(dir, found.offsets.len() as u64)?;
        let view_files = view::rebuild_view(dir, &found.layout, &found.state)
            .map_err(|e| Error::storage(at("writing the course view in", dir), e))?;
        let (tx, thread) = view::spawn(dir.to_path_buf())
            .map_err(|e| Error::storage(at("starting the course view writer for", dir), e))?;

        let entries = found.offsets.len() as u64;
        let recovery = Recovery {
            entries,
            cut,
            view_files,
        };
        let shared = Shared {
            dir: dir.to_path_buf(),
            log_path,
            file,
            inner: Mutex::new(Inner {
                state: found.state,
                layout: found.layout,
                offsets: found.offsets,
                end: found.end,
                unflushed: VecDeque::new(),
                buffer: Vec::new(),
                broken: None,
                view: Some(tx),
            }),
            durable: AtomicU64::new(entries),
            flusher: Arc::new(tokio::sync::Mutex::new(())),
            gate: RwLock::new(()),
            commit: Mutex::new(commit),
        };
        let store = FileStore {
            shared: Arc::new(shared),
            view: Some(thread),
        };
        Ok((store, recovery))
    }

    /// The replica folder.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Waits until every course view edit queued so far (by every append that returned
    /// before this call) is written to its file. Not a disk sync: the view is never synced.
    /// For tests and tools that read the view files.
    pub async fn settle_view(&self) {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .shared
            .lock()
            .view
            .as_ref()
            .is_some_and(|view| view.send(Op::Settle(tx)).is_ok());
        if queued {
            let _ = rx.await;
        }
    }

    /// Takes the flusher and, if anything appended before `target` is not durable yet,
    /// writes it out; returns the durable position.
    async fn flush_to(&self, target: Position) -> Result<Position> {
        let durable = self.durable();
        if durable >= target {
            return Ok(durable);
        }
        let flusher = Arc::clone(&self.shared.flusher).lock_owned().await;
        let durable = self.durable();
        if durable >= target {
            return Ok(durable);
        }
        self.blocking("flushing", flusher, Shared::write_pending)
            .await
    }

    /// Runs `work` on a blocking thread, holding `flusher` until it is done (even if the
    /// caller stops waiting), so that log writes never overlap.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &str,
        flusher: OwnedMutexGuard<()>,
        work: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let _flusher = flusher;
            work(&shared)
        })
        .await
        .map_err(|e| {
            Error::storage(
                format!("{what} the change log {}", self.shared.log_path.display()),
                e,
            )
        })?
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn commit(&self) -> MutexGuard<'_, Marker> {
        self.commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn broken(&self, inner: &Inner) -> Result<()> {
        match &inner.broken {
            Some(why) => Err(Error::Corrupt(format!(
                "the change log {} takes no more writes: {why}",
                self.log_path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Writes every record not yet taken by a flush, syncs, and makes them durable. The
    /// caller holds the flusher.
    fn write_pending(&self) -> Result<Position> {
        let (bytes, count, start) = {
            let mut inner = self.lock();
            self.broken(&inner)?;
            let count = inner.unflushed.len();
            (std::mem::take(&mut inner.buffer), count, inner.end)
        };
        if count == 0 {
            return Ok(Position(self.durable.load(Ordering::Acquire)));
        }
        let written = (&self.file)
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Err(e) = written {
            // Undo a partial write, and keep the records for the next flush to try again.
            match self.file.set_len(start).and_then(|()| self.file.sync_all()) {
                Ok(()) => {
                    let mut bytes = bytes;
                    bytes.extend_from_slice(&inner.buffer);
                    inner.buffer = bytes;
                }
                Err(undo) => {
                    inner.broken = Some(format!(
                        "a write failed ({e}) and cutting it off failed too ({undo})"
                    ));
                }
            }
            return Err(Error::storage(
                format!("writing the change log {}", self.log_path.display()),
                e,
            ));
        }
        let mut offset = start;
        for (_, len) in inner.unflushed.drain(..count) {
            inner.offsets.push(offset);
            offset += len;
        }
        inner.end = offset;
        let durable = inner.offsets.len() as u64;
        self.durable.store(durable, Ordering::Release);
        Ok(Position(durable))
    }

    /// Reads the durable records `first`, `first + 1` ... from `from` to `to` in the log.
    fn read_records(&self, from: u64, to: u64, first: Position) -> Result<Vec<Entry>> {
        let failed = |e| {
            Error::storage(
                format!("reading the change log {}", self.log_path.display()),
                e,
            )
        };
        let mut bytes = vec![0; (to - from) as usize];
        self.file.read_exact_at(&mut bytes, from).map_err(failed)?;
        let mut scanner = Scanner::new(bytes.as_slice());
        let mut entries = Vec::new();
        let mut expected = first;
        loop {
            match scanner.next::<Entry>().map_err(failed)? {
                Record::End => return Ok(entries),
                Record::Whole { value: entry, .. } if entry.position == expected => {
                    entries.push(entry);
                    expected = expected.next();
                }
                Record::Whole { value: entry, .. } => {
                    return Err(Error::Corrupt(format!(
                        "{}: the record where position {expected} belongs holds position {}",
                        self.log_path.display(),
                        entry.position
                    )));
                }
                Record::Damaged(damage) => {
                    return Err(Error::Corrupt(format!(
                        "{}: the record of position {expected}: {damage}",
                        self.log_path.display()
                    )));
                }
            }
        }
    }

    /// Drops every entry after `keep` from the log (which the caller has flushed, holding
    /// the flusher and the gate) and rebuilds the state and the view from what remains.
    fn cut_after(&self, keep: Position) -> Result<()> {
        let (cut_at, membership) = {
            let inner = self.lock();
            self.broken(&inner)?;
            if keep >= inner.state.last().position {
                return Ok(());
            }
            let cut_at = usize::try_from(keep.0)
                .ok()
                .and_then(|i| inner.offsets.get(i).copied())
                .unwrap_or(inner.end);
            (cut_at, inner.state.membership())
        };
        let at = |what: &str| format!("{what} {}", self.log_path.display());
        let found = replay(&self.file, membership, cut_at)
            .map_err(|e| Error::storage(at("reading the change log"), e))?;
        if let Some(damage) = found.damage {
            return Err(Error::Corrupt(format!(
                "{}: {damage}, before offset {cut_at}",
                self.log_path.display()
            )));
        }
        let mut inner = self.lock();
        if let Err(e) = self
            .file
            .set_len(cut_at)
            .and_then(|()| self.file.sync_all())
        {
            inner.broken = Some(format!("cutting it at offset {cut_at} failed ({e})"));
            return Err(Error::storage(at("truncating the change log"), e));
        }
        let dropped = inner.unflushed.len();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "entries appended during a truncation of the log were dropped with it"
            );
        }
        let kept = found.offsets.len() as u64;
        let view = Op::Rebuild(Box::new((found.state.clone(), found.layout.clone())));
        inner.state = found.state;
        inner.layout = found.layout;
        inner.offsets = found.offsets;
        inner.end = found.end;
        inner.unflushed.clear();
        inner.buffer.clear();
        self.durable.store(kept, Ordering::Release);
        if let Some(tx) = &inner.view {
            let _ = tx.send(view);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FileStore {
    fn append(&self, entries: &[Entry]) -> Result<Vec<Vec<Delivery>>> {
        let mut records = Vec::new();
        let mut lens = Vec::with_capacity(entries.len());
        for entry in entries {
            lens.push(log::encode(entry, &mut records)?);
        }
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        self.shared.broken(inner)?;
        inner.state.check_follows(entries)?;
        let mut edits = Vec::new();
        let deliveries = entries
            .iter()
            .map(|entry| {
                inner
                    .layout
                    .apply(&mut inner.state, entry, Some(&mut edits))
            })
            .collect::<Result<Vec<_>>>()?;
        inner.buffer.extend_from_slice(&records);
        inner.unflushed.extend(entries.iter().cloned().zip(lens));
        if let Some(view) = &inner.view
            && !edits.is_empty()
        {
            let _ = view.send(Op::Edits(edits));
        }
        Ok(deliveries)
    }

    async fn flush(&self) -> Result<Position> {
        let target = self.shared.lock().state.last().position;
        self.flush_to(target).await
    }

    fn durable(&self) -> Position {
        Position(self.shared.durable.load(Ordering::Acquire))
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.lock().state)
    }

    async fn entries_after(&self, after: Position, max: usize) -> Result<Vec<Entry>> {
        let _gate = self.shared.gate.read().await;
        let (in_file, pending) = {
            let inner = self.shared.lock();
            let last = inner.state.last().position.0;
            let start = after.0.min(last);
            let end = start.saturating_add(max as u64).min(last);
            let durable = inner.offsets.len() as u64;
            let offset = |p: u64| {
                usize::try_from(p)
                    .ok()
                    .and_then(|i| inner.offsets.get(i).copied())
                    .unwrap_or(inner.end)
            };
            let in_file = (start < end.min(durable))
                .then(|| (offset(start), offset(end.min(durable)), Position(start + 1)));
            let pending: Vec<Entry> = (start.max(durable)..end)
                .filter_map(|p| usize::try_from(p - durable).ok())
                .filter_map(|i| inner.unflushed.get(i).map(|(entry, _)| entry.clone()))
                .collect();
            (in_file, pending)
        };
        let mut entries = match in_file {
            Some((from, to, first)) => {
                let shared = Arc::clone(&self.shared);
                tokio::task::spawn_blocking(move || shared.read_records(from, to, first))
                    .await
                    .map_err(|e| {
                        Error::storage(
                            format!("reading the change log {}", self.shared.log_path.display()),
                            e,
                        )
                    })??
            }
            None => Vec::new(),
        };
        entries.extend(pending);
        Ok(entries)
    }

    async fn truncate_after(&self, keep: Position) -> Result<()> {
        let _gate = self.shared.gate.write().await;
        let flusher = Arc::clone(&self.shared.flusher).lock_owned().await;
        self.blocking("truncating", flusher, move |shared| {
            shared.write_pending()?;
            shared.cut_after(keep)?;
            shared.commit().lower(keep);
            Ok(())
        })
        .await
    }

    /// Writes `through` to the replica's [`COMMIT_FILE`](crate::COMMIT_FILE) if it is past
    /// what was written: one positioned write, not synced. A failure is logged (at most
    /// every few seconds) and leaves the marker behind.
    fn record_commit(&self, through: Position) {
        self.shared.commit().advance(through);
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        drop(self.shared.lock().view.take());
        if let Some(thread) = self.view.take()
            && thread.join().is_err()
        {
            tracing::warn!(
                dir = %self.shared.dir.display(),
                "the course view writer panicked"
            );
        }
    }
}

/// Syncs a folder, so that the files created in it survive a crash of the machine.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
