//! `tsn-faults` in its short mode: faults of every kind (`kill -9` and restart of a master,
//! a slave, a synchronizer and the coordinator; SIGSTOP of a master past the failure
//! timeout; across simulated hosts, partitions of every kind too; with coordination on
//! etcd, `kill -9` of its members too), some overlapping, while
//! the clients of nine users post and nine more users join, follow, unfollow and post; no
//! acknowledged post lost, doubled, out of order or wrongly delivered, no fencing
//! violation, and replicas and course files that agree with each other and with what the
//! clients were told.

use std::time::Duration;

use crate::support::{Proc, etcd_available, hosts_available};

/// How long the short mode may take on a loaded machine (it takes well under a minute).
const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn faults_of_every_kind_lose_double_and_reorder_no_acknowledged_post() {
    check_a_run(&[]);
}

#[test]
fn partitions_across_hosts_lose_double_and_reorder_no_acknowledged_post() {
    if !hosts_available() {
        return;
    }
    // One fault of each kind, partitions included: thirteen in all.
    check_a_run(&["--hosts".into(), "--faults".into(), "1".into()]);
}

#[test]
fn faults_with_coordination_on_etcd_lose_double_and_reorder_no_acknowledged_post() {
    if !etcd_available() {
        return;
    }
    // One fault of each kind on one host, kill -9 of a coordinator and of an etcd member
    // among them.
    check_a_run(&["--etcd".into(), "--faults".into(), "1".into()]);
}

/// Runs `tsn-faults` with `args` and checks its verdict and its figures.
fn check_a_run(args: &[String]) {
    let mut run = Proc::start("tsn-faults", args);
    let status = run.wait_exit_within(LIMIT);
    let printed = run.stdout();
    let seed = printed
        .lines()
        .find_map(|line| line.strip_prefix("seed "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("(none printed)");
    let context = format!(
        "seed {seed} (`tsn-faults --seed {seed}` runs the same faults); it printed:\n{printed}\n--- stderr:\n{}",
        run.stderr()
    );
    assert!(status.success(), "tsn-faults failed: {status}; {context}");
    let figures = [
        "\nlost: 0\n",
        "\ndoubled: 0\n",
        "\nout of order: 0\n",
        "\nlost by the movers' timelines: 0\n",
        "\nwrongly delivered: 0\n",
        "\nlists that differ: 0\n",
        "\ndiverged replicas: 0\n",
        "\ndiverged course files: 0\n",
        "\nacknowledged posts not where acknowledged: 0\n",
        "\nfencing violations: 0\n",
    ];
    for figure in figures {
        assert!(
            printed.contains(figure),
            "the summary says {:?}; {context}",
            figure.trim()
        );
    }
}
