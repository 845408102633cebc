//! `tsn-local`: the whole deployment in one command, and nothing left behind on Ctrl-C.

use crate::support::{Proc, eventually, hosts_available, unused_port};

/// The processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
        })
        .collect()
}

/// Sends SIGINT to `proc`, as Ctrl-C in its terminal does.
fn interrupt(proc: &Proc) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &proc.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn tsn_local_runs_a_deployment_that_clients_use_and_ctrl_c_leaves_nothing_running() {
    let data = tempfile::tempdir().expect("a folder");
    let data_dir = data.path().join("tsn-data").display().to_string();
    // --free-ports alone: the coordinator too gets a free port, not the course's 9090.
    let mut local = Proc::start(
        "tsn-local",
        &["--free-ports".into(), "--data-dir".into(), data_dir.clone()],
    );
    local.wait_for("Ctrl-C stops every process.\n");
    let table = local.stdout();
    let port = table
        .lines()
        .find_map(|line| line.trim().strip_prefix("coordinator"))
        .and_then(|row| {
            row.split_whitespace()
                .find_map(|f| f.strip_prefix("127.0.0.1:"))
        })
        .expect("the coordinator's row")
        .to_owned();
    assert_ne!(port, "9090", "{table}");
    for (cluster, server, role) in [(1, 1, "master"), (1, 2, "slave"), (3, 2, "slave")] {
        let row = format!("  tsd                {cluster}      {server}  {role}");
        assert!(table.contains(&row), "'{row}' in:\n{table}");
    }
    assert_eq!(table.matches("  synchronizer       ").count(), 3, "{table}");
    // Every process runs under its program's name, with the PID the table gives.
    for row in table.lines().filter(|l| l.contains("127.0.0.1:")) {
        let program = row.split_whitespace().next().expect("a program");
        let pid = row.split_whitespace().last().expect("a pid");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("a live pid");
        assert_eq!(comm.trim_end(), program, "{row}");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("a live pid");
        let argv0 = cmdline.split(|&b| b == 0).next().expect("argv[0]");
        assert_eq!(argv0, program.as_bytes(), "{row}");
    }
    assert_eq!(
        processes_mentioning(&data_dir).len(),
        10,
        "coordinator, 6 tsd, 3 synchronizers"
    );

    let mut u1 = Proc::start("tsc", &["-k".into(), port.clone(), "-u".into(), "1".into()]);
    let mut u2 = Proc::start("tsc", &["-k".into(), port, "-u".into(), "2".into()]);
    u2.command("LIST", "Followers: ");
    // User 2 lives in cluster 2: cluster 1 knows it once its synchronizer brought it.
    eventually("cluster 1 to know user 2", || {
        u1.command("LIST", "Followers: ");
        u1.stdout().contains("All users: 1, 2").then_some(())
    });
    u1.command("FOLLOW 2", "Command completed successfully");
    u2.finish();
    u1.finish();

    interrupt(&local);
    assert!(local.wait_exit().success(), "{}", local.stderr());
    assert!(local.stdout().contains("Stopped every process."));
    eventually("every child to be gone", || {
        processes_mentioning(&data_dir).is_empty().then_some(())
    });
}

#[test]
fn tsn_local_with_tls_makes_the_certificates_and_prints_a_client_command_that_works() {
    let data = tempfile::tempdir().expect("a folder");
    let data_dir = data.path().join("tsn-data");
    let port = unused_port().to_string();
    let mut local = start_local(
        &data_dir.display().to_string(),
        &port,
        &["--tls", "--clusters", "2"],
    );
    local.wait_for("Ctrl-C stops every process.\n");
    let table = local.stdout();
    let ca = data_dir.join("tls").join("ca.pem").display().to_string();
    assert!(table.contains("Every connection is TLS"), "{table}");
    let command = format!("-k {port} --tls-ca {ca} -u 1");
    assert!(table.contains(&command), "'{command}' in:\n{table}");
    for name in [
        "coordinator.tsn",
        "s1.c1.tsd.tsn",
        "s2.c2.tsd.tsn",
        "c2.synchronizer.tsn",
    ] {
        assert!(
            data_dir.join("tls").join(format!("{name}.pem")).is_file(),
            "{name}"
        );
    }

    let args = |user: &str| ["-k", &port, "--tls-ca", &ca, "-u", user].map(str::to_owned);
    let mut u1 = Proc::start("tsc", &args("1"));
    let mut u2 = Proc::start("tsc", &args("2"));
    u2.command("LIST", "Followers: ");
    eventually(
        "cluster 1 to know user 2, through the synchronizers over TLS",
        || {
            u1.command("LIST", "Followers: ");
            u1.stdout().contains("All users: 1, 2").then_some(())
        },
    );
    let mut plaintext = Proc::start("tsc", &["-k".into(), port.clone(), "-u".into(), "1".into()]);
    assert!(!plaintext.wait_exit().success());
    assert!(
        plaintext.stderr().contains("--tls-ca"),
        "{}",
        plaintext.stderr()
    );
    u1.finish();
    u2.finish();
    interrupt(&local);
    assert!(local.wait_exit().success(), "{}", local.stderr());
}

#[test]
fn tsn_local_refuses_a_failure_timeout_shorter_than_two_heartbeats() {
    let data = tempfile::tempdir().expect("a folder");
    let data_dir = data.path().join("tsn-data");
    let port = unused_port().to_string();
    let mut local = start_local(
        &data_dir.display().to_string(),
        &port,
        &["--heartbeat-interval", "2s", "--failure-timeout", "1s"],
    );
    let error = refusal(&mut local);
    assert!(error.contains("--failure-timeout (1s)"), "{error}");
    assert!(!data_dir.exists(), "nothing was created");
}

#[test]
fn tsn_local_says_so_in_one_line_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("an address").port().to_string();
    let data = tempfile::tempdir().expect("a folder");
    let mut local = Proc::start(
        "tsn-local",
        &[
            "--free-ports".into(),
            "--coordinator-port".into(),
            port.clone(),
            "--data-dir".into(),
            data.path().display().to_string(),
        ],
    );
    let status = local.wait_exit();
    assert!(!status.success());
    let error = local.stderr();
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains(&port) && error.contains("in use"), "{error}");
}

/// `tsn-local` on a free coordinator port, with its data in `data_dir`, and `extra` flags.
fn start_local(data_dir: &str, port: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--free-ports".into(),
        "--coordinator-port".into(),
        port.into(),
        "--data-dir".into(),
        data_dir.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Proc::start("tsn-local", &args)
}

/// Waits for `proc` to fail, and returns the one line it printed on standard error.
fn refusal(proc: &mut Proc) -> String {
    let status = proc.wait_exit();
    assert!(!status.success(), "it was refused: {}", proc.stdout());
    let error = proc.stderr();
    assert_eq!(error.lines().count(), 1, "one line: {error}");
    error
}

#[test]
fn reset_refuses_a_folder_that_holds_what_tsn_did_not_make_and_deletes_nothing() {
    let data = tempfile::tempdir().expect("a folder");
    let precious = data.path().join("precious");
    std::fs::create_dir_all(precious.join("sub")).expect("a sub-folder");
    std::fs::write(precious.join("thesis.txt"), "years of work").expect("a file");
    std::fs::write(precious.join("sub").join("notes.txt"), "notes").expect("a file");

    let port = unused_port().to_string();
    let mut local = start_local(&precious.display().to_string(), &port, &["--reset"]);
    let error = refusal(&mut local);
    assert!(
        error.contains("refusing to reset") && error.contains("which TSN did not make"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(precious.join("thesis.txt")).expect("still there"),
        "years of work"
    );
    assert!(precious.join("sub").join("notes.txt").is_file());
    assert!(
        !precious.join("tsn-local.lock").exists(),
        "nothing was created in it either"
    );
}

#[test]
fn reset_refuses_a_folder_in_use_and_the_running_deployment_keeps_its_data() {
    let data = tempfile::tempdir().expect("a folder");
    let data_dir = data.path().join("tsn-data").display().to_string();
    let port = unused_port().to_string();
    let mut running = start_local(&data_dir, &port, &[]);
    running.wait_for("Ctrl-C stops every process.\n");
    let mut u1 = Proc::start("tsc", &["-k".into(), port.clone(), "-u".into(), "1".into()]);
    u1.command("LIST", "All users: 1\n");
    u1.finish();

    let second_port = unused_port().to_string();
    let mut second = start_local(&data_dir, &second_port, &["--reset"]);
    let error = refusal(&mut second);
    assert!(error.contains("in use by another tsn-local"), "{error}");
    assert!(running.is_running(), "the first deployment runs on");
    let mut u2 = Proc::start("tsc", &["-k".into(), port.clone(), "-u".into(), "2".into()]);
    u2.command("LIST", "All users: 1, 2\n");
    u2.finish();

    // A replica held open by a process of its own (as a tsd started by hand holds it).
    interrupt(&running);
    assert!(running.wait_exit().success(), "{}", running.stderr());
    let replica = std::path::Path::new(&data_dir).join("cluster_1").join("1");
    let membership = tsn_core::id::Membership {
        cluster: tsn_core::id::ClusterId(1),
        clusters: 3,
    };
    let held = tsn_fs::FileStore::open(&replica, membership).expect("open the replica");
    let mut third = start_local(&data_dir, &second_port, &["--reset"]);
    let error = refusal(&mut third);
    assert!(
        error.contains("in use by a running process") && error.contains("changes.log"),
        "{error}"
    );
    drop(held);

    // Once nothing uses it, the reset deletes the deployment's data.
    let mut fresh = start_local(&data_dir, &second_port, &["--reset"]);
    fresh.wait_for("Ctrl-C stops every process.\n");
    let mut u2 = Proc::start("tsc", &["-k".into(), second_port, "-u".into(), "2".into()]);
    u2.command("LIST", "All users: 2\n");
    u2.finish();
    interrupt(&fresh);
    assert!(fresh.wait_exit().success(), "{}", fresh.stderr());
}

/// The namespaces of this machine whose names start with `tsn-<pid>-`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip");
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&format!("tsn-{pid}-")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn tsn_local_with_hosts_puts_each_process_on_a_host_and_ctrl_c_removes_them() {
    if !hosts_available() {
        return;
    }
    let data = tempfile::tempdir().expect("a folder");
    let data_dir = data.path().join("tsn-data").display().to_string();
    let mut local = Proc::start(
        "tsn-local",
        &["--hosts".into(), "--data-dir".into(), data_dir.clone()],
    );
    local.wait_for("Ctrl-C stops every process.\n");
    let table = local.stdout();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| {
            let program = l.split_whitespace().next().unwrap_or_default();
            ["coordinator", "tsd", "synchronizer"].contains(&program)
        })
        .collect();
    assert_eq!(rows.len(), 10, "{table}");
    assert!(
        rows.iter().all(|row| row.contains(" 198.1")),
        "every process at a host's address:\n{table}"
    );
    let addresses: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|row| row.split_whitespace().rev().nth(1)?.split(':').next())
        .collect();
    assert_eq!(
        addresses.len(),
        10,
        "each at an address of its own:\n{table}"
    );
    assert_eq!(namespaces_of(local.pid()).len(), 10, "a namespace each");
    // The command it prints works from this machine's own network.
    let command = table
        .lines()
        .find_map(|line| line.trim().split_once(" -h "))
        .map(|(_, rest)| rest.trim_end_matches(" -u 1").to_owned())
        .expect("a tsc command");
    let mut args: Vec<String> = vec!["-h".into()];
    args.extend(command.split_whitespace().map(str::to_owned));
    args.extend(["-u".into(), "1".into()]);
    let mut u1 = Proc::start("tsc", &args);
    u1.command("LIST", "Followers: ");
    assert!(
        u1.stdout().contains("Reconnecting to 198.1"),
        "{}",
        u1.stdout()
    );
    u1.finish();

    interrupt(&local);
    assert!(local.wait_exit().success(), "{}", local.stderr());
    assert!(
        namespaces_of(local.pid()).is_empty(),
        "Ctrl-C removes every host"
    );
    eventually("every child to be gone", || {
        processes_mentioning(&data_dir).is_empty().then_some(())
    });
    // The members' folders are TSN's: a reset takes them.
    let mut again = Proc::start(
        "tsn-local",
        &[
            "--reset".into(),
            "--free-ports".into(),
            "--data-dir".into(),
            data_dir.clone(),
        ],
    );
    again.wait_for("Ctrl-C stops every process.\n");
    interrupt(&again);
    assert!(again.wait_exit().success(), "{}", again.stderr());
    assert!(
        !std::path::Path::new(&data_dir).join("tsd-1-1").exists(),
        "the reset removed the members' folders"
    );
}

#[test]
fn tsn_local_with_hosts_refuses_a_user_who_is_not_root_in_one_line() {
    let data = tempfile::tempdir().expect("a folder");
    let data_dir = data.path().join("tsn-data");
    // SAFETY: geteuid has no preconditions.
    let mut local = if unsafe { libc::geteuid() } == 0 {
        // As root, run it as nobody.
        let mut args = vec![
            "--reuid=65534".to_owned(),
            "--regid=65534".into(),
            "--clear-groups".into(),
            crate::support::binary("tsn-local").display().to_string(),
        ];
        args.extend([
            "--hosts".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ]);
        Proc::start_command("setpriv", &args)
    } else {
        Proc::start(
            "tsn-local",
            &[
                "--hosts".into(),
                "--data-dir".into(),
                data_dir.display().to_string(),
            ],
        )
    };
    let error = refusal(&mut local);
    assert!(
        error.contains("--hosts") && error.contains("root"),
        "{error}"
    );
    assert!(!data_dir.exists(), "nothing was created");
}
