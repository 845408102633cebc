//! [`ClusterFiles`]: a cluster's committed data as its master's files show it — the
//! synchronizer's view of its own cluster when it shares the cluster's data folder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{COMMIT_FILE, DirWatch, LOG_FILE, Located, LogReader, LogTail, read_commit};
use async_trait::async_trait;
use tokio::sync::watch;
use tsn_core::id::{Membership, Position};
use tsn_core::state::State;
use tsn_core::sync::{Changes, SyncPeer, UserRecord, origin, user_records};
use tsn_core::{Error, Result};

/// How many entries of the log are read (and held) at a time.
const READ_CHUNK: usize = 4096;

/// How long `changes_after` waits for news before answering with nothing.
const LONG_POLL: Duration = Duration::from_secs(1);

/// The cluster's committed data as its master's files show it: the state (for the course's
/// `GetUserTLFL`, and the cursors of what the cluster has imported) and the changes that
/// originate here (for the other clusters).
///
/// It follows the replica whose commit marker is highest — the master, or after a failover
/// the new master, whose log holds every committed entry at the same positions — and reads
/// its log **only up to the commit marker**: an entry past it may be cut by a failover, so
/// nothing outside the tsd may act on it (serve it, or count an import it records as done).
/// Everything it holds is therefore committed, and stays true on every later master.
#[derive(Debug)]
pub struct ClusterFiles {
    membership: Membership,
    inner: Mutex<Inner>,
    /// The last position read, for waiting on news; what it says is `inner.state`'s.
    committed: watch::Sender<Position>,
}

#[derive(Debug)]
struct Inner {
    /// The committed entries read from the followed replica, applied in order: its last
    /// position is how far this cluster's changes can be served, and `own` is complete
    /// up to it (both start again from nothing when another replica is followed).
    state: State,
    /// The entries that originate in this cluster, in log order: their positions and where
    /// their records start in the followed replica's log (read again when asked for, not
    /// kept: 16 bytes an entry instead of the entry).
    own: Vec<(Position, u64)>,
    /// The followed replica's log, to read `own` entries from: `None` until a replica is
    /// followed, while `own` is empty.
    reader: Option<Arc<LogReader>>,
}

impl ClusterFiles {
    /// Nothing read yet, for a replica of `membership.cluster`.
    pub fn new(membership: Membership) -> Self {
        ClusterFiles {
            membership,
            inner: Mutex::new(Inner {
                state: State::new(membership),
                own: Vec::new(),
                reader: None,
            }),
            committed: watch::Sender::new(Position(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the cluster's state as read so far.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock().state)
    }

    /// Follows the master's log under `cluster_dir` (`<data-dir>/cluster_<c>`) forever,
    /// checking for news when its folder changes and at least every `poll`.
    pub async fn follow(&self, cluster_dir: PathBuf, poll: Duration) {
        // The replica whose log could not be read last: read again only after a pause.
        let mut failed: Option<PathBuf> = None;
        loop {
            let Some(replica) = best_replica(&cluster_dir) else {
                tokio::time::sleep(poll).await;
                continue;
            };
            if failed.as_ref() == Some(&replica) {
                tokio::time::sleep(poll).await;
            }
            if let Err(error) = self.follow_replica(&cluster_dir, &replica, poll).await {
                tracing::info!(replica = %replica.display(), %error, "reading the cluster's log again");
                failed = Some(replica);
            }
        }
    }

    /// Reads `replica`'s log from its start, and then as it grows, until another replica
    /// overtakes it or it cannot be read.
    async fn follow_replica(
        &self,
        cluster_dir: &Path,
        replica: &Path,
        poll: Duration,
    ) -> Result<()> {
        let mut tail = LogTail::open(replica)?;
        let reader = Arc::new(LogReader::open(replica)?);
        {
            let mut inner = self.lock();
            inner.state = State::new(self.membership);
            inner.own.clear();
            inner.reader = Some(reader);
        }
        self.committed.send_replace(Position(0));
        let watch = DirWatch::for_files(replica, &[COMMIT_FILE, LOG_FILE]);
        loop {
            let commit = read_commit(replica)?;
            loop {
                let entries = tail.read_committed(commit, READ_CHUNK)?;
                let last = self.absorb(&entries)?;
                self.committed.send_if_modified(|read| {
                    let moved = *read != last;
                    *read = last;
                    moved
                });
                if entries.len() < READ_CHUNK {
                    break;
                }
            }
            if best_replica(cluster_dir).is_some_and(|best| best != replica) {
                return Err(Error::Invalid(
                    "another replica is ahead: the master changed".into(),
                ));
            }
            watch.changed(poll).await;
        }
    }

    /// Applies committed `entries` (read in order from the followed replica's log) and
    /// returns the last position read.
    fn absorb(&self, entries: &[Located]) -> Result<Position> {
        let mut inner = self.lock();
        for Located { offset, entry } in entries {
            if entry.position <= inner.state.last().position {
                continue;
            }
            inner.state.apply(entry)?;
            if origin(entry, self.membership.clusters) == Some(self.membership.cluster) {
                inner.own.push((entry.position, *offset));
            }
        }
        Ok(inner.state.last().position)
    }

    /// The changes of this cluster that the other clusters may have: committed, and
    /// originating here. Reads them from the followed replica's log (committed entries
    /// stay where they were found), on a blocking thread.
    ///
    /// The answer's `through` never passes what was read from the replica followed now:
    /// right after a change of replica, while its log is read again from the start, a
    /// peer is told nothing new rather than told that it has everything.
    async fn committed_after(&self, cursor: Position, max: usize) -> Result<Changes> {
        let (wanted, more, committed, reader, log) = {
            let inner = self.lock();
            let committed = inner.state.last().position;
            let log = inner.state.log_id();
            let start = inner.own.partition_point(|&(p, _)| p <= cursor);
            let wanted: Vec<(Position, u64)> = inner.own[start..]
                .iter()
                .take(max.max(1))
                .copied()
                .collect();
            let more = inner.own.len() > start + wanted.len();
            (wanted, more, committed, inner.reader.clone(), log)
        };
        let entries = match reader {
            Some(reader) => tokio::task::spawn_blocking(move || reader.read(&wanted))
                .await
                .map_err(|e| Error::storage("reading the cluster's log", e))??,
            None => Vec::new(),
        };
        let through = if more {
            entries.last().map_or(cursor, |e| e.position)
        } else {
            committed.max(cursor)
        };
        Ok(Changes {
            entries,
            through,
            log,
        })
    }
}

/// The replica folder of `cluster_dir` with the highest commit marker: its master.
fn best_replica(cluster_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(cluster_dir)
        .ok()?
        .filter_map(|item| item.ok())
        .map(|item| item.path())
        .filter(|path| path.join(LOG_FILE).is_file())
        .filter_map(|path| Some((read_commit(&path).ok()?, path)))
        .max()
        .filter(|(commit, _)| *commit > Position(0))
        .map(|(_, path)| path)
}

#[async_trait]
impl SyncPeer for ClusterFiles {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        Ok(self.read(user_records))
    }

    async fn changes_after(&self, cursor: Position, max: usize) -> Result<Changes> {
        let mut committed = self.committed.subscribe();
        let _ = tokio::time::timeout(LONG_POLL, committed.wait_for(|&c| c > cursor)).await;
        self.committed_after(cursor, max).await
    }
}
