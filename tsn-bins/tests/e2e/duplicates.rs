//! Second copies started by mistake (SPEC.md section 6, "Identity"): a tsd or a
//! synchronizer claiming a place that a live process holds from another data folder is
//! refused at once with one line, at the coordinator and at the master, and the real one
//! keeps its standing; a process restarted on its own folder takes its place back at once.

use tokio_stream::StreamExt;
use tonic::Code;
use tsn_grpc::proto::tsn::replication_client::ReplicationClient;
use tsn_grpc::proto::tsn::{Hello, SlaveMessage, slave_message};

use crate::startup::{AT_ONCE, fails_with_one_line};
use crate::support::{Deployment, runtime, timeline_lines, within};

/// A deployment of one cluster whose master (server 1) has its slave (server 2) confirmed
/// in sync, and a post of user 1, whom user 2 follows, acknowledged by both.
fn cluster_in_sync() -> Deployment {
    let mut deployment = Deployment::start(1);
    deployment.start_master_and_in_sync_slave(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    u2.command("FOLLOW 1", "Command completed successfully");
    u2.finish();
    u1.enter_timeline();
    u1.send("written before the copies came");
    u1.close_stdin();
    assert!(u1.wait_exit().success(), "the post was acknowledged");
    deployment
}

/// Kills the master and checks that the real slave takes over with the post.
fn slave_takes_over(deployment: &mut Deployment) {
    deployment.stop_server(1, 1);
    deployment.wait_master_is(1, 2);
    let mut u2 = deployment.logged_in_client(2);
    u2.enter_timeline();
    u2.wait_for("written before the copies came\n");
    u2.finish();
    assert_eq!(
        timeline_lines(&u2.stdout()),
        ["1 (TIME) >> written before the copies came"]
    );
}

#[test]
fn a_second_tsd_with_a_live_servers_id_is_refused_and_the_cluster_still_fails_over() {
    let mut deployment = cluster_in_sync();
    let elsewhere = tempfile::tempdir().expect("a temporary folder");
    for server in [2, 1] {
        fails_with_one_line(
            "tsd",
            &deployment.tsd_flags(1, server, elsewhere.path()),
            &format!("server {server} of cluster 1 already runs at 127.0.0.1:"),
            AT_ONCE,
        );
    }
    assert!(
        deployment
            .coordinator
            .stderr()
            .contains("refusing a second copy"),
        "the coordinator says what it refused:\n{}",
        deployment.coordinator.stderr()
    );
    assert_eq!(deployment.wait_master(1), 1, "the master keeps its role");
    slave_takes_over(&mut deployment);
    // The old master, restarted on its own folder, takes its place back at once.
    deployment
        .start_server(1, 1)
        .wait_for_log_count("serving as slave", 1);
}

#[test]
fn the_master_refuses_a_replication_stream_for_its_slave_from_another_folder() {
    let mut deployment = cluster_in_sync();
    let master = deployment.master_port(1).expect("a master");
    let refused = runtime().block_on(async {
        let mut client = ReplicationClient::connect(format!("http://127.0.0.1:{master}"))
            .await
            .expect("connect to the master");
        let hello = SlaveMessage {
            kind: Some(slave_message::Kind::Hello(Hello {
                server_id: 2,
                cluster_id: 1,
                epoch: 0,
                log_position: 0,
                log_epoch: 0,
                folder_id: 0x5eed,
            })),
        };
        let mut answers = within(
            "the master to answer a Hello",
            client.replicate(tokio_stream::iter([hello]).chain(tokio_stream::pending())),
        )
        .await
        .expect("the call starts")
        .into_inner();
        within("the master to end the stream", answers.next()).await
    });
    let status = match refused {
        Some(Err(status)) => status,
        other => panic!("the master should refuse the copy; it answered {other:?}"),
    };
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(
        status.message().contains("server 2 already replicates"),
        "{status:?}"
    );
    slave_takes_over(&mut deployment);
}

#[test]
fn a_second_synchronizer_for_a_cluster_is_refused_while_the_first_runs() {
    let mut deployment = Deployment::start(2);
    deployment.start_clusters();
    let elsewhere = tempfile::tempdir().expect("a temporary folder");
    fails_with_one_line(
        "synchronizer",
        &deployment.synchronizer_flags(1, elsewhere.path()),
        "the synchronizer of cluster 1 already runs at 127.0.0.1:",
        AT_ONCE,
    );
    // The real one still carries users across: user 2 (cluster 2) sees user 1.
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    deployment.wait_listing(2, &[1, 2], &[]);
    // Restarted on its own folder, the synchronizer takes its place back at once.
    deployment.stop_synchronizer(1);
    deployment.start_synchronizer(1);
    let mut u3 = deployment.logged_in_client(3);
    deployment.wait_listing(2, &[1, 2, 3], &[]);
    for client in [&mut u1, &mut u2, &mut u3] {
        client.finish();
    }
}
