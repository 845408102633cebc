//! [`TimelineConn`]: an open Timeline stream, from the client's side.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;
use tsn_core::id::{Time, UserId};

use crate::client::CallError;
use crate::convert::timestamp;
use crate::proto::csce438::Message;
use crate::proto::csce438::sns_service_client::SnsServiceClient;
use crate::tsd::ACKNOWLEDGES;

/// A post that arrived on the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Its index on the timeline (0 from servers that do not number them).
    pub index: u64,
    /// Its author, as the server wrote it.
    pub author: String,
    /// When it was posted.
    pub time: Time,
    /// Its text.
    pub text: String,
}

/// What a Timeline stream brings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimelineEvent {
    /// A post of the timeline.
    Post(Delivered),
    /// Every post of this client with seq up to `seq` is durable, or (with `error`) the
    /// post `seq` was refused.
    Acked {
        /// The post's seq.
        seq: u64,
        /// Why the post was refused; `None` when it was stored.
        error: Option<String>,
        /// Where post `seq` was committed, when the server says: the acknowledging
        /// master's epoch and the post's position in the cluster's log.
        committed: Option<Committed>,
    },
}

/// Where an acknowledged post was committed (a TSN extension of the acknowledgement).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The epoch of the master that acknowledged it.
    pub epoch: u64,
    /// Its position in its cluster's log.
    pub position: u64,
}

/// An open Timeline stream.
#[derive(Debug)]
pub struct TimelineConn {
    poster: Poster,
    inbound: Streaming<Message>,
    acknowledges: bool,
}

/// The sending half of a Timeline stream: posts can go out from one task while another
/// reads the stream's events.
#[derive(Clone, Debug)]
pub struct Poster {
    user: UserId,
    outbound: mpsc::Sender<Message>,
}

impl Poster {
    /// Sends a post with the id `(origin, seq)`.
    pub async fn post(&self, origin: u64, seq: u64, text: &str) -> Result<(), CallError> {
        let message = Message {
            username: self.user.to_string(),
            msg: text.to_owned(),
            timestamp: Some(timestamp(crate::tsd::wall_clock())),
            origin,
            seq,
            ..Default::default()
        };
        self.outbound.send(message).await.map_err(|_| closed())
    }
}

impl TimelineConn {
    pub(crate) async fn open(
        channel: Channel,
        user: UserId,
        session: &str,
        resume_after: Option<u64>,
    ) -> Result<Self, CallError> {
        let (outbound, rx) = mpsc::channel(1024);
        let first = Message {
            username: user.to_string(),
            msg: "Set Stream".into(),
            timestamp: Some(timestamp(crate::tsd::wall_clock())),
            session: session.to_owned(),
            resume_after,
            ..Default::default()
        };
        // Queue the first message before awaiting the call: the server answers after it.
        outbound.send(first).await.map_err(|_| closed())?;
        let response = SnsServiceClient::new(channel)
            .timeline(ReceiverStream::new(rx))
            .await?;
        let acknowledges = response.metadata().contains_key(ACKNOWLEDGES);
        Ok(TimelineConn {
            poster: Poster { user, outbound },
            inbound: response.into_inner(),
            acknowledges,
        })
    }

    /// Whether the server acknowledges this stream's posts (TSN's servers do). A server of
    /// the course's design does not: a post sent to it cannot be known to be stored.
    pub fn acknowledges(&self) -> bool {
        self.acknowledges
    }

    /// Sends a post with the id `(origin, seq)`.
    pub async fn post(&self, origin: u64, seq: u64, text: &str) -> Result<(), CallError> {
        self.poster.post(origin, seq, text).await
    }

    /// A sender of posts on this stream, for another task.
    pub fn poster(&self) -> Poster {
        self.poster.clone()
    }

    /// Ends this client's side of the stream (its posts) and waits, at most `limit`, until
    /// the server has ended its side: then every post sent before has reached it. For a
    /// server that sends no acknowledgements, this is how a client knows its last posts
    /// left. Events that come meanwhile are dropped. (A [`Poster`] still held elsewhere
    /// keeps the client's side open; the wait then lasts `limit`.)
    pub async fn finish(self, limit: std::time::Duration) {
        let TimelineConn {
            poster,
            mut inbound,
            ..
        } = self;
        drop(poster);
        let _ = tokio::time::timeout(limit, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
    }

    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<TimelineEvent>, CallError> {
        let Some(message) = self.inbound.message().await? else {
            return Ok(None);
        };
        if message.acked > 0 {
            let committed =
                (message.acked_epoch > 0 && message.acked_position > 0).then_some(Committed {
                    epoch: message.acked_epoch,
                    position: message.acked_position,
                });
            return Ok(Some(TimelineEvent::Acked {
                seq: message.acked,
                error: (!message.error.is_empty()).then_some(message.error),
                committed,
            }));
        }
        let time = message
            .timestamp
            .map(|t| Time::from_unix(t.seconds.max(0) as u64, t.nanos.max(0) as u32))
            .unwrap_or_default();
        Ok(Some(TimelineEvent::Post(Delivered {
            index: message.index,
            author: message.username,
            time,
            text: message.msg,
        })))
    }
}

fn closed() -> CallError {
    CallError::Unreachable("the timeline stream closed".into())
}
