//! [`FeedServer`]: the change feed and the course's `SynchService`, served from any
//! [`FeedSources`]: a master's (its own cluster's committed changes) or a synchronizer's.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tsn_core::id::{ClusterId, LogId, Position};
use tsn_core::sync::FeedSources;

use crate::convert::course_user;
use crate::error::to_status;
use crate::feed::{CURSOR_ONLY_EVERY, FEED_BATCH};
use crate::proto::csce438::synch_service_server::SynchService;
use crate::proto::csce438::{AllData, Id};
use crate::proto::tsn::feed_server::Feed;
use crate::proto::tsn::{self, FeedBatch, FeedRequest};

/// Serves what `sources` reads: TSN's `Feed` and the course's `SynchService` (the users
/// of the server's own cluster).
pub struct FeedServer {
    sources: Arc<dyn FeedSources>,
}

impl FeedServer {
    /// Serves `sources`.
    pub fn new(sources: Arc<dyn FeedSources>) -> Self {
        FeedServer { sources }
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<FeedBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Feed for FeedServer {
    type ChangesStream = BatchStream;

    async fn changes(
        &self,
        request: Request<FeedRequest>,
    ) -> Result<Response<BatchStream>, Status> {
        let FeedRequest {
            cluster,
            after,
            source,
        } = request.into_inner();
        let source = match source {
            0 => self.sources.cluster(),
            other => ClusterId(other),
        };
        let local = self.sources.reader(source).map_err(to_status)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            tracing::info!(cluster, %source, after, "a server subscribed to the feed");
            let mut cursor = Position(after);
            let mut sent = cursor;
            let mut sent_log = LogId::UNKNOWN;
            loop {
                let changes = match local.changes_after(cursor, FEED_BATCH).await {
                    Ok(changes) => changes,
                    Err(error) => {
                        let _ = tx.send(Err(to_status(error))).await;
                        return;
                    }
                };
                cursor = cursor.max(changes.through);
                let worth_sending = !changes.entries.is_empty()
                    || cursor.0 - sent.0 >= CURSOR_ONLY_EVERY
                    || changes.log != sent_log;
                if !worth_sending {
                    if tx.is_closed() {
                        return;
                    }
                    continue;
                }
                let batch = FeedBatch {
                    entries: changes.entries.iter().map(tsn::Entry::from).collect(),
                    through: cursor.0,
                    log: changes.log.0,
                };
                if tx.send(Ok(batch)).await.is_err() {
                    tracing::info!(cluster, %source, "a server left the feed");
                    return;
                }
                sent = cursor;
                sent_log = changes.log;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl SynchService for FeedServer {
    async fn get_user_tlfl(&self, _request: Request<Id>) -> Result<Response<AllData>, Status> {
        let own = self
            .sources
            .reader(self.sources.cluster())
            .map_err(to_status)?;
        let users = own.users().await.map_err(to_status)?;
        Ok(Response::new(AllData {
            data: users.iter().map(course_user).collect(),
        }))
    }
}
