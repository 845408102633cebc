//! The course view's writer: a thread that carries out the edits the store computes, in
//! batches, and keeps the view's marker (`view.pos`); and the repairs of the view at open.
//!
//! The view is never synced to disk: the log is the truth. See the crate docs
//! ([`crate`], "The course view") for what the marker promises and how an open uses it.
//!
//! # The writer
//!
//! The store queues the edits of each append ([`Queue::push`]) and tells the queue how far
//! the log is durable ([`Queue::durable`]). The writer takes every queued batch whose
//! entries are durable at once, groups the edits by file (keeping their order within a
//! file) and writes each file once: one append, or one rewrite (under a temporary name,
//! renamed over the file). After a batch it gathers edits for [`GATHER`] before the next
//! (unless the queue fills), so that under a steady stream of appends a busy file is
//! written once per batch rather than once per append. It writes nothing about an entry
//! before the entry is durable, so that a view file never shows what a crash can take from
//! the log — except when [`Queue::settle`] asks for everything at once (tests and tools),
//! in which case it first marks the view as unknown.
//!
//! # A bounded queue
//!
//! The queued edits hold at most [`PENDING_LIMIT`] bytes (counting a post's record once per
//! file it goes to, as the writer holds them grouped by file). An append never waits for
//! the writer: when its edits do not fit, the queue drops them, and the edits of every
//! later append, and keeps only the set of files they touch (a few bytes a file, at most
//! the number of files of the view) — the view is *stale* from that entry on. Once the
//! writer has written what was queued before, it repairs the stale files, oldest touched
//! first, a chunk at a time: it reads what they hold (outside any lock), takes from the
//! state, under the store's lock, what each lacks — the records or lines after those it
//! holds, for the files that only grow; about [`REPAIR_CHUNK`] bytes a chunk — formats it
//! outside the lock, waits until that state is durable, and appends it (or rewrites a
//! following or followers list). A file touched again meanwhile joins the set again; the
//! writer then remembers how many records it holds, and once every file left in the set
//! is such a file, it takes all of them at once and the repair ends: the queue takes edits
//! again. Memory stays bounded, an append waits at most for one repair step's taking under
//! the store's lock (a chunk of about [`REPAIR_CHUNK`] bytes, or, to end the repair, the
//! tails of at most [`FINISH_FILES`] files the writer knows), and the view lags during an
//! overload and catches up after it. A store closed while the view is stale finishes the
//! repair first if the state it repairs from is durable (else the next open does it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tsn_core::course::post_record;
use tsn_core::id::Position;
use tsn_core::state::State;

use crate::layout::{Edit, Have, Layout, Tail, ViewFile, units};
use crate::throttle::Throttle;

/// The view marker's file name in a replica folder: the log position through which the
/// view is current, 8 bytes little-endian at offset 0.
pub const VIEW_POS_FILE: &str = "view.pos";

/// The marker's value while the view may show entries the log may not keep (a rebuild in
/// progress, or edits written early for [`Queue::settle`]): ahead of any log, so an open
/// rebuilds the whole view.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// The most bytes of edits the queue holds before it drops them and marks the view stale.
pub(crate) const PENDING_LIMIT: usize = 4 << 20;

/// About how many bytes of files a repair takes from the state under the store's lock at
/// a time (it formats them after).
const REPAIR_CHUNK: usize = 1 << 20;

/// How many files a repair looks at a time at most.
const REPAIR_FILES: usize = 1024;

/// How many files, all known to the writer, a repair renders at once to end.
const FINISH_FILES: usize = 8192;

/// About how many bytes of files a repair reads at a time.
const REPAIR_READ: usize = 4 << 20;

/// How often the writer records its progress in the marker at most while it has more to
/// write; when it runs out of work it records it at once.
const MARK_EVERY: Duration = Duration::from_millis(200);

/// How long after a batch the writer gathers edits before it writes the next one (unless
/// the queue fills past half its limit): a file that a busy stream of appends touches
/// again and again is written once per batch, and the writer's writes do not slow the
/// log's flushes down by much. A write after a quiet spell starts at once.
const GATHER: Duration = Duration::from_millis(20);

/// How many append handles the writer keeps open; the least recently used is closed first.
const OPEN_FILES: usize = 64;

/// The position the view marker in `dir` records, if it holds one: `None` when the file is
/// missing, shorter than 8 bytes or unreadable.
pub(crate) fn recorded_position(dir: &Path) -> Option<u64> {
    let file = File::open(dir.join(VIEW_POS_FILE)).ok()?;
    let mut bytes = [0; 8];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The view marker's file, opened once; written in place and never synced. Owned by the
/// [`Queue`] once the store is open, so that a truncation and the writer agree on it.
#[derive(Debug)]
pub(crate) struct ViewPos {
    path: PathBuf,
    file: File,
    /// The value the file holds, as far as this process wrote it.
    written: Option<u64>,
    /// How many truncations have held the marker: each makes it say "unknown" until its
    /// rebuild is written.
    holds: u64,
    /// How many of those holds the rebuilds written so far answer (a rebuild answers every
    /// hold taken before it was queued, not one taken while it ran).
    answered: u64,
    /// A write failed: the file is removed (the next open rebuilds the whole view), and
    /// not written again unless a rebuild succeeds.
    removed: bool,
}

impl ViewPos {
    /// Opens (creating it if missing) the marker in `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<ViewPos> {
        let path = dir.join(VIEW_POS_FILE);
        Ok(ViewPos {
            file: open_marker(&path)?,
            path,
            written: None,
            holds: 0,
            answered: 0,
            removed: false,
        })
    }

    /// Records `value`: a position, or [`UNKNOWN`].
    pub(crate) fn record(&mut self, value: u64) -> io::Result<()> {
        self.file.write_all_at(&value.to_le_bytes(), 0)?;
        self.written = Some(value);
        Ok(())
    }

    /// Whether [`ViewPos::set`] would write `value`.
    fn wants(&self, value: u64) -> bool {
        self.holds == self.answered && !self.removed && self.written != Some(value)
    }

    /// Records `value` unless a truncation holds the marker or it was removed; removes it
    /// if the write fails.
    fn set(&mut self, value: u64) {
        if self.wants(value)
            && let Err(e) = self.record(value)
        {
            self.warn_unwritable(&e);
            self.remove();
        }
    }

    fn warn_unwritable(&self, error: &io::Error) {
        tracing::warn!(
            marker = %self.path.display(),
            %error,
            "could not write the course view marker"
        );
    }

    /// A view write failed: removes the marker (or, if it cannot, makes it say "unknown"),
    /// so that the next open rebuilds the view; it is not written again unless a rebuild
    /// succeeds.
    fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Still there: it must say "unknown", or at least hold nothing (read as missing).
            Err(e)
                if self
                    .record(UNKNOWN)
                    .or_else(|_| self.file.set_len(0))
                    .is_ok() =>
            {
                tracing::warn!(
                    marker = %self.path.display(),
                    error = %e,
                    "could not remove the course view marker; it says the view is unknown"
                );
            }
            Err(e) => tracing::error!(
                marker = %self.path.display(),
                error = %e,
                "could not remove the course view marker; remove it before the next open"
            ),
        }
    }

    /// A rebuild of the whole view, queued after `answers` holds, is written, current
    /// through `through`; unless a later truncation holds the marker, it says so.
    fn rebuilt(&mut self, through: Position, answers: u64) {
        self.answered = self.answered.max(answers);
        if self.holds > self.answered {
            return;
        }
        if self.removed {
            match open_marker(&self.path) {
                Ok(file) => {
                    self.file = file;
                    self.written = None;
                    self.removed = false;
                }
                Err(e) => return self.warn_unwritable(&e),
            }
        }
        self.set(through.0);
    }

    /// A rebuild, queued after `answers` holds, failed: the marker is removed, as after any
    /// failed view write.
    fn rebuild_failed(&mut self, answers: u64) {
        self.answered = self.answered.max(answers);
        self.remove();
    }
}

/// Opens (creating it if missing) the marker file at `path`, for positioned writes.
fn open_marker(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// The edits of one append, or of several without edits of their own.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The position of the append's last entry.
    through: Position,
    edits: Vec<Edit>,
    /// What the edits cost ([`Edit::cost`]).
    bytes: usize,
}

/// The files that edits dropped since an entry touch (each touched since it was last
/// repaired), in the order they were added: a file touched again waits its turn behind
/// the others.
#[derive(Debug, Default)]
struct Stale {
    /// The files in order, and files removed since (not in `seen`), passed over.
    files: VecDeque<ViewFile>,
    /// The files in the set.
    seen: HashSet<ViewFile>,
}

impl Stale {
    fn add(&mut self, edits: &[Edit]) {
        for &file in edits.iter().flat_map(Edit::files) {
            self.add_file(file);
        }
    }

    fn add_file(&mut self, file: ViewFile) {
        if self.seen.insert(file) {
            self.files.push_back(file);
        }
    }

    fn pop(&mut self) -> Option<ViewFile> {
        loop {
            let file = self.files.pop_front()?;
            if self.seen.remove(&file) {
                return Some(file);
            }
        }
    }

    fn remove(&mut self, file: ViewFile) {
        self.seen.remove(&file);
        if self.seen.is_empty() {
            self.files.clear();
        }
    }

    fn len(&self) -> usize {
        self.seen.len()
    }

    fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// A whole view to write, after a truncation of the log.
#[derive(Debug)]
pub(crate) struct Rebuild {
    pub(crate) state: State,
    pub(crate) layout: Layout,
    /// The log's last position.
    pub(crate) through: Position,
}

/// The writer's work, shared by the store and the writer thread.
#[derive(Debug)]
pub(crate) struct Queue {
    pending: Mutex<Pending>,
    /// Signalled when the writer may have something to do.
    ready: Condvar,
}

#[derive(Debug)]
struct Pending {
    /// Edits not taken by the writer yet, in position order; none is added while `stale`.
    batches: VecDeque<Batch>,
    /// What the edits of `batches`, and those the writer has taken and not written yet,
    /// cost: at most about `limit`.
    bytes: usize,
    /// [`PENDING_LIMIT`], but in tests.
    limit: usize,
    /// How many appends had their edits dropped (the view stale).
    dropped: u64,
    /// The last position appended.
    last: Position,
    /// The log's durable position, as the store last told.
    durable: Position,
    /// Set when edits were dropped: the files they touch, for the writer to repair.
    stale: Option<Stale>,
    /// A whole view to write before anything queued, with the number of holds of the
    /// marker it answers.
    rebuild: Option<(Box<Rebuild>, u64)>,
    /// Who waits for the view to be written through a position.
    settles: Vec<(Position, oneshot::Sender<()>)>,
    /// The store is being dropped: no more work comes.
    closed: bool,
    /// Quiets the warning that edits were dropped.
    warned: Throttle,
    /// The view's marker.
    pos: ViewPos,
}

impl Queue {
    /// An empty queue for a log whose last (and durable) position is `last`, the view
    /// current through there and recorded so in `pos`.
    pub(crate) fn new(last: Position, pos: ViewPos) -> Queue {
        Queue {
            pending: Mutex::new(Pending {
                batches: VecDeque::new(),
                bytes: 0,
                limit: PENDING_LIMIT,
                dropped: 0,
                last,
                durable: last,
                stale: None,
                rebuild: None,
                settles: Vec::new(),
                closed: false,
                warned: Throttle::default(),
                pos,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, pending: MutexGuard<'a, Pending>) -> MutexGuard<'a, Pending> {
        self.ready.wait(pending).unwrap_or_else(|p| p.into_inner())
    }

    fn wait_for<'a>(
        &self,
        pending: MutexGuard<'a, Pending>,
        timeout: Duration,
    ) -> MutexGuard<'a, Pending> {
        match self.ready.wait_timeout(pending, timeout) {
            Ok((pending, _)) => pending,
            Err(p) => p.into_inner().0,
        }
    }

    /// Queues the `edits` of an append of the entries `first` to `through`, or, when they
    /// do not fit (or the view is stale already), notes the files they touch. Called under
    /// the store's lock, in position order. Never blocks on the writer.
    pub(crate) fn push(&self, first: Position, through: Position, edits: Vec<Edit>) {
        let mut guard = self.lock();
        let pending = &mut *guard;
        if pending.closed {
            return;
        }
        pending.last = through;
        if let Some(stale) = &mut pending.stale {
            stale.add(&edits);
            pending.dropped += 1;
            return;
        }
        if edits.is_empty() {
            // Nothing to write: the writer need only know how far the edits go.
            match pending.batches.back_mut() {
                Some(back) => back.through = through,
                None => pending.batches.push_back(Batch {
                    through,
                    edits,
                    bytes: 0,
                }),
            }
            return;
        }
        let bytes: usize = edits.iter().map(Edit::cost).sum();
        if pending.bytes + bytes > pending.limit {
            let mut stale = Stale::default();
            stale.add(&edits);
            pending.stale = Some(stale);
            pending.dropped += 1;
            if pending.warned.allows() {
                tracing::warn!(
                    from = first.0,
                    queued = pending.bytes,
                    "the course view writer is behind; it repairs the files of the entries \
                     from this one instead of applying their edits"
                );
            }
            self.ready.notify_one();
            return;
        }
        pending.bytes += bytes;
        pending.batches.push_back(Batch {
            through,
            edits,
            bytes,
        });
        if pending.bytes >= pending.limit / 2 {
            // The writer stops gathering.
            self.ready.notify_one();
        }
    }

    /// Tells the writer that the log is durable through `through`: it may write the edits
    /// of the entries up to there.
    pub(crate) fn durable(&self, through: Position) {
        let mut pending = self.lock();
        if through > pending.durable {
            pending.durable = through;
            self.ready.notify_one();
        }
    }

    /// Makes the marker say "unknown" until the rebuild of a truncation is written: called
    /// before the log is cut, so that a crash in between leaves no marker that promises a
    /// view the cut log does not have.
    /// Fails only if the marker can be neither written nor removed.
    pub(crate) fn hold_marker(&self) -> io::Result<()> {
        let mut pending = self.lock();
        let pos = &mut pending.pos;
        // (Written even if it was removed: then it writes to the removed file, harmlessly,
        // and a removal that failed is made up for.)
        if let Err(e) = pos.record(UNKNOWN) {
            match fs::remove_file(&pos.path) {
                Ok(()) => pos.removed = true,
                Err(gone) if gone.kind() == io::ErrorKind::NotFound => pos.removed = true,
                Err(_) => return Err(e),
            }
        }
        pos.holds += 1;
        Ok(())
    }

    /// Replaces everything queued with a rewrite of the whole view: the log was cut at
    /// `rebuild.through` (and is durable through there).
    pub(crate) fn rebuild(&self, rebuild: Rebuild) {
        let mut guard = self.lock();
        let pending = &mut *guard;
        let freed: usize = pending.batches.drain(..).map(|b| b.bytes).sum();
        pending.bytes -= freed;
        pending.stale = None;
        pending.last = rebuild.through;
        pending.durable = rebuild.through;
        for (upto, _) in &mut pending.settles {
            *upto = (*upto).min(rebuild.through);
        }
        pending.rebuild = Some((Box::new(rebuild), pending.pos.holds));
        self.ready.notify_one();
    }

    /// Asks the writer to answer `done` once everything queued so far is written, durable
    /// or not. Returns false if the writer is gone.
    pub(crate) fn settle(&self, done: oneshot::Sender<()>) -> bool {
        let mut pending = self.lock();
        if pending.closed {
            return false;
        }
        let upto = pending.last;
        pending.settles.push((upto, done));
        self.ready.notify_one();
        true
    }

    /// Tells the writer to finish: it writes what is durable and stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Sets how many bytes of edits the queue holds before it drops them.
    #[cfg(test)]
    pub(crate) fn set_limit(&self, limit: usize) {
        self.lock().limit = limit;
    }

    /// How many appends had their edits dropped so far, and the bytes of edits queued.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (u64, usize) {
        let pending = self.lock();
        (pending.dropped, pending.bytes)
    }

    /// The writer is done with edits that cost `bytes`.
    fn release(&self, bytes: usize) {
        let mut pending = self.lock();
        pending.bytes = pending.bytes.saturating_sub(bytes);
    }
}

/// Closes the queue when the writer stops, even by a panic: appends stop queueing edits,
/// and whoever waits in [`Queue::settle`] is answered (its sender dropped).
struct CloseOnExit(Arc<Queue>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        let mut pending = self.0.lock();
        pending.closed = true;
        pending.settles.clear();
    }
}

/// Where the writer reads the state a repair renders from: the store, under its lock.
pub(crate) trait Source: Send + Sync + 'static {
    /// Calls `f` with the store's layout and state, holding the store's lock.
    fn with_view(&self, f: &mut dyn FnMut(&Layout, &State));
}

/// Starts the writer thread for the view in `dir`, current through `through` (the log's
/// end); it runs until the queue is closed.
pub(crate) fn spawn(
    dir: PathBuf,
    queue: Arc<Queue>,
    source: Arc<dyn Source>,
    through: Position,
) -> io::Result<JoinHandle<()>> {
    let writer = Writer {
        dir,
        queue,
        source,
        open: Handles::default(),
        done: through,
        ahead: through,
        durable: through,
        marked_at: Instant::now(),
        written_at: Instant::now()
            .checked_sub(GATHER)
            .unwrap_or_else(Instant::now),
        warned: Throttle::default(),
        known: HashMap::new(),
        read: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("tsn-fs-view".to_owned())
        .spawn(move || writer.run())
}

/// What the writer does next.
enum Job {
    /// Write the whole view, answering this many holds of the marker.
    Rebuild(Box<Rebuild>, u64),
    /// Write these batches.
    Write(Vec<Batch>),
    /// Repair a chunk of the stale files: without waiting for durability if `force`; only
    /// if the state is durable already if `closing`.
    Repair { force: bool, closing: bool },
    /// Stop.
    Exit,
}

/// A file's share of a batch.
#[derive(Default)]
struct FileWrite {
    /// Replace the content with `bytes` (else append them).
    rewrite: bool,
    bytes: Vec<u8>,
}

/// The writer thread's side.
struct Writer {
    dir: PathBuf,
    queue: Arc<Queue>,
    source: Arc<dyn Source>,
    open: Handles,
    /// Every edit of the entries up to here is written (or failed), and no repair of them
    /// is pending.
    done: Position,
    /// No file shows anything of an entry past here.
    ahead: Position,
    /// The log's durable position, as the queue last said.
    durable: Position,
    /// When the marker was last brought up to date.
    marked_at: Instant,
    /// When the writer last finished writing a batch.
    written_at: Instant,
    /// Quiets the warning that a write failed.
    warned: Throttle,
    /// During a repair, how many records (or lines) the files it wrote hold.
    known: HashMap<ViewFile, u64>,
    /// During a repair, what files it read but did not get to hold (at most about
    /// [`REPAIR_READ`] bytes).
    read: HashMap<ViewFile, Vec<u8>>,
}

/// What a repair writes to a file.
enum Fix {
    /// Nothing: it holds what it should.
    Keep,
    /// This, at its end.
    Append(String),
    /// This, instead of what it holds.
    Replace(String),
}

/// What the writer knows a file holds, before a repair renders what it lacks.
enum Seen {
    /// This many records or lines ([`units`]): it wrote them.
    Known(u64),
    /// This content, as read.
    Read(Vec<u8>),
    /// It could not be read: it is replaced.
    Unreadable,
}

impl Writer {
    fn run(mut self) {
        let _close = CloseOnExit(Arc::clone(&self.queue));
        loop {
            match self.next_job() {
                Job::Rebuild(rebuild, answers) => self.rebuild(*rebuild, answers),
                Job::Write(batches) => self.write(batches),
                Job::Repair { force, closing } => self.repair(force, closing),
                Job::Exit => {
                    let queue = Arc::clone(&self.queue);
                    self.mark(&mut queue.lock().pos);
                    return;
                }
            }
        }
    }

    /// Waits for work; answers the settles that are done on the way.
    fn next_job(&mut self) -> Job {
        let queue = Arc::clone(&self.queue);
        let mut guard = queue.lock();
        loop {
            let pending = &mut *guard;
            self.durable = pending.durable;
            // Nobody waits for these any more.
            pending.settles.retain(|(_, tx)| !tx.is_closed());
            // (A pending rebuild comes first: it undoes what is written.)
            if !pending.settles.is_empty() && pending.rebuild.is_none() {
                let done = self.done;
                let (answered, waiting) = std::mem::take(&mut pending.settles)
                    .into_iter()
                    .partition(|(upto, _)| *upto <= done);
                pending.settles = waiting;
                let answered: Vec<(Position, oneshot::Sender<()>)> = answered;
                for (_, tx) in answered {
                    let _ = tx.send(());
                }
            }
            if let Some((rebuild, answers)) = pending.rebuild.take() {
                return Job::Rebuild(rebuild, answers);
            }
            let force = !pending.settles.is_empty();
            let writable = if force {
                pending.batches.len()
            } else {
                pending
                    .batches
                    .iter()
                    .take_while(|b| b.through <= pending.durable)
                    .count()
            };
            if writable > 0 {
                let since = self.written_at.elapsed();
                if since < GATHER && !force && !pending.closed && pending.bytes < pending.limit / 2
                {
                    guard = queue.wait_for(guard, GATHER - since);
                    continue;
                }
                return Job::Write(pending.batches.drain(..writable).collect());
            }
            if pending.batches.is_empty() && pending.stale.is_some() {
                // (Even when closing: the repair here takes from the files only what they
                // lack, where an open compares each file touched whole.)
                return Job::Repair {
                    force,
                    closing: pending.closed,
                };
            }
            if pending.closed {
                // Edits of entries that never became durable: the log loses them too.
                let dropped: usize = pending.batches.drain(..).map(|b| b.bytes).sum();
                pending.bytes -= dropped;
                return Job::Exit;
            }
            // Out of work: record the progress.
            self.mark(&mut pending.pos);
            guard = queue.wait(guard);
        }
    }

    /// Writes `batches`, each file once.
    fn write(&mut self, batches: Vec<Batch>) {
        let Some(through) = batches.last().map(|b| b.through) else {
            return;
        };
        let mut bytes = 0;
        let mut files: HashMap<ViewFile, FileWrite> = HashMap::new();
        for batch in batches {
            bytes += batch.bytes;
            for edit in batch.edits {
                match edit {
                    Edit::Append { file, text } => {
                        files
                            .entry(file)
                            .or_default()
                            .bytes
                            .extend_from_slice(text.as_bytes());
                    }
                    Edit::Post { files: to, post } => {
                        let record = post_record(&post);
                        for file in to {
                            files
                                .entry(file)
                                .or_default()
                                .bytes
                                .extend_from_slice(record.as_bytes());
                        }
                    }
                    Edit::Rewrite { file, text } => {
                        *files.entry(file).or_default() = FileWrite {
                            rewrite: true,
                            bytes: text.into_bytes(),
                        };
                    }
                }
            }
        }
        if !files.is_empty() {
            self.before_writing(through);
            for (file, change) in files {
                if change.rewrite {
                    self.open.remove(file);
                    if let Err(e) = replace(&self.dir, file, &change.bytes) {
                        self.failed(file, &e);
                    }
                } else if let Err(e) = self.append(file, &change.bytes) {
                    self.failed(file, &e);
                }
            }
            self.ahead = self.ahead.max(through);
        }
        self.queue.release(bytes);
        self.written_at = Instant::now();
        self.done = self.done.max(through);
        self.mark_now_and_then();
    }

    /// Repairs a chunk of the stale files: reads what they hold (unless it knows), renders
    /// (under the store's lock) what they lack, waits until the state it rendered is
    /// durable, and writes it. When every file left in the set is one it knows (it touched
    /// it in this repair already) and they are few, it renders them too and ends the
    /// repair: under a steady load the same files are touched again and again, and the
    /// set would never run empty on its own.
    fn repair(&mut self, force: bool, closing: bool) {
        let queue = Arc::clone(&self.queue);
        // What the files hold, read without a lock: only this thread writes them.
        let mut seen: Vec<(ViewFile, Seen)> = Vec::new();
        let mut taken = HashSet::new();
        let mut read = 0;
        while seen.len() < REPAIR_FILES && read < REPAIR_READ {
            let Some(file) = queue.lock().stale.as_mut().and_then(Stale::pop) else {
                break;
            };
            if !taken.insert(file) {
                // Touched again since it was taken: the rendering below sees that too.
                continue;
            }
            let have = match self.known.get(&file) {
                Some(&n) => Seen::Known(n),
                None => match self.read.remove(&file) {
                    Some(have) => {
                        read += have.len();
                        Seen::Read(have)
                    }
                    None => match fs::read(self.dir.join(file.name())) {
                        Ok(bytes) => {
                            read += bytes.len();
                            Seen::Read(bytes)
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Read(Vec::new()),
                        Err(_) => Seen::Unreadable,
                    },
                },
            };
            seen.push((file, have));
        }
        let mut chunk: Vec<(ViewFile, Option<usize>, Tail)> = Vec::new();
        let mut at = Position(0);
        let mut cleared = false;
        let known = &self.known;
        let kept = &mut self.read;
        self.source.with_view(&mut |layout, state| {
            let mut guard = queue.lock();
            let pending = &mut *guard;
            let Some(stale) = &mut pending.stale else {
                // A rebuild replaced the repair.
                return;
            };
            if pending.rebuild.is_some() {
                // A truncation came since the files were taken: its rebuild goes first, and
                // what the writer knows of the files is void. They wait their turn again.
                for (file, _) in &seen {
                    stale.add_file(*file);
                }
                return;
            }
            at = state.last().position;
            if closing && !force && at > pending.durable {
                // The state holds entries the log may lose: leave the files to the next
                // open, which repairs what the entries after the marker touch.
                pending.stale = None;
                return;
            }
            let render = |file: ViewFile, have: &Seen| {
                let (base, tail) = match have {
                    Seen::Known(n) => (
                        usize::try_from(*n).ok(),
                        layout.render_tail(file, state, Have::Count(*n)),
                    ),
                    Seen::Read(bytes) => (
                        units(file, bytes),
                        layout.render_tail(file, state, Have::Bytes(bytes)),
                    ),
                    Seen::Unreadable => (None, Tail::Replace(layout.material(file, state))),
                };
                (file, base, tail)
            };
            let mut size = 0;
            for (file, have) in seen.drain(..) {
                if size >= REPAIR_CHUNK {
                    // Its turn comes again; what it holds is kept till then (or read again
                    // then, past a few MB).
                    stale.add_file(file);
                    if let Seen::Read(bytes) = have
                        && kept.values().map(Vec::len).sum::<usize>() + bytes.len() <= REPAIR_READ
                    {
                        kept.insert(file, bytes);
                    }
                } else if layout.has(file) {
                    let rendered = render(file, &have);
                    size += rendered.2.size();
                    chunk.push(rendered);
                }
            }
            // Touched again since taken: what was just rendered covers it.
            for (file, _, _) in &chunk {
                stale.remove(*file);
            }
            let rest_known = stale.len() <= FINISH_FILES
                && stale.seen.iter().all(|file| {
                    known.contains_key(file)
                        || matches!(file, ViewFile::Following(_) | ViewFile::Followers(_))
                });
            if rest_known {
                while let Some(file) = stale.pop() {
                    if layout.has(file) {
                        let have = known
                            .get(&file)
                            .map_or(Seen::Unreadable, |&n| Seen::Known(n));
                        chunk.push(render(file, &have));
                    }
                }
            }
            if stale.is_empty() {
                pending.stale = None;
                cleared = true;
            }
        });
        if chunk.is_empty() && !cleared {
            return;
        }
        // Formatted outside the store's lock.
        let chunk: Vec<(ViewFile, Option<usize>, Fix)> = chunk
            .into_iter()
            .map(|(file, base, tail)| {
                let fix = match tail {
                    Tail::Same => Fix::Keep,
                    Tail::Append(text) => Fix::Append(text.format()),
                    Tail::Replace(text) => Fix::Replace(text.format()),
                };
                (file, base, fix)
            })
            .collect();
        if !force && !closing {
            // Write nothing the log may still lose.
            let mut pending = queue.lock();
            loop {
                if pending.rebuild.is_some() {
                    return;
                }
                pending.settles.retain(|(_, tx)| !tx.is_closed());
                if pending.durable >= at || !pending.settles.is_empty() || pending.closed {
                    break;
                }
                pending = queue.wait(pending);
            }
            self.durable = pending.durable;
            if pending.settles.is_empty() && at > pending.durable {
                // Closed: the next open repairs these files.
                pending.stale = None;
                return;
            }
        }
        self.before_writing(at);
        for (file, base, fix) in chunk {
            let count = match &fix {
                Fix::Keep => base,
                Fix::Append(text) => base.zip(units(file, text.as_bytes())).map(|(a, b)| a + b),
                Fix::Replace(text) => units(file, text.as_bytes()),
            };
            let written = match fix {
                Fix::Keep => Ok(()),
                Fix::Append(text) => self.append(file, text.as_bytes()),
                Fix::Replace(text) => {
                    self.open.remove(file);
                    replace(&self.dir, file, text.as_bytes())
                }
            };
            match (written, count) {
                (Ok(()), Some(count)) => {
                    self.known.insert(file, count as u64);
                }
                (Ok(()), None) => {
                    self.known.remove(&file);
                }
                (Err(e), _) => {
                    self.known.remove(&file);
                    self.failed(file, &e);
                }
            }
        }
        self.ahead = self.ahead.max(at);
        if cleared {
            self.done = self.done.max(at);
            self.known = HashMap::new();
            self.read = HashMap::new();
            tracing::info!(
                dir = %self.dir.display(),
                through = at.0,
                "the course view writer caught up"
            );
        }
        self.mark_now_and_then();
    }

    /// Writes the whole view of `rebuild`, which answers `answers` holds of the marker.
    fn rebuild(&mut self, rebuild: Rebuild, answers: u64) {
        self.open.clear();
        self.known = HashMap::new();
        self.read = HashMap::new();
        let Rebuild {
            state,
            layout,
            through,
        } = rebuild;
        self.done = through;
        self.ahead = through;
        self.durable = through;
        // The marker says "unknown" since the truncation ([`Queue::hold_marker`]).
        let written = update_view(&self.dir, &layout, &state, Scope::Every);
        if let Err(e) = &written {
            let dir = self.dir.clone();
            self.warn(&dir, e);
        }
        let mut pending = self.queue.lock();
        match written {
            Ok(_) => pending.pos.rebuilt(through, answers),
            Err(_) => pending.pos.rebuild_failed(answers),
        }
        self.marked_at = Instant::now();
    }

    /// What the marker should say: the view is current through `done`, as far as the log
    /// is durable, unless some file shows entries the log may still lose.
    fn wanted(&self) -> u64 {
        if self.ahead <= self.durable {
            self.done.min(self.durable).0
        } else {
            UNKNOWN
        }
    }

    /// Brings the marker up to date.
    fn mark(&mut self, pos: &mut ViewPos) {
        self.marked_at = Instant::now();
        pos.set(self.wanted());
    }

    /// Brings the marker up to date if it was not for [`MARK_EVERY`].
    fn mark_now_and_then(&mut self) {
        if self.marked_at.elapsed() >= MARK_EVERY {
            let queue = Arc::clone(&self.queue);
            self.mark(&mut queue.lock().pos);
        }
    }

    /// Before writing what the entries up to `through` show: if the log may still lose
    /// some of them, the marker must not promise anything.
    fn before_writing(&mut self, through: Position) {
        if through > self.durable {
            self.queue.lock().pos.set(UNKNOWN);
        }
    }

    /// Appends `bytes` to `file` (creating it if missing), through a kept handle.
    fn append(&mut self, file: ViewFile, bytes: &[u8]) -> io::Result<()> {
        let dir = &self.dir;
        let written = self
            .open
            .get(file, || {
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(dir.join(file.name()))
            })
            .and_then(|handle| handle.write_all(bytes));
        if written.is_err() {
            self.open.remove(file);
        }
        written
    }

    /// A view write failed: the next open must rebuild the view.
    fn failed(&mut self, file: ViewFile, error: &io::Error) {
        let path = self.dir.join(file.name());
        self.warn(&path, error);
        self.queue.lock().pos.remove();
    }

    /// Logs a failure, at most every few seconds.
    fn warn(&mut self, path: &Path, error: &io::Error) {
        if self.warned.allows() {
            tracing::warn!(
                file = %path.display(),
                %error,
                "could not update the course view; the next open rebuilds it"
            );
        }
    }
}

/// Open append handles, the least recently used closed first.
#[derive(Default)]
struct Handles {
    files: HashMap<ViewFile, (File, u64)>,
    clock: u64,
}

impl Handles {
    fn get(
        &mut self,
        file: ViewFile,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<&mut File> {
        self.clock += 1;
        if !self.files.contains_key(&file) {
            if self.files.len() >= OPEN_FILES {
                let oldest = self
                    .files
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(&f, _)| f);
                if let Some(oldest) = oldest {
                    self.files.remove(&oldest);
                }
            }
            self.files.insert(file, (open()?, 0));
        }
        let (handle, used) = self
            .files
            .get_mut(&file)
            .expect("the handle was just inserted");
        *used = self.clock;
        Ok(handle)
    }

    fn remove(&mut self, file: ViewFile) {
        self.files.remove(&file);
    }

    fn clear(&mut self) {
        self.files.clear();
    }
}

/// Replaces the content of `file`: written under a temporary name, then renamed over it.
fn replace(dir: &Path, file: ViewFile, text: &[u8]) -> io::Result<()> {
    let name = file.name();
    let temporary = dir.join(temporary_name(&name));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, dir.join(name))
}

/// Makes `file` hold `text`, writing as little as it can: nothing if it does already; what
/// it lacks if it holds a beginning of `text` (a file a crash or a repair left behind);
/// else a new file, or a replacement ([`replace`]). Returns whether it wrote.
fn update(dir: &Path, file: ViewFile, text: &[u8]) -> io::Result<bool> {
    let path = dir.join(file.name());
    match fs::read(&path) {
        Ok(old) if old == text => Ok(false),
        Ok(old) if text.starts_with(&old) => {
            OpenOptions::new()
                .append(true)
                .open(&path)?
                .write_all(&text[old.len()..])?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut new) => new.write_all(text)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => replace(dir, file, text)?,
                Err(e) => return Err(e),
            }
            Ok(true)
        }
        _ => replace(dir, file, text).map(|()| true),
    }
}

fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// The view files in `dir` that `layout` has; removes the view files (names of the view's
/// forms) of users it does not have and leftover temporary files.
fn scan(dir: &Path, layout: &Layout) -> io::Result<HashSet<ViewFile>> {
    let mut present = HashSet::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match ViewFile::parse(name) {
            Some(file) if layout.has(file) => {
                present.insert(file);
                false
            }
            Some(_) => true,
            None => name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .and_then(ViewFile::parse)
                .is_some(),
        };
        if stale && item.file_type()?.is_file() {
            fs::remove_file(item.path())?;
        }
    }
    Ok(present)
}

/// Which files [`update_view`] compares with what they should hold.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope<'a> {
    /// Every file of the view: a full rebuild.
    Every,
    /// These (the files the entries after the marker touch), and the missing ones: a view
    /// that was current through the marker's position.
    Touched(&'a HashSet<ViewFile>),
}

/// Makes the files of the view in `scope` hold what `state` and its `layout` say (writing
/// only those that differ), and removes view files (and leftover temporary files) of users
/// the view does not have. Returns how many files were written.
pub(crate) fn update_view(
    dir: &Path,
    layout: &Layout,
    state: &State,
    scope: Scope<'_>,
) -> io::Result<usize> {
    let present = scan(dir, layout)?;
    let mut written = 0;
    for file in layout.files() {
        let compared = match scope {
            Scope::Every => true,
            Scope::Touched(touched) => touched.contains(&file) || !present.contains(&file),
        };
        if compared && update(dir, file, layout.render(file, state).as_bytes())? {
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker_with(value: u64) -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut pos = ViewPos::open(dir.path()).expect("open the marker");
        pos.record(value).expect("write the marker");
        (dir, Queue::new(Position(value), pos))
    }

    #[test]
    fn a_truncation_holds_the_marker_until_its_own_rebuild_is_written() {
        let (dir, queue) = marker_with(10);
        // A first truncation; its rebuild is queued (answering one hold).
        queue.hold_marker().expect("hold");
        assert_eq!(recorded_position(dir.path()), Some(UNKNOWN));
        let first = queue.lock().pos.holds;
        // A second truncation holds the marker before the first rebuild is written.
        queue.hold_marker().expect("hold");
        queue.lock().pos.rebuilt(Position(8), first);
        assert_eq!(
            recorded_position(dir.path()),
            Some(UNKNOWN),
            "the first rebuild does not release the second truncation's hold"
        );
        queue.lock().pos.set(9);
        assert_eq!(recorded_position(dir.path()), Some(UNKNOWN), "still held");
        let second = queue.lock().pos.holds;
        queue.lock().pos.rebuilt(Position(5), second);
        assert_eq!(recorded_position(dir.path()), Some(5));
    }

    #[test]
    fn a_failed_rebuild_leaves_no_marker_until_a_rebuild_succeeds() {
        let (dir, queue) = marker_with(10);
        queue.hold_marker().expect("hold");
        let holds = queue.lock().pos.holds;
        queue.lock().pos.rebuild_failed(holds);
        assert_eq!(recorded_position(dir.path()), None, "removed");
        queue.lock().pos.set(12);
        assert_eq!(recorded_position(dir.path()), None, "not written again");
        queue.hold_marker().expect("hold");
        let holds = queue.lock().pos.holds;
        queue.lock().pos.rebuilt(Position(7), holds);
        assert_eq!(recorded_position(dir.path()), Some(7), "written again");
    }
}
