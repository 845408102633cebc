//! [`FileStore`]: the change log, the state it implies and the course view, tied together.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{OwnedMutexGuard, RwLock, oneshot};
use tsn_core::change::{Entry, LogPoint};
use tsn_core::id::{ClusterId, Membership, Position, ServerId};
use tsn_core::state::{Delivery, State};
use tsn_core::{Error, Result, Store};

use crate::commit::Marker;
use crate::index::{Index, Seek};
use crate::layout::Layout;
use crate::log::{self, At, Record, Scanner, next_sound_record};
use crate::recovery::{Cut, Recovery, replay};
use crate::view::{self, Queue};

/// How many bytes a read of the log takes from the file at a time.
const READ_BUFFER: usize = 1 << 16;

/// How many of the last durable entries the store keeps in memory for
/// [`Store::entries_after`]: more than a master lets wait for their commit, so that a
/// slave or a feed keeping up never reads the file.
const RECENT_ENTRIES: usize = 32_768;

/// The change log's file name in a replica folder.
pub const LOG_FILE: &str = "changes.log";

/// The folder of one cluster: `<data_dir>/cluster_<cluster>`, holding a folder per
/// replica.
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
/// Dropping the store waits for the view writer to write what is durable and record it in
/// the view's marker; what was appended but not flushed is lost, as in a crash, and is
/// not written to the view either.
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
    /// The state's last entry, set under `inner` whenever it changes, for
    /// [`Store::last`], which must not wait for `inner`.
    last: Mutex<LogPoint>,
    /// The last durable position.
    durable: AtomicU64,
    /// Held by the one flush (or truncation) writing to the log at a time.
    flusher: Arc<tokio::sync::Mutex<()>>,
    /// Held shared by readers of the log file, exclusively by a truncation.
    gate: RwLock<()>,
    /// The commit marker, for readers in other processes.
    commit: Mutex<Marker>,
    /// The course view writer's work. Taken under `inner` when both are (never the other
    /// way round).
    view: Arc<Queue>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    layout: Layout,
    /// Where the durable records start; it covers as many as are durable.
    index: Index,
    /// The end of the last durable record: the log file's length.
    end: u64,
    /// Entries appended and not yet durable, in order, with their records' lengths.
    unflushed: VecDeque<(Entry, u64)>,
    /// The last durable entries, at most [`RECENT_ENTRIES`], in order, ending with the
    /// last durable one: slaves and feeds that follow the log closely read them from here
    /// rather than from the file.
    recent: VecDeque<Entry>,
    /// The records of the `unflushed` entries that no flush has taken yet.
    buffer: Vec<u8>,
    /// Why the log can take no more writes: a failed write whose undoing failed too.
    broken: Option<String>,
}

impl FileStore {
    /// Opens the replica in `dir` (creating the folder if missing): reads the change log,
    /// cuts a damaged tail off it (a write cut short by a crash), rebuilds the state, and
    /// brings the course view up to
    /// date: nothing to write when its marker says it is current, the files the entries
    /// after the marker touch when it is behind, every file otherwise (see the
    /// [crate docs](crate)).
    ///
    /// Fails with [`Error::Corrupt`], changing nothing, when a damaged record was surely
    /// durable (the view or commit marker counts it) and sound records follow it: damage in
    /// the middle of the log, which no crash makes. (Damage past the markers may be a write
    /// that a power loss tore with later sectors kept, and is cut.)
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
        let recorded = view::recorded_position(dir);
        let found = replay(&file, membership, len, recorded)
            .map_err(|e| Error::storage(at("reading the change log", &log_path), e))?;
        let entries = found.index.len();
        // How far the log was surely durable: the markers are written only for entries
        // already synced (never synced themselves, they can only be behind).
        let was_durable = recorded
            .filter(|&p| p != view::UNKNOWN)
            .unwrap_or(0)
            .max(crate::commit::read_commit(dir).map_or(0, |p| p.0));
        if let Some(damage) = &found.damage
            && entries < was_durable
        {
            let next = next_sound_record(&file, found.end + 1, len)
                .map_err(|e| Error::storage(at("reading the change log", &log_path), e))?;
            if let Some(next) = next {
                return Err(Error::Corrupt(format!(
                    "{}: the record of position {} at offset {} is damaged ({damage}) and sound \
                     records follow it (from offset {next}); that is no write cut short by a \
                     crash, so nothing was cut. Restore the file, or move the folder {} away: \
                     the server then copies its cluster's log from the master",
                    log_path.display(),
                    entries + 1,
                    found.end,
                    dir.display()
                )));
            }
        }
        let view = view::Opening::start(dir, recorded, entries, found.damage.is_none())?;
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

        let commit = Marker::open(dir, entries)?;
        let (pos, view_files) =
            view.finish(dir, &found.layout, &found.state, &found.touched, entries)?;
        let queue = Arc::new(Queue::new(Position(entries), pos));

        let recovery = Recovery {
            entries,
            cut,
            view_files,
        };
        let shared = Shared {
            dir: dir.to_path_buf(),
            log_path,
            file,
            last: Mutex::new(found.state.last()),
            inner: Mutex::new(Inner {
                state: found.state,
                layout: found.layout,
                index: found.index,
                end: found.end,
                unflushed: VecDeque::new(),
                recent: VecDeque::new(),
                buffer: Vec::new(),
                broken: None,
            }),
            durable: AtomicU64::new(entries),
            flusher: Arc::new(tokio::sync::Mutex::new(())),
            gate: RwLock::new(()),
            commit: Mutex::new(commit),
            view: Arc::clone(&queue),
        };
        let shared = Arc::new(shared);
        let source: Arc<dyn view::Source> = Arc::clone(&shared) as Arc<dyn view::Source>;
        let thread = view::spawn(dir.to_path_buf(), queue, source, Position(entries))
            .map_err(|e| Error::storage(at("starting the course view writer for", dir), e))?;
        let store = FileStore {
            shared,
            view: Some(thread),
        };
        Ok((store, recovery))
    }

    /// The replica folder.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Waits until every course view edit queued so far (by every append that returned
    /// before this call) is written to its file, including the edits of entries not yet
    /// durable (which the writer otherwise holds back until they are). Not a disk sync:
    /// the view is never synced. For tests and tools that read the view files; under an
    /// overload that never ends (the view stale, see the [crate docs](crate)) it waits
    /// until the writer catches up.
    pub async fn settle_view(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.view.settle(tx) {
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

    /// Copies the state's last entry for [`Store::last`]; called holding `inner`.
    fn note_last(&self, state: &State) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = state.last();
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
        for (entry, len) in inner.unflushed.drain(..count) {
            inner.index.push(offset);
            offset += len;
            inner.recent.push_back(entry);
        }
        let surplus = inner.recent.len().saturating_sub(RECENT_ENTRIES);
        inner.recent.drain(..surplus);
        inner.end = offset;
        let durable = inner.index.len();
        self.durable.store(durable, Ordering::Release);
        self.view.durable(Position(durable));
        Ok(Position(durable))
    }

    /// Reads `count` durable records from the one of position `first`, which `seek` locates,
    /// not past `end` (the durable end of the log); returns them and where the record after
    /// them starts. A log that ends before them is corrupt.
    fn read_records(
        &self,
        seek: Seek,
        first: Position,
        count: u64,
        end: u64,
    ) -> Result<(Vec<Entry>, u64)> {
        let failed = |e| {
            Error::storage(
                format!("reading the change log {}", self.log_path.display()),
                e,
            )
        };
        let input = At::new(&self.file, seek.offset, end);
        let mut scanner = Scanner::new(BufReader::with_capacity(READ_BUFFER, input));
        let mut entries = Vec::new();
        let mut offset = seek.offset;
        let mut expected = Position(first.0.saturating_sub(seek.skip));
        loop {
            if expected.0 >= first.0 + count {
                return Ok((entries, offset));
            }
            match scanner.next::<Entry>().map_err(failed)? {
                Record::End => {
                    return Err(Error::Corrupt(format!(
                        "{}: the log ends where position {expected} belongs",
                        self.log_path.display()
                    )));
                }
                Record::Whole {
                    value: entry, len, ..
                } if entry.position == expected => {
                    if expected >= first {
                        entries.push(entry);
                    }
                    offset += len;
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
        let (seek, end, membership) = {
            let inner = self.lock();
            self.broken(&inner)?;
            if keep >= inner.state.last().position {
                return Ok(());
            }
            (
                inner.index.seek(keep.0, inner.end),
                inner.end,
                inner.state.membership(),
            )
        };
        let (_, cut_at) = self.read_records(seek, keep.next(), 0, end)?;
        let at = |what: &str| format!("{what} {}", self.log_path.display());
        let found = replay(&self.file, membership, cut_at, None)
            .map_err(|e| Error::storage(at("reading the change log"), e))?;
        if let Some(damage) = found.damage {
            return Err(Error::Corrupt(format!(
                "{}: {damage}, before offset {cut_at}",
                self.log_path.display()
            )));
        }
        let mut inner = self.lock();
        // The view shows entries about to go: its marker must say so before they do.
        self.view
            .hold_marker()
            .map_err(|e| Error::storage(at("invalidating the course view marker beside"), e))?;
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
        let kept = found.index.len();
        self.view.rebuild(view::Rebuild {
            state: found.state.clone(),
            layout: found.layout.clone(),
            through: Position(kept),
        });
        inner.state = found.state;
        self.note_last(&inner.state);
        inner.layout = found.layout;
        inner.index = found.index;
        inner.end = found.end;
        inner.unflushed.clear();
        inner.recent.clear();
        inner.buffer.clear();
        self.durable.store(kept, Ordering::Release);
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
            .collect::<Result<Vec<_>>>();
        self.shared.note_last(&inner.state);
        let deliveries = deliveries?;
        inner.buffer.extend_from_slice(&records);
        inner.unflushed.extend(entries.iter().cloned().zip(lens));
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            self.shared.view.push(first.position, last.position, edits);
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

    fn last(&self) -> LogPoint {
        *self.shared.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn entries_after(&self, after: Position, max: usize) -> Result<Vec<Entry>> {
        let _gate = self.shared.gate.read().await;
        let (in_file, recent, pending) = {
            let inner = self.shared.lock();
            let last = inner.state.last().position.0;
            let start = after.0.min(last);
            let end = start.saturating_add(max as u64).min(last);
            let durable = inner.index.len();
            // The recent entries are those after `recent_from`, through `durable`.
            let recent_from = durable - inner.recent.len() as u64;
            let mut recent: Vec<Entry> = Vec::new();
            if start >= recent_from && start < end.min(durable) {
                let range =
                    (start - recent_from) as usize..(end.min(durable) - recent_from) as usize;
                recent.extend(inner.recent.range(range).cloned());
            }
            let in_file = (recent.is_empty() && start < end.min(durable)).then(|| {
                let seek = inner.index.seek(start, inner.end);
                (
                    seek,
                    Position(start + 1),
                    end.min(durable) - start,
                    inner.end,
                )
            });
            let pending: Vec<Entry> = (start.max(durable)..end)
                .filter_map(|p| usize::try_from(p - durable).ok())
                .filter_map(|i| inner.unflushed.get(i).map(|(entry, _)| entry.clone()))
                .collect();
            (in_file, recent, pending)
        };
        let mut entries = match in_file {
            Some((seek, first, count, end)) => {
                let shared = Arc::clone(&self.shared);
                tokio::task::spawn_blocking(move || {
                    shared
                        .read_records(seek, first, count, end)
                        .map(|(entries, _)| entries)
                })
                .await
                .map_err(|e| {
                    Error::storage(
                        format!("reading the change log {}", self.shared.log_path.display()),
                        e,
                    )
                })??
            }
            None => recent,
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
        self.shared.view.close();
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

impl view::Source for Shared {
    fn with_view(&self, f: &mut dyn FnMut(&Layout, &State)) {
        let inner = self.lock();
        f(&inner.layout, &inner.state);
    }
}

/// Syncs a folder, so that the files created in it survive a crash of the machine.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tsn_core::change::Change;
    use tsn_core::id::{ClusterId, Epoch, Time, UserId};
    use tsn_core::post::{Post, PostId, PostText};

    use super::*;
    use crate::layout::ViewFile;
    use crate::view::Source;

    fn membership() -> Membership {
        Membership {
            cluster: ClusterId(1),
            clusters: 3,
        }
    }

    /// Every view file in `dir`, by name, with its content.
    fn view_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .expect("list")
            .map(|item| item.expect("an item").path())
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?.to_owned();
                ViewFile::parse(&name)?;
                Some((name, std::fs::read(&path).expect("read")))
            })
            .collect()
    }

    /// Checks that two views are the same, naming the first file that differs.
    fn same(found: &BTreeMap<String, Vec<u8>>, expected: &BTreeMap<String, Vec<u8>>) {
        let names = |v: &BTreeMap<String, Vec<u8>>| v.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(found), names(expected), "the same files");
        for (name, text) in expected {
            let have = &found[name];
            let from = have
                .iter()
                .zip(text)
                .position(|(a, b)| a != b)
                .unwrap_or(have.len().min(text.len()))
                .saturating_sub(100);
            assert_eq!(
                String::from_utf8_lossy(&have[from..]),
                String::from_utf8_lossy(&text[from..]),
                "{name}, from byte {from}"
            );
        }
    }

    /// The view a full rebuild writes from the store's state.
    fn rebuilt(store: &FileStore) -> BTreeMap<String, Vec<u8>> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        store.shared.with_view(&mut |layout, state| {
            view::update_view(dir.path(), layout, state, view::Scope::Every).expect("rebuild");
        });
        view_files(dir.path())
    }

    /// Random changes among `users` users: joins, follows, unfollows and posts.
    struct Changes {
        seed: u64,
        users: u32,
        seq: u64,
        next: u64,
    }

    impl Changes {
        fn random(&mut self, n: u32) -> u32 {
            self.seed = self
                .seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.seed >> 33) % u64::from(n)) as u32
        }

        fn user(&mut self) -> UserId {
            UserId::new(self.random(self.users) + 1).expect("a user")
        }

        fn entries(&mut self, count: usize) -> Vec<Entry> {
            (0..count)
                .map(|_| {
                    self.seq += 1;
                    let time = Time(1_700_000_000_000_000_000 + self.seq * 1_000_000);
                    let change = match self.random(20) {
                        0 => Change::UserJoined {
                            user: self.user(),
                            time,
                        },
                        1..=3 => Change::Followed {
                            follower: self.user(),
                            followee: self.user(),
                            time,
                        },
                        4 => Change::Unfollowed {
                            follower: self.user(),
                            followee: self.user(),
                            time,
                        },
                        _ => Change::Posted(Post {
                            id: PostId {
                                origin: 1,
                                seq: self.seq,
                            },
                            author: self.user(),
                            time,
                            text: PostText::new(format!("post {} \\ of a test", self.seq))
                                .expect("a post"),
                        }),
                    };
                    self.next += 1;
                    Entry {
                        position: Position(self.next),
                        epoch: Epoch(1),
                        change,
                    }
                })
                .collect()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_overloaded_writer_drops_edits_and_repairs_their_files() {
        for (seed, limit) in [(7, 3_000), (8, 1_000), (9, 20_000), (10, 3_000)] {
            overload(seed, limit).await;
        }
    }

    /// Appends random changes among 60 users to a store whose queue holds `limit` bytes,
    /// flushing every few appends; checks the view after, and after a close while behind.
    async fn overload(seed: u64, limit: usize) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (store, _) = FileStore::open(dir.path(), membership()).expect("open");
        store.shared.view.set_limit(limit);
        let mut changes = Changes {
            seed,
            users: 60,
            seq: 0,
            next: 0,
        };
        let mut most = 0;
        for round in 0..400 {
            let count = changes.random(12) as usize + 1;
            store.append(&changes.entries(count)).expect("append");
            if round % 4 == 0 {
                store.flush().await.expect("flush");
            }
            most = most.max(store.shared.view.stats().1);
        }
        store.flush().await.expect("flush");
        store.settle_view().await;
        let (dropped, _) = store.shared.view.stats();
        assert!(
            dropped > 10 || limit > 3_000,
            "the writer fell behind: {dropped} appends dropped"
        );
        assert!(most <= limit, "at most {limit} bytes queued, saw {most}");
        same(&view_files(dir.path()), &rebuilt(&store));

        // Closed while behind: the open repairs what is left.
        for round in 0..100 {
            store.append(&changes.entries(10)).expect("append");
            if round % 10 == 0 {
                store.flush().await.expect("flush");
            }
        }
        store.flush().await.expect("flush");
        let expected = rebuilt(&store);
        drop(store);
        let (store, _) = FileStore::open(dir.path(), membership()).expect("reopen");
        same(&view_files(dir.path()), &expected);
        drop(store);
        let (_store, recovery) = FileStore::open(dir.path(), membership()).expect("reopen");
        assert_eq!(recovery.view_files, 0);
    }
}
