//! The course's test case 1 (SPEC.md 8.1): one cluster, a master and a slave, clients u1
//! and u4 driven through pipes, every printed line checked; on loopback, and with every
//! process on a simulated host of its own.

use crate::support::{BANNER, Deployment, STEADY, without_times};

#[test]
fn course_test_case_1_one_cluster_with_master_and_slave() {
    course_test_case_1(Deployment::start(3));
}

#[test]
fn course_test_case_1_with_every_process_on_a_host_of_its_own() {
    if let Some(deployment) = Deployment::on_hosts(3, STEADY) {
        course_test_case_1(deployment);
    }
}

fn course_test_case_1(mut deployment: Deployment) {
    deployment.start_server(1, 1);
    deployment.wait_master_is(1, 1);
    deployment
        .start_server(1, 2)
        .wait_for_log_count("serving as slave", 1);
    let master = deployment
        .master_address(1)
        .expect("cluster 1 has a master");
    assert_eq!(
        master.starts_with("127."),
        !deployment.is_on_hosts(),
        "the master advertises its host's address: {master}"
    );

    let mut u1 = deployment.client(1);
    u1.wait_for("Cmd> ");
    let mut u4 = deployment.client(4);
    u4.wait_for("Cmd> ");

    for line in [
        "LIST",
        "FOLLOW 4",
        "FOLLOW 1",
        "FOLLOW 9",
        "FOLLOW abc",
        "HELLO",
        "TIMELINE",
    ] {
        u1.send(line);
    }
    u1.wait_for("Now you are in the timeline");
    for line in [
        "LIST",
        "TIMELINE",
        "hello from 4",
        "a second post, \"quoted\"",
    ] {
        u4.send(line);
    }
    u1.wait_for("a second post");
    u4.close_stdin();
    assert!(
        u4.wait_exit().success(),
        "u4 ends with status 0 at the end of input"
    );
    u1.close_stdin();
    assert!(
        u1.wait_exit().success(),
        "u1 ends with status 0 at the end of input"
    );

    let connected = format!("Reconnecting to {master}...\n");
    let u1_expected = format!(
        "{connected}{BANNER}\
Cmd> Command completed successfully
All users: 1, 4
Followers: 
Cmd> Command completed successfully
Cmd> Input username already exists, command failed
Cmd> Command failed with invalid username
Cmd> Command failed with invalid username
Cmd> Invalid Command
Cmd> Command completed successfully
Now you are in the timeline
4 (TIME) >> hello from 4
4 (TIME) >> a second post, \"quoted\"
"
    );
    assert_eq!(without_times(&u1.stdout()), u1_expected);
    let u4_expected = format!(
        "{connected}{BANNER}\
Cmd> Command completed successfully
All users: 1, 4
Followers: 1
Cmd> Command completed successfully
Now you are in the timeline
"
    );
    assert_eq!(without_times(&u4.stdout()), u4_expected);
}
