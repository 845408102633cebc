//! `tsn-bench`: measures a local deployment from the outside, as a person at `tsc` sees it.
//!
//! It starts a deployment of real processes on loopback (in a temporary folder), drives
//! `tsc` clients through pipes, and prints a table:
//!
//! * **same-cluster delivery** — one post at a time from u4 to its follower u1 (both in
//!   cluster 1): from writing the line to u4's `tsc` until the line appears on u1's
//!   screen. Durable on master and slave before it is shown.
//! * **failover** — u4 posts every 10 ms; the master of cluster 1 is killed with SIGKILL;
//!   the time from the kill until u1's screen shows a post written after it. Both clients
//!   reconnect by themselves. The old master is then started again and catches up before
//!   the next trial.

use std::ffi::OsString;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tsn_core::Coordinator;
use tsn_core::coordinator::Endpoint;
use tsn_core::id::UserId;
use tsn_grpc::coordinator::CoordClient;

use crate::cli::{self, Fatal};
use crate::program::children::{self, Deployment, RUN_AS, Timers, Topology};

/// How long any one expected event may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// The flags of `tsn-bench`.
#[derive(Parser, Debug)]
#[command(
    name = "tsn-bench",
    version,
    about = "Measures delivery and failover times of a local TSN deployment"
)]
struct Flags {
    /// Posts for the same-cluster delivery measurement.
    #[arg(long, default_value_t = 200)]
    posts: usize,
    /// Failover trials.
    #[arg(long, default_value_t = 5)]
    failovers: usize,
    #[command(flatten)]
    timers: Timers,
}

/// Runs `tsn-bench` with `args`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    children::run_as(&args).unwrap_or_else(|| cli::run_program("tsn-bench", args, run))
}

/// A `tsc` child whose screen lines arrive with the moment they were read.
struct Screen {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl Screen {
    async fn open(coordinator_port: u16, user: u32) -> Result<Screen, Fatal> {
        let exe =
            std::env::current_exe().map_err(|e| Fatal::new("cannot find this executable", e))?;
        let mut child = Command::new(exe)
            .args([
                RUN_AS,
                "tsc",
                "-k",
                &coordinator_port.to_string(),
                "-u",
                &user.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Fatal::new("cannot start tsc", e))?;
        let stdin = child.stdin.take().expect("piped");
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

    async fn type_line(&mut self, line: &str) -> Result<(), Fatal> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| Fatal::new("cannot write to tsc", e))
    }

    /// Waits for a line that ends with `suffix`; returns when it arrived.
    async fn wait_for(&mut self, suffix: &str) -> Result<Instant, Fatal> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
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
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    let data_dir = std::env::temp_dir().join(format!("tsn-bench-{}", std::process::id()));
    let coordinator_port = free_port()?;
    let topology = Topology {
        clusters: 1,
        coordinator_port,
        free_ports: true,
        data_dir: data_dir.clone(),
        timers: flags.timers,
    };
    let mut deployment = Deployment::start(topology).await?;
    let result = measure(&flags, &mut deployment).await;
    deployment.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    let (delivery, failover) = result?;
    println!("| figure | runs | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- |");
    print_row("same-cluster delivery, tsc to tsc", &delivery);
    print_row(
        "failover, kill -9 of the master to the next post shown",
        &failover,
    );
    Ok(())
}

fn free_port() -> Result<u16, Fatal> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Fatal::new("cannot find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Fatal::new("cannot find a free port", e))
}

async fn measure(
    flags: &Flags,
    deployment: &mut Deployment,
) -> Result<(Vec<Duration>, Vec<Duration>), Fatal> {
    let port = deployment.topology().coordinator_port;
    let mut author = Screen::open(port, 4).await?;
    author.wait_for("Cmd> ").await.ok();
    let mut reader = Screen::open(port, 1).await?;
    reader.type_line("FOLLOW 4").await?;
    reader.type_line("TIMELINE").await?;
    reader.wait_for("Now you are in the timeline").await?;
    author.type_line("TIMELINE").await?;
    author.wait_for("Now you are in the timeline").await?;

    let mut delivery = Vec::with_capacity(flags.posts);
    for n in 0..flags.posts {
        let text = format!("latency probe {n}");
        let sent = Instant::now();
        author.type_line(&text).await?;
        delivery.push(reader.wait_for(&text).await? - sent);
    }

    let coordinator = CoordClient::new(&Endpoint {
        host: "127.0.0.1".into(),
        port,
    })
    .map_err(|e| Fatal::new("bad coordinator address", e))?;
    let mut failover = Vec::with_capacity(flags.failovers);
    for trial in 0..flags.failovers {
        let master = current_master(&coordinator).await?;
        let killed_at = Instant::now();
        deployment.kill(1, master).await;
        // Post every 10 ms until a post written after the kill is shown.
        let mut n = 0;
        let shown = loop {
            n += 1;
            let text = format!("failover {trial} post {n}");
            author.type_line(&text).await?;
            if let Ok(Some((at, line))) =
                tokio::time::timeout(Duration::from_millis(10), reader.lines.recv()).await
                && line.contains(&format!("failover {trial} post "))
            {
                break at;
            }
            if killed_at.elapsed() > PATIENCE {
                return Err(Fatal("no post was shown after the failover".into()));
            }
        };
        failover.push(shown - killed_at);
        // The old master returns as a slave; the next trial waits until the coordinator
        // counts it in sync (it could not be promoted before).
        let promoted = current_master(&coordinator).await?;
        let in_sync = format!("servers=[{promoted}, {master}]");
        let seen = deployment.log("coordinator").matches(&in_sync).count();
        deployment.restart(1, master).await?;
        let deadline = Instant::now() + PATIENCE;
        while deployment.log("coordinator").matches(&in_sync).count() <= seen {
            if Instant::now() > deadline {
                return Err(Fatal(format!("server {master} did not catch up")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(author.child.kill().await);
    drop(reader.child.kill().await);
    Ok((delivery, failover))
}

async fn current_master(coordinator: &CoordClient) -> Result<u32, Fatal> {
    let user = UserId::new(1).expect("1 is a user id");
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(Some(server)) = coordinator.server_for(user).await {
            return Ok(server.server.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(Fatal("cluster 1 has no master".into()))
}

fn print_row(figure: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {figure} | {} | {} | {} | {} |",
        sorted.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    );
}
