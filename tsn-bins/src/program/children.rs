//! A local deployment as child processes: the coordinator and, per cluster, a master and a
//! slave tsd and a synchronizer, each this same executable run as that program (`--run-as`), always the same
//! version. Used by `tsn-local` and `tsn-bench`.
//!
//! Each child's log (standard error) goes to `<logs>/<name>.log`; its ready line (standard
//! output) gives its address; `serving as master|slave` in its log gives its role. On
//! Linux the kernel sends a child SIGTERM when its parent dies, so none is left behind.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::Fatal;

/// The argument that makes the executable run as one of the programs.
pub const RUN_AS: &str = "--run-as";

/// How long a child may take to start listening, and the servers to take up roles.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long children get to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// With `--run-as PROGRAM ARGS...` as `args[1..]`, runs that program and returns its exit
/// status; otherwise `None`.
pub fn run_as(args: &[OsString]) -> Option<ExitCode> {
    if args.get(1).is_none_or(|a| a != RUN_AS) {
        return None;
    }
    let program = args
        .get(2)
        .and_then(|p| p.to_str())
        .unwrap_or_default()
        .to_owned();
    let rest: Vec<OsString> = std::iter::once(OsString::from(&program))
        .chain(args.iter().skip(3).cloned())
        .collect();
    Some(match program.as_str() {
        "coordinator" => crate::program::coordinator::main(rest),
        "tsd" => crate::program::tsd::main(rest),
        "tsc" => crate::program::tsc::main(rest),
        "synchronizer" => crate::program::synchronizer::main(rest),
        other => {
            eprintln!("there is no program '{other}' to run");
            ExitCode::from(2)
        }
    })
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
        vec![
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
        ]
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
        let coordinator = spawn(&self.exe, &self.logs, "coordinator", None, None, args).await?;
        self.members.push(coordinator);
        for cluster in 1..=self.topology.clusters {
            for server in 1..=self.topology.servers {
                let args = self.topology.tsd_args(cluster, server);
                let tsd = self.spawn_tsd(cluster, server, args).await?;
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
            let synchronizer = spawn(
                &self.exe,
                &self.logs,
                "synchronizer",
                Some(cluster),
                None,
                args,
            )
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

    async fn spawn_tsd(
        &self,
        cluster: u32,
        server: u32,
        args: Vec<String>,
    ) -> Result<Member, Fatal> {
        spawn(
            &self.exe,
            &self.logs,
            "tsd",
            Some(cluster),
            Some(server),
            args,
        )
        .await
    }

    /// What the member called `name` (`coordinator`, `tsd-1-2`) has logged so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The tsd `server` of `cluster`.
    pub fn server(&mut self, cluster: u32, server: u32) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.cluster == Some(cluster) && m.server == Some(server))
    }

    /// Kills the tsd with SIGKILL, as `kill -9` does.
    pub async fn kill(&mut self, cluster: u32, server: u32) {
        if let Some(member) = self.server(cluster, server) {
            let _ = member.child.kill().await;
            member.exit_reported = true;
        }
    }

    /// Starts a killed tsd again with its former flags, and waits until it has a role.
    pub async fn restart(&mut self, cluster: u32, server: u32) -> Result<(), Fatal> {
        let Some(index) = self
            .members
            .iter()
            .position(|m| m.cluster == Some(cluster) && m.server == Some(server))
        else {
            return Err(Fatal(format!("there is no tsd {cluster}/{server}")));
        };
        let args = self.members[index].args.clone();
        self.members[index] = self.spawn_tsd(cluster, server, args).await?;
        self.wait_for_roles().await
    }

    /// Stops every child: SIGTERM, then SIGKILL for those still running after a while.
    pub async fn stop(&mut self) {
        for member in &self.members {
            if let Some(pid) = member.child.id() {
                // SAFETY: kill(2) on the pid of a child we have not reaped yet.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
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
}

async fn spawn(
    exe: &Path,
    logs: &Path,
    program: &str,
    cluster: Option<u32>,
    server: Option<u32>,
    args: Vec<String>,
) -> Result<Member, Fatal> {
    let name = match (cluster, server) {
        (Some(c), Some(s)) => format!("{program}-{c}-{s}"),
        (Some(c), None) => format!("{program}-{c}"),
        _ => program.to_owned(),
    };
    let mut command = Command::new(exe);
    command
        .arg(RUN_AS)
        .arg(program)
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
    let log_path = logs.join(format!("{name}.log"));
    let stderr = child.stderr.take().expect("piped");
    tokio::spawn(copy_log(
        stderr,
        log_path.clone(),
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
        }),
        _ => {
            let _ = child.kill().await;
            // Give the log copier a moment to take the child's last words.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let why = last_line.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Err(Fatal(format!(
                "{name} did not start: {why} (log: {})",
                log_path.display()
            )))
        }
    }
}

/// Copies a child's log to its file, noting its role and its last line.
async fn copy_log(
    stderr: tokio::process::ChildStderr,
    path: PathBuf,
    role: Arc<Mutex<String>>,
    last: Arc<Mutex<String>>,
) {
    let Ok(mut file) = tokio::fs::File::create(&path).await else {
        return;
    };
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
