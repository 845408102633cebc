//! [`InboxPeer`]: the master's side of an inbox file, as a [`SyncPeer`].

use std::fs::File;
use std::io::{self, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::{Changes, SyncPeer, UserRecord};
use tsn_core::{Error, Result};

use super::{Batch, file_name};
use crate::log::{At, Damage, Record, Scanner};
use crate::watch::DirWatch;

/// How long [`InboxPeer::changes_after`] waits for news before answering with nothing.
const WAIT: Duration = Duration::from_secs(1);

/// Another cluster, as its file in this cluster's inbox shows it: what this cluster's
/// synchronizer received from it ([`InboxWriter`](crate::InboxWriter)). The master of the
/// cluster reads it, merges ([`merge`](tsn_core::sync::merge)) and appends.
///
/// [`changes_after(cursor, max)`](SyncPeer::changes_after) answers with the entries after
/// `cursor` of the next whole records of the file, in the order written (about `max`
/// entries: whole records may pass it), and as `through` the highest `through` of those
/// records. Records entirely at or below the cursor are passed over, and so is every entry
/// at or below the cursor or below a record already taken, so the entries of an answer
/// always have increasing positions. When nothing new is there it waits for the file to
/// change (or the fallback poll) for up to about a second, then answers with no entries and
/// `through == cursor`.
///
/// * A cursor lower than the last answer's `through` (a new master role in the same
///   process, an answer that was lost) makes it read the file again from its start.
/// * A file that does not exist yet is empty. A file replaced by another (the writer's
///   [`compact`](tsn_core::sync::Handover::compact)) is read to its end, then the new one from
///   its start; a file cut below what was read is read again from its start.
/// * A record cut short at the end is not there yet. Damage anywhere else (which the
///   writer, cutting a torn tail before it appends, never leaves: only a damaged disk or a
///   foreign writer does) is logged and passed over to the end of the file as it is then;
///   what it held is lost to this reader.
///
/// A failure to read the file is [`Error::Unavailable`]: the caller tries again. And
/// [`users`](SyncPeer::users) is refused ([`Error::Invalid`]): an inbox holds changes only.
#[derive(Debug)]
pub struct InboxPeer {
    path: PathBuf,
    from: ClusterId,
    fallback: Duration,
    watch: DirWatch,
    reader: Arc<Mutex<Reader>>,
}

impl InboxPeer {
    /// The peer of cluster `from`, read from its file in `inbox_dir`, polling every
    /// `fallback_poll` (at least a millisecond) when the folder cannot be watched. Creates
    /// the folder if it can, so that it can be watched at once.
    pub fn new(inbox_dir: &Path, from: ClusterId, fallback_poll: Duration) -> InboxPeer {
        if let Err(e) = std::fs::create_dir_all(inbox_dir) {
            tracing::debug!(inbox = %inbox_dir.display(), error = %e, "cannot create the inbox");
        }
        let name = file_name(from);
        let path = inbox_dir.join(&name);
        InboxPeer {
            watch: DirWatch::for_files(inbox_dir, &[&name]),
            reader: Arc::new(Mutex::new(Reader::new(path.clone()))),
            path,
            from,
            fallback: fallback_poll.max(Duration::from_millis(1)),
        }
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cluster whose changes the file holds.
    pub fn from(&self) -> ClusterId {
        self.from
    }

    /// One look at the file, on a blocking thread. A failure to read is
    /// [`Error::Unavailable`], as the [`SyncPeer`] contract has it: the caller tries again.
    async fn read(&self, cursor: Position, max: usize) -> Result<Changes> {
        let reader = Arc::clone(&self.reader);
        let unavailable = |reason: String| Error::Unavailable {
            what: format!("the inbox file {}", self.path.display()),
            reason,
        };
        tokio::task::spawn_blocking(move || {
            reader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .read(cursor, max)
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|e| unavailable(e.to_string()))
    }
}

#[async_trait]
impl SyncPeer for InboxPeer {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        Err(Error::Invalid(format!(
            "the inbox {} holds changes only, not the users of cluster {}",
            self.path.display(),
            self.from
        )))
    }

    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Changes> {
        let deadline = Instant::now() + WAIT;
        loop {
            let changes = self.read(cursor, max).await?;
            let now = Instant::now();
            if changes.through > cursor || now >= deadline {
                return Ok(changes);
            }
            self.watch.changed(self.fallback.min(deadline - now)).await;
        }
    }
}

/// Where the reading of the file is.
#[derive(Debug)]
struct Reader {
    path: PathBuf,
    /// The file being read, with its device and inode; `None` before it exists.
    file: Option<(File, (u64, u64))>,
    /// Where the next record starts in it.
    offset: u64,
    /// The `through` of the last answer.
    answered: Position,
    /// The log of the other cluster the batches read last are from.
    log: LogId,
    /// Where damage was last logged, so that it is logged once.
    damage_at: Option<u64>,
}

impl Reader {
    fn new(path: PathBuf) -> Reader {
        Reader {
            path,
            file: None,
            offset: 0,
            answered: Position(0),
            log: LogId::UNKNOWN,
            damage_at: None,
        }
    }

    /// Reads the whole records after the offset (going on into a file that replaced the
    /// one read) and answers with their entries after `cursor`.
    fn read(&mut self, cursor: Position, max: usize) -> io::Result<Changes> {
        if cursor < self.answered {
            self.file = None;
        }
        let mut floor = cursor;
        let mut entries = Vec::new();
        loop {
            // Which file has the name now; looked at before the length of the one open, so
            // that a file replaced by now is read to its true end before the switch.
            let current = match std::fs::metadata(&self.path) {
                Ok(meta) => Some((meta.dev(), meta.ino())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if self.file.is_none() {
                match File::open(&self.path) {
                    Ok(file) => {
                        let meta = file.metadata()?;
                        self.file = Some((file, (meta.dev(), meta.ino())));
                        self.offset = 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e),
                }
            }
            let Some((file, id)) = &self.file else { break };
            let len = file.metadata()?.len();
            if len < self.offset {
                tracing::debug!(
                    inbox = %self.path.display(),
                    len,
                    offset = self.offset,
                    "the inbox file was cut below what was read; reading it from its start"
                );
                self.offset = 0;
            }
            let mut scanner = Scanner::new(BufReader::with_capacity(
                1 << 16,
                At::new(file, self.offset, len),
            ));
            let mut full = false;
            loop {
                match scanner.next::<Batch>()? {
                    Record::End | Record::Damaged(Damage::Incomplete) => break,
                    Record::Whole { value, len, .. } => {
                        if value.log.differs_from(self.log) && floor > cursor {
                            // One answer, one log: this batch starts the next answer.
                            full = true;
                            break;
                        }
                        if !value.log.is_unknown() {
                            // After a file started afresh for a new log of the other
                            // cluster, the answer says so: the cursor means nothing in it.
                            self.log = value.log;
                        }
                        self.offset += len;
                        if value.through > floor {
                            for entry in value.entries {
                                if entry.position > floor {
                                    floor = entry.position;
                                    entries.push(entry);
                                }
                            }
                            floor = floor.max(value.through);
                        }
                        if entries.len() >= max && floor > cursor {
                            full = true;
                            break;
                        }
                    }
                    Record::Damaged(damage) => {
                        if self.damage_at != Some(self.offset) {
                            self.damage_at = Some(self.offset);
                            let why = match damage {
                                Damage::Undecodable(why) => {
                                    format!("a record holds no batch: {why}")
                                }
                                damage => damage.to_string(),
                            };
                            tracing::warn!(
                                inbox = %self.path.display(),
                                offset = self.offset,
                                bytes = len - self.offset,
                                damage = %why,
                                "damage in the inbox file: passing over the rest of it"
                            );
                        }
                        self.offset = len;
                        break;
                    }
                }
            }
            if full || current == Some(*id) {
                break;
            }
            // Replaced (compacted) or removed: what the old file held is all read.
            self.file = None;
            if current.is_none() {
                break;
            }
        }
        self.answered = floor;
        Ok(Changes {
            entries,
            through: floor,
            log: self.log,
        })
    }
}
