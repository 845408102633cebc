//! [`Screen`]: a `tsc` driven through pipes, as a person at a terminal would use it.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use tsn_core::coordinator::Endpoint;

use super::hosts::Host;
use super::launch::Launcher;
use super::output::Sink;
use super::process::{Process, Setup};
use crate::cli::Fatal;

/// How long [`Screen::wait_for`] waits for its line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a wait for the client's exit looks.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A `tsc` whose lines are typed on its standard input and whose screen (standard output)
/// is read line by line, each line with the moment it arrived.
pub struct Screen {
    process: Process,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl Screen {
    /// Starts `tsc -h <host> -k <port> -u <user>` for the coordinator at `coordinator`, as
    /// `launcher` says and on `host` (this machine's own network if `None`), its log
    /// (standard error) appended to `log`, or dropped; over TLS, verifying the servers
    /// against the certificate `authority`, if given.
    pub fn open(
        launcher: &Launcher,
        coordinator: &Endpoint,
        user: u32,
        log: Option<std::fs::File>,
        host: Option<Host>,
        authority: Option<&Path>,
    ) -> Result<Screen, Fatal> {
        let (tx, lines) = mpsc::unbounded_channel();
        let setup = Setup {
            stdout: Sink {
                lines: Some(tx),
                ..Sink::default()
            },
            stderr: Sink {
                file: log,
                ..Sink::default()
            },
            host,
            ..Setup::default()
        };
        let mut args = vec![
            "-h".to_owned(),
            coordinator.host.clone(),
            "-k".into(),
            coordinator.port.to_string(),
            "-u".into(),
            user.to_string(),
        ];
        if let Some(ca) = authority {
            args.extend(["--tls-ca".to_owned(), ca.display().to_string()]);
        }
        let process = Process::start(launcher, "tsc", &args, setup)
            .map_err(|e| Fatal::new("cannot start tsc", e))?;
        Ok(Screen { process, lines })
    }

    /// Types `line` and Enter.
    pub async fn type_line(&mut self, line: &str) -> Result<(), Fatal> {
        self.process
            .send(format!("{line}\n").as_bytes())
            .map_err(|e| Fatal::new("cannot write to tsc", e))
    }

    /// The next line on the screen and when it came; `None` once the screen is closed (the
    /// client exited).
    pub async fn next_line(&mut self) -> Option<(Instant, String)> {
        self.lines.recv().await
    }

    /// Waits for a line that ends with `suffix`, skipping the others; returns when it came.
    pub async fn wait_for(&mut self, suffix: &str) -> Result<Instant, Fatal> {
        let deadline = tokio::time::Instant::now() + LINE_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((at, line))) if line.ends_with(suffix) => return Ok(at),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    return Err(Fatal(format!("no line ending in '{suffix}' came")));
                }
            }
        }
    }

    /// Ends the input, as Ctrl-D does: the client finishes what it sent and exits.
    pub fn close_input(&mut self) {
        self.process.close_input();
    }

    /// Waits at most `limit` for the client to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.process.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Kills the client with SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
