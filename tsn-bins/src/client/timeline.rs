//! Timeline mode: posts of followed users out, the person's lines in as posts.
//!
//! Each post carries an id (`origin`, `seq`) so that the server applies it once, and stays
//! in `unacked` until the server acknowledges it. After a failover the client logs in at
//! the new master, reopens the stream after the highest timeline index it has shown (so
//! nothing is shown twice or skipped), and sends the unacknowledged posts again. At the end
//! of input it leaves once every post is acknowledged.
//!
//! A server of the course's design sends no acknowledgements: against one, the client does
//! as the course's does — it resends nothing and leaves at the end of input.

use std::collections::VecDeque;
use std::process::ExitCode;

use tsn_core::post::PostText;
use tsn_grpc::client::{TimelineConn, TimelineEvent};

use crate::client::connection_failed;
use crate::client::console::{Console, Input};
use crate::client::format;
use crate::client::link::{self, ConnectError, Link};

/// A post sent but not yet acknowledged.
struct Unacked {
    seq: u64,
    text: String,
}

/// Where the client is in its timeline.
struct Progress {
    /// The client's random post-id origin.
    origin: u64,
    next_seq: u64,
    unacked: VecDeque<Unacked>,
    /// The highest timeline index shown.
    shown: u64,
    input_open: bool,
}

/// Enters timeline mode. Returns `None` (back to command mode) if the timeline could not be
/// opened, or the exit status when the client is done.
pub async fn run(link: &mut Link, console: &mut Console) -> Option<ExitCode> {
    let mut conn = match open(link, console, None).await {
        Ok(conn) => conn,
        Err(refused @ ConnectError::Refused(_)) => {
            return Some(connection_failed(console, &refused));
        }
        Err(_) => {
            console.say(format::FAILED);
            return None;
        }
    };
    console.say(format::SUCCESS);
    console.say(format::IN_TIMELINE);
    let mut lost = link.lost();
    lost.mark_unchanged();
    let mut progress = Progress {
        origin: rand::random::<u64>().max(1),
        next_seq: 1,
        unacked: VecDeque::new(),
        shown: 0,
        input_open: true,
    };
    loop {
        let server_lost = tokio::select! {
            event = conn.next() => match event {
                Ok(Some(TimelineEvent::Post(post))) => {
                    progress.shown = progress.shown.max(post.index);
                    console.say(&format::timeline_line(&post.author, post.time, &post.text));
                    false
                }
                Ok(Some(TimelineEvent::Acked { seq, error, .. })) => {
                    if let Some(error) = error {
                        console.say(&format!("Post not stored: {error}"));
                    }
                    while progress.unacked.front().is_some_and(|p| p.seq <= seq) {
                        progress.unacked.pop_front();
                    }
                    false
                }
                Ok(None) | Err(_) => true,
            },
            // A loss of an earlier connection is dealt with already.
            Ok(()) = lost.changed() => *lost.borrow_and_update() == link.connection(),
            input = console.read_line(""), if progress.input_open => {
                match input {
                    Input::Line(line) if line.is_empty() => {}
                    Input::Line(line) => match PostText::new(line.as_str()) {
                        Ok(_) => {
                            let seq = progress.next_seq;
                            progress.next_seq += 1;
                            // A failed send shows up as a broken stream; the post is resent then.
                            let _ = conn.post(progress.origin, seq, &line).await;
                            if conn.acknowledges() {
                                progress.unacked.push_back(Unacked { seq, text: line });
                            }
                        }
                        Err(bad) => console.say(&format!("Post not sent: {bad}")),
                    },
                    Input::NotText(_) => console.say("Post not sent: the line is not valid UTF-8 text"),
                    Input::End => progress.input_open = false,
                    Input::Interrupted => break,
                }
                false
            }
        };
        if server_lost {
            match resume(link, console, &progress).await {
                Ok(resumed) => conn = resumed,
                Err(error) => return Some(connection_failed(console, &error)),
            }
        }
        if !progress.input_open && progress.unacked.is_empty() {
            if !conn.acknowledges() {
                // Nothing says the last posts reached a server of the course's design:
                // end the stream and let it end its side, as the course's client does.
                conn.finish(tsn_grpc::CALL_TIMEOUT).await;
            }
            break;
        }
    }
    link.logout().await;
    Some(ExitCode::SUCCESS)
}

/// Opens the timeline at the current server, or at a new master if it is gone.
async fn open(
    link: &mut Link,
    console: &Console,
    resume_after: Option<u64>,
) -> Result<TimelineConn, ConnectError> {
    if let Ok(conn) = link.server().open_timeline(resume_after).await {
        return Ok(conn);
    }
    link.connect(
        console,
        Some(tokio::time::Instant::now() + link::CONNECT_LIMIT),
    )
    .await?;
    link.server()
        .open_timeline(resume_after)
        .await
        .map_err(|e| link.unreachable(e))
}

/// Finds the new master, reopens the timeline after what was shown, and sends the
/// unacknowledged posts again. Keeps trying unless the session is taken by another client.
async fn resume(
    link: &mut Link,
    console: &Console,
    progress: &Progress,
) -> Result<TimelineConn, ConnectError> {
    loop {
        link.connect(console, None).await?;
        let Ok(conn) = link.server().open_timeline(Some(progress.shown)).await else {
            continue;
        };
        let mut resent = true;
        for post in &progress.unacked {
            if conn
                .post(progress.origin, post.seq, &post.text)
                .await
                .is_err()
            {
                resent = false;
                break;
            }
        }
        if resent {
            return Ok(conn);
        }
    }
}
