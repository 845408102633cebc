//! [`Etcd`]: a client of an etcd cluster (its v3 API over gRPC), for what TSN's coordinators
//! keep there: reading the keys under a prefix, writing a key, writing a key only if it has
//! not changed since a known revision (compare-and-swap, in one transaction), and watching
//! the keys under a prefix.
//!
//! A client knows every member's address and sends each call to one of them; when that
//! member does not answer, the call goes to the next. etcd itself makes every member's
//! answer linearizable: a member that is not the leader asks the leader.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tsn_core::coordinator::Endpoint;

use crate::client::CallError;
use crate::proto::etcd::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcd::kv_client::KvClient;
use crate::proto::etcd::maintenance_client::MaintenanceClient;
use crate::proto::etcd::request_op::Request;
use crate::proto::etcd::response_op::Response;
use crate::proto::etcd::watch_client::WatchClient;
use crate::proto::etcd::watch_request::RequestUnion;
use crate::proto::etcd::{
    Compare, KeyValue, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest,
    WatchCreateRequest, WatchRequest, WatchResponse, event,
};
use crate::tls::{Identity, Security};
use crate::transport::{call_endpoint, connect_lazy_to, stream_endpoint};

/// A key and its value, with the revision of its last change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The store's revision when the key was last written.
    pub revision: i64,
}

impl From<KeyValue> for Entry {
    fn from(kv: KeyValue) -> Self {
        Entry {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: kv.value,
            revision: kv.mod_revision,
        }
    }
}

/// What a compare-and-swap ([`Etcd::swap`]) came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swapped {
    /// The key held the expected revision and now holds the new value, written at this
    /// revision.
    Done(i64),
    /// The key had changed: what it holds now (`None`: nothing).
    Lost(Option<Entry>),
}

/// A change a watch brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key was written.
    Put(Entry),
    /// The key was deleted, at this revision.
    Deleted {
        /// The key.
        key: String,
        /// The revision of the deletion.
        revision: i64,
    },
}

/// What a member of the cluster says of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its member id.
    pub member: u64,
    /// The member id of the leader it knows (0: none).
    pub leader: u64,
}

/// One member: its address and its channels.
#[derive(Debug)]
struct Member {
    endpoint: Endpoint,
    calls: Channel,
    streams: Channel,
}

/// A client of an etcd cluster. Cheap to clone: clones share the connections.
#[derive(Clone, Debug)]
pub struct Etcd {
    members: Arc<Vec<Member>>,
    /// The member to try first.
    preferred: Arc<AtomicUsize>,
}

impl Etcd {
    /// A client of the cluster whose members listen at `endpoints` (nothing is sent yet),
    /// over TLS if this process [installed](crate::tls::install) TLS settings.
    pub fn new(endpoints: &[Endpoint]) -> Result<Etcd, CallError> {
        Etcd::over(endpoints, |endpoint| {
            Ok((
                connect_lazy_to(&call_endpoint(endpoint)?, Identity::Etcd),
                connect_lazy_to(&stream_endpoint(endpoint)?, Identity::Etcd),
            ))
        })
    }

    /// A client of the cluster whose members listen at `endpoints`, over TLS with
    /// `security` (whether or not this process installed settings): for a program that
    /// runs an etcd cluster with TLS beside deployments of its own.
    pub fn with_security(
        endpoints: &[Endpoint],
        security: &Arc<Security>,
    ) -> Result<Etcd, CallError> {
        Etcd::over(endpoints, |endpoint| {
            Ok((
                security.channel_to(&call_endpoint(endpoint)?, Identity::Etcd),
                security.channel_to(&stream_endpoint(endpoint)?, Identity::Etcd),
            ))
        })
    }

    /// A client of the members at `endpoints`, with the channels (for calls, for streams)
    /// that `channels` makes to each.
    fn over(
        endpoints: &[Endpoint],
        channels: impl Fn(&Endpoint) -> tsn_core::Result<(Channel, Channel)>,
    ) -> Result<Etcd, CallError> {
        if endpoints.is_empty() {
            return Err(CallError::Invalid("no etcd member given".into()));
        }
        let members = endpoints
            .iter()
            .map(|endpoint| {
                let (calls, streams) =
                    channels(endpoint).map_err(|e| CallError::Invalid(e.to_string()))?;
                Ok(Member {
                    endpoint: endpoint.clone(),
                    calls,
                    streams,
                })
            })
            .collect::<Result<Vec<_>, CallError>>()?;
        Ok(Etcd {
            members: Arc::new(members),
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Makes a call with `call` on one member after the other, starting with the preferred
    /// one, until one answers; the first to answer becomes the preferred one.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, CallError>
    where
        F: Fn(&Member) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.members.len() {
            let at = (first + i) % self.members.len();
            let member = &self.members[at];
            match call(member).await {
                Ok(answer) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(status) if retry_elsewhere(&status) => {
                    last = Some(format!("etcd at {}: {}", member.endpoint, status.message()));
                }
                Err(status) => return Err(CallError::from(status)),
            }
        }
        Err(CallError::Unreachable(last.unwrap_or_default()))
    }

    /// Every key under `prefix`, and the store's revision they were read at.
    pub async fn read_prefix(&self, prefix: &str) -> Result<(Vec<Entry>, i64), CallError> {
        let request = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix),
        };
        let response = self
            .call(|m| {
                let request = request.clone();
                let mut kv = KvClient::new(m.calls.clone());
                async move { kv.range(request).await.map(tonic::Response::into_inner) }
            })
            .await?;
        let revision = response.header.map_or(0, |h| h.revision);
        Ok((
            response.kvs.into_iter().map(Entry::from).collect(),
            revision,
        ))
    }

    /// Writes `value` at `key`; the revision it was written at.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64, CallError> {
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value,
        };
        let response = self
            .call(|m| {
                let request = request.clone();
                let mut kv = KvClient::new(m.calls.clone());
                async move { kv.put(request).await.map(tonic::Response::into_inner) }
            })
            .await?;
        Ok(response.header.map_or(0, |h| h.revision))
    }

    /// Writes `value` at `key` if the key was last written at `revision` (0: if it does
    /// not exist) and each key of `unchanged` at its revision, in one transaction;
    /// otherwise changes nothing and says what `key` holds. Of two swaps from one
    /// revision, at most one is done.
    pub async fn swap(
        &self,
        key: &str,
        revision: i64,
        value: Vec<u8>,
        unchanged: &[(&str, i64)],
    ) -> Result<Swapped, CallError> {
        let key_bytes = key.as_bytes().to_vec();
        let compare = std::iter::once((key, revision))
            .chain(unchanged.iter().copied())
            .map(|(key, revision)| Compare {
                result: CompareResult::Equal.into(),
                target: CompareTarget::Mod.into(),
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::ModRevision(revision)),
            })
            .collect();
        let request = TxnRequest {
            compare,
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key_bytes.clone(),
                    value,
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key: key_bytes,
                    range_end: Vec::new(),
                })),
            }],
        };
        let response = self
            .call(|m| {
                let request = request.clone();
                let mut kv = KvClient::new(m.calls.clone());
                async move { kv.txn(request).await.map(tonic::Response::into_inner) }
            })
            .await?;
        if response.succeeded {
            return Ok(Swapped::Done(response.header.map_or(0, |h| h.revision)));
        }
        let held = response
            .responses
            .into_iter()
            .find_map(|op| match op.response {
                Some(Response::ResponseRange(range)) => range.kvs.into_iter().next(),
                _ => None,
            });
        Ok(Swapped::Lost(held.map(Entry::from)))
    }

    /// Watches the keys under `prefix`, bringing every change from revision `from` on.
    pub async fn watch_prefix(&self, prefix: &str, from: i64) -> Result<Watch, CallError> {
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix),
                start_revision: from,
            })),
        };
        let (requests, inbound) = self
            .call(|m| {
                let create = create.clone();
                let mut watch = WatchClient::new(m.streams.clone());
                async move {
                    let (requests, outbound) = mpsc::channel(1);
                    requests
                        .send(create)
                        .await
                        .map_err(|_| Status::internal("the watch request was not sent"))?;
                    let mut request = tonic::Request::new(ReceiverStream::new(outbound));
                    // A member cut off from the others' quorum ends the watch rather than
                    // keep it open with nothing to bring.
                    request.metadata_mut().insert(
                        "hasleader",
                        tonic::metadata::MetadataValue::from_static("true"),
                    );
                    let inbound = watch.watch(request).await?.into_inner();
                    Ok((requests, inbound))
                }
            })
            .await?;
        Ok(Watch {
            _requests: requests,
            inbound,
        })
    }

    /// What each member says of itself, in the order their addresses were given; `None`
    /// for a member that does not answer.
    pub async fn statuses(&self) -> Vec<Option<MemberStatus>> {
        let mut statuses = Vec::new();
        for member in self.members.iter() {
            let mut maintenance = MaintenanceClient::new(member.calls.clone());
            let status = maintenance.status(StatusRequest {}).await.ok().map(|r| {
                let r = r.into_inner();
                MemberStatus {
                    member: r.header.map_or(0, |h| h.member_id),
                    leader: r.leader,
                }
            });
            statuses.push(status);
        }
        statuses
    }
}

/// An open watch.
#[derive(Debug)]
pub struct Watch {
    /// Kept open: etcd ends a watch whose request stream ends.
    _requests: mpsc::Sender<WatchRequest>,
    inbound: Streaming<WatchResponse>,
}

impl Watch {
    /// The next changes, in revision order; an error once the watch broke (the member went
    /// away, or the revisions it was to start from were compacted away): start again from
    /// a read.
    pub async fn next(&mut self) -> Result<Vec<Change>, CallError> {
        loop {
            let Some(response) = self.inbound.message().await? else {
                return Err(CallError::Unreachable("etcd ended the watch".into()));
            };
            if response.canceled || response.compact_revision > 0 {
                return Err(CallError::Unreachable(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason
                )));
            }
            if response.events.is_empty() {
                continue;
            }
            return Ok(response
                .events
                .into_iter()
                .filter_map(|e| {
                    let deleted = e.r#type == event::EventType::Delete as i32;
                    let entry = Entry::from(e.kv?);
                    Some(match deleted {
                        true => Change::Deleted {
                            key: entry.key,
                            revision: entry.revision,
                        },
                        false => Change::Put(entry),
                    })
                })
                .collect());
        }
    }
}

/// Whether a call that failed with `status` may succeed at another member.
fn retry_elsewhere(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
    )
}

/// The end of the range of keys under `prefix`: the prefix with its last byte raised.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // A prefix of 0xff bytes only (or none): every key from it on.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_of_a_prefix_ends_right_after_it() {
        assert_eq!(prefix_end("/tsn/"), b"/tsn0".to_vec());
        assert_eq!(prefix_end("a"), b"b".to_vec());
    }
}
