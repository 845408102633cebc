//! Posts: their text rules and their identity.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{Time, UserId};

/// The identity of a post, chosen by the client that wrote it so that a post sent again
/// after a failover (because its acknowledgement never came) is applied once.
///
/// `origin` is a random number a client picks when it starts and keeps across
/// reconnections; `seq` counts that client's posts from 1. Origin 0 is reserved for posts
/// whose client chose no id (the course's clients): the server then uses the log position
/// as `seq`. Two posts are the same post when author, origin and seq are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PostId {
    /// The writing client's random number; 0 when the server chose the id.
    pub origin: u64,
    /// The client's count of its posts (or the log position, for origin 0).
    pub seq: u64,
}

/// Why a line cannot be a post; `Display` is the message shown to the person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadPost {
    /// An empty line.
    #[error("the post is empty")]
    Empty,
    /// Over [`PostText::MAX_CHARS`] characters.
    #[error("the post has {0} characters; at most 1000 are allowed")]
    TooLong(usize),
    /// A control character other than tab (a newline, a NUL, an escape ...).
    #[error("the post contains a control character (U+{0:04X}); only tabs are allowed")]
    ControlCharacter(u32),
}

/// The text of a post: one line of 1 to 1,000 characters (Unicode scalar values), with no
/// control characters but tab. Anything else — quotes, backslashes, any script, emoji — is
/// kept exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PostText(String);

impl PostText {
    /// The longest post, in characters.
    pub const MAX_CHARS: usize = 1000;

    /// Checks `text` against the rules above.
    pub fn new(text: impl Into<String>) -> Result<Self, BadPost> {
        let text = text.into();
        if text.is_empty() {
            return Err(BadPost::Empty);
        }
        if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(BadPost::ControlCharacter(c as u32));
        }
        let chars = text.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(BadPost::TooLong(chars));
        }
        Ok(PostText(text))
    }

    /// Like [`PostText::new`] after dropping one trailing line ending (`\n` or `\r\n`), as
    /// the course's client sends its lines.
    pub fn from_line(line: &str) -> Result<Self, BadPost> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        Self::new(line)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PostText {
    type Error = BadPost;
    fn try_from(text: String) -> Result<Self, BadPost> {
        PostText::new(text)
    }
}

impl From<PostText> for String {
    fn from(text: PostText) -> String {
        text.0
    }
}

impl fmt::Display for PostText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A post as stored: who wrote it, when its master accepted it, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// The post's identity (see [`PostId`]).
    pub id: PostId,
    /// The writer.
    pub author: UserId,
    /// When the author's master accepted it.
    pub time: Time,
    /// The text.
    pub text: PostText,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_printable_text_up_to_the_limit_is_kept_exactly() {
        let text = "\"quotes\" \\back\\slashes\ttabs ünïcödé 日本語 🎉";
        assert_eq!(PostText::new(text).unwrap().as_str(), text);
        let longest = "🎉".repeat(PostText::MAX_CHARS);
        assert_eq!(PostText::new(longest.clone()).unwrap().as_str(), longest);
    }

    #[test]
    fn empty_long_and_control_text_is_refused() {
        assert_eq!(PostText::new(""), Err(BadPost::Empty));
        assert_eq!(PostText::new("x".repeat(1001)), Err(BadPost::TooLong(1001)));
        assert_eq!(PostText::new("a\nb"), Err(BadPost::ControlCharacter(0x0a)));
        assert_eq!(
            PostText::new("\u{1b}[31m"),
            Err(BadPost::ControlCharacter(0x1b))
        );
    }

    #[test]
    fn a_course_line_loses_its_line_ending_only() {
        assert_eq!(PostText::from_line("hi\n").unwrap().as_str(), "hi");
        assert_eq!(PostText::from_line("hi\r\n").unwrap().as_str(), "hi");
        assert_eq!(PostText::from_line(" hi ").unwrap().as_str(), " hi ");
        assert_eq!(PostText::from_line("\n"), Err(BadPost::Empty));
    }
}
