//! `tsc`, the client a person uses (SPEC.md section 4).
//!
//! [`run`] connects through the coordinator, shows the banner, and reads commands until
//! the end of input or TIMELINE, which it never leaves. Every line it prints is one of
//! [`format`]'s. When the server stops answering, [`link`] finds the cluster's new master
//! and logs in again; a command that failed that way is tried once more there, and the
//! timeline resumes where it was ([`timeline`]).

pub mod command;
pub mod console;
pub mod format;
pub mod link;
pub mod timeline;

use std::process::ExitCode;

use tokio::time::Instant;
use tsn_core::id::UserId;
use tsn_grpc::client::{CallError, FollowReply, UnfollowReply};

use crate::cli::Addresses;
use crate::client::command::Command;
use crate::client::console::{Console, Input};
use crate::client::link::{ConnectError, Link};

/// Runs the client for `user` against the coordinators at `coordinators`.
pub async fn run(coordinators: Addresses, user: UserId) -> ExitCode {
    let mut console = Console::open();
    let mut link = match Link::new(coordinators, user) {
        Ok(link) => link,
        Err(error) => {
            eprintln!("tsc: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = link.connect(&console, None).await {
        return connection_failed(&console, &error);
    }
    console.say(format::BANNER);
    loop {
        let line = match console.read_line(format::PROMPT).await {
            // Bytes that are no text are no command word and no user id: `FOLLOW <them>`
            // names no user, as SPEC.md section 4 says.
            Input::Line(line) | Input::NotText(line) => line,
            Input::End | Input::Interrupted => {
                link.logout().await;
                return ExitCode::SUCCESS;
            }
        };
        match command::parse(&line) {
            Err(answer) => console.say(answer),
            Ok(Command::Timeline) => {
                if let Some(exit) = timeline::run(&mut link, &mut console).await {
                    return exit;
                }
            }
            Ok(command) => match execute(&mut link, &console, &command).await {
                Ok(lines) => lines.iter().for_each(|line| console.say(line)),
                Err(exit) => return exit,
            },
        }
    }
}

/// Says that the client cannot go on: the course's line on standard output, the reason on
/// standard error. Returns the exit status.
pub fn connection_failed(console: &Console, error: &ConnectError) -> ExitCode {
    console.say(format::CONNECTION_FAILED);
    eprintln!("tsc: {error}");
    ExitCode::from(1)
}

/// Runs FOLLOW, UNFOLLOW or LIST, trying once more at a new master if the server is gone.
/// Returns the lines to print, or the exit status if the session was lost for good.
async fn execute(
    link: &mut Link,
    console: &Console,
    command: &Command,
) -> Result<Vec<String>, ExitCode> {
    for attempt in 0..2 {
        match call(link, command, attempt > 0).await {
            Ok(lines) => return Ok(lines),
            Err(CallError::Invalid(_)) => return Ok(vec![format::INVALID_USERNAME.into()]),
            Err(_) if attempt == 0 => {
                let deadline = Instant::now() + link::CONNECT_LIMIT;
                match link.connect(console, Some(deadline)).await {
                    Ok(()) => continue,
                    Err(refused @ ConnectError::Refused(_)) => {
                        return Err(connection_failed(console, &refused));
                    }
                    Err(_) => break,
                }
            }
            Err(_) => break,
        }
    }
    Ok(vec![format::FAILED.into()])
}

/// One attempt at a command: the lines to print, or the call's failure. A `retry` follows
/// an attempt whose connection broke, which the old master may have carried out already:
/// a FOLLOW (UNFOLLOW) that then finds the follow in place (gone) has succeeded.
async fn call(link: &Link, command: &Command, retry: bool) -> Result<Vec<String>, CallError> {
    let server = link.server();
    let line = |s: &str| vec![s.to_owned()];
    // (Following oneself is refused as "already following": no earlier attempt made it so.)
    let maybe_done = |target: &UserId| retry && *target != link.user();
    Ok(match command {
        Command::List => {
            let listing = server.list().await?;
            vec![
                format::SUCCESS.to_owned(),
                format::all_users(&listing.users),
                format::followers(&listing.followers),
            ]
        }
        Command::Follow(target) => line(follow_line(
            server.follow(&target.to_string()).await?,
            maybe_done(target),
        )),
        Command::Unfollow(target) => line(unfollow_line(
            server.unfollow(&target.to_string()).await?,
            maybe_done(target),
        )),
        Command::Timeline => unreachable!("TIMELINE is not a one-shot command"),
    })
}

/// The line a FOLLOW's reply prints; `maybe_done`: an earlier attempt, cut off, may have
/// made the follow.
fn follow_line(reply: FollowReply, maybe_done: bool) -> &'static str {
    match reply {
        FollowReply::Done => format::SUCCESS,
        FollowReply::UnknownUser => format::INVALID_USERNAME,
        FollowReply::AlreadyFollowing if maybe_done => format::SUCCESS,
        FollowReply::AlreadyFollowing => format::ALREADY_EXISTS,
        FollowReply::Other(_) => format::FAILED,
    }
}

/// The line an UNFOLLOW's reply prints; `maybe_done`: an earlier attempt, cut off, may
/// have ended the follow.
fn unfollow_line(reply: UnfollowReply, maybe_done: bool) -> &'static str {
    match reply {
        UnfollowReply::Done => format::SUCCESS,
        UnfollowReply::UnknownUser => format::INVALID_USERNAME,
        UnfollowReply::NotFollowing if maybe_done => format::SUCCESS,
        UnfollowReply::NotFollowing => format::NOT_A_FOLLOWER,
        UnfollowReply::Other(_) => format::FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_follow_that_finds_the_follow_in_place_succeeded() {
        assert_eq!(
            follow_line(FollowReply::AlreadyFollowing, true),
            format::SUCCESS
        );
        assert_eq!(
            unfollow_line(UnfollowReply::NotFollowing, true),
            format::SUCCESS
        );
    }

    #[test]
    fn a_first_attempt_reports_what_the_server_says() {
        assert_eq!(
            follow_line(FollowReply::AlreadyFollowing, false),
            format::ALREADY_EXISTS
        );
        assert_eq!(
            unfollow_line(UnfollowReply::NotFollowing, false),
            format::NOT_A_FOLLOWER
        );
        for maybe_done in [false, true] {
            assert_eq!(follow_line(FollowReply::Done, maybe_done), format::SUCCESS);
            assert_eq!(
                follow_line(FollowReply::UnknownUser, maybe_done),
                format::INVALID_USERNAME
            );
            assert_eq!(
                unfollow_line(UnfollowReply::UnknownUser, maybe_done),
                format::INVALID_USERNAME
            );
            assert_eq!(
                follow_line(FollowReply::Other("?".into()), maybe_done),
                format::FAILED
            );
        }
    }
}
