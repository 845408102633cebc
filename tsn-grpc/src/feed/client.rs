//! [`FeedClient`]: a server's change feed behind the [`SyncPeer`] trait.

use async_trait::async_trait;
use tokio::sync::Mutex;
use tonic::Streaming;
use tonic::transport::Channel;
use tsn_core::change::Entry;
use tsn_core::coordinator::Endpoint;
use tsn_core::id::LogId;
use tsn_core::id::{ClusterId, Position};
use tsn_core::sync::{Changes, SyncPeer, UserRecord};
use tsn_core::{Error, Result};

use crate::convert::user_record;
use crate::error::from_status;
use crate::feed::LONG_POLL;
use crate::proto::csce438::Id;
use crate::proto::csce438::synch_service_client::SynchServiceClient;
use crate::proto::tsn::feed_client::FeedClient as FeedStub;
use crate::proto::tsn::{FeedBatch, FeedRequest};
use crate::transport::{call_channel, stream_channel};

/// Reads the feed of the server at an address — the changes of one cluster — keeping one
/// stream open while the caller asks for consecutive stretches (a cursor that does not
/// continue the stream opens a new one there).
#[derive(Debug)]
pub struct FeedClient {
    name: String,
    me: ClusterId,
    source: ClusterId,
    calls: Channel,
    streams: Channel,
    open: Mutex<Option<OpenFeed>>,
}

#[derive(Debug)]
struct OpenFeed {
    /// Where the stream stands: the `through` of its last batch.
    at: Position,
    /// The log of its last batch.
    log: LogId,
    batches: Streaming<FeedBatch>,
}

impl FeedClient {
    /// A client of the feed at `endpoint`, asking on behalf of cluster `me` for the changes
    /// of cluster `source`.
    pub fn new(endpoint: &Endpoint, me: ClusterId, source: ClusterId) -> Result<Self> {
        Ok(FeedClient {
            name: format!("the feed at {endpoint}"),
            me,
            source,
            calls: call_channel(endpoint)?,
            streams: stream_channel(endpoint)?,
            open: Mutex::new(None),
        })
    }

    async fn subscribe(&self, after: Position) -> Result<OpenFeed> {
        let request = FeedRequest {
            cluster: self.me.0,
            after: after.0,
            source: self.source.0,
        };
        let batches = FeedStub::new(self.streams.clone())
            .changes(request)
            .await
            .map_err(|s| from_status(&self.name, s))?
            .into_inner();
        Ok(OpenFeed {
            at: after,
            log: LogId::UNKNOWN,
            batches,
        })
    }
}

#[async_trait]
impl SyncPeer for FeedClient {
    async fn users(&self) -> Result<Vec<UserRecord>> {
        let reply = SynchServiceClient::new(self.calls.clone())
            .get_user_tlfl(Id {
                id: self.me.0 as i32,
            })
            .await
            .map_err(|s| from_status(&self.name, s))?;
        reply.into_inner().data.iter().map(user_record).collect()
    }

    async fn changes_after(&self, cursor: Position, _max: usize) -> Result<Changes> {
        let mut open = self.open.lock().await;
        if open.as_ref().is_none_or(|feed| feed.at != cursor) {
            *open = Some(self.subscribe(cursor).await?);
        }
        let feed = open.as_mut().expect("opened above");
        let next = match tokio::time::timeout(LONG_POLL, feed.batches.message()).await {
            Err(_) => {
                return Ok(Changes {
                    entries: Vec::new(),
                    through: cursor,
                    log: feed.log,
                });
            }
            Ok(next) => next,
        };
        let batch = match next {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                *open = None;
                return Err(Error::Unavailable {
                    what: self.name.clone(),
                    reason: "the feed ended".into(),
                });
            }
            Err(status) => {
                *open = None;
                return Err(from_status(&self.name, status));
            }
        };
        let entries = batch
            .entries
            .into_iter()
            .map(Entry::try_from)
            .collect::<Result<Vec<_>>>()?;
        let through = Position(batch.through).max(cursor);
        feed.at = through;
        feed.log = LogId(batch.log);
        Ok(Changes {
            entries,
            through,
            log: feed.log,
        })
    }
}
