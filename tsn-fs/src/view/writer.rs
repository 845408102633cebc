//! The view's writer thread.
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

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tsn_core::course::post_record;
use tsn_core::id::Position;
use tsn_core::state::State;

use crate::layout::{Content, Edit, Have, Layout, Tail, ViewFile, units};
use crate::throttle::Throttle;

use super::files::{Scope, replace, update_view};
use super::marker::{UNKNOWN, ViewPos};
use super::queue::{Batch, Queue, Rebuild, Stale};

/// About how many bytes of files a repair takes from the state under the store's lock at
/// a time (it formats them after).
const REPAIR_CHUNK: usize = 1 << 20;

/// About how long a repair holds the store's lock at a time: the server's writes,
/// replication and reads (its heartbeat's among them) wait for it meanwhile. The files
/// left over wait for the next turn.
const LOCK_BUDGET: Duration = Duration::from_millis(2);

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
        read: Kept::default(),
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
    read: Kept,
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

/// The files a repair read but did not get to render, kept for its next step up to
/// [`REPAIR_READ`] bytes, and how many bytes they take (counted as they come and go: the
/// files may be a million small ones).
#[derive(Default)]
struct Kept {
    files: HashMap<ViewFile, Content>,
    bytes: usize,
}

impl Kept {
    /// Takes what was kept of `file`.
    fn take(&mut self, file: ViewFile) -> Option<Content> {
        let content = self.files.remove(&file)?;
        self.bytes -= content.bytes().len();
        Some(content)
    }

    /// Keeps `content` of `file`, if it fits.
    fn keep(&mut self, file: ViewFile, content: Content) {
        let size = content.bytes().len();
        if self.bytes + size <= REPAIR_READ {
            self.bytes += size;
            if let Some(former) = self.files.insert(file, content) {
                self.bytes -= former.bytes().len();
            }
        }
    }
}

/// What the writer knows a file holds, before a repair renders what it lacks.
enum Seen {
    /// This many records or lines ([`units`]): it wrote them.
    Known(u64),
    /// This content, as read.
    Read(Content),
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
                None => match self.read.take(file) {
                    Some(have) => {
                        read += have.bytes().len();
                        Seen::Read(have)
                    }
                    None => match fs::read(self.dir.join(file.name())) {
                        Ok(bytes) => {
                            read += bytes.len();
                            Seen::Read(Content::new(file, bytes))
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            Seen::Read(Content::new(file, Vec::new()))
                        }
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
                    Seen::Read(content) => (
                        content.units(),
                        layout.render_tail(file, state, Have::Bytes(content)),
                    ),
                    Seen::Unreadable => (None, Tail::Replace(layout.material(file, state))),
                };
                (file, base, tail)
            };
            let locked = Instant::now();
            let mut size = 0;
            for (file, have) in seen.drain(..) {
                if size >= REPAIR_CHUNK || locked.elapsed() >= LOCK_BUDGET {
                    // Its turn comes again; what it holds is kept till then (or read again
                    // then, past a few MB).
                    stale.add_file(file);
                    if let Seen::Read(content) = have {
                        kept.keep(file, content);
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
                    if locked.elapsed() >= LOCK_BUDGET {
                        stale.add_file(file);
                        break;
                    }
                    if layout.has(file) {
                        let have = known
                            .get(&file)
                            .map_or(Seen::Unreadable, |&n| Seen::Known(n));
                        chunk.push(render(file, &have));
                    }
                }
            }
            // A file rendered in part waits its next turn for the rest (after this one's
            // write, which its next render starts from).
            for (file, _, tail) in &chunk {
                if matches!(tail, Tail::Part(_)) {
                    stale.add_file(*file);
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
                    Tail::Append(text) | Tail::Part(text) => Fix::Append(text.format()),
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
            self.read = Kept::default();
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
        self.read = Kept::default();
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
