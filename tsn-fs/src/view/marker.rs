//! The view marker, `view.pos`: how far the view is current (see the crate docs, "The
//! course view").

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tsn_core::id::Position;

/// The view marker's file name in a replica folder: the log position through which the
/// view is current, 8 bytes little-endian at offset 0.
pub const VIEW_POS_FILE: &str = "view.pos";

/// The marker's value while the view may show entries the log may not keep (a rebuild in
/// progress, or edits written early for [`Queue::settle`](super::Queue::settle)): ahead of any log, so an open
/// rebuilds the whole view.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// The position the view marker in `dir` records, if it holds one: `None` when the file is
/// missing, shorter than 8 bytes or unreadable.
pub(crate) fn recorded_position(dir: &Path) -> Option<u64> {
    let file = File::open(dir.join(VIEW_POS_FILE)).ok()?;
    let mut bytes = [0; 8];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The view marker's file, opened once; written in place and never synced. Owned by the
/// [`Queue`](super::Queue) once the store is open, so that a truncation and the writer agree on it.
#[derive(Debug)]
pub(crate) struct ViewPos {
    pub(super) path: PathBuf,
    pub(super) file: File,
    /// The value the file holds, as far as this process wrote it.
    pub(super) written: Option<u64>,
    /// How many truncations have held the marker: each makes it say "unknown" until its
    /// rebuild is written.
    pub(super) holds: u64,
    /// How many of those holds the rebuilds written so far answer (a rebuild answers every
    /// hold taken before it was queued, not one taken while it ran).
    pub(super) answered: u64,
    /// A write failed: the file is removed (the next open rebuilds the whole view), and
    /// not written again unless a rebuild succeeds.
    pub(super) removed: bool,
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
    pub(super) fn wants(&self, value: u64) -> bool {
        self.holds == self.answered && !self.removed && self.written != Some(value)
    }

    /// Records `value` unless a truncation holds the marker or it was removed; removes it
    /// if the write fails.
    pub(super) fn set(&mut self, value: u64) {
        if self.wants(value)
            && let Err(e) = self.record(value)
        {
            self.warn_unwritable(&e);
            self.remove();
        }
    }

    pub(super) fn warn_unwritable(&self, error: &io::Error) {
        tracing::warn!(
            marker = %self.path.display(),
            %error,
            "could not write the course view marker"
        );
    }

    /// A view write failed: removes the marker (or, if it cannot, makes it say "unknown"),
    /// so that the next open rebuilds the view; it is not written again unless a rebuild
    /// succeeds.
    pub(super) fn remove(&mut self) {
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
    pub(super) fn rebuilt(&mut self, through: Position, answers: u64) {
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
    pub(super) fn rebuild_failed(&mut self, answers: u64) {
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
