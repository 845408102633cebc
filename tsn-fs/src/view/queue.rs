//! The queue of edits between the store and the view's writer.
//!
//! The queued edits hold at most [`PENDING_LIMIT`] bytes (counting a post's record once per
//! file it goes to, as the writer holds them grouped by file). An append never waits for
//! the writer: when its edits do not fit, the queue drops them, and the edits of every
//! later append, and keeps only the set of files they touch (a few bytes a file, at most
//! the number of files of the view) — the view is *stale* from that entry on. Once the
//! writer has written what was queued before, it repairs the stale files, oldest touched
//! first, a chunk at a time: it reads what they hold (outside any lock), takes from the
//! state, under the store's lock, what each lacks — the records or lines after those it
//! holds, for the files that only grow; about a megabyte a chunk (the writer's
//! `REPAIR_CHUNK`) — formats it
//! outside the lock, waits until that state is durable, and appends it (or rewrites a
//! following or followers list). A file touched again meanwhile joins the set again; the
//! writer then remembers how many records it holds, and once every file left in the set
//! is such a file, it takes all of them at once and the repair ends: the queue takes edits
//! again. Memory stays bounded, an append waits at most for one repair step's taking under
//! the store's lock (a chunk, or, to end the repair, the tails of at most the writer's
//! `FINISH_FILES` files it knows), and the view lags during an
//! overload and catches up after it. A store closed while the view is stale finishes the

use std::collections::{HashSet, VecDeque};
use std::fs::{self};
use std::io::{self};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tsn_core::id::Position;
use tsn_core::state::State;

use crate::layout::{Edit, Layout, ViewFile};
use crate::throttle::Throttle;

use super::marker::{UNKNOWN, ViewPos};

/// The most bytes of edits the queue holds before it drops them and marks the view stale.
pub(crate) const PENDING_LIMIT: usize = 4 << 20;

/// The edits of one append, or of several without edits of their own.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The position of the append's last entry.
    pub(super) through: Position,
    pub(super) edits: Vec<Edit>,
    /// What the edits cost ([`Edit::cost`]).
    pub(super) bytes: usize,
}

/// The files that edits dropped since an entry touch (each touched since it was last
/// repaired), in the order they were added: a file touched again waits its turn behind
/// the others.
#[derive(Debug, Default)]
pub(super) struct Stale {
    /// The files in order, and files removed since (not in `seen`), passed over.
    pub(super) files: VecDeque<ViewFile>,
    /// The files in the set.
    pub(super) seen: HashSet<ViewFile>,
}

impl Stale {
    pub(super) fn add(&mut self, edits: &[Edit]) {
        for &file in edits.iter().flat_map(Edit::files) {
            self.add_file(file);
        }
    }

    pub(super) fn add_file(&mut self, file: ViewFile) {
        if self.seen.insert(file) {
            self.files.push_back(file);
        }
    }

    pub(super) fn pop(&mut self) -> Option<ViewFile> {
        loop {
            let file = self.files.pop_front()?;
            if self.seen.remove(&file) {
                return Some(file);
            }
        }
    }

    pub(super) fn remove(&mut self, file: ViewFile) {
        self.seen.remove(&file);
        if self.seen.is_empty() {
            self.files.clear();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.seen.len()
    }

    pub(super) fn is_empty(&self) -> bool {
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
    pub(super) pending: Mutex<Pending>,
    /// Signalled when the writer may have something to do.
    pub(super) ready: Condvar,
}

#[derive(Debug)]
pub(super) struct Pending {
    /// Edits not taken by the writer yet, in position order; none is added while `stale`.
    pub(super) batches: VecDeque<Batch>,
    /// What the edits of `batches`, and those the writer has taken and not written yet,
    /// cost: at most about `limit`.
    pub(super) bytes: usize,
    /// [`PENDING_LIMIT`], but in tests.
    pub(super) limit: usize,
    /// How many appends had their edits dropped (the view stale).
    pub(super) dropped: u64,
    /// The last position appended.
    pub(super) last: Position,
    /// The log's durable position, as the store last told.
    pub(super) durable: Position,
    /// Set when edits were dropped: the files they touch, for the writer to repair.
    pub(super) stale: Option<Stale>,
    /// A whole view to write before anything queued, with the number of holds of the
    /// marker it answers.
    pub(super) rebuild: Option<(Box<Rebuild>, u64)>,
    /// Who waits for the view to be written through a position.
    pub(super) settles: Vec<(Position, oneshot::Sender<()>)>,
    /// The store is being dropped: no more work comes.
    pub(super) closed: bool,
    /// Quiets the warning that edits were dropped.
    pub(super) warned: Throttle,
    /// The view's marker.
    pub(super) pos: ViewPos,
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

    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn wait<'a>(&self, pending: MutexGuard<'a, Pending>) -> MutexGuard<'a, Pending> {
        self.ready.wait(pending).unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn wait_for<'a>(
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
    pub(super) fn release(&self, bytes: usize) {
        let mut pending = self.lock();
        pending.bytes = pending.bytes.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::recorded_position;

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
