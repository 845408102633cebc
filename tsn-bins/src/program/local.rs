//! `tsn-local`: a whole deployment on this machine, as child processes, in one command.
//!
//! It starts the coordinator and, for each cluster, a master and a slave tsd, with all data
//! under one folder, waits until every cluster has a master, prints what runs where and how
//! to connect, reports role changes and dead children as they happen, and stops everything
//! on Ctrl-C. Children are this same executable run as the program they stand for (so they
//! are always the same version), and the kernel stops them if `tsn-local` dies.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tsn_core::Coordinator;
use tsn_core::coordinator::Endpoint;
use tsn_core::id::UserId;
use tsn_grpc::coordinator::CoordClient;

use crate::cli::{self, Fatal};

/// The argument that makes `tsn-local` run as one of the programs.
pub const RUN_AS: &str = "--run-as";

/// How long a child may take to start listening, and the deployment to get its masters.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often roles and children are checked.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How long children get to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The flags of `tsn-local`.
#[derive(Parser, Debug)]
#[command(
    name = "tsn-local",
    version,
    about = "Runs a whole TSN deployment on this machine: a coordinator and a master and a slave per cluster"
)]
struct Flags {
    /// Folder for all data and logs.
    #[arg(long, default_value = "tsn-data")]
    data_dir: PathBuf,
    /// Delete the data folder first.
    #[arg(long)]
    reset: bool,
    /// Number of clusters (at most 6 with the course's ports).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    clusters: u32,
    /// Port of the coordinator.
    #[arg(long, default_value_t = 9090)]
    coordinator_port: u16,
    /// Let every server pick a free port instead of the course's 10000, 10001, 20000 ...
    #[arg(long)]
    free_ports: bool,
    /// How often servers report to the coordinator.
    #[arg(long, default_value = "200ms", value_parser = cli::duration)]
    heartbeat_interval: Duration,
    /// How long a silent server counts as alive.
    #[arg(long, default_value = "1s", value_parser = cli::duration)]
    failure_timeout: Duration,
}

/// Runs `tsn-local` with `args`, or, with `--run-as PROGRAM`, that program.
pub fn main(args: Vec<OsString>) -> ExitCode {
    if args.get(1).is_some_and(|a| a == RUN_AS) {
        return run_as(args);
    }
    let flags: Flags = cli::parse_flags("tsn-local", args);
    match cli::runtime().block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => fatal.report("tsn-local"),
    }
}

fn run_as(args: Vec<OsString>) -> ExitCode {
    let program = args
        .get(2)
        .and_then(|p| p.to_str())
        .unwrap_or_default()
        .to_owned();
    let rest: Vec<OsString> = std::iter::once(OsString::from(&program))
        .chain(args.into_iter().skip(3))
        .collect();
    match program.as_str() {
        "coordinator" => crate::program::coordinator::main(rest),
        "tsd" => crate::program::tsd::main(rest),
        "tsc" => crate::program::tsc::main(rest),
        other => {
            eprintln!("tsn-local: there is no program '{other}' to run");
            ExitCode::from(2)
        }
    }
}

/// One child process of the deployment.
struct Member {
    name: String,
    cluster: Option<u32>,
    server: Option<u32>,
    address: String,
    role: Arc<Mutex<String>>,
    child: Child,
    reported_exit: bool,
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    if !flags.free_ports && flags.clusters > 6 {
        return Err(Fatal(
            "more than 6 clusters need --free-ports (the course's ports stop at 60001)".into(),
        ));
    }
    if flags.reset && flags.data_dir.exists() {
        std::fs::remove_dir_all(&flags.data_dir).map_err(|e| {
            Fatal::new(
                format_args!("cannot delete {}", flags.data_dir.display()),
                e,
            )
        })?;
    }
    let logs = flags.data_dir.join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|e| Fatal::new(format_args!("cannot create {}", logs.display()), e))?;
    let exe = std::env::current_exe()
        .map_err(|e| Fatal::new("cannot find this program's executable", e))?;

    let mut members = Vec::new();
    let started = start_all(&flags, &exe, &logs, &mut members).await;
    if let Err(fatal) = started {
        stop_all(&mut members).await;
        return Err(fatal);
    }
    print_table(&flags, &members, &exe);
    watch(&flags, &mut members).await;
    stop_all(&mut members).await;
    println!(
        "Stopped every process. The data stays in {}.",
        flags.data_dir.display()
    );
    Ok(())
}

async fn start_all(
    flags: &Flags,
    exe: &Path,
    logs: &Path,
    members: &mut Vec<Member>,
) -> Result<(), Fatal> {
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    let coordinator_args = vec![
        "-p".to_owned(),
        flags.coordinator_port.to_string(),
        "--clusters".into(),
        flags.clusters.to_string(),
        "--failure-timeout".into(),
        duration(flags.failure_timeout),
    ];
    members.push(spawn(exe, logs, "coordinator", None, None, &coordinator_args).await?);
    for cluster in 1..=flags.clusters {
        for server in 1..=2 {
            let port = if flags.free_ports {
                0
            } else {
                10000 * cluster + server - 1
            };
            let args = vec![
                "-c".to_owned(),
                cluster.to_string(),
                "-s".into(),
                server.to_string(),
                "-k".into(),
                flags.coordinator_port.to_string(),
                "-p".into(),
                port.to_string(),
                "--data-dir".into(),
                flags.data_dir.display().to_string(),
                "--heartbeat-interval".into(),
                duration(flags.heartbeat_interval),
                "--replication-timeout".into(),
                duration(flags.failure_timeout),
            ];
            members.push(spawn(exe, logs, "tsd", Some(cluster), Some(server), &args).await?);
        }
    }
    let all_have_roles = async {
        loop {
            let waiting = members
                .iter()
                .filter(|m| m.server.is_some())
                .any(|m| m.role.lock().expect("role").is_empty());
            if !waiting {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(START_TIMEOUT, all_have_roles)
        .await
        .map_err(|_| Fatal("the servers did not all take up a role in time; see the logs".into()))
}

async fn spawn(
    exe: &Path,
    logs: &Path,
    program: &str,
    cluster: Option<u32>,
    server: Option<u32>,
    args: &[String],
) -> Result<Member, Fatal> {
    let name = match (cluster, server) {
        (Some(c), Some(s)) => format!("{program}-{c}-{s}"),
        _ => program.to_owned(),
    };
    let mut command = Command::new(exe);
    command
        .arg(RUN_AS)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    stop_with_parent(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| Fatal::new(format_args!("cannot start {name}"), e))?;
    let role = Arc::new(Mutex::new(String::new()));
    let log_path = logs.join(format!("{name}.log"));
    let stderr = child.stderr.take().expect("piped");
    let last_error = Arc::new(Mutex::new(String::new()));
    tokio::spawn(copy_log(
        stderr,
        log_path.clone(),
        Arc::clone(&role),
        Arc::clone(&last_error),
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
            cluster,
            server,
            address,
            role,
            child,
            reported_exit: false,
        }),
        _ => {
            let _ = child.wait().await;
            let why = last_error.lock().expect("last error").clone();
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
                *role.lock().expect("role") = taken.to_owned();
            }
        }
        *last.lock().expect("last line") = line.clone();
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
    }
}

#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being created.
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

fn print_table(flags: &Flags, members: &[Member], exe: &Path) {
    println!(
        "TSN is running: {} clusters, data in {}, logs in {}.",
        flags.clusters,
        flags.data_dir.display(),
        flags.data_dir.join("logs").display()
    );
    println!();
    println!("  process      cluster server  role    address");
    for member in members {
        let dash = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
        let role = member.role.lock().expect("role").clone();
        let program = member.name.split('-').next().unwrap_or_default();
        println!(
            "  {:<12} {:>7} {:>6}  {:<7} {}",
            program,
            dash(member.cluster),
            dash(member.server),
            if role.is_empty() { "-" } else { &role },
            member.address
        );
    }
    println!();
    let tsc = exe.with_file_name("tsc");
    let client = if tsc.is_file() {
        format!("{} -k {}", tsc.display(), flags.coordinator_port)
    } else {
        format!(
            "cargo run --release --bin tsc -- -k {}",
            flags.coordinator_port
        )
    };
    println!(
        "Connect a client in another terminal, for user 1 (cluster 1) and user 2 (cluster 2):"
    );
    println!("  {client} -u 1");
    println!("  {client} -u 2");
    println!("Ctrl-C stops every process.");
}

/// Reports role changes and dead children until Ctrl-C.
async fn watch(flags: &Flags, members: &mut [Member]) {
    let coordinator = CoordClient::new(&Endpoint {
        host: "127.0.0.1".into(),
        port: flags.coordinator_port,
    });
    let mut masters: BTreeMap<u32, Option<String>> = BTreeMap::new();
    let shutdown = cli::shutdown_signal();
    tokio::pin!(shutdown);
    let mut interval = tokio::time::interval(WATCH_INTERVAL);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = interval.tick() => {}
        }
        for member in members.iter_mut() {
            if !member.reported_exit
                && let Ok(Some(status)) = member.child.try_wait()
            {
                member.reported_exit = true;
                println!("{} ({}) exited: {status}", member.name, member.address);
            }
        }
        let Ok(coordinator) = &coordinator else {
            continue;
        };
        for cluster in 1..=flags.clusters {
            let user = UserId::new(cluster).expect("a cluster number is a user id");
            let master = match coordinator.server_for(user).await {
                Ok(Some(server)) => {
                    Some(format!("server {} at {}", server.server, server.endpoint))
                }
                Ok(None) => None,
                Err(_) => continue,
            };
            let known = masters.insert(cluster, master.clone());
            if known.is_some() && known.as_ref() != Some(&master) {
                match master {
                    Some(master) => println!("cluster {cluster}: the master is now {master}"),
                    None => println!("cluster {cluster}: no master at the moment"),
                }
            }
        }
    }
}

/// Stops every child: SIGTERM, then SIGKILL for those still running after a while.
async fn stop_all(members: &mut [Member]) {
    for member in members.iter() {
        if let Some(pid) = member.child.id() {
            // SAFETY: kill(2) with a pid of our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    for member in members.iter_mut() {
        if tokio::time::timeout(STOP_TIMEOUT, member.child.wait())
            .await
            .is_err()
        {
            let _ = member.child.kill().await;
        }
    }
}
