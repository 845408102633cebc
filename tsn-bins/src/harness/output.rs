//! [`Output`]: what a child prints on one of its streams, collected by a thread as it
//! comes — kept in memory, copied to a log file, passed on line by line — with the role a
//! tsd last took up and the last line, for messages.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::mpsc;

/// Where a stream's text goes, beside the [`Output`] that notes its role and last line.
#[derive(Default)]
pub struct Sink {
    /// Keep all the text in memory ([`Output::text`]); a long-running child's log is better
    /// sent to a `file` alone.
    pub keep: bool,
    /// Append the text to this file.
    pub file: Option<File>,
    /// Send each line, with the moment it was read.
    pub lines: Option<mpsc::UnboundedSender<(Instant, String)>>,
}

impl Sink {
    /// All the text kept in memory, nothing else.
    pub fn memory() -> Sink {
        Sink {
            keep: true,
            ..Sink::default()
        }
    }
}

/// One stream of a child, as read so far.
#[derive(Default)]
pub struct Output {
    text: Mutex<String>,
    last_line: Mutex<String>,
    role: Mutex<Option<String>>,
    ended: AtomicBool,
}

impl Output {
    /// Reads `from` to its end on a thread of its own into `sink`.
    pub fn collect(from: impl Read + Send + 'static, sink: Sink) -> Arc<Output> {
        let output = Arc::new(Output::default());
        let collected = Arc::clone(&output);
        std::thread::spawn(move || collected.read_all(from, sink));
        output
    }

    fn read_all(&self, mut from: impl Read, mut sink: Sink) {
        let mut buffer = [0u8; 4096];
        let (mut pending, mut line) = (Vec::new(), String::new());
        loop {
            let n = match from.read(&mut buffer) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                read => read.unwrap_or(0),
            };
            if let Some(file) = &mut sink.file {
                let _ = file.write_all(&buffer[..n]);
            }
            pending.extend_from_slice(&buffer[..n]);
            let mut text = String::new();
            decode(&mut pending, &mut text, n == 0);
            if sink.keep {
                lock(&self.text).push_str(&text);
            }
            for c in text.chars() {
                if c == '\n' {
                    self.took_line(std::mem::take(&mut line), &sink);
                } else {
                    line.push(c);
                }
            }
            if n == 0 {
                if !line.is_empty() {
                    self.took_line(line, &sink);
                }
                break;
            }
        }
        self.ended.store(true, Ordering::SeqCst);
    }

    fn took_line(&self, line: String, sink: &Sink) {
        for role in ["master", "slave"] {
            if line.contains(&format!("serving as {role}")) {
                *lock(&self.role) = Some(role.to_owned());
            }
        }
        if let Some(lines) = &sink.lines {
            let _ = lines.send((Instant::now(), line.clone()));
        }
        *lock(&self.last_line) = line;
    }

    /// Everything read so far (nothing unless the sink keeps it).
    pub fn text(&self) -> String {
        lock(&self.text).clone()
    }

    /// The last whole line read.
    pub fn last_line(&self) -> String {
        lock(&self.last_line).clone()
    }

    /// The role a `serving as master|slave` line last named, if any.
    pub fn role(&self) -> Option<String> {
        lock(&self.role).clone()
    }

    /// Whether the stream has ended (the child closed it, or exited).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Moves the text of `pending` to `out`, keeping a character cut in two by a read for the
/// next one (unless `at_end`); bytes that are no UTF-8 become U+FFFD.
fn decode(pending: &mut Vec<u8>, out: &mut String, at_end: bool) {
    loop {
        let (valid, invalid) = match std::str::from_utf8(pending) {
            Ok(text) => (text.len(), None),
            Err(e) => (e.valid_up_to(), Some(e.error_len())),
        };
        out.push_str(std::str::from_utf8(&pending[..valid]).expect("checked above"));
        match invalid {
            None => {
                pending.clear();
                return;
            }
            Some(Some(bad)) => {
                out.push(char::REPLACEMENT_CHARACTER);
                pending.drain(..valid + bad);
            }
            Some(None) if at_end => {
                out.push(char::REPLACEMENT_CHARACTER);
                pending.clear();
                return;
            }
            Some(None) => {
                pending.drain(..valid);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_cut_in_two_by_a_read_is_kept_whole_and_bad_bytes_replaced() {
        let bytes = "a🎉b".as_bytes();
        let (mut pending, mut out) = (Vec::new(), String::new());
        for chunk in bytes.chunks(2) {
            pending.extend_from_slice(chunk);
            decode(&mut pending, &mut out, false);
        }
        pending.extend_from_slice(b"\xffc\xf0\x9f");
        decode(&mut pending, &mut out, true);
        assert_eq!(out, "a🎉b\u{fffd}c\u{fffd}");
    }

    #[test]
    fn lines_are_passed_on_and_the_role_noted() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = Sink {
            keep: true,
            file: None,
            lines: Some(tx),
        };
        let log = "starting\nserving as slave\nserving as master\nno newline".as_bytes();
        let output = Output::collect(log, sink);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !output.has_ended() {
            assert!(Instant::now() < deadline, "the stream is read");
            std::thread::yield_now();
        }
        assert_eq!(output.role().as_deref(), Some("master"));
        assert_eq!(output.last_line(), "no newline");
        assert!(output.text().starts_with("starting\n"));
        let lines: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|(_, l)| l)
            .collect();
        assert_eq!(lines.len(), 4);
    }
}
