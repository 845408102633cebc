//! Restarts (SPEC.md sections 5a, 6 and 9): the coordinator killed and started again loses
//! nothing and clients carry on; a tsd whose change log was cut short by a crash starts,
//! keeps every whole record, and says it repaired the log; any text posted comes back the
//! same after a crash, and the course's files hold it readably; a log damaged in its middle
//! is refused, kept, and a slave recovers from its master once its folder is moved away.

use std::fs::OpenOptions;
use std::time::Duration;

use crate::startup::{AT_ONCE, fails_with_one_line};
use crate::support::{
    Deployment, Timers, eventually, greeting, start_claiming, timeline_lines, tricky_post,
};

#[test]
fn clients_carry_on_when_the_coordinator_is_killed_and_started_again() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    deployment
        .start_server(1, 2)
        .wait_for_log_count("serving as slave", 1);
    let mut u4 = deployment.logged_in_client(4);
    let mut u7 = deployment.logged_in_client(7);
    let mut u1 = deployment.logged_in_client(1);
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.enter_timeline();
    u4.enter_timeline();
    u4.send("before the restart");
    u1.wait_for("before the restart\n");

    deployment.restart_coordinator();

    u4.send("after the restart");
    u1.wait_for("after the restart\n");
    u7.command("LIST", "Followers: \n");
    u7.command("FOLLOW 4", "Command completed successfully");
    deployment.wait_master(1);
    let mut u10 = deployment.logged_in_client(10);
    u10.command("LIST", "Followers: \n");

    for client in [&mut u4, &mut u1, &mut u7, &mut u10] {
        client.finish();
    }
    assert_eq!(
        timeline_lines(&u1.stdout()),
        [
            "4 (TIME) >> before the restart",
            "4 (TIME) >> after the restart"
        ]
    );
    let u7_seen = u7.stdout();
    assert!(
        u7_seen.contains("Cmd> Command completed successfully\nAll users: 1, 4, 7\nFollowers: \n"),
        "{u7_seen}"
    );
    assert!(
        u10.stdout()
            .contains("Cmd> Command completed successfully\nAll users: 1, 4, 7, 10\nFollowers: \n"),
        "{}",
        u10.stdout()
    );
    assert_eq!(
        u1.stdout().matches("Reconnecting to").count(),
        1,
        "the coordinator's restart does not move the clients: {}",
        u1.stdout()
    );
    assert!(
        deployment.server(1, 1).is_running() && deployment.server(1, 2).is_running(),
        "both servers carry on"
    );
}

#[test]
fn a_new_client_connects_right_after_the_coordinator_restarted() {
    // Heartbeats every 2 s, as a slower deployment (the course's: 10 s) would have them.
    let slow = Timers {
        heartbeat_interval: Duration::from_secs(2),
        failure_timeout: Duration::from_secs(6),
    };
    let mut deployment = Deployment::start_with(3, slow);
    let master_port = deployment.start_master(1);
    deployment.restart_coordinator();
    let mut u1 = deployment.try_client(1).unwrap_or_else(|refused| {
        panic!(
            "a client started after the coordinator is back connects; it printed:\n{}",
            refused.stdout()
        )
    });
    assert_eq!(u1.stdout(), format!("{}Cmd> ", greeting(master_port)));
    u1.finish();
}

#[test]
fn a_change_log_cut_short_is_repaired_and_keeps_every_whole_record() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u4 = deployment.logged_in_client(4);
    let mut u7 = deployment.logged_in_client(7);
    u1.command("FOLLOW 4", "Command completed successfully");
    u4.command("FOLLOW 7", "Command completed successfully");
    u7.command("FOLLOW 1", "Command completed successfully");
    u7.command("FOLLOW 4", "Command completed successfully");
    u4.command("UNFOLLOW 7", "Command completed successfully");
    // The last record of the log, the one the crash will cut short.
    u1.command("FOLLOW 7", "Command completed successfully");
    for client in [&mut u1, &mut u4, &mut u7] {
        client.finish();
    }

    deployment.stop_server(1, 1);
    let log = deployment
        .data_dir()
        .join("cluster_1")
        .join("1")
        .join("changes.log");
    let file = OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let length = file.metadata().expect("the log's length").len();
    file.set_len(length - 5).expect("cut the log short");
    drop(file);

    deployment
        .start_server(1, 1)
        .wait_for_log_count("serving as master", 1);
    deployment.wait_master_is(1, 1);
    let repaired = deployment.server(1, 1).stderr();
    assert!(
        repaired.to_lowercase().contains("repaired"),
        "the server says it repaired its log:\n{repaired}"
    );

    let master_port = deployment.master_port(1).expect("cluster 1 has a master");
    let expected = [
        (1, "Followers: 7"),
        (4, "Followers: 1, 7"),
        // 1's follow of 7 was the record cut short.
        (7, "Followers: "),
    ];
    for (user, followers) in expected {
        let mut client = deployment.logged_in_client(user);
        client.command("LIST", "Followers: ");
        client.finish();
        assert_eq!(
            client.stdout(),
            format!(
                "{}Cmd> Command completed successfully\nAll users: 1, 4, 7\n{followers}\nCmd> ",
                greeting(master_port)
            ),
            "user {user} after the repair"
        );
    }

    // The repaired log takes new records.
    let mut u1 = deployment.logged_in_client(1);
    u1.command("FOLLOW 7", "Command completed successfully");
    u1.finish();
    let mut u7 = deployment.logged_in_client(7);
    u7.command("LIST", "Followers: 1\n");
    u7.finish();
}

#[test]
fn posts_of_any_text_come_back_the_same_after_the_server_is_killed_and_started_again() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u4 = deployment.logged_in_client(4);
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.finish();
    let longest = tricky_post(1000);
    // Texts that look like the lines of the course's post records.
    let posts = [
        longest.as_str(),
        "T 2001-02-03 04:05:06",
        "U 7",
        "W \\n W fake\\nrecord",
        "  spaces before and after  ",
    ];
    u4.enter_timeline();
    for post in posts {
        u4.send(post);
    }
    // At the end of input the client waits until every post is acknowledged: durable.
    u4.finish();

    deployment.stop_server(1, 1);
    deployment.start_server(1, 1);
    deployment.wait_master_is(1, 1);

    let mut u1 = deployment.logged_in_client(1);
    u1.enter_timeline();
    let mut u4 = deployment.logged_in_client(4);
    u4.enter_timeline();
    u4.send("after the crash");
    u1.wait_for("after the crash\n");
    u4.finish();
    u1.finish();
    let expected: Vec<String> = posts
        .iter()
        .rev()
        .chain(&["after the crash"])
        .map(|text| format!("4 (TIME) >> {text}"))
        .collect();
    assert_eq!(timeline_lines(&u1.stdout()), expected);

    // 4's posts in the course's file: records of a `T`, a `U` and a `W` line and an empty
    // line, the text escaped so that it stays on its line.
    let file = deployment
        .data_dir()
        .join("cluster_1")
        .join("1")
        .join("4.txt");
    let written = eventually("4.txt to hold the post made after the crash", || {
        let text = std::fs::read_to_string(&file).ok()?;
        text.contains("W after the crash\n").then_some(text)
    });
    let texts: Vec<String> = written
        .strip_suffix("\n\n")
        .expect("the file ends with a whole record")
        .split("\n\n")
        .map(|record| {
            let lines: Vec<&str> = record.split('\n').collect();
            assert!(
                lines.len() == 3
                    && lines[0].starts_with("T ")
                    && lines[1] == "U 4"
                    && lines[2].starts_with("W "),
                "a record of three lines: {record:?}"
            );
            tsn_core::course::unescape(&lines[2][2..]).expect("the text is escaped soundly")
        })
        .collect();
    let mut stored: Vec<&str> = posts.to_vec();
    stored.push("after the crash");
    assert_eq!(texts, stored);
}

/// Where each record of the change log `bytes` starts.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        at += 8 + len as usize;
    }
    starts
}

#[test]
fn a_slave_whose_log_has_a_flipped_byte_refuses_to_start_and_recovers_from_its_master() {
    let mut deployment = Deployment::start(1);
    deployment.start_master_and_in_sync_slave(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    u2.command("FOLLOW 1", "Command completed successfully");
    u2.finish();
    u1.enter_timeline();
    let posts: Vec<String> = (1..=10).map(|n| format!("post {n}")).collect();
    for post in &posts {
        u1.send(post);
    }
    u1.finish();

    // The slave's view marker counts every entry it holds (as it does in a while, when it
    // has nothing else to write): the damage below is then to what was surely durable.
    let replica = deployment.data_dir().join("cluster_1").join("2");
    let log = replica.join("changes.log");
    eventually("the slave's view marker to cover its log", || {
        let records = record_starts(&std::fs::read(&log).ok()?).len() as u64;
        let marker = std::fs::read(replica.join("view.pos")).ok()?;
        let marked = u64::from_le_bytes(marker.get(..8)?.try_into().ok()?);
        (records >= 14 && marked == records).then_some(())
    });
    deployment.stop_server(1, 2);
    let mut bytes = std::fs::read(&log).expect("the slave's log");
    let starts = record_starts(&bytes);
    assert!(starts.len() >= 14, "every entry reached the slave");
    bytes[starts[6] + 8 + 3] ^= 0x20; // in the payload of position 7, a post
    std::fs::write(&log, &bytes).expect("damage the log");

    let args = deployment.tsd_flags(1, 2, deployment.data_dir());
    fails_with_one_line(
        "tsd",
        &args,
        &format!(
            "the record of position 7 at offset {} is damaged",
            starts[6]
        ),
        AT_ONCE,
    );
    assert_eq!(
        std::fs::read(&log).expect("the log"),
        bytes,
        "nothing was cut"
    );

    // The operator moves the damaged replica away: the server starts empty and copies the
    // log from its master (once the coordinator has let go of the old process).
    let kept = tempfile::tempdir().expect("a folder");
    std::fs::rename(&replica, kept.path().join("2")).expect("move the replica away");
    let _slave = start_claiming("tsd", &args);
    deployment
        .coordinator
        .wait_for_log_count("servers=[1, 2]", 2);
    deployment.stop_server(1, 1);
    deployment.wait_master_is(1, 2);
    let mut u2 = deployment.logged_in_client(2);
    u2.enter_timeline();
    u2.wait_for("post 10\n");
    u2.finish();
    let expected: Vec<String> = posts
        .iter()
        .rev()
        .map(|text| format!("1 (TIME) >> {text}"))
        .collect();
    assert_eq!(timeline_lines(&u2.stdout()), expected);
}
