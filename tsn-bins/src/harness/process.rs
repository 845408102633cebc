//! [`Process`]: one started program — its outputs collected as they come, its input open
//! for typing — and the signals a person sends it.

use std::io::Write;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::Arc;

use super::hosts::Host;
use super::launch::Launcher;
use super::output::{Output, Sink};

/// How a program is started: where its outputs go, what it finds in its environment, and
/// on which host it runs.
#[derive(Default)]
pub struct Setup {
    /// Its standard output.
    pub stdout: Sink,
    /// Its standard error (the log of TSN's programs).
    pub stderr: Sink,
    /// Variables set for it.
    pub env: Vec<(String, String)>,
    /// The simulated host it runs on (its network namespace); `None`: this machine's.
    pub host: Option<Host>,
}

/// A running (or exited, not yet dropped) program. Dropping it kills it.
pub struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
    /// Stopped with SIGSTOP and not resumed yet.
    paused: bool,
}

impl Process {
    /// Starts `program` with `args` as `launcher` says and `setup` places it, its input a
    /// pipe to [`Process::send`] on.
    pub fn start(
        launcher: &Launcher,
        program: &str,
        args: &[String],
        setup: Setup,
    ) -> std::io::Result<Process> {
        let mut command = launcher.command(program, args);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .envs(setup.env);
        if let Some(host) = &setup.host {
            enter(&mut command, host.netns_file()?);
        }
        let mut child = command.spawn()?;
        let stdout = Output::collect(child.stdout.take().expect("piped"), setup.stdout);
        let stderr = Output::collect(child.stderr.take().expect("piped"), setup.stderr);
        Ok(Process {
            name: format!("{program} {}", args.join(" ")),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            paused: false,
        })
    }

    /// The program and its flags, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its standard output, as read so far.
    pub fn stdout(&self) -> &Output {
        &self.stdout
    }

    /// Its standard error, as read so far.
    pub fn stderr(&self) -> &Output {
        &self.stderr
    }

    /// Writes `bytes` on its standard input.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the input is closed")
        })?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    /// Closes its standard input, as Ctrl-D at a terminal does.
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as `kill -9` does, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.paused = false;
    }

    /// Stops it with SIGSTOP: it keeps its sockets but does nothing, as a process that
    /// hangs or a machine that stalls.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    /// Lets it go on after [`Process::pause`], with SIGCONT.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Asks it to stop with SIGTERM (resuming it first if paused), as Ctrl-C or a service
    /// manager does.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
        if self.paused {
            self.resume();
        }
    }

    /// Sends `signal` unless it has exited (and so its pid may be another's).
    fn signal(&mut self, signal: libc::c_int) {
        if self.try_wait().is_none() {
            // SAFETY: kill(2) on the pid of a child not reaped yet: still ours.
            unsafe {
                libc::kill(self.pid() as libc::pid_t, signal);
            }
        }
    }
}

/// Has the child enter the network namespace `netns` before it runs.
fn enter(command: &mut std::process::Command, netns: std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    // SAFETY: setns is async-signal-safe and changes only the child being created; the file
    // lives in the closure until the command is dropped.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}); it printed:\n{}\n--- stderr:\n{}",
            self.name,
            self.pid(),
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
