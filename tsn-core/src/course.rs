//! The course's readable formats: the four-line post record and its text escaping.
//!
//! A post record, as the course's files hold it and its `GetUserTLFL` answers carry it, is
//!
//! ```text
//! T 2026-11-25 14:03:07
//! U 4
//! W the text, escaped
//!
//! ```
//!
//! The time is UTC, to the second. The text is escaped by [`escape`] so that no text
//! can end its line or start a record of its own: `\` becomes `\\`, a newline `\n`, a
//! carriage return `\r`, and any other control character but tab — and the Unicode line and
//! paragraph separators U+2028 and U+2029, which some readers split lines at — becomes
//! `\u{XXXX}` (its code point in upper-case hexadecimal, at least four digits). Everything
//! else, tabs, quotes, any script and emoji, is written as it is. [`unescape`] undoes it.
//!
//! Post texts accepted by [`PostText`](crate::post::PostText) hold no control character but tab, so
//! in practice only backslashes (and the two separators) are escaped; the rest makes the
//! view safe whatever text it is given.

use std::fmt::Write as _;

use crate::id::{Time, UserId};
use crate::post::Post;

/// Whether `c` is written as `\u{XXXX}`.
fn needs_code(c: char) -> bool {
    (c.is_control() && c != '\t') || c == '\u{2028}' || c == '\u{2029}'
}

/// `text` escaped to one line: `\` → `\\`, newline → `\n`, carriage return → `\r`, any
/// other control character but tab, and U+2028 and U+2029, → `\u{XXXX}` (upper-case hex,
/// at least four digits); everything else as it is. [`unescape`] undoes it.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_code(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:04X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Text that [`unescape`] cannot read: a backslash that starts no escape [`escape`] writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad escape at byte {at}: {reason}")]
pub struct BadEscape {
    /// Where the backslash is, in bytes from the start of the text.
    pub at: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The text that [`escape`] turned into `text`.
///
/// Accepts `\\`, `\n`, `\r` and `\u{X}` with one to six hexadecimal digits naming a Unicode
/// scalar value; any other backslash is an error.
pub fn unescape(text: &str) -> Result<String, BadEscape> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let bad = |reason| BadEscape { at, reason };
        match chars.next().map(|(_, c)| c) {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('u') => {
                if chars.next().map(|(_, c)| c) != Some('{') {
                    return Err(bad("`\\u` without `{`"));
                }
                let mut code: u32 = 0;
                let mut digits = 0;
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('}') if digits > 0 => break,
                        Some(c) if digits < 6 => match c.to_digit(16) {
                            Some(d) => {
                                code = code * 16 + d;
                                digits += 1;
                            }
                            None => return Err(bad("`\\u{` holds a non-hexadecimal character")),
                        },
                        _ => return Err(bad("`\\u{` needs one to six hex digits and `}`")),
                    }
                }
                out.push(char::from_u32(code).ok_or_else(|| bad("not a Unicode scalar value"))?);
            }
            Some(_) => return Err(bad("unknown escape")),
            None => return Err(bad("backslash at the end of the text")),
        }
    }
    Ok(out)
}

/// `time` as the course's records write it: UTC, `YYYY-MM-DD HH:MM:SS`.
pub fn time_text(time: Time) -> String {
    let seconds = time.unix_seconds();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Reads a time written by [`time_text`]; `None` for anything else.
pub fn parse_time_text(text: &str) -> Option<Time> {
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (date, clock) = text.split_once(' ')?;
    let mut date = date.splitn(3, '-').map(number);
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut clock = clock.splitn(3, ':').map(number);
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let time = Time::from_unix(days * 86_400 + hour * 3600 + minute * 60 + second, 0);
    (time_text(time) == text).then_some(time)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), for dates from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The four-line record of `post`, its trailing empty line included.
pub fn post_record(post: &Post) -> String {
    format!(
        "T {}\nU {}\nW {}\n\n",
        time_text(post.time),
        post.author,
        escape(post.text.as_str())
    )
}

/// A post record as read back from a view file by [`parse_post_records`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostRecord {
    /// The `T` line's value, as written (UTC, to the second).
    pub time: String,
    /// The `U` line's value.
    pub author: UserId,
    /// The `W` line's value, unescaped.
    pub text: String,
}

/// Text that is not a sequence of whole post records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct BadRecord {
    /// The line where the trouble is, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Reads a sequence of post records (a course file `<id>.txt` or `<id>_timeline.txt`).
pub fn parse_post_records(text: &str) -> Result<Vec<PostRecord>, BadRecord> {
    let Some(body) = text.strip_suffix('\n') else {
        return if text.is_empty() {
            Ok(Vec::new())
        } else {
            Err(BadRecord {
                line: text.split('\n').count(),
                reason: "the file does not end with a newline".to_owned(),
            })
        };
    };
    let lines: Vec<&str> = body.split('\n').collect();
    let mut records = Vec::with_capacity(lines.len() / 4);
    for (i, record) in lines.chunks(4).enumerate() {
        let first = i * 4 + 1;
        let bad = |offset: usize, reason: String| BadRecord {
            line: first + offset,
            reason,
        };
        let [t, u, w, empty] = record else {
            return Err(bad(
                record.len(),
                "the last record is incomplete".to_owned(),
            ));
        };
        records.push(PostRecord {
            time: value(t, "T ")
                .map(str::to_owned)
                .ok_or_else(|| bad(0, format!("expected `T <time>`, found {t:?}")))?,
            author: value(u, "U ")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(1, format!("expected `U <user id>`, found {u:?}")))?,
            text: value(w, "W ")
                .ok_or_else(|| bad(2, format!("expected `W <text>`, found {w:?}")))
                .and_then(|v| unescape(v).map_err(|e| bad(2, e.to_string())))?,
        });
        if !empty.is_empty() {
            return Err(bad(3, format!("expected an empty line, found {empty:?}")));
        }
    }
    Ok(records)
}

fn value<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.strip_prefix(tag)
}

#[cfg(test)]
mod tests {
    use crate::post::{PostId, PostText};
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_what_could_break_a_line_and_nothing_else() {
        let cases = [
            ("plain", "plain"),
            ("back\\slash", "back\\\\slash"),
            ("\\n is not a newline", "\\\\n is not a newline"),
            ("line\nbreak\r\n", "line\\nbreak\\r\\n"),
            ("tab\tstays", "tab\tstays"),
            (
                "nul\0 esc\u{1b} del\u{7f} c1\u{85}",
                "nul\\u{0000} esc\\u{001B} del\\u{007F} c1\\u{0085}",
            ),
            ("sep\u{2028}par\u{2029}", "sep\\u{2028}par\\u{2029}"),
            ("\"quotes\" 'and' 🎉 日本語", "\"quotes\" 'and' 🎉 日本語"),
        ];
        for (text, escaped) in cases {
            assert_eq!(escape(text), escaped, "{text:?}");
            assert_eq!(unescape(escaped).as_deref(), Ok(text), "{escaped:?}");
        }
    }

    #[test]
    fn unescape_refuses_what_escape_never_writes() {
        for bad in [
            "\\",
            "a\\x",
            "\\u",
            "\\u0041",
            "\\u{}",
            "\\u{1234567}",
            "\\u{D800}",
            "\\u{12g}",
            "\\u{41",
        ] {
            assert!(unescape(bad).is_err(), "{bad:?}");
        }
        assert_eq!(unescape("\\u{1F980}").as_deref(), Ok("🦀"));
        assert_eq!(
            unescape("a\\qb"),
            Err(BadEscape {
                at: 1,
                reason: "unknown escape"
            })
        );
    }

    #[test]
    fn a_post_record_is_four_lines_and_parses_back() {
        let post = Post {
            id: PostId { origin: 1, seq: 1 },
            author: UserId::new(4).expect("a user"),
            time: Time::from_unix(1_700_000_000, 5),
            text: PostText::new("W \\ T 2026-01-01 00:00:00\tU 4").expect("a post"),
        };
        let record = post_record(&post);
        let lines: Vec<&str> = record.split('\n').collect();
        assert_eq!(lines.len(), 5, "{record:?}");
        assert_eq!(lines[0], "T 2023-11-14 22:13:20");
        assert_eq!(lines[1], "U 4");
        assert_eq!(lines[2], "W W \\\\ T 2026-01-01 00:00:00\tU 4");
        assert_eq!(lines[3..], ["", ""]);
        let twice = record.repeat(2);
        let parsed = parse_post_records(&twice).expect("parse");
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[1],
            PostRecord {
                time: time_text(post.time),
                author: post.author,
                text: post.text.to_string(),
            }
        );
    }

    #[test]
    fn times_are_utc_calendar_dates_to_the_second() {
        let cases = [
            (0, "1970-01-01 00:00:00"),
            (951_782_400, "2000-02-29 00:00:00"),
            (1_517_475_900, "2018-02-01 09:05:00"),
            (1_700_000_000, "2023-11-14 22:13:20"),
            (4_107_542_399, "2100-02-28 23:59:59"),
        ];
        for (seconds, text) in cases {
            assert_eq!(time_text(Time::from_unix(seconds, 999_999_999)), text);
            assert_eq!(parse_time_text(text), Some(Time::from_unix(seconds, 0)));
        }
        for bad in [
            "",
            "2023-11-14",
            "2023-02-30 00:00:00",
            "2023-11-14 24:00:00",
            "2023-1-14 00:00:00",
            "x",
        ] {
            assert_eq!(parse_time_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn broken_record_files_are_refused_with_the_line() {
        assert_eq!(parse_post_records(""), Ok(vec![]));
        let bad = |text: &str| parse_post_records(text).expect_err(text).line;
        assert_eq!(bad("T x\nU 4\nW y\n"), 4);
        assert_eq!(bad("T x\nU 4\nW y\n\nT z"), 5);
        assert_eq!(bad("T x\nU four\nW y\n\n"), 2);
        assert_eq!(bad("T x\nU 4\nX y\n\n"), 3);
        assert_eq!(bad("T x\nU 4\nW y\\\n\n"), 3);
        assert_eq!(bad("T x\nU 4\nW y\nnot empty\n"), 4);
        assert_eq!(bad("U 4\nT x\nW y\n\n"), 1);
    }

    proptest! {
        #[test]
        fn any_string_round_trips_through_escape(text in any::<String>()) {
            let escaped = escape(&text);
            let breaks = ['\n', '\r', '\u{2028}', '\u{2029}'];
            prop_assert!(!escaped.contains(breaks), "a line break in {:?}", escaped);
            prop_assert_eq!(unescape(&escaped), Ok(text));
        }

        #[test]
        fn strings_of_escape_syntax_round_trip(text in "[\\\\nru{}0-9A-Fa-f\n\r\t\u{0}-\u{1f}\u{7f}\u{2028} x]{0,40}") {
            prop_assert_eq!(unescape(&escape(&text)), Ok(text));
        }
    }
}
