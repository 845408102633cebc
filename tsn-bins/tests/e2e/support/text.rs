//! What the client prints, as the tests compare it: the banner, the prompt, timelines.

/// The banner `tsc` shows after its first login (SPEC.md section 4).
pub(crate) const BANNER: &str = "\
========= TINY SNS CLIENT =========
 Command Lists and Format:
 FOLLOW <username>
 UNFOLLOW <username>
 LIST
 TIMELINE
=====================================
";

/// The command prompt of `tsc`.
pub(crate) const PROMPT: &str = "Cmd> ";

/// What `tsc` prints on connecting to the master at `port`: the reconnect line, the banner.
pub(crate) fn greeting(port: u16) -> String {
    format!("Reconnecting to 127.0.0.1:{port}...\n{BANNER}")
}

/// The lines a client printed in timeline mode (after its last `Now you are in the
/// timeline`), with every time replaced by `TIME`.
pub(crate) fn timeline_lines(transcript: &str) -> Vec<String> {
    let marker = "Now you are in the timeline\n";
    let Some(at) = transcript.rfind(marker) else {
        return Vec::new();
    };
    transcript[at + marker.len()..]
        .lines()
        .map(mask_time)
        .collect()
}

/// A post of exactly `chars` characters that is hard to store: quotes, tabs, backslashes,
/// other scripts (one written right to left), emoji (some of several code points), Unicode's
/// line and paragraph separators and a byte order mark, starting with a quote and ending
/// with a backslash. No other control character than tab.
pub(crate) fn tricky_post(chars: usize) -> String {
    let pattern: Vec<char> = concat!(
        "\"say \"hi\"\t'it''s' — 日本語 ünïcödé עִבְרִית\u{200f} 🎉👍🏽👩‍💻 C:\\path\\ \\n ",
        "\u{2028}\u{2029}\u{feff} {}% "
    )
    .chars()
    .collect();
    let mut text: String = pattern
        .iter()
        .cycle()
        .take(chars.saturating_sub(1))
        .collect();
    if chars > 0 {
        text.push('\\');
    }
    text
}

/// The lines of a client's transcript with every `(<ctime>)` replaced by `(TIME)`.
pub(crate) fn without_times(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(&mask_time(line));
        out.push('\n');
    }
    out
}

fn mask_time(line: &str) -> String {
    match (line.find(" ("), line.find(") >> ")) {
        (Some(open), Some(close)) if close > open && close - open == 26 => {
            format!("{} (TIME){}", &line[..open], &line[close + 1..])
        }
        _ => line.to_owned(),
    }
}

// --- The course's protocol, spoken directly -------------------------------------------------
