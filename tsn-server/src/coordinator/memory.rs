//! [`MemoryBoard`]: a [`Board`] in this process's memory, for coordinators that share one
//! process (tests, and programs that embed several).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tsn_core::Result;
use tsn_core::coordinator::{ClusterState, Report, ServerRef};
use tsn_core::id::{ClusterId, FolderId, ServerId};

use super::board::{Board, Notice, Revision, Snapshot, Swap};

/// How many batches a watcher may fall behind before it is dropped (its watch breaks).
const WATCH_BUFFER: usize = 1024;

/// A [`Board`] in memory. It keeps every write, so that a watch can start from any
/// revision: meant for tests and short-lived programs, not for years of heartbeats.
#[derive(Debug, Default)]
pub struct MemoryBoard {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    revision: Revision,
    heartbeats: BTreeMap<(ClusterId, ServerId), (Report, Revision)>,
    syncs: BTreeMap<ClusterId, (ServerRef, FolderId, Revision)>,
    clusters: BTreeMap<ClusterId, (ClusterState, Revision)>,
    /// Every write, with its revision.
    log: Vec<(Revision, Notice)>,
    watchers: Vec<mpsc::Sender<Result<Vec<Notice>>>>,
}

impl Inner {
    /// Records `notice` (made with the next revision) and tells every watcher.
    fn write(&mut self, notice: impl FnOnce(Revision) -> Notice) -> Revision {
        self.revision += 1;
        let notice = notice(self.revision);
        self.log.push((self.revision, notice.clone()));
        self.watchers
            .retain(|w| w.try_send(Ok(vec![notice.clone()])).is_ok());
        self.revision
    }
}

impl MemoryBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Board for MemoryBoard {
    async fn snapshot(&self) -> Result<Snapshot> {
        let inner = self.lock();
        let heartbeats = inner
            .heartbeats
            .values()
            .map(|(report, revision)| Notice::Heartbeat {
                report: report.clone(),
                revision: *revision,
            });
        let syncs = inner
            .syncs
            .values()
            .map(|(sync, folder, revision)| Notice::Sync {
                sync: sync.clone(),
                folder: *folder,
                revision: *revision,
            });
        let clusters = inner
            .clusters
            .iter()
            .map(|(&cluster, (state, revision))| Notice::Cluster {
                cluster,
                state: state.clone(),
                revision: *revision,
            });
        Ok(Snapshot {
            notices: heartbeats.chain(syncs).chain(clusters).collect(),
            revision: inner.revision,
        })
    }

    async fn watch(&self, after: Revision) -> Result<mpsc::Receiver<Result<Vec<Notice>>>> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let mut inner = self.lock();
        let missed: Vec<Notice> = inner
            .log
            .iter()
            .filter(|(revision, _)| *revision > after)
            .map(|(_, notice)| notice.clone())
            .collect();
        if !missed.is_empty() && tx.try_send(Ok(missed)).is_err() {
            return Ok(rx);
        }
        inner.watchers.push(tx);
        Ok(rx)
    }

    async fn post_heartbeat(&self, report: &Report) -> Result<Revision> {
        let mut inner = self.lock();
        let key = (report.server.cluster, report.server.server);
        let revision = inner.write(|revision| Notice::Heartbeat {
            report: report.clone(),
            revision,
        });
        inner.heartbeats.insert(key, (report.clone(), revision));
        Ok(revision)
    }

    async fn pulse(&self, from: u64) -> Result<()> {
        self.lock().write(|_| Notice::Pulse { from });
        Ok(())
    }

    async fn post_sync(&self, sync: &ServerRef, folder: FolderId) -> Result<()> {
        let mut inner = self.lock();
        let revision = inner.write(|revision| Notice::Sync {
            sync: sync.clone(),
            folder,
            revision,
        });
        inner
            .syncs
            .insert(sync.cluster, (sync.clone(), folder, revision));
        Ok(())
    }

    async fn swap_cluster(
        &self,
        cluster: ClusterId,
        expected: Revision,
        state: &ClusterState,
        guard: Option<(ServerId, Revision)>,
    ) -> Result<Swap> {
        let mut inner = self.lock();
        let held = inner.clusters.get(&cluster).cloned();
        let unchanged = held.as_ref().map_or(0, |(_, r)| *r) == expected;
        let guard_holds = guard.is_none_or(|(server, revision)| {
            inner
                .heartbeats
                .get(&(cluster, server))
                .map_or(0, |(_, r)| *r)
                == revision
        });
        if !(unchanged && guard_holds) {
            return Ok(Swap::Lost(held));
        }
        let revision = inner.write(|revision| Notice::Cluster {
            cluster,
            state: state.clone(),
            revision,
        });
        inner.clusters.insert(cluster, (state.clone(), revision));
        Ok(Swap::Done(revision))
    }
}
