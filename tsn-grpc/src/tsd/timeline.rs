//! The Timeline stream: a user's timeline out, the user's posts in.
//!
//! The first message names the user (the course's clients send the text `Set Stream`). The
//! server answers with the 20 newest posts of the timeline, newest first — or, for a TSN
//! client resuming after a failover, every post after the index it names — and then each
//! new post as it commits. Every later message of the client is a post by that user,
//! stored once it is committed; TSN's clients (who send a session token) get an
//! acknowledgement for each, in order. A message that claims another user, or a text
//! that is no valid post, is refused: with an acknowledgement carrying the reason for TSN's
//! clients, by ending the stream with `INVALID_ARGUMENT` for the course's.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tsn_core::Store;
use tsn_core::command::{self, Posting};
use tsn_core::id::{Position, UserId};
use tsn_core::post::{PostId, PostText};
use tsn_core::state::TimelineItem;
use tsn_core::timeline::Subscription;

use crate::convert::timeline_message;
use crate::error::to_status;
use crate::proto::csce438::Message;
use crate::tsd::request::{not_served, parse_user};
use crate::tsd::wall_clock;
use tsn_server::master::Master;
use tsn_server::tsd::Tsd;

/// The response stream of a Timeline call.
pub(crate) type TimelineStream = Pin<Box<dyn Stream<Item = Result<Message, Status>> + Send>>;

/// How many posts the view on entering the timeline shows.
const VIEW: usize = 20;

/// How many posts a stream reads from the replica at a time: each read holds the store's
/// lock, and a client far behind (one that resumes, or reads slowly) may have hundreds of
/// thousands to read; a page is held until it is sent.
const PAGE: usize = 256;

/// How long a client may take to send the stream's first message.
const FIRST_MESSAGE: Duration = Duration::from_secs(30);

/// How many posts that arrive together are appended in one write at most.
const POST_BATCH: usize = 256;

/// How many messages may wait for a slow client before the stream holds back: the posts
/// behind them wait in the replica, where they are anyway.
const OUTBOUND_BUFFER: usize = 32;

/// Where the stream's messages go.
type Outbound = mpsc::Sender<Result<Message, Status>>;

/// A post of this stream waiting for its acknowledgement.
struct PendingAck {
    seq: u64,
    /// The position that must be committed first (0 for a refusal).
    position: Position,
    /// The post's own position: `position` when the post was appended, 0 when it was
    /// stored before or refused.
    stored_at: Position,
    error: String,
}

/// Opens a Timeline stream; says whether it acknowledges the client's posts (it does when
/// the first message carries a session).
pub(crate) async fn open<S: Store>(
    server: &Tsd<S>,
    mut inbound: Streaming<Message>,
) -> Result<(TimelineStream, bool), Status> {
    let master = server.master().map_err(to_status)?;
    let first = match tokio::time::timeout(FIRST_MESSAGE, inbound.message()).await {
        Err(_) => {
            return Err(Status::deadline_exceeded(
                "no first message naming the user",
            ));
        }
        Ok(Err(status)) => return Err(status),
        Ok(Ok(None)) => {
            return Err(Status::cancelled(
                "the stream ended before its first message",
            ));
        }
        Ok(Ok(Some(first))) => first,
    };
    let user = parse_user(&first.username, "username")?;
    server
        .store()
        .read(|state| command::check_served(state, user, false))
        .map_err(not_served)?;
    let acks_wanted = !first.session.is_empty();

    // Watch before reading the view, so that nothing committed in between is missed: the
    // stream goes on from the index the view covers.
    let subscription = server.hub().subscribe(user);
    let commit = master.commit_position();
    let (view, shown) = match first.resume_after {
        Some(after) => (Vec::new(), after),
        None => server.store().read(|state| {
            let view = state.timeline_newest(user, VIEW, commit);
            (view, state.timeline_len_through(user, commit))
        }),
    };

    let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let watcher = Watcher {
        tx: tx.clone(),
        master: Arc::clone(&master),
        subscription,
        shown,
        acks: ack_rx,
        pending: VecDeque::new(),
        acks_wanted,
    };
    tokio::spawn(watcher.run(user, view));
    let poster = Poster {
        tx,
        master,
        user,
        acks: ack_tx,
        acks_wanted,
    };
    tokio::spawn(poster.run(inbound));
    Ok((Box::pin(ReceiverStream::new(rx)), acks_wanted))
}

/// Sends the timeline and the acknowledgements.
struct Watcher<S> {
    tx: Outbound,
    master: Arc<Master<S>>,
    subscription: Subscription,
    /// The highest timeline index already sent (or covered by the view, or shown by the
    /// client before it resumed).
    shown: u64,
    acks: mpsc::UnboundedReceiver<PendingAck>,
    pending: VecDeque<PendingAck>,
    acks_wanted: bool,
}

impl<S: Store> Watcher<S> {
    /// Sends `view`, then the timeline's committed posts after `shown` as they come, a
    /// page at a time, and the acknowledgements in between.
    async fn run(mut self, user: UserId, view: Vec<TimelineItem>) {
        if !self.send_all(&view).await {
            return;
        }
        let mut commit = self.master.commit_watch();
        let master = Arc::clone(&self.master);
        let mut posting = true;
        // Whether committed posts may wait unsent: at first (what was committed since the
        // view, or all a resuming client missed), and after a full page.
        let mut behind = true;
        loop {
            if behind {
                match self.send_page(user).await {
                    Some(full) => behind = full,
                    None => return,
                }
            }
            tokio::select! {
                grown = self.subscription.beyond(self.shown), if !behind => match grown {
                    Some(_) => behind = true,
                    None => return self.end("the timeline feed ended: this server is no longer the master").await,
                },
                // A reader far behind reads on, page after page, taking in acknowledgements
                // between pages.
                () = std::future::ready(()), if behind => {}
                ack = self.acks.recv(), if posting => match ack {
                    Some(ack) => self.pending.push_back(ack),
                    None => posting = false,
                },
                // Only while acknowledgements wait: a reader that does not post is not woken
                // by every commit of the cluster.
                changed = commit.changed(), if !self.pending.is_empty() => if changed.is_err() { return },
                () = master.ended() => return self.end("this server is no longer the master").await,
                () = self.tx.closed() => return,
            }
            let committed = *commit.borrow_and_update();
            if !self.send_acks(committed).await {
                return;
            }
        }
    }

    /// Sends the next page of `user`'s committed posts after `shown`: `None` once the client
    /// is gone, else whether the page was full (more may wait).
    async fn send_page(&mut self, user: UserId) -> Option<bool> {
        let (after, commit) = (self.shown, self.master.commit_position());
        let page: Vec<TimelineItem> = self.master.store().read(|state| {
            state
                .timeline_after(user, after, commit)
                .take(PAGE)
                .collect()
        });
        if let Some(last) = page.last() {
            self.shown = last.index;
        }
        self.send_all(&page).await.then_some(page.len() == PAGE)
    }

    /// Sends `items`; false once the client is gone.
    async fn send_all(&self, items: &[TimelineItem]) -> bool {
        for item in items {
            if self.tx.send(Ok(timeline_message(item))).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Sends the acknowledgements whose posts are committed, in order; false once the
    /// client is gone.
    ///
    /// An acknowledgement covers every earlier post, so the posts committed together are
    /// acknowledged by one message; a refusal is told on its own, in its place.
    async fn send_acks(&mut self, committed: Position) -> bool {
        let mut stored = None;
        while self
            .pending
            .front()
            .is_some_and(|a| a.position <= committed)
        {
            let ack = self.pending.pop_front().expect("checked above");
            if ack.error.is_empty() {
                stored = Some(ack);
                continue;
            }
            if let Some(last) = stored.take()
                && !self.acknowledge(last).await
            {
                return false;
            }
            if !self.acknowledge(ack).await {
                return false;
            }
        }
        match stored {
            Some(last) => self.acknowledge(last).await,
            None => true,
        }
    }

    /// Tells a TSN client that its posts up to `ack.seq` are durable, and where that post
    /// was committed (or, with an error, that post `ack.seq` was refused); false once the
    /// client is gone.
    async fn acknowledge(&self, ack: PendingAck) -> bool {
        if !self.acks_wanted {
            return true;
        }
        let stored = ack.error.is_empty() && ack.stored_at.0 > 0;
        let message = Message {
            acked: ack.seq,
            error: ack.error,
            acked_epoch: if stored { self.master.epoch().0 } else { 0 },
            acked_position: ack.stored_at.0,
            ..Default::default()
        };
        self.tx.send(Ok(message)).await.is_ok()
    }

    async fn end(&self, why: &str) {
        let _ = self.tx.send(Err(Status::unavailable(why.to_owned()))).await;
    }
}

/// Takes the client's posts.
struct Poster<S> {
    tx: Outbound,
    master: Arc<Master<S>>,
    user: UserId,
    acks: mpsc::UnboundedSender<PendingAck>,
    acks_wanted: bool,
}

impl<S: Store> Poster<S> {
    /// Takes the stream's posts until it ends. Posts that arrive together are appended
    /// together, in one write, and acknowledged together.
    async fn run(self, inbound: Streaming<Message>) {
        let mut batches = inbound.ready_chunks(POST_BATCH);
        loop {
            // Reads no more while the log waits for too many commits: the client's sends
            // then wait on the stream's flow control.
            self.master.room().await;
            let Some(batch) = batches.next().await else {
                return;
            };
            let mut run = Vec::new();
            for message in batch {
                let Ok(message) = message else {
                    return;
                };
                match self.check(&message) {
                    Ok((id, text)) => run.push((message.seq, id, text)),
                    Err(refusal) => {
                        if !self.append(std::mem::take(&mut run)).await
                            || !self.refuse(message.seq, refusal).await
                        {
                            return;
                        }
                    }
                }
            }
            if !self.append(run).await {
                return;
            }
        }
    }

    /// Tells of a refused post in its place among the acknowledgements — or, to a course
    /// client, which has no acknowledgements, by ending the stream. False once the stream
    /// must end.
    async fn refuse(&self, seq: u64, refusal: String) -> bool {
        if !self.acks_wanted {
            let _ = self.tx.send(Err(Status::invalid_argument(refusal))).await;
            return false;
        }
        let ack = PendingAck {
            seq,
            position: Position(0),
            stored_at: Position(0),
            error: refusal,
        };
        self.acks.send(ack).is_ok()
    }

    /// The post's id (if its client chose one) and text, or why it is refused.
    fn check(&self, message: &Message) -> Result<(Option<PostId>, PostText), String> {
        if message.username != self.user.to_string() {
            return Err(format!(
                "this stream carries the posts of user {}, not of '{}'",
                self.user, message.username
            ));
        }
        let text = PostText::from_line(&message.msg).map_err(|e| e.to_string())?;
        let id = match (message.origin, message.seq) {
            (0, _) => None,
            (_, 0) => return Err("a post's seq starts at 1".to_owned()),
            (origin, seq) => Some(PostId { origin, seq }),
        };
        Ok((id, text))
    }

    /// Appends checked posts `(seq, id, text)` in one write; false once the stream must
    /// end (this server is no longer the master).
    async fn append(&self, posts: Vec<(u64, Option<PostId>, PostText)>) -> bool {
        let Some(&(last_seq, ..)) = posts.last() else {
            return true;
        };
        let user = self.user;
        let mut last_is_new = false;
        let appended = self.master.append_all(|state| {
            let mut next = state.last().position.next().0;
            let mut changes = Vec::with_capacity(posts.len());
            for (_, id, text) in posts {
                let id = id.unwrap_or(PostId {
                    origin: 0,
                    seq: next,
                });
                last_is_new = false;
                if let Posting::New(change) = command::post(state, user, id, text, wall_clock()) {
                    changes.push(change);
                    next += 1;
                    last_is_new = true;
                }
            }
            changes
        });
        match appended {
            Ok(position) => {
                let ack = PendingAck {
                    seq: last_seq,
                    position,
                    stored_at: if last_is_new { position } else { Position(0) },
                    error: String::new(),
                };
                self.acks.send(ack).is_ok()
            }
            Err(error) => {
                let _ = self.tx.send(Err(to_status(error))).await;
                false
            }
        }
    }
}
