//! [`LogTail`]: following, read-only, the change log another process writes; and
//! [`LogReader`]: reading entries of it again, by where the tail found them.

use std::fs::File;
use std::io::{self, BufReader};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use tsn_core::change::Entry;
use tsn_core::id::Position;
use tsn_core::{Error, Result};

use crate::log::{At, HEADER_LEN, Record, Scanner};
use crate::store::LOG_FILE;

/// A read-only follower of a replica's change log (`changes.log`), which another process's
/// [`FileStore`](crate::FileStore) writes: the cluster's synchronizer reads its master's
/// log with it.
///
/// Each [`read_new`](LogTail::read_new) returns the whole records appended since the last
/// call, in position order from position 1, without gaps; a record still being written (or
/// cut short by a crash) at the end of the file is left for a later call. It takes no lock
/// and never writes, so it works while the store appends and flushes. It reads what is in
/// the file, durable or not: read the [commit marker](crate::read_commit) *before* calling
/// it and read only up to it ([`read_committed`](LogTail::read_committed)), since entries past
/// it may be taken back by a failover and the log cut below them.
///
/// A tail is tied to one log. When the log is cut below what the tail read (a replica
/// dropping a divergent tail, or a failed write being undone), or the file is replaced or
/// removed, every later call fails with [`Error::Corrupt`], and the caller opens a new
/// tail, which reads from the start. A record that is damaged, or whose position is not
/// the next one, fails the same way.
#[derive(Debug)]
pub struct LogTail {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// The device and inode of the file the tail reads.
    id: (u64, u64),
    /// Where the next record starts: the end of the last one read.
    offset: u64,
    /// The position the next record must hold.
    next: Position,
    /// Where the last record read starts, and its header: checked again before every read,
    /// so that a log cut and written again past the tail's offset is noticed.
    last: Option<(u64, [u8; HEADER_LEN])>,
}

impl LogTail {
    /// Opens the change log of the replica in `replica_dir`, to read it from its start.
    /// Fails with [`Error::Storage`] when the log cannot be opened (the replica has no log
    /// yet: its store never opened).
    pub fn open(replica_dir: &Path) -> Result<LogTail> {
        let path = replica_dir.join(LOG_FILE);
        let opened = File::open(&path).and_then(|file| {
            let meta = file.metadata()?;
            Ok((file, (meta.dev(), meta.ino())))
        });
        let (file, id) = opened
            .map_err(|e| Error::storage(format!("opening the change log {}", path.display()), e))?;
        Ok(LogTail {
            dir: replica_dir.to_path_buf(),
            path,
            file,
            id,
            offset: 0,
            next: Position(1),
            last: None,
        })
    }

    /// The replica folder whose log this is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last position read: 0 before the first record.
    pub fn position(&self) -> Position {
        Position(self.next.0 - 1)
    }

    /// Every whole record appended since the last call (or since the log's start), in
    /// order. See the [type docs](LogTail) for the errors.
    pub fn read_new(&mut self) -> Result<Vec<Entry>> {
        let located = self.read_committed(Position(u64::MAX), usize::MAX)?;
        Ok(located.into_iter().map(|l| l.entry).collect())
    }

    /// Like [`read_new`](LogTail::read_new), but only the entries at or below position
    /// `through` (the commit marker read before the call) and at most `max` of them: the
    /// rest are left for a later call, the tail stopping at the first record it does not
    /// take. Each entry comes with where its record starts, so that a [`LogReader`] can
    /// read chosen entries again later instead of their being kept. A tail that reads only
    /// committed entries is never past a cut (a failover takes back only uncommitted ones).
    pub fn read_committed(&mut self, through: Position, max: usize) -> Result<Vec<Located>> {
        let len = self.check()?;
        let failed =
            |e| Error::storage(format!("reading the change log {}", self.path.display()), e);
        let mut scanner = Scanner::new(BufReader::with_capacity(
            1 << 16,
            At::new(&self.file, self.offset, len),
        ));
        let mut entries = Vec::new();
        let (mut offset, mut next, mut last) = (self.offset, self.next, self.last);
        while entries.len() < max && next <= through {
            match scanner.next::<Entry>().map_err(failed)? {
                Record::End => break,
                Record::Whole {
                    value: entry,
                    len,
                    crc,
                } => {
                    if entry.position != next {
                        return Err(Error::Corrupt(format!(
                            "{}: the record at offset {offset}, where position {next} belongs, \
                             holds position {}",
                            self.path.display(),
                            entry.position
                        )));
                    }
                    let mut header = [0; HEADER_LEN];
                    let payload = u32::try_from(len - HEADER_LEN as u64).unwrap_or(u32::MAX);
                    header[..4].copy_from_slice(&payload.to_le_bytes());
                    header[4..].copy_from_slice(&crc.to_le_bytes());
                    last = Some((offset, header));
                    entries.push(Located { offset, entry });
                    offset += len;
                    next = next.next();
                }
                // A record being written, or cut short by a crash that the store's next
                // open repairs: not there yet.
                Record::Damaged(crate::log::Damage::Incomplete) => break,
                Record::Damaged(damage) => {
                    return Err(Error::Corrupt(format!(
                        "{}: the record of position {next} at offset {offset}: {damage}",
                        self.path.display()
                    )));
                }
            }
        }
        (self.offset, self.next, self.last) = (offset, next, last);
        Ok(entries)
    }

    /// Checks that the file is still the log the tail read, not replaced, not cut below
    /// the tail's offset, and still holding the last record read; returns its length.
    fn check(&self) -> Result<u64> {
        let at = |what: &str| format!("{what} {}", self.path.display());
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.id => {}
            Ok(_) => {
                return Err(Error::Corrupt(format!(
                    "{} was replaced by another file; read it again from the start",
                    self.path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Corrupt(format!(
                    "{} was removed",
                    self.path.display()
                )));
            }
            Err(e) => return Err(Error::storage(at("reading the change log"), e)),
        }
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::storage(at("reading the change log"), e))?
            .len();
        if len < self.offset {
            return Err(Error::Corrupt(format!(
                "{} was cut to {len} bytes, below the {} bytes read (through position {}); \
                 read it again from the start",
                self.path.display(),
                self.offset,
                self.position()
            )));
        }
        if let Some((start, header)) = self.last {
            let mut now = [0; HEADER_LEN];
            self.file
                .read_exact_at(&mut now, start)
                .map_err(|e| Error::storage(at("reading the change log"), e))?;
            if now != header {
                return Err(Error::Corrupt(format!(
                    "{}: the record of position {} changed (the log was cut and written \
                     again); read it again from the start",
                    self.path.display(),
                    self.position()
                )));
            }
        }
        Ok(len)
    }
}

/// An entry read by a [`LogTail`], with the offset where its record starts in the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    /// Where the entry's record starts.
    pub offset: u64,
    /// The entry.
    pub entry: Entry,
}

/// Reads entries of a replica's change log again, by the positions and offsets a
/// [`LogTail`] found them at: for a reader that keeps only those (16 bytes an entry)
/// rather than the entries. Entries that can no longer be taken back (committed ones) stay
/// where they were found; an entry that is not where it was is an [`Error::Corrupt`].
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    file: File,
}

impl LogReader {
    /// Opens the change log of the replica in `replica_dir`.
    pub fn open(replica_dir: &Path) -> Result<LogReader> {
        let path = replica_dir.join(LOG_FILE);
        let file = File::open(&path)
            .map_err(|e| Error::storage(format!("opening the change log {}", path.display()), e))?;
        Ok(LogReader { path, file })
    }

    /// The entries of `wanted` (positions, in log order, with the offsets where their
    /// records start): reads the log from the first one's record on, passing over the
    /// records between them.
    pub fn read(&self, wanted: &[(Position, u64)]) -> Result<Vec<Entry>> {
        let Some(&(_, start)) = wanted.first() else {
            return Ok(Vec::new());
        };
        let failed =
            |e| Error::storage(format!("reading the change log {}", self.path.display()), e);
        let mut scanner = Scanner::new(BufReader::with_capacity(
            1 << 16,
            At::new(&self.file, start, u64::MAX),
        ));
        let mut entries = Vec::with_capacity(wanted.len());
        let mut offset = start;
        for &(position, at) in wanted {
            let entry = loop {
                let record = scanner.next::<Entry>().map_err(failed)?;
                let Record::Whole {
                    value: entry, len, ..
                } = record
                else {
                    return Err(self.moved(position, at));
                };
                let here = offset;
                offset += len;
                if here == at {
                    break entry;
                }
                if here > at {
                    return Err(self.moved(position, at));
                }
            };
            if entry.position != position {
                return Err(self.moved(position, at));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    fn moved(&self, position: Position, offset: u64) -> Error {
        Error::Corrupt(format!(
            "{}: the record of position {position} is no longer at offset {offset}",
            self.path.display()
        ))
    }
}
