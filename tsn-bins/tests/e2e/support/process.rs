//! The programs of the workspace as the tests start them, and the tests' waits: every
//! wait has a deadline, every process is killed when its handle drops.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tsn_bins::harness::output::Sink;
use tsn_bins::harness::{Host, Launcher, Process, Setup};

pub(crate) use tsn_bins::harness::Timers;

/// The timers of SPEC.md's defaults: steady on a loaded machine.
pub(crate) const STEADY: Timers = Timers {
    heartbeat_interval: Duration::from_millis(200),
    failure_timeout: Duration::from_secs(1),
};

/// Short timers for tests that kill servers over and over.
pub(crate) const FAST: Timers = Timers {
    heartbeat_interval: Duration::from_millis(100),
    failure_timeout: Duration::from_millis(500),
};
/// How long any one expected thing may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A running program of the workspace whose outputs are collected as they come; killed
/// when dropped.
pub(crate) struct Proc(Process);

/// Polls `check` every 10 ms until it returns `Some`, or panics after `PATIENCE` with `what`.
pub(crate) fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(PATIENCE, what, check)
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `limit` with `what`.
pub(crate) fn eventually_within<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Proc {
    /// Starts the workspace binary `program` with `args`, logging at `info`.
    pub(crate) fn start(program: &str, args: &[String]) -> Proc {
        Proc::start_logging(program, args, "info")
    }

    /// Starts the workspace binary `program` with `args` and `RUST_LOG=rust_log`.
    pub(crate) fn start_logging(program: &str, args: &[String], rust_log: &str) -> Proc {
        Proc::launch(None, program, args, rust_log)
    }

    /// Starts the workspace binary `program` with `args` on `host` (this machine's own
    /// network if `None`), logging at `info`.
    pub(crate) fn start_on(host: Option<Host>, program: &str, args: &[String]) -> Proc {
        Proc::launch(host, program, args, "info")
    }

    /// Starts `command` (found on the `PATH`, not a program of the workspace) with `args`.
    pub(crate) fn start_command(command: &str, args: &[String]) -> Proc {
        let on_path = Launcher::Binaries(|command| PathBuf::from(command));
        let setup = Setup {
            stdout: Sink::memory(),
            stderr: Sink::memory(),
            ..Setup::default()
        };
        Process::start(&on_path, command, args, setup)
            .map(Proc)
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"))
    }

    fn launch(host: Option<Host>, program: &str, args: &[String], rust_log: &str) -> Proc {
        let setup = Setup {
            stdout: Sink::memory(),
            stderr: Sink::memory(),
            env: vec![("RUST_LOG".into(), rust_log.into())],
            host,
        };
        Process::start(&Launcher::Binaries(binary), program, args, setup)
            .map(Proc)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary(program).display()))
    }

    /// The program and its flags, for messages.
    fn name(&self) -> &str {
        self.0.name()
    }

    /// Everything printed on standard output so far.
    pub(crate) fn stdout(&self) -> String {
        self.0.stdout().text()
    }

    /// Everything printed on standard error so far.
    pub(crate) fn stderr(&self) -> String {
        self.0.stderr().text()
    }

    /// Waits until standard output contains `text`.
    pub(crate) fn wait_for(&self, text: &str) {
        eventually(
            &format!(
                "'{text}' from {}; it printed:\n{}\n--- stderr:\n{}",
                self.name(),
                self.stdout(),
                self.stderr()
            ),
            || self.stdout().contains(text).then_some(()),
        )
    }

    /// Waits until standard error (the log) contains `text` `count` times.
    pub(crate) fn wait_for_log_count(&self, text: &str, count: usize) {
        eventually(
            &format!(
                "{count} x '{text}' in the log of {}; it logged:\n{}",
                self.name(),
                self.stderr()
            ),
            || (self.stderr().matches(text).count() >= count).then_some(()),
        )
    }

    /// Waits until standard output contains `text` `count` times.
    pub(crate) fn wait_for_count(&self, text: &str, count: usize) {
        eventually(
            &format!(
                "{count} x '{text}' from {}; it printed:\n{}",
                self.name(),
                self.stdout()
            ),
            || (self.stdout().matches(text).count() >= count).then_some(()),
        )
    }

    /// Types a line on standard input.
    pub(crate) fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Writes raw bytes on standard input.
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        self.0.send(bytes).expect("write to the client");
    }

    /// Closes standard input (end of input).
    pub(crate) fn close_stdin(&mut self) {
        self.0.close_input();
    }

    /// Types `line` and waits until standard output shows `answer` once more than before.
    pub(crate) fn command(&mut self, line: &str, answer: &str) {
        let seen = self.stdout().matches(answer).count();
        self.send(line);
        self.wait_for_count(answer, seen + 1);
    }

    /// Types `TIMELINE` and waits until the client is in its timeline.
    pub(crate) fn enter_timeline(&mut self) {
        self.command("TIMELINE", "Now you are in the timeline\n");
    }

    /// Ends a client's input and checks that it exits with status 0, as SPEC.md section 4
    /// asks of a client whose input is not a terminal.
    pub(crate) fn finish(&mut self) {
        self.close_stdin();
        let status = self.wait_exit();
        assert!(
            status.success(),
            "{} exits 0 at the end of input: {status}; it printed:\n{}",
            self.name(),
            self.stdout()
        );
    }

    /// Waits for the process to exit.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(PATIENCE)
    }

    /// Waits at most `limit` for the process to exit, and then for everything it printed.
    pub(crate) fn wait_exit_within(&mut self, limit: Duration) -> ExitStatus {
        let status = eventually_within(
            limit,
            &format!(
                "{} to exit; it printed:\n{}\n--- stderr:\n{}",
                self.name(),
                self.stdout(),
                self.stderr()
            ),
            || self.0.try_wait(),
        );
        self.wait_output_end();
        status
    }

    /// Waits until both outputs of an exited process are read to their end.
    fn wait_output_end(&self) {
        eventually(&format!("the end of {}'s output", self.name()), || {
            (self.0.stdout().has_ended() && self.0.stderr().has_ended()).then_some(())
        })
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.0.try_wait().is_none()
    }

    /// Kills the process with SIGKILL, as `kill -9` does, and reaps it.
    pub(crate) fn kill(&mut self) {
        self.0.kill();
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Waits until the process has printed `marker` (`true`) or has exited (`false`).
    pub(crate) fn wait_for_or_exit(&mut self, marker: &str) -> bool {
        let what = format!("'{marker}' from {}, or its exit", self.name());
        eventually(&what, || {
            if self.stdout().contains(marker) {
                Some(true)
            } else if self.is_running() {
                None
            } else {
                // It may have printed the marker just before it exited.
                self.wait_output_end();
                Some(self.stdout().contains(marker))
            }
        })
    }
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The path of a binary of this workspace.
pub(crate) fn binary(program: &str) -> PathBuf {
    let exe = match program {
        "coordinator" => env!("CARGO_BIN_EXE_coordinator"),
        "tsd" => env!("CARGO_BIN_EXE_tsd"),
        "tsc" => env!("CARGO_BIN_EXE_tsc"),
        "synchronizer" => env!("CARGO_BIN_EXE_synchronizer"),
        "tsn-local" => env!("CARGO_BIN_EXE_tsn-local"),
        "tsn-faults" => env!("CARGO_BIN_EXE_tsn-faults"),
        other => panic!("no binary {other}"),
    };
    PathBuf::from(exe)
}

/// Reads the port from a ready line such as `... listening on 127.0.0.1:40123 (...)`.
pub(crate) fn announced_port(proc: &Proc) -> u16 {
    eventually(
        &format!(
            "{} to announce its port; stderr:\n{}",
            proc.name(),
            proc.stderr()
        ),
        || {
            let out = proc.stdout();
            let rest = out.split("listening on ").nth(1)?;
            let address = rest.split_whitespace().next()?;
            address.rsplit(':').next()?.parse().ok()
        },
    )
}

/// Starts `program args` and waits until it listens. A server or synchronizer whose data
/// folder is new is refused while the coordinator still counts the process it replaces (on
/// an old folder, killed a moment ago) as live: it is started again until the coordinator
/// lets it in.
pub(crate) fn start_claiming(program: &str, args: &[String]) -> Proc {
    start_claiming_on(None, program, args)
}

/// Like [`start_claiming`], on `host`.
pub(crate) fn start_claiming_on(host: Option<Host>, program: &str, args: &[String]) -> Proc {
    eventually(&format!("{program} to start"), || {
        let mut proc = Proc::start_on(host.clone(), program, args);
        if proc.wait_for_or_exit("listening on") {
            announced_port(&proc);
            return Some(proc);
        }
        assert!(
            proc.stderr().contains("already runs"),
            "{program} ended at start: {proc:?}"
        );
        None
    })
}
