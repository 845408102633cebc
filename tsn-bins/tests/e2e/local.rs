//! `tsn-local`: the whole deployment in one command, and nothing left behind on Ctrl-C.

use crate::support::{Proc, eventually, unused_port};

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
    let port = unused_port().to_string();
    let mut local = Proc::start(
        "tsn-local",
        &[
            "--free-ports".into(),
            "--coordinator-port".into(),
            port.clone(),
            "--data-dir".into(),
            data_dir.clone(),
        ],
    );
    local.wait_for("Ctrl-C stops every process.\n");
    let table = local.stdout();
    for (cluster, server, role) in [(1, 1, "master"), (1, 2, "slave"), (3, 2, "slave")] {
        let row = format!("  tsd                {cluster}      {server}  {role}");
        assert!(table.contains(&row), "'{row}' in:\n{table}");
    }
    assert_eq!(table.matches("  synchronizer       ").count(), 3, "{table}");
    assert_eq!(
        processes_mentioning(&data_dir).len(),
        10,
        "coordinator, 6 tsd, 3 synchronizers"
    );

    let mut u1 = Proc::start("tsc", &["-k".into(), port.clone(), "-u".into(), "1".into()]);
    let mut u2 = Proc::start("tsc", &["-k".into(), port, "-u".into(), "2".into()]);
    u2.command("LIST", "Followers: ");
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
