//! Reading a command line (SPEC.md section 4).

use tsn_core::id::UserId;

use crate::client::format;

/// A command the person typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `FOLLOW <user>`
    Follow(UserId),
    /// `UNFOLLOW <user>`
    Unfollow(UserId),
    /// `LIST`
    List,
    /// `TIMELINE`
    Timeline,
}

/// Reads a line as a command; a line that is none gives the line to print instead.
/// Commands are case-insensitive and words are separated by any whitespace.
pub fn parse(line: &str) -> Result<Command, &'static str> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Err(format::NOT_A_COMMAND);
    };
    let arguments: Vec<&str> = words.collect();
    match name.to_ascii_uppercase().as_str() {
        "FOLLOW" | "UNFOLLOW" => {
            let target = match arguments.as_slice() {
                [] => return Err(format::NO_ARGUMENTS),
                [target] => target
                    .parse::<UserId>()
                    .map_err(|_| format::INVALID_USERNAME)?,
                _ => return Err(format::INVALID_COMMAND),
            };
            Ok(if name.eq_ignore_ascii_case("FOLLOW") {
                Command::Follow(target)
            } else {
                Command::Unfollow(target)
            })
        }
        "LIST" | "TIMELINE" if !arguments.is_empty() => Err(format::INVALID_COMMAND),
        "LIST" => Ok(Command::List),
        "TIMELINE" => Ok(Command::Timeline),
        _ => Err(format::NOT_A_COMMAND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u32) -> UserId {
        UserId::new(n).unwrap()
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(parse("follow 4"), Ok(Command::Follow(user(4))));
        assert_eq!(parse("UnFollow\t4 "), Ok(Command::Unfollow(user(4))));
        assert_eq!(parse("list"), Ok(Command::List));
        assert_eq!(parse("Timeline"), Ok(Command::Timeline));
    }

    #[test]
    fn bad_lines_get_the_spec_lines() {
        assert_eq!(parse(""), Err(format::NOT_A_COMMAND));
        assert_eq!(parse("   "), Err(format::NOT_A_COMMAND));
        assert_eq!(parse("POST hello"), Err(format::NOT_A_COMMAND));
        assert_eq!(parse("FOLLOW"), Err(format::NO_ARGUMENTS));
        assert_eq!(parse("UNFOLLOW "), Err(format::NO_ARGUMENTS));
        assert_eq!(parse("FOLLOW 1 2"), Err(format::INVALID_COMMAND));
        assert_eq!(parse("LIST all"), Err(format::INVALID_COMMAND));
        for bad in ["abc", "0", "-4", "2147483648", "99999999999999999999"] {
            assert_eq!(
                parse(&format!("FOLLOW {bad}")),
                Err(format::INVALID_USERNAME),
                "{bad}"
            );
        }
    }
}
