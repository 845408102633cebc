//! A local deployment as child processes: the coordinator and, per cluster, a master and a
//! slave tsd and a synchronizer, each this same executable started under that program's name
//! ([`run_as`]), so always the same version, and shown in `ps` as `tsd -c 1 -s 2 ...`.
//! Used by `tsn-local`, `tsn-bench` and `tsn-faults`.
//!
//! Each child's log (standard error) goes to `<logs>/<name>.log`; its ready line (standard
//! output) gives its address; `serving as master|slave` in its log gives its role. On
//! Linux the kernel sends a child SIGTERM when its parent dies, so none is left behind.
//!
//! Members are named `coordinator`, `tsd-<cluster>-<server>` and `synchronizer-<cluster>`
//! ([`tsd_name`], [`synchronizer_name`], [`COORDINATOR`]). Any member can be killed with
//! SIGKILL and started again with its former flags (its log file goes on, so that what every
//! run of it said stays in one place), or stopped with SIGSTOP and resumed with SIGCONT.
//! [`Screen`] drives a `tsc` child through pipes, as a person at a terminal would.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::cli::Fatal;

/// How long a child may take to start listening, and the servers to take up roles.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long children get to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long [`Screen::wait_for`] waits for its line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the coordinator's member.
pub const COORDINATOR: &str = "coordinator";

/// The name of the member that is tsd `server` of `cluster`: `tsd-<cluster>-<server>`.
pub fn tsd_name(cluster: u32, server: u32) -> String {
    member_name("tsd", Some(cluster), Some(server))
}

/// The name of the member that is the synchronizer of `cluster`: `synchronizer-<cluster>`.
pub fn synchronizer_name(cluster: u32) -> String {
    member_name("synchronizer", Some(cluster), None)
}

fn member_name(program: &str, cluster: Option<u32>, server: Option<u32>) -> String {
    match (cluster, server) {
        (Some(c), Some(s)) => format!("{program}-{c}-{s}"),
        (Some(c), None) => format!("{program}-{c}"),
        _ => program.to_owned(),
    }
}

/// A free loopback port (it was free a moment ago), for a coordinator.
pub fn free_port() -> Result<u16, Fatal> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Fatal::new("cannot find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Fatal::new("cannot find a free port", e))
}

/// The programs this executable also is: started under one of these names (`argv[0]`), it
/// runs that program.
const PROGRAMS: [&str; 4] = ["coordinator", "tsd", "tsc", "synchronizer"];

/// When this executable was started under the name of one of [`PROGRAMS`] (as
/// [`Deployment`] starts its children), runs that program with `args` and returns its exit
/// status; otherwise `None`. The process takes the program's name too, so that `ps -C tsd`
/// and `top` show it so.
pub fn run_as(args: &[OsString]) -> Option<ExitCode> {
    let name = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())?;
    let program = *PROGRAMS.iter().find(|&&p| p == name)?;
    name_this_process(program);
    let args = args.to_vec();
    Some(match program {
        "coordinator" => crate::program::coordinator::main(args),
        "tsd" => crate::program::tsd::main(args),
        "tsc" => crate::program::tsc::main(args),
        _ => crate::program::synchronizer::main(args),
    })
}

/// Sets the name the kernel shows for this process (`/proc/self/comm`, what `ps -e` and
/// `top` print) to `name`.
fn name_this_process(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes (the kernel
    // cuts it), which `name` is, and keeps no pointer to it.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// The timer flags of the programs that start deployments.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct Timers {
    /// How often servers report to the coordinator.
    #[arg(long = "heartbeat-interval", default_value = "200ms", value_parser = crate::cli::duration)]
    pub heartbeat_interval: Duration,
    /// How long a silent server counts as alive (the coordinator's failure timeout).
    #[arg(long = "failure-timeout", default_value = "1s", value_parser = crate::cli::duration)]
    pub failure_timeout: Duration,
}

impl Timers {
    /// Refuses timers that cannot work: a failure timeout shorter than two heartbeat
    /// intervals declares live servers failed between two of their heartbeats, and the
    /// cluster's master flaps forever.
    pub fn check(&self) -> Result<(), Fatal> {
        if self.failure_timeout < self.heartbeat_interval * 2 {
            return Err(Fatal(format!(
                "--failure-timeout ({}) must be at least twice --heartbeat-interval ({}), or \
                 live servers count as failed between two heartbeats",
                humantime::format_duration(self.failure_timeout),
                humantime::format_duration(self.heartbeat_interval)
            )));
        }
        Ok(())
    }
}

/// The shape of a local deployment.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Number of clusters.
    pub clusters: u32,
    /// Port of the coordinator.
    pub coordinator_port: u16,
    /// Servers on free ports instead of the course's 10000, 10001, 20000 ...
    pub free_ports: bool,
    /// Folder of the data; logs go to its `logs` folder.
    pub data_dir: PathBuf,
    /// The heartbeat interval and failure timeout.
    pub timers: Timers,
    /// Servers per cluster: a master and `servers - 1` slaves.
    pub servers: u32,
    /// Whether each cluster gets its synchronizer.
    pub synchronizers: bool,
    /// The synchronizers' `--inbox-compact-limit` (`None`: their default).
    pub inbox_compact_limit: Option<u64>,
}

impl Topology {
    /// The course's deployment: on the course's ports unless `free_ports`, a master, a
    /// slave and a synchronizer per cluster.
    pub fn standard(
        clusters: u32,
        coordinator_port: u16,
        free_ports: bool,
        data_dir: PathBuf,
        timers: Timers,
    ) -> Self {
        Topology {
            clusters,
            coordinator_port,
            free_ports,
            data_dir,
            timers,
            servers: 2,
            synchronizers: true,
            inbox_compact_limit: None,
        }
    }

    /// The port of server `server` of `cluster`: the course's, or 0 for a free one.
    fn server_port(&self, cluster: u32, server: u32) -> u16 {
        if self.free_ports {
            0
        } else {
            u16::try_from(10000 * cluster + server - 1).unwrap_or(0)
        }
    }

    fn coordinator_args(&self) -> Vec<String> {
        vec![
            "-p".to_owned(),
            self.coordinator_port.to_string(),
            "--clusters".into(),
            self.clusters.to_string(),
            "--failure-timeout".into(),
            humantime::format_duration(self.timers.failure_timeout).to_string(),
        ]
    }

    fn synchronizer_args(&self, cluster: u32) -> Vec<String> {
        let port = if self.free_ports { 0 } else { 1233 + cluster };
        let mut args = vec![
            "-n".to_owned(),
            cluster.to_string(),
            "-j".into(),
            self.coordinator_port.to_string(),
            "-p".into(),
            port.to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--register-interval".into(),
            humantime::format_duration(self.timers.heartbeat_interval).to_string(),
        ];
        if let Some(limit) = self.inbox_compact_limit {
            args.extend(["--inbox-compact-limit".into(), limit.to_string()]);
        }
        args
    }

    fn tsd_args(&self, cluster: u32, server: u32) -> Vec<String> {
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        vec![
            "-c".to_owned(),
            cluster.to_string(),
            "-s".into(),
            server.to_string(),
            "-k".into(),
            self.coordinator_port.to_string(),
            "-p".into(),
            self.server_port(cluster, server).to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--heartbeat-interval".into(),
            duration(self.timers.heartbeat_interval),
            "--replication-timeout".into(),
            duration(self.timers.failure_timeout),
        ]
    }
}

/// One child process.
#[derive(Debug)]
pub struct Member {
    /// `coordinator`, `tsd-<cluster>-<server>` or `synchronizer-<cluster>`.
    pub name: String,
    /// The program it runs.
    pub program: String,
    /// Its cluster and server id, for a tsd.
    pub cluster: Option<u32>,
    /// Its server id, for a tsd.
    pub server: Option<u32>,
    /// Where it listens.
    pub address: String,
    args: Vec<String>,
    role: Arc<Mutex<String>>,
    child: Child,
    exit_reported: bool,
    /// Stopped with SIGSTOP and not resumed yet.
    paused: bool,
    /// The length of its log file when this run of it started.
    log_start: u64,
}

impl Member {
    /// The role it last took up (`master`, `slave`), or `None` yet.
    pub fn role(&self) -> Option<String> {
        let role = self.role.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (!role.is_empty()).then_some(role)
    }

    /// The exit status, the first time it is seen after the child exited.
    pub fn newly_exited(&mut self) -> Option<ExitStatus> {
        if self.exit_reported {
            return None;
        }
        let status = self.child.try_wait().ok().flatten()?;
        self.exit_reported = true;
        Some(status)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` to the process, if it runs.
    fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }
}

/// A running local deployment.
#[derive(Debug)]
pub struct Deployment {
    exe: PathBuf,
    logs: PathBuf,
    topology: Topology,
    /// The coordinator first, then the servers by cluster and id.
    pub members: Vec<Member>,
}

impl Deployment {
    /// Starts the coordinator, two servers and a synchronizer per cluster, and waits until
    /// every server has a role. On failure every child started is stopped.
    pub async fn start(topology: Topology) -> Result<Deployment, Fatal> {
        topology.timers.check()?;
        let logs = topology.data_dir.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(|e| Fatal::new(format_args!("cannot create {}", logs.display()), e))?;
        let exe = std::env::current_exe()
            .map_err(|e| Fatal::new("cannot find this program's executable", e))?;
        let mut deployment = Deployment {
            exe,
            logs,
            topology,
            members: Vec::new(),
        };
        match deployment.start_all().await {
            Ok(()) => Ok(deployment),
            Err(fatal) => {
                deployment.stop().await;
                Err(fatal)
            }
        }
    }

    /// The deployment's shape.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn start_all(&mut self) -> Result<(), Fatal> {
        let args = self.topology.coordinator_args();
        let coordinator = self.spawn(COORDINATOR, None, None, args, false).await?;
        self.members.push(coordinator);
        for cluster in 1..=self.topology.clusters {
            for server in 1..=self.topology.servers {
                let args = self.topology.tsd_args(cluster, server);
                let tsd = self
                    .spawn("tsd", Some(cluster), Some(server), args, false)
                    .await?;
                self.members.push(tsd);
            }
        }
        let synchronized = if self.topology.synchronizers {
            self.topology.clusters
        } else {
            0
        };
        for cluster in 1..=synchronized {
            let args = self.topology.synchronizer_args(cluster);
            let synchronizer = self
                .spawn("synchronizer", Some(cluster), None, args, false)
                .await?;
            self.members.push(synchronizer);
        }
        self.wait_for_roles().await
    }

    async fn wait_for_roles(&self) -> Result<(), Fatal> {
        let all_have_roles = async {
            while self
                .members
                .iter()
                .any(|m| m.server.is_some() && !m.exit_reported && m.role().is_none())
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(START_TIMEOUT, all_have_roles)
            .await
            .map_err(|_| {
                Fatal("the servers did not all take up a role in time; see the logs".into())
            })
    }

    /// What the member called `name` (`coordinator`, `tsd-1-2`) has logged so far, in all
    /// its runs.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// What the member called `name` has logged since it was last started.
    pub fn current_log(&self, name: &str) -> String {
        let log = self.log(name);
        let start = self.member(name).map_or(0, |m| m.log_start) as usize;
        log.get(start..).unwrap_or_default().to_owned()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// The folder of the members' logs.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    fn member_mut(&mut self, name: &str) -> Result<&mut Member, Fatal> {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| Fatal(format!("there is no member {name} in the deployment")))
    }

    /// The tsd `server` of `cluster`.
    pub fn server(&mut self, cluster: u32, server: u32) -> Option<&mut Member> {
        self.member_mut(&tsd_name(cluster, server)).ok()
    }

    /// Kills the tsd with SIGKILL, as `kill -9` does.
    pub async fn kill(&mut self, cluster: u32, server: u32) {
        let _ = self.kill_member(&tsd_name(cluster, server)).await;
    }

    /// Starts a killed tsd again with its former flags, and waits until it has a role.
    pub async fn restart(&mut self, cluster: u32, server: u32) -> Result<(), Fatal> {
        self.restart_member(&tsd_name(cluster, server)).await
    }

    /// Kills the member called `name` with SIGKILL, as `kill -9` does, and reaps it.
    pub async fn kill_member(&mut self, name: &str) -> Result<(), Fatal> {
        let member = self.member_mut(name)?;
        let _ = member.child.kill().await;
        member.exit_reported = true;
        member.paused = false;
        Ok(())
    }

    /// Starts the member called `name` again (after [`Deployment::kill_member`]) with its
    /// former flags, its log going on in the same file. Waits until it listens, and a tsd
    /// until it has a role. A server that listened on a free port gets a new one.
    pub async fn restart_member(&mut self, name: &str) -> Result<(), Fatal> {
        let member = self.member_mut(name)?;
        let (program, cluster, server) = (member.program.clone(), member.cluster, member.server);
        let args = member.args.clone();
        let restarted = self.spawn(&program, cluster, server, args, true).await?;
        *self.member_mut(name)? = restarted;
        self.wait_for_roles().await
    }

    /// Stops the member called `name` with SIGSTOP: it keeps its sockets but does nothing,
    /// as a process that hangs or a machine that stalls.
    pub fn pause(&mut self, name: &str) -> Result<(), Fatal> {
        let member = self.member_mut(name)?;
        member.signal(libc::SIGSTOP);
        member.paused = true;
        Ok(())
    }

    /// Lets a member stopped by [`Deployment::pause`] go on, with SIGCONT.
    pub fn resume(&mut self, name: &str) -> Result<(), Fatal> {
        let member = self.member_mut(name)?;
        member.signal(libc::SIGCONT);
        member.paused = false;
        Ok(())
    }

    /// A `tsc` client of `user` connected to this deployment, its log (standard error) in
    /// `<logs>/tsc-<user>.log`.
    pub fn screen(&self, user: u32) -> Result<Screen, Fatal> {
        let path = self.logs.join(format!("tsc-{user}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Fatal::new(format_args!("cannot open {}", path.display()), e))?;
        Screen::start(&self.exe, self.topology.coordinator_port, user, log.into())
    }

    /// Stops every child: SIGTERM (and SIGCONT, for a paused one), then SIGKILL for those
    /// still running after a while.
    pub async fn stop(&mut self) {
        for member in &self.members {
            member.signal(libc::SIGTERM);
            if member.paused {
                member.signal(libc::SIGCONT);
            }
        }
        let stops = self.members.iter_mut().map(|member| async move {
            if tokio::time::timeout(STOP_TIMEOUT, member.child.wait())
                .await
                .is_err()
            {
                let _ = member.child.kill().await;
            }
        });
        futures::future::join_all(stops).await;
    }

    /// Starts `program` as a member and waits until it listens. Its log goes to
    /// `<logs>/<name>.log`: a new file, or with `again` the former one, continued.
    async fn spawn(
        &self,
        program: &str,
        cluster: Option<u32>,
        server: Option<u32>,
        args: Vec<String>,
        again: bool,
    ) -> Result<Member, Fatal> {
        let name = member_name(program, cluster, server);
        let log_path = self.log_path(&name);
        let log_start = match again {
            true => std::fs::metadata(&log_path).map_or(0, |m| m.len()),
            false => 0,
        };
        let mut command = Command::new(&self.exe);
        command
            .arg0(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        stop_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| Fatal::new(format_args!("cannot start {name}"), e))?;
        let role = Arc::new(Mutex::new(String::new()));
        let last_line = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let log = open_log(&log_path, again)
            .await
            .map_err(|e| Fatal::new(format_args!("cannot write {}", log_path.display()), e))?;
        tokio::spawn(copy_log(
            stderr,
            log,
            Arc::clone(&role),
            Arc::clone(&last_line),
        ));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return Some(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
            None
        })
        .await;
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        match ready {
            Ok(Some(address)) => Ok(Member {
                name,
                program: program.to_owned(),
                cluster,
                server,
                address,
                args,
                role,
                child,
                exit_reported: false,
                paused: false,
                log_start,
            }),
            not_ready => {
                let _ = child.kill().await;
                // Give the log copier a moment to take the child's last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let last = last_line.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let why = match not_ready {
                    Err(_) => format!("it did not listen within {START_TIMEOUT:?}; {last}"),
                    _ => format!("it stopped; {last}"),
                };
                Err(Fatal(format!(
                    "{name} did not start: {why} (log: {})",
                    log_path.display()
                )))
            }
        }
    }
}

/// Opens a member's log file: a new one, or with `again` the former one to go on.
async fn open_log(path: &Path, again: bool) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(again)
        .truncate(!again)
        .open(path)
        .await
}

/// Copies a child's log to its file, noting its role and its last line.
async fn copy_log(
    stderr: tokio::process::ChildStderr,
    mut file: tokio::fs::File,
    role: Arc<Mutex<String>>,
    last: Arc<Mutex<String>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        for taken in ["master", "slave"] {
            if line.contains(&format!("serving as {taken}")) {
                *role.lock().unwrap_or_else(|p| p.into_inner()) = taken.to_owned();
            }
        }
        *last.lock().unwrap_or_else(|p| p.into_inner()) = line.clone();
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
    }
}

#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and changes only the child being created.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_command: &mut Command) {}

/// A `tsc` child driven through pipes, as a person at a terminal would use it: lines are
/// typed on its standard input, and its screen (standard output) is read line by line, each
/// line with the moment it arrived.
#[derive(Debug)]
pub struct Screen {
    child: Child,
    /// `None` once the input is closed.
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl Screen {
    /// Starts `tsc -k <coordinator_port> -u <user>` (this executable run as `tsc`), its log
    /// discarded.
    pub async fn open(coordinator_port: u16, user: u32) -> Result<Screen, Fatal> {
        let exe =
            std::env::current_exe().map_err(|e| Fatal::new("cannot find this executable", e))?;
        Screen::start(&exe, coordinator_port, user, Stdio::null())
    }

    fn start(exe: &Path, coordinator_port: u16, user: u32, log: Stdio) -> Result<Screen, Fatal> {
        let mut command = Command::new(exe);
        command
            .arg0("tsc")
            .args(["-k", &coordinator_port.to_string()])
            .args(["-u", &user.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        stop_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| Fatal::new("cannot start tsc", e))?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Ok(Screen {
            child,
            stdin,
            lines,
        })
    }

    /// Types `line` and Enter.
    pub async fn type_line(&mut self, line: &str) -> Result<(), Fatal> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Fatal("the input of tsc is closed".into()))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
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
        self.stdin = None;
    }

    /// Waits at most `limit` for the client to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Kills the client with SIGKILL.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
