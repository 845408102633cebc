//! Failover with real processes: `kill -9` of the master while a user posts, again and again.

use std::collections::BTreeMap;

use crate::support::{Deployment, FAST};

/// How many times the master is killed.
const KILLS: usize = 5;
/// Posts sent before and after each kill.
const POSTS_PER_PHASE: usize = 10;

#[test]
fn killing_the_master_loses_and_doubles_no_acknowledged_post() {
    let mut deployment = Deployment::start_with(3, FAST);
    deployment.start_server(1, 1);
    deployment.wait_master_is(1, 1);
    deployment
        .start_server(1, 2)
        .wait_for_log_count("serving as slave", 1);
    deployment
        .coordinator
        .wait_for_log_count("servers=[1, 2]", 1);

    let mut u4 = deployment.client(4);
    u4.wait_for("Cmd> ");
    let mut u1 = deployment.client(1);
    u1.send("FOLLOW 4");
    u1.send("TIMELINE");
    u1.wait_for("Now you are in the timeline");
    u4.send("TIMELINE");
    u4.wait_for("Now you are in the timeline");

    let mut sent = 0;
    let mut post = |u4: &mut crate::support::Proc| {
        sent += 1;
        u4.send(&format!("post number {sent}"));
        sent
    };
    let (mut master, mut slave) = (1, 2);
    for kill in 1..=KILLS {
        for _ in 0..POSTS_PER_PHASE {
            post(&mut u4);
        }
        deployment.stop_server(1, master);
        let mut last = 0;
        for _ in 0..POSTS_PER_PHASE {
            last = post(&mut u4);
        }
        deployment.wait_master_is(1, slave);
        u1.wait_for(&format!("post number {last}\n"));
        // The old master returns as a slave and catches up before the next kill: the
        // coordinator must know it in sync, or it could not promote it.
        let in_sync = format!("servers=[{slave}, {master}]");
        let seen = deployment.coordinator.stderr().matches(&in_sync).count();
        deployment
            .start_server(1, master)
            .wait_for_log_count("serving as slave", 1);
        deployment
            .coordinator
            .wait_for_log_count(&in_sync, seen + 1);
        assert!(
            u4.stdout().matches("Reconnecting to").count() > kill,
            "u4 reconnected by itself"
        );
        (master, slave) = (slave, master);
    }
    u4.close_stdin();
    assert!(
        u4.wait_exit().success(),
        "u4 exits 0 once every post it sent is acknowledged"
    );

    let shown = u1.stdout();
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for line in shown.lines().filter(|l| l.starts_with("4 (")) {
        let number = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a post line");
        *counts.entry(number).or_default() += 1;
    }
    let total = KILLS * 2 * POSTS_PER_PHASE;
    let missing: Vec<usize> = (1..=total).filter(|n| !counts.contains_key(n)).collect();
    let doubled: Vec<usize> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        missing.is_empty(),
        "posts never shown to u1: {missing:?}\n{shown}"
    );
    assert!(
        doubled.is_empty(),
        "posts shown twice to u1: {doubled:?}\n{shown}"
    );
    let order: Vec<usize> = shown
        .lines()
        .filter(|l| l.starts_with("4 ("))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "posts shown out of order: {order:?}"
    );

    // A new client sees every user and follow relation.
    let mut u7 = deployment.client(7);
    u7.send("LIST");
    u7.wait_for("Followers: ");
    assert!(
        u7.stdout().contains("All users: 1, 4, 7\n"),
        "{}",
        u7.stdout()
    );
    u1.close_stdin();
    u1.wait_exit();
    let mut again = deployment.client(4);
    again.send("LIST");
    again.wait_for("Followers: 1\n");
}

/// Sends SIGTERM to `proc`, as a service manager or `kill` does.
fn terminate(proc: &crate::support::Proc) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &proc.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn a_master_stopped_with_sigterm_exits_and_its_slave_takes_over() {
    let mut deployment = Deployment::start_with(3, FAST);
    deployment.start_master(1);
    deployment
        .start_server(1, 2)
        .wait_for_log_count("serving as slave", 1);
    deployment
        .coordinator
        .wait_for_log_count("servers=[1, 2]", 1);
    let mut u1 = deployment.logged_in_client(1);
    u1.enter_timeline();
    terminate(deployment.server(1, 1));
    let status = deployment.server(1, 1).wait_exit();
    assert!(status.success(), "a clean stop: {status}");
    deployment.wait_master_is(1, 2);
    let mut u4 = deployment.logged_in_client(4);
    u4.command("FOLLOW 1", "Command completed successfully");
    u4.enter_timeline();
    u1.send("after the stop");
    u4.wait_for(">> after the stop\n");
}

#[test]
fn a_master_killed_and_started_again_at_once_loses_and_doubles_nothing() {
    let mut deployment = Deployment::start_with(3, FAST);
    deployment.start_master(1);
    deployment
        .start_server(1, 2)
        .wait_for_log_count("serving as slave", 1);
    deployment
        .coordinator
        .wait_for_log_count("servers=[1, 2]", 1);
    let mut u4 = deployment.logged_in_client(4);
    let mut u1 = deployment.logged_in_client(1);
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.enter_timeline();
    u4.enter_timeline();
    for n in 1..=20 {
        u4.send(&format!("quick {n}"));
    }
    // Back before the coordinator misses it: it must still start a new epoch.
    deployment.start_server(1, 1);
    for n in 21..=40 {
        u4.send(&format!("quick {n}"));
    }
    u4.close_stdin();
    assert!(u4.wait_exit().success(), "every post acknowledged");
    u1.wait_for(">> quick 40\n");
    let shown: Vec<u32> = crate::support::timeline_lines(&u1.stdout())
        .iter()
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        shown,
        (1..=40).collect::<Vec<_>>(),
        "each post once, in order"
    );
}
