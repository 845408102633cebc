//! [`EtcdBoard`]: the coordinators' [`Board`] on an etcd cluster.
//!
//! | key | value (JSON) | written |
//! | --- | --- | --- |
//! | `/tsn/heartbeat/<cluster>/<server>` | the server's last heartbeat report | at every heartbeat, by the coordinator that received it |
//! | `/tsn/sync/<cluster>` | the synchronizer's address and data folder | at every registration |
//! | `/tsn/pulse/<coordinator>` | nothing | every little while, by each coordinator, to see its own writes come back |
//! | `/tsn/cluster/<cluster>` | the cluster's record: epoch, master, in-sync set | only by compare-and-swap on its revision (and on the replaced master's heartbeat) |
//!
//! A board's revision is etcd's: the store's revision, which grows with every write.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tsn_core::coordinator::{ClusterState, Report, ServerRef};
use tsn_core::id::{ClusterId, FolderId, ServerId};
use tsn_core::{Error, Result};
use tsn_server::coordinator::{Board, Notice, Revision, Snapshot, Swap};

use crate::client::CallError;
use crate::etcd::{Change, Entry, Etcd, Swapped};

/// Where TSN's keys start.
const PREFIX: &str = "/tsn/";

/// How many batches of changes may wait for the coordinator.
const WATCH_BUFFER: usize = 256;

/// A synchronizer's registration, as stored.
#[derive(Serialize, Deserialize)]
struct SyncRecord {
    sync: ServerRef,
    folder: FolderId,
}

/// The coordinators' board on etcd. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct EtcdBoard {
    etcd: Etcd,
}

impl EtcdBoard {
    /// A board on the etcd cluster `etcd` talks to.
    pub fn new(etcd: Etcd) -> Self {
        EtcdBoard { etcd }
    }
}

fn heartbeat_key(cluster: ClusterId, server: ServerId) -> String {
    format!("{PREFIX}heartbeat/{}/{}", cluster.0, server.0)
}

fn sync_key(cluster: ClusterId) -> String {
    format!("{PREFIX}sync/{}", cluster.0)
}

fn pulse_key(from: u64) -> String {
    format!("{PREFIX}pulse/{from:016x}")
}

fn cluster_key(cluster: ClusterId) -> String {
    format!("{PREFIX}cluster/{}", cluster.0)
}

/// The error of a board that etcd did not answer.
fn unreachable(error: CallError) -> Error {
    Error::Unavailable {
        what: "etcd".into(),
        reason: error.to_string(),
    }
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("TSN's records always encode")
}

/// What an entry under [`PREFIX`] says; `None` for a key TSN does not write, or a value it
/// cannot read (it is left alone).
fn notice(entry: Entry) -> Option<Notice> {
    let path = entry.key.strip_prefix(PREFIX)?;
    let mut parts = path.split('/');
    match parts.next()? {
        "heartbeat" => Some(Notice::Heartbeat {
            report: serde_json::from_slice(&entry.value).ok()?,
            revision: entry.revision,
        }),
        "sync" => {
            let record: SyncRecord = serde_json::from_slice(&entry.value).ok()?;
            Some(Notice::Sync {
                sync: record.sync,
                folder: record.folder,
                revision: entry.revision,
            })
        }
        "pulse" => Some(Notice::Pulse {
            from: u64::from_str_radix(parts.next()?, 16).ok()?,
        }),
        "cluster" => Some(Notice::Cluster {
            cluster: ClusterId(parts.next()?.parse().ok()?),
            state: serde_json::from_slice(&entry.value).ok()?,
            revision: entry.revision,
        }),
        _ => None,
    }
}

#[async_trait]
impl Board for EtcdBoard {
    async fn snapshot(&self) -> Result<Snapshot> {
        let (entries, revision) = self.etcd.read_prefix(PREFIX).await.map_err(unreachable)?;
        Ok(Snapshot {
            notices: entries.into_iter().filter_map(notice).collect(),
            revision,
        })
    }

    async fn watch(&self, after: Revision) -> Result<mpsc::Receiver<Result<Vec<Notice>>>> {
        let mut watch = self
            .etcd
            .watch_prefix(PREFIX, after + 1)
            .await
            .map_err(unreachable)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            loop {
                let batch = match watch.next().await {
                    Ok(changes) => Ok(changes
                        .into_iter()
                        .filter_map(|change| match change {
                            Change::Put(entry) => notice(entry),
                            Change::Deleted { .. } => None,
                        })
                        .collect()),
                    Err(error) => Err(unreachable(error)),
                };
                let broken = batch.is_err();
                if tx.send(batch).await.is_err() || broken {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn post_heartbeat(&self, report: &Report) -> Result<Revision> {
        let key = heartbeat_key(report.server.cluster, report.server.server);
        self.etcd
            .put(&key, encode(report))
            .await
            .map_err(unreachable)
    }

    async fn pulse(&self, from: u64) -> Result<()> {
        self.etcd
            .put(&pulse_key(from), Vec::new())
            .await
            .map(drop)
            .map_err(unreachable)
    }

    async fn post_sync(&self, sync: &ServerRef, folder: FolderId) -> Result<()> {
        let record = SyncRecord {
            sync: sync.clone(),
            folder,
        };
        self.etcd
            .put(&sync_key(sync.cluster), encode(&record))
            .await
            .map(drop)
            .map_err(unreachable)
    }

    async fn swap_cluster(
        &self,
        cluster: ClusterId,
        expected: Revision,
        state: &ClusterState,
        guard: Option<(ServerId, Revision)>,
    ) -> Result<Swap> {
        let guard_key = guard.map(|(server, revision)| (heartbeat_key(cluster, server), revision));
        let unchanged: Vec<(&str, i64)> = guard_key
            .iter()
            .map(|(key, revision)| (key.as_str(), *revision))
            .collect();
        let swapped = self
            .etcd
            .swap(&cluster_key(cluster), expected, encode(state), &unchanged)
            .await
            .map_err(unreachable)?;
        Ok(match swapped {
            Swapped::Done(revision) => Swap::Done(revision),
            Swapped::Lost(held) => Swap::Lost(held.and_then(|entry| {
                let revision = entry.revision;
                serde_json::from_slice(&entry.value)
                    .ok()
                    .map(|state| (state, revision))
            })),
        })
    }
}
