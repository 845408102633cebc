//! One live session a user (SPEC.md sections 3 and 4): a second `tsc` of a connected user is
//! refused; once the first exits or vanishes the user can log in again; a client of the
//! course's protocol has no session and is never refused.

use std::time::{Duration, Instant};

use crate::support::{
    CourseTimeline, Deployment, Proc, eventually_within, greeting, request, runtime, sns_at, within,
};

/// Checks that `client` was refused as SPEC.md section 4 says: `connection failed: -1`
/// after the reconnect line, and a non-zero exit.
fn assert_refused(client: &mut Proc, master_port: u16) {
    let status = client.wait_exit();
    assert!(!status.success(), "a refused client exits non-zero");
    assert_eq!(
        client.stdout(),
        format!("Reconnecting to 127.0.0.1:{master_port}...\nconnection failed: -1\n")
    );
}

#[test]
fn a_second_client_of_a_connected_user_is_refused_until_the_first_exits() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let mut first = deployment.logged_in_client(1);

    let mut second = deployment
        .try_client(1)
        .expect_err("a second client of a connected user is refused");
    assert_refused(&mut second, master_port);

    first.command("LIST", "Followers: \n");
    first.finish();

    let mut third = deployment.try_client(1).unwrap_or_else(|refused| {
        panic!(
            "after the first client exits, the user logs in at once; it printed:\n{}",
            refused.stdout()
        )
    });
    assert_eq!(third.stdout(), format!("{}Cmd> ", greeting(master_port)));
    third.finish();
}

#[test]
fn a_user_whose_client_vanished_logs_in_again_within_seconds() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let mut first = deployment.logged_in_client(1);
    // It vanishes in the middle of its timeline stream, with posts in flight.
    first.enter_timeline();
    for n in 1..=5 {
        first.send(&format!("post {n}"));
    }
    first.kill();
    let vanished = Instant::now();

    let mut again = eventually_within(
        Duration::from_secs(10),
        "a new client of user 1 to log in after the first vanished",
        || {
            let attempt = deployment.try_client(1).ok();
            if attempt.is_none() {
                // Paces the attempts: each is a new process.
                std::thread::sleep(Duration::from_millis(100));
            }
            attempt
        },
    );
    assert!(
        vanished.elapsed() < Duration::from_secs(10),
        "the vanished client's session ended within a few seconds: {:?}",
        vanished.elapsed()
    );
    assert_eq!(again.stdout(), format!("{}Cmd> ", greeting(master_port)));
    again.command("LIST", "All users: 1\n");
    again.finish();
    assert!(deployment.server(1, 1).is_running());
}

#[test]
fn a_course_client_is_never_refused_and_takes_no_session_away() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u4 = deployment.logged_in_client(4);
    u1.command("FOLLOW 4", "Command completed successfully");

    let rt = runtime();
    let (mut sns, mut course_u1) = rt.block_on(async {
        let mut sns = sns_at(master_port).await;
        for _ in 0..2 {
            let reply = within("Login", sns.login(request("1", &[])))
                .await
                .expect("Login")
                .into_inner();
            assert_eq!(
                reply.msg, "Welcome Back 1",
                "a course client is not refused while tsc holds the session"
            );
        }
        let course_u1 = CourseTimeline::open(&mut sns, "1").await;
        (sns, course_u1)
    });

    // The course client's logins took nothing from the tsc client: a second tsc is still
    // refused, and the first carries on.
    let mut second = deployment
        .try_client(1)
        .expect_err("tsc's session is still held");
    assert_refused(&mut second, master_port);
    u1.enter_timeline();
    u4.enter_timeline();
    u4.send("to every client of 1");
    u1.wait_for("to every client of 1\n");
    rt.block_on(async {
        let post = course_u1.next_post().await;
        assert_eq!(
            (post.username.as_str(), post.msg.as_str()),
            ("4", "to every client of 1")
        );
        let reply = within("Login", sns.login(request("1", &[])))
            .await
            .expect("Login")
            .into_inner();
        assert_eq!(reply.msg, "Welcome Back 1");
    });
    u4.finish();
    u1.finish();
}
