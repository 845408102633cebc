//! How the client prints: the exact lines of SPEC.md section 4.

use chrono::{Local, TimeZone};
use tsn_core::id::Time;

/// The banner shown after the first login.
pub const BANNER: &str = "\
========= TINY SNS CLIENT =========
 Command Lists and Format:
 FOLLOW <username>
 UNFOLLOW <username>
 LIST
 TIMELINE
=====================================";

/// The command prompt.
pub const PROMPT: &str = "Cmd> ";

/// Printed when a command succeeded.
pub const SUCCESS: &str = "Command completed successfully";
/// FOLLOW of oneself or of someone already followed.
pub const ALREADY_EXISTS: &str = "Input username already exists, command failed";
/// An unknown user, something that is no user id, or UNFOLLOW of oneself.
pub const INVALID_USERNAME: &str = "Command failed with invalid username";
/// UNFOLLOW of someone not followed.
pub const NOT_A_FOLLOWER: &str = "Command failed with not a follower";
/// More arguments than the command takes.
pub const INVALID_COMMAND: &str = "Command failed with invalid command";
/// The server could not be reached, or anything else.
pub const FAILED: &str = "Command failed";
/// A line that is no command.
pub const NOT_A_COMMAND: &str = "Invalid Command";
/// FOLLOW or UNFOLLOW without its argument.
pub const NO_ARGUMENTS: &str = "Invalid Input -- No Arguments Given";
/// Entering timeline mode.
pub const IN_TIMELINE: &str = "Now you are in the timeline";
/// The login was refused.
pub const CONNECTION_FAILED: &str = "connection failed: -1";

/// `Reconnecting to <host>:<port>...`
pub fn reconnecting(endpoint: &impl std::fmt::Display) -> String {
    format!("Reconnecting to {endpoint}...")
}

/// `All users: 1, 2, 3` — ids in increasing numeric order, separated by `, `.
pub fn all_users(users: &[String]) -> String {
    format!("All users: {}", id_list(users))
}

/// `Followers: 2, 3`
pub fn followers(users: &[String]) -> String {
    format!("Followers: {}", id_list(users))
}

fn id_list(users: &[String]) -> String {
    let mut sorted: Vec<&String> = users.iter().collect();
    sorted.sort_by_key(|u| (u.parse::<u64>().unwrap_or(u64::MAX), u.as_str()));
    sorted
        .iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<user> (<time>) >> <post>`, the time as C's `ctime` writes it in local time, without
/// its newline.
pub fn timeline_line(author: &str, time: Time, text: &str) -> String {
    format!("{author} ({}) >> {text}", ctime(time))
}

/// `Tue Nov 25 14:03:07 2026` in local time.
pub fn ctime(time: Time) -> String {
    ctime_in(time, &Local)
}

/// `Tue Nov 25 14:03:07 2026` in the time zone `zone`.
fn ctime_in<Z: TimeZone>(time: Time, zone: &Z) -> String
where
    Z::Offset: std::fmt::Display,
{
    let seconds = i64::try_from(time.unix_seconds()).unwrap_or(i64::MAX);
    match zone.timestamp_opt(seconds, 0).single() {
        Some(then) => then.format("%a %b %e %H:%M:%S %Y").to_string(),
        None => String::from("??? ??? ?? ??:??:?? ????"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_are_numeric_and_comma_separated() {
        assert_eq!(all_users(&ids(&["10", "2", "1"])), "All users: 1, 2, 10");
        assert_eq!(followers(&ids(&[])), "Followers: ");
        assert_eq!(followers(&ids(&["3"])), "Followers: 3");
    }

    #[test]
    fn times_print_as_ctime_does() {
        // SPEC.md's examples, in UTC and two hours east of it.
        let utc = chrono::Utc;
        let east = chrono::FixedOffset::east_opt(2 * 3600).expect("an offset");
        assert_eq!(
            ctime_in(Time::from_unix(1_517_475_900, 0), &utc),
            "Thu Feb  1 09:05:00 2018"
        );
        assert_eq!(
            ctime_in(Time::from_unix(1_764_079_387, 0), &utc),
            "Tue Nov 25 14:03:07 2025"
        );
        assert_eq!(
            ctime_in(Time::from_unix(1_517_475_900, 0), &east),
            "Thu Feb  1 11:05:00 2018"
        );
        let line = timeline_line("4", Time::from_unix(1_517_475_900, 0), "hi");
        assert!(
            line.starts_with("4 (") && line.ends_with(") >> hi") && line.len() == 34,
            "{line}"
        );
    }
}
