//! Start-up of every program (SPEC.md section 2): a bad flag, a port in use, an unreachable
//! coordinator or an unusable data dir ends the program with one clear line on standard
//! error and a non-zero exit, never a panic trace; `--help` explains every flag.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{
    Deployment, Proc, coordinator_at, runtime, start_claiming, unused_port, within,
};

/// Runs `program args` to its end and checks that it failed the way SPEC.md asks: a
/// non-zero exit and exactly one line on standard error that mentions `mentions`, nothing
/// that looks like a panic.
pub(crate) fn fails_with_one_line(
    program: &str,
    args: &[impl AsRef<str>],
    mentions: &str,
    limit: Duration,
) {
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let mut proc = Proc::start(program, &args);
    let status = proc.wait_exit_within(limit);
    let (stdout, stderr) = (proc.stdout(), proc.stderr());
    let shown = format!(
        "{program} {}:\nstatus {status}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    assert!(!status.success(), "a non-zero exit: {shown}");
    assert!(status.code().is_some(), "an exit, not a signal: {shown}");
    for panic in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(
            !stdout.contains(panic) && !stderr.contains(panic),
            "no panic trace: {shown}"
        );
    }
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on standard error: {shown}"
    );
    assert!(stderr.ends_with('\n'), "the line is a whole line: {shown}");
    assert!(
        lines[0].contains(mentions),
        "the line mentions '{mentions}': {shown}"
    );
}

/// How long a program may take to reject its flags.
pub(crate) const AT_ONCE: Duration = Duration::from_secs(10);

#[test]
fn bad_flags_end_every_program_with_one_line() {
    let dead = unused_port().to_string();
    let cases: &[(&str, &[&str], &str)] = &[
        ("coordinator", &["--no-such-flag"], "--no-such-flag"),
        ("coordinator", &["-p", "notaport"], "notaport"),
        ("coordinator", &["-p", "65536"], "65536"),
        ("coordinator", &["--clusters", "0"], "0"),
        ("coordinator", &["--clusters", "three"], "three"),
        ("coordinator", &["--failure-timeout", "5x"], "5x"),
        ("coordinator", &["extra"], "extra"),
        ("tsd", &["--no-such-flag"], "--no-such-flag"),
        ("tsd", &["-p", "notaport"], "notaport"),
        ("tsd", &["-k", "notaport"], "notaport"),
        ("tsd", &["--heartbeat-interval", "5x"], "5x"),
        ("tsd", &["--heartbeat-interval", "0s"], "0s"),
        ("tsd", &["-c", "0"], "0"),
        ("tsd", &["-c", "1001"], "1001"),
        ("tsd", &["-k", "0"], "0"),
        ("synchronizer", &["-n", "1001"], "1001"),
        ("synchronizer", &["-j", "0"], "0"),
        ("tsd", &["-s", "abc"], "abc"),
        ("tsc", &["--no-such-flag", "-k", &dead], "--no-such-flag"),
        ("tsc", &["-k", "notaport"], "notaport"),
        ("tsc", &["-k", "0", "-u", "1"], "0"),
        ("tsc", &["-k", &dead, "-u", "0"], "0"),
        ("tsc", &["-k", &dead, "-u", "-1"], "-1"),
        ("tsc", &["-k", &dead, "-u", "abc"], "abc"),
        ("tsc", &["-k", &dead, "-u", "99999999999"], "99999999999"),
        ("tsc", &["-k", &dead, "-u", "2147483648"], "2147483648"),
        ("tsc", &["-k", &dead, "-u"], "-u"),
    ];
    // Each is refused before it reaches for anything: a program that tried its coordinator
    // first would say something else about the dead port than the bad flag.
    for (program, args, mentions) in cases {
        fails_with_one_line(program, args, mentions, AT_ONCE);
    }
}

#[test]
fn tsc_says_that_a_negative_user_id_is_no_user_id() {
    let dead = unused_port().to_string();
    for args in [["-k", &dead, "-u", "-1"], ["-k", &dead, "--user", "-1"]] {
        fails_with_one_line("tsc", &args, "user id", AT_ONCE);
    }
}

#[test]
fn a_port_in_use_ends_the_coordinator_and_tsd_with_one_line() {
    let deployment = Deployment::start(3);
    let taken = deployment.coordinator_port.to_string();
    fails_with_one_line("coordinator", &["-p", &taken], &taken, AT_ONCE);
    let data = deployment.data_dir().display().to_string();
    fails_with_one_line(
        "tsd",
        &["-k", &taken, "-p", &taken, "--data-dir", &data],
        &taken,
        AT_ONCE,
    );
    assert!(
        deployment.coordinator.stdout().contains("listening on"),
        "the first coordinator is unharmed"
    );
}

#[test]
fn tsd_ends_with_one_line_when_the_coordinator_is_unreachable() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dead = unused_port().to_string();
    let data_dir = data.path().display().to_string();
    fails_with_one_line(
        "tsd",
        &["-k", &dead, "-p", "0", "--data-dir", &data_dir],
        &dead,
        Duration::from_secs(10),
    );
}

#[test]
fn tsd_ends_with_one_line_when_its_data_dir_is_unusable() {
    let deployment = Deployment::start(3);
    let not_a_dir = deployment.data_dir().join("a-file");
    std::fs::write(&not_a_dir, "not a folder\n").expect("write a file");
    let not_a_dir = not_a_dir.display().to_string();
    let coordinator = deployment.coordinator_port.to_string();
    fails_with_one_line(
        "tsd",
        &["-k", &coordinator, "-p", "0", "--data-dir", &not_a_dir],
        &not_a_dir,
        AT_ONCE,
    );
}

#[test]
fn tsd_ends_with_one_line_when_its_replica_is_open_in_another_tsd() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    fails_with_one_line(
        "tsd",
        &deployment.tsd_flags(1, 1, deployment.data_dir()),
        "cluster_1",
        AT_ONCE,
    );
    assert!(
        deployment.server(1, 1).is_running(),
        "the tsd that has the replica open carries on"
    );
}

#[test]
fn synchronizer_ends_with_one_line_on_a_data_dir_that_is_a_file() {
    let deployment = Deployment::start(3);
    let coordinator = deployment.coordinator_port.to_string();
    let a_file = deployment.data_dir().join("a-file");
    std::fs::write(&a_file, "not a folder\n").expect("write a file");
    let dir = a_file.display().to_string();
    fails_with_one_line(
        "synchronizer",
        &["-n", "1", "-j", &coordinator, "-p", "0", "--data-dir", &dir],
        "cannot claim the folder of cluster 1's synchronizer",
        AT_ONCE,
    );
    assert_eq!(
        std::fs::read_to_string(&a_file).expect("the file"),
        "not a folder\n",
        "the file is left as it was"
    );
    let registered = runtime().block_on(async {
        let mut coordinator = coordinator_at(deployment.coordinator_port).await;
        within(
            "GetSyncServers",
            coordinator.get_sync_servers(tsn_grpc::proto::csce438::Empty {}),
        )
        .await
        .expect("GetSyncServers")
        .into_inner()
    });
    assert!(
        registered.servers.is_empty(),
        "it did not register: {registered:?}"
    );
}

#[test]
fn a_synchronizer_makes_its_own_folder_and_keeps_no_data_there() {
    let deployment = Deployment::start(3);
    let own = deployment.data_dir().join("a-new-folder");
    let args = deployment.synchronizer_flags(1, &own);
    let synchronizer = start_claiming("synchronizer", &args);
    let folder = own.join("synchronizer_1");
    let mut held: Vec<String> = std::fs::read_dir(&folder)
        .expect("its folder, made at start")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        ["synchronizer.id", "synchronizer.lock"],
        "{synchronizer:?}"
    );
}

#[test]
fn a_second_synchronizer_of_a_cluster_on_its_data_dir_ends_with_one_line() {
    let mut deployment = Deployment::start(3);
    deployment.start_synchronizer(1);
    fails_with_one_line(
        "synchronizer",
        &deployment.synchronizer_flags(1, deployment.data_dir()),
        "another synchronizer of this cluster runs on this data folder",
        AT_ONCE,
    );
    assert!(
        deployment.synchronizer(1).is_running(),
        "the first synchronizer carries on"
    );
}

#[test]
fn tsc_ends_with_one_line_when_the_coordinator_is_unreachable() {
    let dead = unused_port().to_string();
    fails_with_one_line("tsc", &["-k", &dead, "-u", "1"], &dead, AT_ONCE);
}

/// The flags a `--help` text names: every word that starts with `-`.
fn flags_in(help: &str) -> BTreeSet<String> {
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|word| word.starts_with('-'))
        .map(|word| word.split('=').next().unwrap_or(word).to_owned())
        .collect()
}

#[test]
fn help_of_every_program_explains_every_flag_of_the_spec() {
    let cases: &[(&str, &[&str])] = &[
        (
            "coordinator",
            &[
                "-p",
                "--clusters",
                "--failure-timeout",
                "--bind",
                "--advertise-host",
            ],
        ),
        (
            "tsd",
            &[
                "-c",
                "-s",
                "-h",
                "-k",
                "-p",
                "--data-dir",
                "--heartbeat-interval",
                "--bind",
                "--advertise-host",
            ],
        ),
        ("tsc", &["-h", "-k", "-u"]),
    ];
    for (program, flags) in cases {
        let mut help = Proc::start(program, &["--help".to_owned()]);
        let status = help.wait_exit_within(AT_ONCE);
        let text = help.stdout();
        assert!(
            status.success(),
            "{program} --help exits 0: {status}\n{text}"
        );
        let named = flags_in(&text);
        for flag in *flags {
            assert!(
                named.contains(*flag),
                "{program} --help mentions {flag}:\n{text}"
            );
        }
        assert!(
            help.stderr().is_empty(),
            "{program} --help prints nothing on standard error: {}",
            help.stderr()
        );
    }
}
