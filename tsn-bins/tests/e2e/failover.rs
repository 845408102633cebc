//! Failover with real processes: `kill -9` of the master while a user posts, again and again;
//! a killed master is found down without waiting out the failure timeout; a master stopped
//! (SIGSTOP) past the failure timeout is fenced off once it resumes, and was not taken for
//! dead before it; a client tells its person when no server answers.

use std::collections::BTreeMap;
use std::time::Duration;

use tsn_core::coordinator::Endpoint;
use tsn_core::id::UserId;
use tsn_grpc::client::{SnsClient, TimelineConn, TimelineEvent};

use crate::support::{
    Deployment, FAST, Proc, Timers, eventually, eventually_within, runtime, timeline_lines, within,
};

/// How many times the master is killed.
const KILLS: usize = 5;
/// Posts sent before and after each kill.
const POSTS_PER_PHASE: usize = 10;

/// How soon a client must tell its person that no server answers: a few seconds, with
/// room for a loaded machine.
const A_FEW_SECONDS: Duration = Duration::from_secs(8);

#[test]
fn a_client_says_so_while_no_server_answers_and_a_command_fails_within_seconds() {
    let mut deployment = Deployment::start(1);
    let lost = deployment.start_master(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    u2.enter_timeline();
    deployment.stop_server(1, 1);

    u1.send("LIST");
    eventually_within(A_FEW_SECONDS, "LIST to fail with the server gone", || {
        u1.stdout().ends_with("Command failed\nCmd> ").then_some(())
    });
    u2.send("posted while the cluster is down");
    let trying = format!("Reconnecting to 127.0.0.1:{lost}...\n");
    eventually_within(
        A_FEW_SECONDS,
        "the timeline client to say it is reconnecting",
        || (u2.stdout().matches(&trying).count() == 2).then_some(()),
    );

    let back = {
        deployment.start_server(1, 1);
        deployment.wait_master_is(1, 1);
        deployment.master_port(1).expect("a master")
    };
    u2.wait_for(&format!("Reconnecting to 127.0.0.1:{back}...\n"));
    u2.close_stdin();
    assert!(
        u2.wait_exit().success(),
        "the post is stored once a server is back:\n{}",
        u2.stdout()
    );
    u1.command("LIST", "All users: 1, 2");
    u1.finish();
}

#[test]
fn killing_the_master_loses_and_doubles_no_acknowledged_post() {
    kill_the_master_again_and_again(Deployment::start_with(3, FAST));
}

#[test]
fn killing_the_master_across_hosts_loses_and_doubles_no_acknowledged_post() {
    if let Some(deployment) = Deployment::on_hosts(3, FAST) {
        kill_the_master_again_and_again(deployment);
    }
}

/// What the coordinator logs when a late master's address refuses connections.
const FOUND_DOWN: &str = "its address refuses connections";

#[test]
fn a_killed_master_is_found_down_before_its_failure_timeout_is_out() {
    // A failure timeout far longer than the master needs to be found down (a quarter of
    // it late, then one refused connection), so that only the check can have replaced it.
    let timers = Timers {
        heartbeat_interval: Duration::from_millis(200),
        failure_timeout: Duration::from_secs(4),
    };
    let mut deployment = Deployment::start_with(3, timers);
    deployment.start_master_and_in_sync_slave(1);
    deployment.server(1, 1).kill();
    deployment.coordinator.wait_for_log_count(FOUND_DOWN, 1);
    deployment.wait_master_is(1, 2);
    let log = deployment.coordinator.stderr();
    let (before, after) = log
        .split_once(FOUND_DOWN)
        .expect("the coordinator logged the check");
    assert!(
        !before.contains("master lost") && after.contains("master lost"),
        "the master was lost because its address refused connections, not by its silence: {log}"
    );
}

/// Kills cluster 1's master [`KILLS`] times while user 4 posts to its follower, user 1,
/// starting it again as a slave each time; every post must reach user 1 once, in order.
fn kill_the_master_again_and_again(mut deployment: Deployment) {
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
    assert!(u1.wait_exit().success(), "u1 leaves cleanly: {u1:?}");
    let mut again = deployment.client(4);
    again.send("LIST");
    again.wait_for("Followers: 1\n");
}

/// Sends SIGTERM to `proc`, as a service manager or `kill` does.
fn terminate(proc: &Proc) {
    signal(proc, "TERM");
}

/// Sends the signal `name` (`TERM`, `STOP`, `CONT`) to `proc` with `kill`.
fn signal(proc: &Proc, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &proc.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {}", proc.pid());
}

/// Stops `proc` with SIGSTOP and waits until the kernel shows it stopped.
fn stop(proc: &Proc) {
    signal(proc, "STOP");
    let stat = format!("/proc/{}/stat", proc.pid());
    eventually("the process to be stopped", || {
        let text = std::fs::read_to_string(&stat).ok()?;
        // The state follows the command name, which is in parentheses.
        let state = text.rsplit_once(") ")?.1.chars().next()?;
        (state == 'T').then_some(())
    });
}

/// How often a server's log says it no longer acts as master.
fn times_stepped_down(tsd: &Proc) -> usize {
    let log = tsd.stderr();
    log.matches("serving as slave").count() + log.matches("waiting for the cluster").count()
}

/// The post id origin of the protocol client below.
const ORIGIN: u64 = 7007;

/// A client of user 7 speaking TSN's protocol itself, which does not move by itself:
/// it logs in at the server on `port` and opens its timeline there.
async fn user_7_at(port: u16) -> (SnsClient, TimelineConn) {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port,
    };
    let user = UserId::new(7).expect("a user id");
    let client = SnsClient::new(endpoint, user, "fencing-test-u7".into()).expect("a client");
    within("user 7's login", client.login())
        .await
        .expect("user 7 logs in");
    let stream = within("user 7's timeline", client.open_timeline(None))
        .await
        .expect("user 7's timeline opens");
    (client, stream)
}

/// Reads `stream` until it ends; the seqs of the posts it acknowledged as stored.
async fn acknowledged_until_the_end(stream: &mut TimelineConn) -> Vec<u64> {
    let mut acked = Vec::new();
    loop {
        match within("the end of user 7's stream", stream.next()).await {
            Ok(Some(TimelineEvent::Acked {
                seq, error: None, ..
            })) => acked.push(seq),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return acked,
        }
    }
}

/// Waits until `stream` acknowledges post `seq` as stored.
async fn wait_acknowledged(stream: &mut TimelineConn, seq: u64) {
    loop {
        match within(&format!("the acknowledgement of post {seq}"), stream.next()).await {
            Ok(Some(TimelineEvent::Acked {
                seq: done, error, ..
            })) if done >= seq => {
                assert_eq!(error, None, "post {seq} is stored");
                return;
            }
            Ok(Some(_)) => {}
            other => panic!("user 7's stream ended before post {seq} was acknowledged: {other:?}"),
        }
    }
}

#[test]
fn a_master_stopped_past_the_failure_timeout_acknowledges_nothing_once_resumed_and_steps_down() {
    let mut deployment = Deployment::start_with(3, FAST);
    let old_port = deployment.start_master_and_in_sync_slave(1);
    let runtime = runtime();
    let (_u7, mut u7_stream) = runtime.block_on(user_7_at(old_port));
    let mut u4 = deployment.logged_in_client(4);
    let mut u1 = deployment.logged_in_client(1);
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.command("FOLLOW 7", "Command completed successfully");
    u1.enter_timeline();
    u4.enter_timeline();
    runtime.block_on(async {
        within("a post", u7_stream.post(ORIGIN, 1, "u7 before the stop"))
            .await
            .expect("sent");
        wait_acknowledged(&mut u7_stream, 1).await;
    });
    for n in 1..=5 {
        u4.send(&format!("u4 before the stop {n}"));
    }
    u1.wait_for(
        ">> u4 before the stop 5
",
    );

    // The master stops; whatever its clients send now waits in its sockets.
    stop(deployment.server(1, 1));
    runtime.block_on(async {
        within(
            "a post",
            u7_stream.post(ORIGIN, 2, "u7 to the stopped master"),
        )
        .await
        .expect("sent");
    });
    for n in 1..=5 {
        u4.send(&format!("u4 while the master is stopped {n}"));
    }
    // Until the promoted slave hears of its promotion (its next heartbeat) it still takes
    // the old master's entries, and what it holds is safely acknowledged; from then on the
    // old master can acknowledge nothing.
    deployment.wait_master_is(1, 2);
    deployment
        .server(1, 2)
        .wait_for_log_count("serving as master", 1);
    let new_port = deployment.master_port(1).expect("the new master's port");
    let stepped_down = times_stepped_down(deployment.server(1, 1));
    signal(deployment.server(1, 1), "CONT");

    // Resumed, it reads what waited, learns of the newer epoch, and steps down.
    eventually("the old master to step down", || {
        (times_stepped_down(deployment.server(1, 1)) > stepped_down).then_some(())
    });
    let acked = runtime.block_on(acknowledged_until_the_end(&mut u7_stream));
    assert!(
        acked.iter().all(|&seq| seq < 2),
        "the deposed master acknowledged post 2 after its demotion: {acked:?}; it logged:
{}",
        deployment.server(1, 1).stderr()
    );
    // User 7 does what TSN's client does: sends the unacknowledged post again, with its id,
    // at the new master.
    runtime.block_on(async {
        let (_u7, mut stream) = user_7_at(new_port).await;
        within("a post", stream.post(ORIGIN, 2, "u7 to the stopped master"))
            .await
            .expect("sent");
        wait_acknowledged(&mut stream, 2).await;
    });

    // u4's and u1's clients moved to the new master by themselves; u4's posts all arrive.
    for n in 1..=5 {
        u4.send(&format!("u4 after the resume {n}"));
    }
    u1.wait_for(
        ">> u4 after the resume 5
",
    );
    u1.wait_for(
        ">> u7 to the stopped master
",
    );
    u4.finish();
    let moved = format!("Reconnecting to 127.0.0.1:{new_port}...");
    for client in [&u4, &u1] {
        assert!(
            client.stdout().contains(&moved),
            "the client moved to the new master:
{}",
            client.stdout()
        );
    }
    // Every acknowledged post exactly once, in order, once everything has settled.
    let shown = timeline_lines(&u1.stdout());
    let by = |author: &str| -> Vec<String> {
        let prefix = format!("{author} (TIME) >> ");
        shown
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    let u4_posts: Vec<String> = [
        "before the stop",
        "while the master is stopped",
        "after the resume",
    ]
    .iter()
    .flat_map(|phase| (1..=5).map(move |n| format!("u4 {phase} {n}")))
    .collect();
    assert_eq!(by("4"), u4_posts, "each of u4's posts once, in order");
    assert_eq!(
        by("7"),
        ["u7 before the stop", "u7 to the stopped master"],
        "each of u7's acknowledged posts once"
    );
    // The old master serves as a slave of the new one, and catches up.
    deployment
        .coordinator
        .wait_for_log_count("servers=[2, 1]", 1);
    let log = deployment.coordinator.stderr();
    assert!(
        !log.contains(FOUND_DOWN),
        "a stopped master's address still takes connections; only its silence counts: {log}"
    );
}

#[test]
fn a_master_stopped_with_sigterm_exits_and_its_slave_takes_over() {
    let mut deployment = Deployment::start_with(3, FAST);
    deployment.start_master_and_in_sync_slave(1);
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
    deployment.start_master_and_in_sync_slave(1);
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
