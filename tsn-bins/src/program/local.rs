//! `tsn-local`: a whole deployment on this machine, as child processes, in one command.
//!
//! It starts the coordinator and, for each cluster, a master and a slave tsd, with all data
//! under one folder, waits until every cluster has a master, prints what runs where and how
//! to connect, reports role changes and dead children as they happen, and stops everything
//! on Ctrl-C. Children are this same executable run as the program they stand for (so they
//! are always the same version), and the kernel stops them if `tsn-local` dies. With
//! `--hosts` (root only) each runs on a simulated host of its own, removed on Ctrl-C. With
//! `--etcd` the coordination runs on a cluster of 3 etcd members (from the PATH), with two
//! coordinators on it. With `--tls` every connection is TLS, with certificates it makes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tsn_core::Coordinator;
use tsn_core::coordinator::Endpoint;
use tsn_core::id::UserId;
use tsn_grpc::coordinator::CoordClient;
use tsn_grpc::tls::{self, Security};

use crate::cli::{self, Fatal};
use crate::harness::{self, Deployment, Member, Timers, Topology, free_port};
use crate::program::data_folder::{self, Claim};

/// How often roles and children are checked.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// The flags of `tsn-local`.
#[derive(Parser, Debug)]
#[command(
    name = "tsn-local",
    version,
    about = "Runs a whole TSN deployment on this machine: a coordinator and, per cluster, a master, a slave and a synchronizer"
)]
struct Flags {
    /// Folder for all data and logs.
    #[arg(long, default_value = "tsn-data")]
    data_dir: PathBuf,
    /// Delete the deployment data in the data folder first (refused for a folder that holds
    /// anything else, or that a running process uses).
    #[arg(long)]
    reset: bool,
    /// Number of clusters (at most 6 with the course's ports).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    clusters: u32,
    /// Port of the coordinator [default: 9090, or a free one with --free-ports].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    coordinator_port: Option<u16>,
    /// Let every server pick a free port instead of the course's (10000, 10001, 20000 ... and 1234 ...)
    #[arg(long)]
    free_ports: bool,
    /// Run each process on a simulated host of its own: a network namespace with its own
    /// address (198.18.0.0/15) and data folder, reachable from this machine. Needs root.
    #[arg(long)]
    hosts: bool,
    /// Run the coordination on etcd: a cluster of 3 etcd members (the `etcd` program must
    /// be on the PATH) and two coordinators on it.
    #[arg(long)]
    etcd: bool,
    /// Run every connection over TLS: makes a certificate authority and a certificate per
    /// process in <data-dir>/tls, and prints the client command with --tls-ca.
    #[arg(long)]
    tls: bool,
    #[command(flatten)]
    timers: Timers,
}

/// Runs `tsn-local` with `args`, or, started as one of its children, that program.
pub fn main(args: Vec<OsString>) -> ExitCode {
    harness::run_as(&args).unwrap_or_else(|| cli::run_program("tsn-local", args, run))
}

async fn run(flags: Flags) -> Result<(), Fatal> {
    if !flags.free_ports && flags.clusters > 6 {
        return Err(Fatal(
            "more than 6 clusters need --free-ports (the course's ports stop at 60001)".into(),
        ));
    }
    // Everything that can be refused is, before the data folder is touched.
    flags.timers.check()?;
    if flags.hosts {
        harness::Network::available().map_err(|why| Fatal(format!("--hosts: {why}")))?;
    }
    if flags.reset {
        data_folder::check_resettable(&flags.data_dir)?;
    }
    let claim = Claim::take(&flags.data_dir)?;
    if flags.reset {
        claim.reset()?;
    }
    let coordinator_port = match (flags.coordinator_port, flags.free_ports) {
        (Some(port), _) => port,
        (None, true) => free_port()?,
        (None, false) => 9090,
    };
    let topology = Topology {
        hosts: flags.hosts,
        etcd: flags.etcd,
        tls: flags.tls,
        ..Topology::standard(
            flags.clusters,
            coordinator_port,
            flags.free_ports,
            flags.data_dir.clone(),
            flags.timers,
        )
    };
    let mut deployment = Deployment::start(topology).await?;
    if let Some(ca) = deployment.authority_file() {
        // This process asks the coordinator who is master, as a client does.
        let security = Security::client(&ca).and_then(tls::install);
        if let Err(error) = security {
            deployment.stop().await;
            return Err(Fatal::new("cannot turn TLS on", error));
        }
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let coordinators = deployment.coordinators();
    if let Some(etcd) = deployment.etcd() {
        let members = etcd.endpoints_flag();
        println!("Coordination runs on etcd ({members}), with two coordinators.");
    }
    // Whole, so that the printed client command works from any folder.
    let authority = deployment
        .authority_file()
        .map(|ca| std::fs::canonicalize(&ca).unwrap_or(ca));
    print_table(
        &flags,
        &coordinators,
        &deployment.members,
        &exe,
        authority.as_deref(),
    );
    watch(&flags, &coordinators, &mut deployment.members).await;
    deployment.stop().await;
    drop(claim);
    println!(
        "Stopped every process. The data stays in {}.",
        flags.data_dir.display()
    );
    Ok(())
}

fn print_table(
    flags: &Flags,
    coordinators: &[Endpoint],
    members: &[Member],
    exe: &Path,
    authority: Option<&Path>,
) {
    println!(
        "TSN is running: {} clusters, data in {}, logs in {}.",
        flags.clusters,
        flags.data_dir.display(),
        flags.data_dir.join("logs").display()
    );
    if flags.hosts {
        println!("Each process runs on a simulated host of its own, at the address below.");
    }
    if let Some(authority) = authority {
        println!(
            "Every connection is TLS; the certificates are in {}.",
            authority.parent().unwrap_or(authority).display()
        );
    }
    println!();
    println!("  process      cluster server  role    address          pid");
    for member in members {
        let dash = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
        let role = member.role().unwrap_or_else(|| "-".into());
        println!(
            "  {:<12} {:>7} {:>6}  {:<7} {:<16} {}",
            member.program,
            dash(member.cluster),
            dash(member.server),
            role,
            member.address,
            dash(member.pid())
        );
    }
    println!();
    let tsc = exe.with_file_name("tsc");
    let mut at = match coordinators {
        [only] if !flags.hosts => format!("-k {}", only.port),
        [only] => format!("-h {} -k {}", only.host, only.port),
        all => {
            let list: Vec<String> = all.iter().map(ToString::to_string).collect();
            format!("-h {}", list.join(","))
        }
    };
    if let Some(authority) = authority {
        at.push_str(&format!(" --tls-ca {}", authority.display()));
    }
    let client = if tsc.is_file() {
        format!("{} {at}", tsc.display())
    } else {
        format!("cargo run --release --bin tsc -- {at}")
    };
    println!(
        "Connect a client in another terminal, for user 1 (cluster 1) and user 2 (cluster 2):"
    );
    println!("  {client} -u 1");
    println!("  {client} -u 2");
    println!("Ctrl-C stops every process.");
}

/// Reports role changes and dead children until Ctrl-C.
async fn watch(flags: &Flags, coordinators: &[Endpoint], members: &mut [Member]) {
    let coordinator = CoordClient::new(coordinators);
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
            if let Some(status) = member.newly_exited() {
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
