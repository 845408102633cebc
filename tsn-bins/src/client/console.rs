//! The person's side: lines in, lines out.
//!
//! On a terminal, input comes through a line editor with history and the prompt is the
//! editor's; lines printed while the person types (timeline posts) go above the input line.
//! Through a pipe, the same prompts and lines are printed as plain text, so that a script
//! sees what a person would.
//!
//! Every line typed or pasted is handled, in order, as in pipe mode: keys that arrive
//! ahead of the line being read (several lines pasted at once, or typed while a command
//! runs) are kept by the editor for the next line, and a bracketed paste, which the editor
//! returns as one text, is split at its line breaks into lines of its own.

use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::mpsc;

/// One line of input, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A line, without its line ending.
    Line(String),
    /// A line that is not valid UTF-8, with each bad sequence replaced by U+FFFD (which no
    /// command word or user id holds).
    NotText(String),
    /// End of input (Ctrl-D, or the end of a pipe or file).
    End,
    /// Ctrl-C on a terminal.
    Interrupted,
}

type Printer = Arc<Mutex<Box<dyn ExternalPrinter + Send>>>;

/// The client's console.
pub struct Console {
    terminal: bool,
    prompts: std::sync::mpsc::Sender<String>,
    lines: mpsc::Receiver<Input>,
    printer: Option<Printer>,
    reading: bool,
}

impl Console {
    /// Opens the console on standard input and output.
    pub fn open() -> Console {
        let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        let (prompts, prompt_rx) = std::sync::mpsc::channel::<String>();
        let (line_tx, lines) = mpsc::channel(1);
        let (printer_tx, printer_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if terminal {
                read_terminal(prompt_rx, line_tx, printer_tx);
            } else {
                drop(printer_tx);
                read_pipe(prompt_rx, line_tx);
            }
        });
        let printer = printer_rx.recv().ok().map(|p| Arc::new(Mutex::new(p)));
        Console {
            terminal,
            prompts,
            lines,
            printer,
            reading: false,
        }
    }

    /// Prints a line. While a line is being read on a terminal, it goes above the input.
    pub fn say(&self, line: &str) {
        if let (true, Some(printer)) = (self.reading, &self.printer) {
            let mut printer = printer.lock().unwrap_or_else(|p| p.into_inner());
            if printer.print(format!("{line}\n")).is_ok() {
                return;
            }
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Reads the next line after showing `prompt`. Cancel-safe: if the future is dropped,
    /// the line is returned by the next call.
    pub async fn read_line(&mut self, prompt: &str) -> Input {
        if !self.reading {
            if !self.terminal && !prompt.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "{prompt}");
                let _ = out.flush();
            }
            if self.prompts.send(prompt.to_owned()).is_err() {
                return Input::End;
            }
            self.reading = true;
        }
        let input = self.lines.recv().await.unwrap_or(Input::End);
        self.reading = false;
        input
    }
}

fn read_terminal(
    prompts: std::sync::mpsc::Receiver<String>,
    lines: mpsc::Sender<Input>,
    printer_tx: std::sync::mpsc::Sender<Box<dyn ExternalPrinter + Send>>,
) {
    let Ok(mut editor) = DefaultEditor::new() else {
        drop(printer_tx);
        return read_pipe(prompts, lines);
    };
    if let Ok(printer) = editor.create_external_printer() {
        let _ = printer_tx.send(Box::new(printer));
    }
    drop(printer_tx);
    // The lines of a paste after the first, for the next prompts.
    let mut pasted: VecDeque<String> = VecDeque::new();
    while let Ok(prompt) = prompts.recv() {
        let input = match pasted.pop_front() {
            Some(line) => Input::Line(line),
            None => match editor.readline(&prompt) {
                Ok(text) => {
                    pasted.extend(
                        text.split('\n')
                            .map(|l| l.trim_end_matches('\r').to_owned()),
                    );
                    if !prompt.is_empty() {
                        for line in pasted.iter().filter(|l| !l.trim().is_empty()) {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                    }
                    Input::Line(pasted.pop_front().unwrap_or_default())
                }
                Err(ReadlineError::Interrupted) => Input::Interrupted,
                Err(ReadlineError::Eof) => Input::End,
                Err(_) => Input::End,
            },
        };
        let last = matches!(input, Input::End | Input::Interrupted);
        if lines.blocking_send(input).is_err() || last {
            return;
        }
    }
}

fn read_pipe(prompts: std::sync::mpsc::Receiver<String>, lines: mpsc::Sender<Input>) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut buffer = Vec::new();
    while prompts.recv().is_ok() {
        buffer.clear();
        let input = match stdin.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => Input::End,
            Ok(_) => {
                if buffer.last() == Some(&b'\n') {
                    buffer.pop();
                    if buffer.last() == Some(&b'\r') {
                        buffer.pop();
                    }
                }
                match String::from_utf8(std::mem::take(&mut buffer)) {
                    Ok(line) => Input::Line(line),
                    Err(e) => Input::NotText(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                }
            }
        };
        let last = input == Input::End;
        if lines.blocking_send(input).is_err() || last {
            return;
        }
    }
}
