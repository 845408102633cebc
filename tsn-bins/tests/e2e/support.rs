//! Real processes for the end-to-end tests: a coordinator, tsd servers and tsc clients on
//! free loopback ports, with data in a temporary folder and short timers. Every wait has a
//! deadline; every process is killed when its handle drops.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};
use tsn_bins::harness::output::Sink;
use tsn_bins::harness::topology::{coordinator_flags, synchronizer_flags, tsd_flags};
use tsn_bins::harness::{Launcher, Process, Streams};
use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
use tsn_grpc::proto::csce438::sns_service_client::SnsServiceClient;
use tsn_grpc::proto::csce438::{Id, Message, Request};

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
        let streams = Streams {
            stdout: Sink::memory(),
            stderr: Sink::memory(),
            env: vec![("RUST_LOG".into(), rust_log.into())],
        };
        Process::start(&Launcher::Binaries(binary), program, args, streams)
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
fn announced_port(proc: &Proc) -> u16 {
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
    eventually(&format!("{program} to start"), || {
        let mut proc = Proc::start(program, args);
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

/// A deployment of real processes sharing one temporary data folder.
pub(crate) struct Deployment {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) clusters: u32,
    pub(crate) coordinator: Proc,
    pub(crate) coordinator_port: u16,
    pub(crate) timers: Timers,
    servers: Vec<((u32, u32), Proc)>,
    synchronizers: Vec<(u32, Proc)>,
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
            synchronizers: Vec::new(),
        }
    }

    /// Starts, for every cluster, a master (server 1), a slave (server 2) and the
    /// synchronizer, and waits until each cluster has its master.
    pub(crate) fn start_clusters(&mut self) {
        for cluster in 1..=self.clusters {
            self.start_master(cluster);
            self.start_server(cluster, 2);
            self.start_synchronizer(cluster);
        }
    }

    /// Starts the synchronizer of `cluster` on a free port and waits until it listens.
    pub(crate) fn start_synchronizer(&mut self, cluster: u32) -> &mut Proc {
        self.start_synchronizer_with(cluster, &[])
    }

    /// Like [`Deployment::start_synchronizer`], with `extra` flags.
    pub(crate) fn start_synchronizer_with(&mut self, cluster: u32, extra: &[&str]) -> &mut Proc {
        self.stop_synchronizer(cluster);
        let mut args = synchronizer_flags(
            cluster,
            self.coordinator_port,
            0,
            self.dir.path(),
            Some(&self.timers),
        );
        args.extend(extra.iter().map(|a| a.to_string()));
        let proc = start_claiming("synchronizer", &args);
        self.synchronizers.push((cluster, proc));
        &mut self.synchronizers.last_mut().expect("just pushed").1
    }

    /// The port the synchronizer of `cluster` listens on.
    pub(crate) fn synchronizer_port(&mut self, cluster: u32) -> u16 {
        announced_port(self.synchronizer(cluster))
    }

    /// The running synchronizer of `cluster`.
    pub(crate) fn synchronizer(&mut self, cluster: u32) -> &mut Proc {
        &mut self
            .synchronizers
            .iter_mut()
            .find(|(id, _)| *id == cluster)
            .expect("a started synchronizer")
            .1
    }

    /// Kills the synchronizer of `cluster` with SIGKILL.
    pub(crate) fn stop_synchronizer(&mut self, cluster: u32) {
        self.synchronizers.retain_mut(|(id, proc)| {
            if *id == cluster {
                proc.kill();
                false
            } else {
                true
            }
        });
    }

    /// The data folder.
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts server 1 of `cluster`, waits until the coordinator names it the cluster's
    /// master, and returns its port.
    pub(crate) fn start_master(&mut self, cluster: u32) -> u16 {
        self.start_server(cluster, 1);
        self.wait_master_is(cluster, 1);
        self.master_port(cluster).expect("the cluster has a master")
    }

    /// Starts server 1 of `cluster` as its master and server 2 as its slave, and waits
    /// until the coordinator has confirmed the slave in sync (so that it may be promoted);
    /// returns the master's port.
    pub(crate) fn start_master_and_in_sync_slave(&mut self, cluster: u32) -> u16 {
        let port = self.start_master(cluster);
        self.start_server(cluster, 2)
            .wait_for_log_count("serving as slave", 1);
        self.coordinator
            .wait_for_log_count(&format!("cluster={cluster} servers=[1, 2]"), 1);
        port
    }

    /// Kills the coordinator and starts it again on the same port.
    pub(crate) fn restart_coordinator(&mut self) {
        self.coordinator.kill();
        let (coordinator, _) = start_coordinator(self.clusters, self.coordinator_port, self.timers);
        self.coordinator = coordinator;
    }

    /// The flags of `tsd -c cluster -s server` for this deployment's coordinator, on a free
    /// port, with the data folder `data_dir` (the default timers).
    pub(crate) fn tsd_flags(&self, cluster: u32, server: u32, data_dir: &Path) -> Vec<String> {
        tsd_flags(cluster, server, self.coordinator_port, 0, data_dir, None)
    }

    /// The flags of `synchronizer -n cluster` for this deployment's coordinator, on a free
    /// port, with the data folder `data_dir` (the default timers).
    pub(crate) fn synchronizer_flags(&self, cluster: u32, data_dir: &Path) -> Vec<String> {
        synchronizer_flags(cluster, self.coordinator_port, 0, data_dir, None)
    }

    /// Starts `tsd -c cluster -s server` on a free port and waits until it listens.
    pub(crate) fn start_server(&mut self, cluster: u32, server: u32) -> &mut Proc {
        self.stop_server(cluster, server);
        let args = tsd_flags(
            cluster,
            server,
            self.coordinator_port,
            0,
            self.dir.path(),
            Some(&self.timers),
        );
        let proc = start_claiming("tsd", &args);
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

    /// Waits until `LIST` would show `user` exactly `users` and `followers` (asked through
    /// the course's protocol, so that no session is taken).
    pub(crate) fn wait_listing(&self, user: u32, users: &[u32], followers: &[u32]) {
        let names = |ids: &[u32]| ids.iter().map(u32::to_string).collect::<Vec<_>>();
        let expected = (names(users), names(followers));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = listing(self.coordinator_port, user);
            if seen.as_ref() == Some(&expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "user {user}'s LIST should show users {users:?} and followers {followers:?}; it shows {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

    /// Starts `tsc -u user` and waits until it shows its prompt (`Ok`) or exits (`Err`).
    pub(crate) fn try_client(&self, user: u32) -> Result<Proc, Proc> {
        let mut client = self.client(user);
        if client.wait_for_or_exit(PROMPT) {
            Ok(client)
        } else {
            Err(client)
        }
    }

    /// Starts `tsc -u user` and waits until it shows its prompt.
    pub(crate) fn logged_in_client(&self, user: u32) -> Proc {
        self.try_client(user).unwrap_or_else(|client| {
            panic!(
                "tsc -u {user} did not log in; it printed:\n{}\n--- stderr:\n{}",
                client.stdout(),
                client.stderr()
            )
        })
    }
}

/// A loopback port nobody listens on (it was free a moment ago).
pub(crate) fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn start_coordinator(clusters: u32, port: u16, timers: Timers) -> (Proc, u16) {
    let proc = Proc::start("coordinator", &coordinator_flags(port, clusters, &timers));
    let port = announced_port(&proc);
    (proc, port)
}

fn ask_master(coordinator_port: u16, cluster: u32) -> Option<(u32, u16)> {
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

/// What `LIST` answers `user` now, asked through the course's protocol at the master of
/// the user's cluster: every user, and the user's followers.
fn listing(coordinator_port: u16, user: u32) -> Option<(Vec<String>, Vec<String>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let mut coordinator =
            CoordServiceClient::connect(format!("http://127.0.0.1:{coordinator_port}"))
                .await
                .ok()?;
        let master = coordinator
            .get_server(Id { id: user as i32 })
            .await
            .ok()?
            .into_inner();
        let mut sns = SnsServiceClient::connect(format!("http://127.0.0.1:{}", master.port))
            .await
            .ok()?;
        let reply = sns
            .list(request(&user.to_string(), &[]))
            .await
            .ok()?
            .into_inner();
        Some((reply.all_users, reply.followers))
    })
}

fn coordinator_query(coordinator_port: u16, cluster: u32) -> Option<u16> {
    ask_master(coordinator_port, cluster).map(|(_, port)| port)
}

fn master_id(coordinator_port: u16, cluster: u32) -> Option<u32> {
    ask_master(coordinator_port, cluster).map(|(id, _)| id)
}

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

/// A tokio runtime for tests that make gRPC calls themselves. The harness's blocking
/// functions (starting processes, waiting for output) belong outside its `block_on`.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Awaits `future`, or panics after `PATIENCE` with `what`.
pub(crate) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A client of the course's `SNSService`.
pub(crate) type Sns = SnsServiceClient<Channel>;

/// A client of the course's `SNSService` at the tsd on `port`.
pub(crate) async fn sns_at(port: u16) -> Sns {
    within(
        &format!("a connection to the tsd on port {port}"),
        SnsServiceClient::connect(format!("http://127.0.0.1:{port}")),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to the tsd on port {port}: {e}"))
}

/// A client of the course's `CoordService` at the coordinator on `port`.
pub(crate) async fn coordinator_at(port: u16) -> CoordServiceClient<Channel> {
    within(
        &format!("a connection to the coordinator on port {port}"),
        CoordServiceClient::connect(format!("http://127.0.0.1:{port}")),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to the coordinator on port {port}: {e}"))
}

/// A course `Request`: a user name and arguments, no session.
pub(crate) fn request(user: &str, arguments: &[&str]) -> Request {
    Request {
        username: user.to_owned(),
        arguments: arguments.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

/// `GetServer(ID{id})` at the coordinator on `port`.
pub(crate) async fn get_server(
    port: u16,
    id: i32,
) -> Result<tsn_grpc::proto::csce438::ServerInfo, Status> {
    let mut coordinator = coordinator_at(port).await;
    within("GetServer", coordinator.get_server(Id { id }))
        .await
        .map(tonic::Response::into_inner)
}

/// A course `Message` from `user` with `text`, stamped now, with none of TSN's fields.
pub(crate) fn course_message(user: &str, text: &str) -> Message {
    let mut message = Message {
        username: user.to_owned(),
        msg: text.to_owned(),
        timestamp: Some(Default::default()),
        ..Default::default()
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    if let Some(stamp) = message.timestamp.as_mut() {
        stamp.seconds = now.as_secs() as i64;
        stamp.nanos = now.subsec_nanos() as i32;
    }
    message
}

/// A Timeline stream opened as the course's client opens it: a first message `Set Stream`
/// naming the user, no session, no post ids.
pub(crate) struct CourseTimeline {
    user: String,
    outbound: mpsc::Sender<Message>,
    inbound: Streaming<Message>,
}

impl CourseTimeline {
    /// Opens `user`'s Timeline stream through `client`.
    pub(crate) async fn open(client: &mut Sns, user: &str) -> Self {
        let (outbound, requests) = mpsc::channel(16);
        outbound
            .send(course_message(user, "Set Stream"))
            .await
            .expect("the request stream is open");
        let inbound = within(
            &format!("user {user}'s Timeline stream to open"),
            client.timeline(ReceiverStream::new(requests)),
        )
        .await
        .unwrap_or_else(|e| panic!("user {user}'s Timeline stream was refused: {e}"))
        .into_inner();
        CourseTimeline {
            user: user.to_owned(),
            outbound,
            inbound,
        }
    }

    /// Posts `text` as the stream's user.
    pub(crate) async fn post(&self, text: &str) {
        let user = self.user.clone();
        self.send_as(&user, text).await;
    }

    /// Sends a message that claims to be from `user`.
    pub(crate) async fn send_as(&self, user: &str, text: &str) {
        // A stream the server has ended takes no more; what it said comes from `next`.
        let _ = self.outbound.send(course_message(user, text)).await;
    }

    /// The next message from the server: `Ok(None)` when the stream ended cleanly, `Err`
    /// with the status that ended it otherwise.
    pub(crate) async fn next(&mut self) -> Result<Option<Message>, Status> {
        let what = format!("a message on user {}'s Timeline stream", self.user);
        within(&what, self.inbound.message()).await
    }

    /// The next post from the server; panics if the stream ended instead.
    pub(crate) async fn next_post(&mut self) -> Message {
        match self.next().await {
            Ok(Some(message)) => message,
            other => panic!(
                "user {}'s Timeline stream ended instead of bringing a post: {other:?}",
                self.user
            ),
        }
    }
}
