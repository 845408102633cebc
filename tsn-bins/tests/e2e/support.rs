//! Real processes for the end-to-end tests: a coordinator, tsd servers and tsc clients on
//! free loopback ports, with data in a temporary folder and short timers. Every wait has a
//! deadline; every process is killed when its handle drops.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The timers a deployment runs with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timers {
    /// The servers' heartbeat interval.
    pub(crate) heartbeat: &'static str,
    /// The coordinator's failure timeout, and the masters' replication timeout.
    pub(crate) failure_timeout: &'static str,
}

/// The timers of SPEC.md's defaults: steady on a loaded machine.
pub(crate) const STEADY: Timers = Timers {
    heartbeat: "200ms",
    failure_timeout: "1s",
};

/// Short timers for tests that kill servers over and over.
pub(crate) const FAST: Timers = Timers {
    heartbeat: "100ms",
    failure_timeout: "500ms",
};
/// How long any one expected thing may take before a test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A running program whose output is collected as it comes.
pub(crate) struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
    text
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `PATIENCE` with `what`.
pub(crate) fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Proc {
    /// Starts the workspace binary `program` with `args`.
    pub(crate) fn start(program: &str, args: &[String]) -> Proc {
        let path = binary(program);
        let mut child = Command::new(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let stdout = collect(child.stdout.take().expect("piped"));
        let stderr = collect(child.stderr.take().expect("piped"));
        Proc {
            name: format!("{program} {}", args.join(" ")),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Everything printed on standard output so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything printed on standard error so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until standard output contains `text`.
    pub(crate) fn wait_for(&self, text: &str) {
        eventually(
            &format!(
                "'{text}' from {}; it printed:\n{}\n--- stderr:\n{}",
                self.name,
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
                self.name,
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
                self.name,
                self.stdout()
            ),
            || (self.stdout().matches(text).count() >= count).then_some(()),
        )
    }

    /// Types a line on standard input.
    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("standard input is open");
        stdin
            .write_all(line.as_bytes())
            .expect("write to the client");
        stdin.write_all(b"\n").expect("write to the client");
        stdin.flush().expect("flush to the client");
    }

    /// Writes raw bytes on standard input.
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("standard input is open");
        stdin.write_all(bytes).expect("write to the client");
        stdin.flush().expect("flush to the client");
    }

    /// Closes standard input (end of input).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the process to exit.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        eventually(
            &format!(
                "{} to exit; it printed:\n{}\n--- stderr:\n{}",
                self.name,
                self.stdout(),
                self.stderr()
            ),
            || self.child.try_wait().expect("query the child"),
        )
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("query the child").is_none()
    }

    /// Kills the process with SIGKILL, as `kill -9` does, and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of a binary of this workspace.
pub(crate) fn binary(program: &str) -> PathBuf {
    let exe = match program {
        "coordinator" => env!("CARGO_BIN_EXE_coordinator"),
        "tsd" => env!("CARGO_BIN_EXE_tsd"),
        "tsc" => env!("CARGO_BIN_EXE_tsc"),
        other => panic!("no binary {other}"),
    };
    PathBuf::from(exe)
}

/// Reads the port from a ready line such as `... listening on 127.0.0.1:40123 (...)`.
fn announced_port(proc: &Proc) -> u16 {
    eventually(
        &format!(
            "{} to announce its port; stderr:\n{}",
            proc.name,
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

/// A deployment of real processes sharing one temporary data folder.
pub(crate) struct Deployment {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clusters: u32,
    pub(crate) coordinator: Proc,
    pub(crate) coordinator_port: u16,
    pub(crate) timers: Timers,
    servers: Vec<((u32, u32), Proc)>,
}

impl Deployment {
    /// Starts a coordinator for `clusters` clusters with the default timers.
    pub(crate) fn start(clusters: u32) -> Deployment {
        Deployment::start_with(clusters, STEADY)
    }

    /// Starts a coordinator for `clusters` clusters with `timers`.
    pub(crate) fn start_with(clusters: u32, timers: Timers) -> Deployment {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (coordinator, coordinator_port) = start_coordinator(clusters, 0, timers);
        Deployment {
            dir,
            clusters,
            coordinator,
            coordinator_port,
            timers,
            servers: Vec::new(),
        }
    }

    /// The data folder.
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the coordinator and starts it again on the same port.
    pub(crate) fn restart_coordinator(&mut self) {
        self.coordinator.kill();
        let (coordinator, _) = start_coordinator(self.clusters, self.coordinator_port, self.timers);
        self.coordinator = coordinator;
    }

    /// Starts `tsd -c cluster -s server` on a free port and waits until it listens.
    pub(crate) fn start_server(&mut self, cluster: u32, server: u32) -> &mut Proc {
        self.stop_server(cluster, server);
        let args = vec![
            "-c".into(),
            cluster.to_string(),
            "-s".into(),
            server.to_string(),
            "-k".into(),
            self.coordinator_port.to_string(),
            "-p".into(),
            "0".into(),
            "--data-dir".into(),
            self.dir.path().display().to_string(),
            "--heartbeat-interval".into(),
            self.timers.heartbeat.into(),
            "--replication-timeout".into(),
            self.timers.failure_timeout.into(),
        ];
        let proc = Proc::start("tsd", &args);
        announced_port(&proc);
        eventually(
            &format!(
                "tsd {cluster}/{server} to take up a role; it logged:\n{}",
                proc.stderr()
            ),
            || {
                let log = proc.stderr();
                (log.contains("serving as master") || log.contains("serving as slave"))
                    .then_some(())
            },
        );
        self.servers.push(((cluster, server), proc));
        &mut self.servers.last_mut().expect("just pushed").1
    }

    /// The running server `(cluster, server)`.
    pub(crate) fn server(&mut self, cluster: u32, server: u32) -> &mut Proc {
        &mut self
            .servers
            .iter_mut()
            .find(|(id, _)| *id == (cluster, server))
            .expect("a started server")
            .1
    }

    /// Kills `(cluster, server)` with SIGKILL.
    pub(crate) fn stop_server(&mut self, cluster: u32, server: u32) {
        self.servers.retain_mut(|(id, proc)| {
            if *id == (cluster, server) {
                proc.kill();
                false
            } else {
                true
            }
        });
    }

    /// The port of the live master of `cluster`, as the coordinator tells clients.
    pub(crate) fn master_port(&self, cluster: u32) -> Option<u16> {
        coordinator_query(self.coordinator_port, cluster)
    }

    /// Waits until `cluster` has a live master, and returns its server id.
    pub(crate) fn wait_master(&self, cluster: u32) -> u32 {
        eventually(&format!("a master in cluster {cluster}"), || {
            master_id(self.coordinator_port, cluster)
        })
    }

    /// Waits until `cluster`'s master is `server`.
    pub(crate) fn wait_master_is(&self, cluster: u32, server: u32) {
        eventually(
            &format!("server {server} to be master of cluster {cluster}"),
            || (master_id(self.coordinator_port, cluster) == Some(server)).then_some(()),
        )
    }

    /// Starts `tsc -k <port> -u user`.
    pub(crate) fn client(&self, user: u32) -> Proc {
        Proc::start(
            "tsc",
            &[
                "-k".into(),
                self.coordinator_port.to_string(),
                "-u".into(),
                user.to_string(),
            ],
        )
    }
}

fn start_coordinator(clusters: u32, port: u16, timers: Timers) -> (Proc, u16) {
    let args = vec![
        "-p".into(),
        port.to_string(),
        "--clusters".into(),
        clusters.to_string(),
        "--failure-timeout".into(),
        timers.failure_timeout.into(),
    ];
    let proc = Proc::start("coordinator", &args);
    let port = announced_port(&proc);
    (proc, port)
}

fn ask_master(coordinator_port: u16, cluster: u32) -> Option<(u32, u16)> {
    use tsn_grpc::proto::csce438::Id;
    use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let mut client =
            CoordServiceClient::connect(format!("http://127.0.0.1:{coordinator_port}"))
                .await
                .ok()?;
        // User `cluster` lives in cluster `cluster` whatever the number of clusters.
        let info = client
            .get_server(Id { id: cluster as i32 })
            .await
            .ok()?
            .into_inner();
        Some((info.server_id as u32, info.port.parse().ok()?))
    })
}

fn coordinator_query(coordinator_port: u16, cluster: u32) -> Option<u16> {
    ask_master(coordinator_port, cluster).map(|(_, port)| port)
}

fn master_id(coordinator_port: u16, cluster: u32) -> Option<u32> {
    ask_master(coordinator_port, cluster).map(|(id, _)| id)
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
