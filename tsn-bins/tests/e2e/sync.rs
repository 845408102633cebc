//! Clusters that see each other: the course's test cases 2 and 3 (SPEC.md 8.2, 8.3).

use crate::support::{Deployment, Proc, STEADY, request, runtime, sns_at, timeline_lines};

/// Types `text` as a post and waits until each reader's screen shows it.
fn post_and_see(author: &mut Proc, text: &str, readers: &mut [&mut Proc]) {
    author.send(text);
    for reader in readers.iter_mut() {
        reader.wait_for(&format!(">> {text}\n"));
    }
}

/// How often `text` appears as a post on `reader`'s screen.
fn times_shown(reader: &Proc, text: &str) -> usize {
    timeline_lines(&reader.stdout())
        .iter()
        .filter(|line| line.ends_with(&format!(">> {text}")))
        .count()
}

#[test]
fn course_test_cases_2_and_3_three_clusters_and_a_failover_in_one() {
    course_test_cases_2_and_3(Deployment::start(3));
}

#[test]
fn course_test_cases_2_and_3_with_every_process_on_a_host_of_its_own() {
    if let Some(deployment) = Deployment::on_hosts(3, STEADY) {
        course_test_cases_2_and_3(deployment);
    }
}

#[test]
fn course_test_cases_2_and_3_with_tls_on_every_connection() {
    course_test_cases_2_and_3(Deployment::with_tls(3, STEADY));
}

#[test]
fn course_test_cases_2_and_3_on_etcd_with_tls_on_every_connection_etcds_too() {
    if let Some(deployment) = Deployment::on_etcd_with_tls(3, STEADY) {
        course_test_cases_2_and_3(deployment);
    }
}

#[test]
fn course_test_cases_2_and_3_on_etcd_with_two_coordinators() {
    if let Some(deployment) = Deployment::on_etcd(3, STEADY) {
        course_test_cases_2_and_3(deployment);
    }
}

fn course_test_cases_2_and_3(mut deployment: Deployment) {
    deployment.start_clusters();
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    let mut u3 = deployment.logged_in_client(3);
    for user in 1..=3 {
        deployment.wait_listing(user, &[1, 2, 3], &[]);
    }

    // Case 2: everybody follows everybody else, across clusters.
    for (client, others) in [(&mut u1, [2, 3]), (&mut u2, [1, 3]), (&mut u3, [1, 2])] {
        for other in others {
            client.command(&format!("FOLLOW {other}"), "Command completed successfully");
        }
    }
    for (user, followers) in [(1, [2, 3]), (2, [1, 3]), (3, [1, 2])] {
        deployment.wait_listing(user, &[1, 2, 3], &followers);
    }
    for (client, followers) in [(&mut u1, "2, 3"), (&mut u2, "1, 3"), (&mut u3, "1, 2")] {
        client.command("LIST", "Followers: ");
        assert!(
            client.stdout().ends_with(&format!(
                "Cmd> Command completed successfully\nAll users: 1, 2, 3\nFollowers: {followers}\nCmd> "
            )),
            "{}",
            client.stdout()
        );
    }
    u1.enter_timeline();
    u1.send("u1 says hello");
    u1.send("u1 says hello again");
    u2.enter_timeline();
    u2.wait_for(">> u1 says hello again\n");
    post_and_see(&mut u2, "u2 answers", &mut [&mut u1]);
    u3.enter_timeline();
    u3.wait_for(">> u2 answers\n");
    u3.wait_for(">> u1 says hello again\n");
    post_and_see(&mut u3, "u3 joins in", &mut [&mut u1, &mut u2]);
    for (reader, texts) in [
        (&u1, ["u2 answers", "u3 joins in"].as_slice()),
        (
            &u2,
            &["u1 says hello", "u1 says hello again", "u3 joins in"],
        ),
        (&u3, &["u1 says hello", "u1 says hello again", "u2 answers"]),
    ] {
        for text in texts {
            assert_eq!(
                times_shown(reader, text),
                1,
                "'{text}' once on a screen:\n{}",
                reader.stdout()
            );
        }
    }

    // Case 3: cluster 2's master dies; its slave takes over; u2 carries on by itself.
    deployment.stop_server(2, 1);
    deployment.wait_master_is(2, 2);
    post_and_see(&mut u1, "u1 after the failover", &mut [&mut u2, &mut u3]);
    post_and_see(&mut u2, "u2 is still here", &mut [&mut u1, &mut u3]);
    assert!(
        u2.stdout().matches("Reconnecting to").count() >= 2,
        "u2's client reconnected by itself:\n{}",
        u2.stdout()
    );
    deployment.wait_listing(2, &[1, 2, 3], &[1, 3]);
    let mut u5 = deployment.logged_in_client(5);
    for user in [1, 2, 3] {
        deployment.wait_listing(user, &[1, 2, 3, 5], &deployment_followers(user));
    }
    u5.command("FOLLOW 1", "Command completed successfully");
    u5.enter_timeline();
    post_and_see(&mut u1, "u1 greets u5", &mut [&mut u2, &mut u3, &mut u5]);

    // The old master comes back as a slave, catches up, and takes over in turn.
    deployment
        .start_server(2, 1)
        .wait_for_log_count("serving as slave", 1);
    deployment
        .coordinator
        .wait_for_log_count("servers=[2, 1]", 1);
    deployment.stop_server(2, 2);
    deployment.wait_master_is(2, 1);
    post_and_see(
        &mut u3,
        "u3 after the second failover",
        &mut [&mut u1, &mut u2],
    );
    post_and_see(
        &mut u2,
        "u2 after the second failover",
        &mut [&mut u1, &mut u3],
    );
    for text in [
        "u1 after the failover",
        "u1 greets u5",
        "u3 after the second failover",
    ] {
        assert_eq!(
            times_shown(&u2, text),
            1,
            "'{text}' once on u2's screen:\n{}",
            u2.stdout()
        );
    }
    for client in [&mut u1, &mut u2, &mut u3, &mut u5] {
        client.finish();
    }
}

/// The followers of users 1, 2 and 3 in the test above.
fn deployment_followers(user: u32) -> Vec<u32> {
    (1..=3).filter(|&other| other != user).collect()
}

#[test]
fn killed_synchronizers_lose_and_double_no_post_even_restarted_on_an_empty_folder() {
    kill_the_synchronizers(Deployment::start(3));
}

#[test]
fn a_synchronizer_killed_and_restarted_on_another_host_loses_and_doubles_no_post() {
    if let Some(deployment) = Deployment::on_hosts(3, STEADY) {
        kill_the_synchronizers(deployment);
    }
}

/// Kills the synchronizer of the author's cluster and starts it again; then the reader's,
/// started again elsewhere (another folder, or another host), on an empty folder. Every
/// post reaches the reader once, in order.
fn kill_the_synchronizers(mut deployment: Deployment) {
    deployment.start_clusters();
    let mut u2 = deployment.logged_in_client(2);
    let mut u1 = deployment.logged_in_client(1);
    deployment.wait_listing(1, &[1, 2], &[]);
    u1.command("FOLLOW 2", "Command completed successfully");
    u1.enter_timeline();
    u2.enter_timeline();
    let mut sent = 0;
    let mut post = |u2: &mut Proc, count: usize| {
        for _ in 0..count {
            sent += 1;
            u2.send(&format!("post {sent} across"));
        }
        sent
    };
    post(&mut u2, 10);
    deployment.stop_synchronizer(2); // the author's side
    post(&mut u2, 10);
    deployment.start_synchronizer(2);
    let last = post(&mut u2, 10);
    u1.wait_for(&format!(">> post {last} across\n"));
    deployment.stop_synchronizer(1); // the reader's side
    post(&mut u2, 10);
    // Started again elsewhere, on an empty folder: it keeps nothing it would need.
    deployment.start_synchronizer_elsewhere(1);
    let last = post(&mut u2, 10);
    u1.wait_for(&format!(">> post {last} across\n"));
    u2.close_stdin();
    assert!(u2.wait_exit().success(), "every post was acknowledged");
    let shown: Vec<u32> = timeline_lines(&u1.stdout())
        .iter()
        .filter_map(|line| {
            line.strip_suffix(" across")?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(
        shown,
        (1..=last as u32).collect::<Vec<_>>(),
        "every post once, in order"
    );
}

#[test]
fn synchronization_carries_on_after_a_coordinator_restart() {
    let mut deployment = Deployment::start(3);
    deployment.start_clusters();
    let mut u3 = deployment.logged_in_client(3);
    let mut u1 = deployment.logged_in_client(1);
    deployment.wait_listing(1, &[1, 3], &[]);
    u1.command("FOLLOW 3", "Command completed successfully");
    u1.enter_timeline();
    u3.enter_timeline();
    post_and_see(&mut u3, "before the restart", &mut [&mut u1]);
    deployment.restart_coordinator();
    post_and_see(&mut u3, "after the restart", &mut [&mut u1]);
    let _u4 = deployment.logged_in_client(4);
    deployment.wait_listing(3, &[1, 3, 4], &[1]);
}

#[test]
fn unfollow_across_clusters_stops_delivery() {
    let mut deployment = Deployment::start(3);
    deployment.start_clusters();
    let mut u2 = deployment.logged_in_client(2);
    let mut u1 = deployment.logged_in_client(1);
    let mut u4 = deployment.logged_in_client(4);
    deployment.wait_listing(1, &[1, 2, 4], &[]);
    for reader in [&mut u1, &mut u4] {
        reader.command("FOLLOW 2", "Command completed successfully");
        reader.enter_timeline();
    }
    u2.enter_timeline();
    post_and_see(&mut u2, "while followed", &mut [&mut u1, &mut u4]);
    // u1 unfollows through the course's protocol, its tsc staying in timeline mode.
    let port = deployment.master_port(1).expect("cluster 1 has a master");
    let reply = runtime().block_on(async {
        let mut sns = sns_at(port).await;
        sns.un_follow(request("1", &["2"]))
            .await
            .expect("UnFollow")
            .into_inner()
            .msg
    });
    assert_eq!(reply, "UnFollow Successful");
    deployment.wait_listing(2, &[1, 2, 4], &[4]);
    // u4, in u1's cluster, shows when the next post has been merged there.
    post_and_see(&mut u2, "after the unfollow", &mut [&mut u4]);
    assert_eq!(times_shown(&u1, "while followed"), 1);
    assert_eq!(times_shown(&u1, "after the unfollow"), 0, "{}", u1.stdout());
}

#[test]
fn a_user_of_another_cluster_can_be_followed_as_soon_as_listed() {
    let mut deployment = Deployment::start(3);
    deployment.start_clusters();
    let mut u1 = deployment.logged_in_client(1);
    let mut u5 = deployment.logged_in_client(5);
    deployment.wait_listing(1, &[1, 5], &[]);
    u1.command("FOLLOW 5", "Command completed successfully");
    u1.enter_timeline();
    u5.enter_timeline();
    post_and_see(&mut u5, "right after my first login", &mut [&mut u1]);
}

#[test]
fn four_clusters_work_the_same() {
    let mut deployment = Deployment::start(4);
    deployment.start_clusters();
    let mut clients: Vec<Proc> = (1..=8)
        .map(|user| deployment.logged_in_client(user))
        .collect();
    let everyone: Vec<u32> = (1..=8).collect();
    for user in 1..=8 {
        deployment.wait_listing(user, &everyone, &[]);
    }
    // User 8 (cluster 4) follows one user of every cluster; each of them posts.
    for followed in 1..=4 {
        clients[7].command(
            &format!("FOLLOW {followed}"),
            "Command completed successfully",
        );
    }
    deployment.wait_listing(1, &everyone, &[8]);
    let (first, reader) = clients.split_at_mut(7);
    reader[0].enter_timeline();
    for author in first.iter_mut().take(4) {
        author.enter_timeline();
    }
    for (i, author) in first.iter_mut().take(4).enumerate() {
        post_and_see(
            author,
            &format!("from user {}", i + 1),
            &mut [&mut reader[0]],
        );
    }
}

#[test]
fn a_post_made_after_a_follow_returned_arrives_however_slow_the_synchronizers() {
    let mut deployment = Deployment::start(3);
    for cluster in 1..=3 {
        deployment.start_master(cluster);
        // Rounds as slow as the course's, scaled down: one read a second.
        deployment.start_synchronizer_with(cluster, &["--round-interval", "1s"]);
    }
    let mut u2 = deployment.logged_in_client(2);
    let mut u1 = deployment.logged_in_client(1);
    deployment.wait_listing(1, &[1, 2], &[]);
    u2.enter_timeline();
    u1.command("FOLLOW 2", "Command completed successfully");
    // Cluster 2 cannot know of the follow yet: its synchronizer reads once a second.
    u2.send("right after the follow");
    u1.enter_timeline();
    u1.wait_for(">> right after the follow\n");
    assert_eq!(times_shown(&u1, "right after the follow"), 1);
}

#[test]
fn a_course_synchronizer_can_read_a_cluster_with_get_user_tlfl() {
    use tsn_grpc::proto::csce438::Id;
    use tsn_grpc::proto::csce438::synch_service_client::SynchServiceClient;

    let mut deployment = Deployment::start(3);
    deployment.start_clusters();
    let mut u4 = deployment.logged_in_client(4);
    let mut u1 = deployment.logged_in_client(1);
    let _u2 = deployment.logged_in_client(2);
    deployment.wait_listing(1, &[1, 2, 4], &[]);
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.command("FOLLOW 2", "Command completed successfully");
    u4.enter_timeline();
    u4.send("a \"quoted\" post\twith a tab");
    u4.finish();
    let port = deployment.synchronizer_port(1);
    let expected_u4 = |data: &[tsn_grpc::proto::csce438::UserTlfl]| {
        data.iter().find(|u| u.user == "4").is_some_and(|u4| {
            u4.tl.len() == 4
                && u4.tl[1] == "U 4"
                && u4.tl[2] == "W a \"quoted\" post\twith a tab"
                && u4.tl[3].is_empty()
                && u4.flr == ["1"]
        })
    };
    let data = crate::support::eventually("GetUserTLFL to show user 4's post", || {
        runtime().block_on(async {
            let mut synch = SynchServiceClient::connect(format!("http://127.0.0.1:{port}"))
                .await
                .ok()?;
            let data = synch
                .get_user_tlfl(Id { id: 2 })
                .await
                .ok()?
                .into_inner()
                .data;
            expected_u4(&data).then_some(data)
        })
    });
    let users: Vec<&str> = data.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(users, ["1", "4"], "the users of cluster 1 only");
    let u1_record = &data[0];
    assert_eq!(
        u1_record.flw,
        ["2", "4"],
        "whom user 1 follows, in every cluster"
    );
    assert!(u1_record.tl.is_empty());
    assert!(data[1].tl[0].starts_with("T "), "{:?}", data[1].tl);
}

#[test]
fn a_cluster_that_lost_all_its_data_is_imported_again_from_its_new_log() {
    let mut deployment = Deployment::start(2);
    deployment.start_clusters();
    let mut u1 = deployment.logged_in_client(1);
    u1.finish();
    // Cluster 2's log grows well past what its next log will hold when user 32 joins.
    let old_users: Vec<u32> = (2..=30).step_by(2).collect();
    for &user in &old_users {
        let mut client = deployment.logged_in_client(user);
        client.finish();
    }
    let mut known: Vec<u32> = std::iter::once(1).chain(old_users).collect();
    deployment.wait_listing(1, &known, &[]);

    // Cluster 2 loses all its data: its processes stop and its folder goes.
    deployment.stop_server(2, 1);
    deployment.stop_server(2, 2);
    deployment.stop_synchronizer(2);
    std::fs::remove_dir_all(deployment.data_dir().join("cluster_2")).expect("remove cluster 2");
    // Server 2 was the last in the in-sync set (it outlived server 1 by a moment): the
    // cluster's master is the first of the set to come back.
    deployment.start_server(2, 2);
    deployment.start_server(2, 1);
    deployment.wait_master(2);
    deployment.start_synchronizer(2);

    // Its new log numbers user 32's login low, below the old log's positions that
    // cluster 1 has imported: cluster 1 must see it all the same.
    let mut u32_client = deployment.logged_in_client(32);
    u32_client.finish();
    known.push(32);
    deployment.wait_listing(1, &known, &[]);
}
