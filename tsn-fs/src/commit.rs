//! The commit marker: how far a master's log is committed, as the replica last knew it.
//!
//! The file `commit` in a replica folder holds one position as 8 bytes little-endian at
//! offset 0. The master's [`FileStore`](crate::FileStore) rewrites it in place (one
//! positioned write, never synced) each time its commit position grows
//! ([`Store::record_commit`](tsn_core::Store::record_commit)); the next open reads it with
//! [`read_commit`]: damage in the log at a position it names is no torn tail, and is refused
//! rather than cut.
//!
//! The marker is a **lower bound**: it may lag behind the true commit position (it is
//! written after the commit, never synced, and a crash of the machine can take the last
//! writes back or leave it empty), but it is never ahead of it, since an entry is
//! committed — durable on the master — before the marker names it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tsn_core::id::Position;
use tsn_core::{Error, Result};

use crate::throttle::Throttle;

/// The commit marker's file name in a replica folder.
pub const COMMIT_FILE: &str = "commit";

/// The commit position recorded in the replica folder `replica_dir`, a lower bound of the
/// replica's true commit position: 0 when the file is missing or shorter than 8 bytes (a
/// new marker, or one whose first write a crash cut).
///
/// An 8-byte write at offset 0 of a file is not split by the page cache, and the marker is
/// read twice until two reads agree, so a read that races a write sees the old value or the
/// new one. Fails with [`Error::Storage`] only when the file exists and cannot be read.
pub(crate) fn read_commit(replica_dir: &Path) -> Result<Position> {
    let path = replica_dir.join(COMMIT_FILE);
    let failed = |e| Error::storage(format!("reading the commit marker {}", path.display()), e);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Position(0)),
        Err(e) => return Err(failed(e)),
    };
    let mut last = read_value(&file).map_err(failed)?;
    for _ in 0..8 {
        let again = read_value(&file).map_err(failed)?;
        if again == last {
            break;
        }
        last = again;
    }
    Ok(Position(last))
}

/// The value of an open marker: 0 when it holds fewer than 8 bytes.
fn read_value(file: &File) -> io::Result<u64> {
    let mut bytes = [0; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], filled as u64) {
            Ok(0) => return Ok(0),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(u64::from_le_bytes(bytes))
}

/// The writing side, owned by a [`FileStore`](crate::FileStore): the marker's file, opened
/// once, and the last value written.
#[derive(Debug)]
pub(crate) struct Marker {
    path: PathBuf,
    file: File,
    /// The value the file holds (as far as this process wrote it).
    written: u64,
    /// Quiets the warning that a write failed.
    warned: Throttle,
}

impl Marker {
    /// Opens (creating it if missing) the marker of the replica in `dir`, whose log holds
    /// `entries` entries. A new or torn marker is made to hold 0; one that names more than
    /// the log holds (the log lost entries it once had) is reset to 0, which is always a
    /// lower bound.
    pub(crate) fn open(dir: &Path, entries: u64) -> Result<Marker> {
        let path = dir.join(COMMIT_FILE);
        let failed = |e| Error::storage(format!("opening the commit marker {}", path.display()), e);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|file| {
                let len = file.metadata()?.len();
                let recorded = read_value(&file)?;
                Ok((file, len, recorded))
            });
        let (file, len, recorded) = opened.map_err(failed)?;
        let mut marker = Marker {
            path,
            file,
            written: recorded,
            warned: Throttle::default(),
        };
        if len < 8 || recorded > entries {
            if recorded > entries {
                tracing::warn!(
                    marker = %marker.path.display(),
                    recorded,
                    entries,
                    "the commit marker names more entries than the log holds; reset to 0"
                );
            }
            marker.write(0).map_err(|e| {
                Error::storage(
                    format!("writing the commit marker {}", marker.path.display()),
                    e,
                )
            })?;
        }
        Ok(marker)
    }

    /// The value last written.
    #[cfg(test)]
    pub(crate) fn written(&self) -> Position {
        Position(self.written)
    }

    /// Records `through` if it is past the value written; logs a failure (at most every
    /// few seconds) and carries on.
    pub(crate) fn advance(&mut self, through: Position) {
        if through.0 > self.written {
            self.write_or_warn(through.0);
        }
    }

    /// Lowers the marker to `keep` if it is past it: the log was cut there.
    pub(crate) fn lower(&mut self, keep: Position) {
        if keep.0 < self.written {
            tracing::warn!(
                marker = %self.path.display(),
                written = self.written,
                keep = keep.0,
                "the log was cut below its commit marker; lowering the marker"
            );
            self.write_or_warn(keep.0);
        }
    }

    fn write_or_warn(&mut self, value: u64) {
        if let Err(e) = self.write(value)
            && self.warned.allows()
        {
            tracing::warn!(
                marker = %self.path.display(),
                value,
                error = %e,
                "could not record the commit position; the synchronizer lags behind"
            );
        }
    }

    fn write(&mut self, value: u64) -> io::Result<()> {
        self.file.write_all_at(&value.to_le_bytes(), 0)?;
        self.written = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_short_marker_reads_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_commit(dir.path()).unwrap(), Position(0));
        std::fs::write(dir.path().join(COMMIT_FILE), [7, 0, 0]).unwrap();
        assert_eq!(read_commit(dir.path()).unwrap(), Position(0));
        std::fs::write(dir.path().join(COMMIT_FILE), 300u64.to_le_bytes()).unwrap();
        assert_eq!(read_commit(dir.path()).unwrap(), Position(300));
    }

    #[test]
    fn the_marker_only_grows_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut marker = Marker::open(dir.path(), 10).unwrap();
        assert_eq!(std::fs::read(dir.path().join(COMMIT_FILE)).unwrap(), [0; 8]);
        marker.advance(Position(3));
        assert_eq!(read_commit(dir.path()).unwrap(), Position(3));
        marker.advance(Position(2));
        marker.advance(Position(3));
        assert_eq!(read_commit(dir.path()).unwrap(), Position(3));
        marker.advance(Position(9));
        assert_eq!(read_commit(dir.path()).unwrap(), Position(9));
        drop(marker);

        let marker = Marker::open(dir.path(), 10).unwrap();
        assert_eq!(marker.written(), Position(9));
        assert_eq!(read_commit(dir.path()).unwrap(), Position(9));
        drop(marker);

        // A log that lost entries resets a marker past its end.
        let mut marker = Marker::open(dir.path(), 5).unwrap();
        assert_eq!(read_commit(dir.path()).unwrap(), Position(0));
        marker.advance(Position(4));
        marker.lower(Position(2));
        assert_eq!(read_commit(dir.path()).unwrap(), Position(2));
        marker.lower(Position(3));
        assert_eq!(read_commit(dir.path()).unwrap(), Position(2));
    }
}
