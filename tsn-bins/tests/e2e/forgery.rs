//! Forged heartbeats: a caller with the course's generated stubs and no credentials claims,
//! for three seconds, to be a master of a running cluster (an unknown server at a huge
//! epoch, at the next epoch, at the current one; a slave of a newer epoch; the real master
//! from nowhere). Every claim is refused with a clear error and a warning line at the
//! coordinator, and nothing a client sees changes, then or at the next failover.

use std::time::Duration;

use tonic::Code;
use tsn_grpc::proto::csce438::{Confirmation, ServerInfo};

use crate::support::{Deployment, coordinator_at, runtime, within};

/// How many forged calls the burst makes, and how far apart: three seconds, fifteen calls.
const BURST: (usize, Duration) = (15, Duration::from_millis(200));

/// A heartbeat as the course's stubs send it: server `id` of cluster 1, at an address where
/// nothing listens, claiming `role` at `epoch`.
fn claim(id: i32, role: &str, epoch: u64) -> ServerInfo {
    ServerInfo {
        server_id: id,
        hostname: "127.0.0.1".into(),
        port: "1".into(),
        r#type: role.into(),
        cluster_id: "1".into(),
        epoch,
        ..Default::default()
    }
}

/// Sends the burst to the coordinator on `port`: first a plain heartbeat of a new server,
/// which tells the cluster's epoch, then the forged claims in turn. The answers to the
/// claims, each with what was claimed.
async fn forged_burst(port: u16) -> (Confirmation, Vec<(ServerInfo, tonic::Status)>) {
    let mut coordinator = coordinator_at(port).await;
    let told = within("a heartbeat", coordinator.heartbeat(claim(9, "new", 0)))
        .await
        .expect("a new server's heartbeat is answered")
        .into_inner();
    let epoch = told.epoch;
    let claims = [
        claim(9, "master", 1 << 62),
        claim(9, "master", epoch + 1),
        claim(9, "master", epoch),
        claim(9, "slave", epoch + 1),
        claim(1, "master", epoch + 1),
    ];
    let mut pace = tokio::time::interval(BURST.1);
    let mut refusals = Vec::new();
    for forged in claims.iter().cycle().take(BURST.0) {
        pace.tick().await;
        match within("a forged heartbeat", coordinator.heartbeat(forged.clone())).await {
            Ok(taken) => panic!("a forged claim {forged:?} was taken: {taken:?}"),
            Err(status) => refusals.push((forged.clone(), status)),
        }
    }
    (told, refusals)
}

#[test]
fn a_burst_of_forged_heartbeats_changes_nothing_that_clients_see() {
    let mut deployment = Deployment::start(1);
    let master_port = deployment.start_master_and_in_sync_slave(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    u2.command("FOLLOW 1", "Command completed successfully");
    u1.enter_timeline();
    u2.enter_timeline();
    u1.send("before the burst");
    u2.wait_for(">> before the burst\n");

    let (told, refusals) = runtime().block_on(forged_burst(deployment.coordinator_port));
    assert_eq!(
        told.master.map(|m| m.port),
        Some(master_port.to_string()),
        "a new server is told the real master"
    );
    for (forged, status) in &refusals {
        let impersonation = forged.server_id == 1;
        let (code, says) = if impersonation {
            (Code::AlreadyExists, "already runs at")
        } else {
            (Code::PermissionDenied, "refusing its heartbeat")
        };
        assert!(
            status.code() == code && status.message().contains(says),
            "{forged:?} is refused with a clear error: {status:?}"
        );
    }
    deployment
        .coordinator
        .wait_for_log_count("refusing its heartbeat", 12);
    deployment
        .coordinator
        .wait_for_log_count("refusing a second copy", 3);

    assert_eq!(
        deployment.master_port(1),
        Some(master_port),
        "clients are still routed to the real master"
    );
    u1.send("after the burst");
    u2.wait_for(">> after the burst\n");

    // No lasting damage: the cluster's in-sync slave still takes over from its master.
    deployment.stop_server(1, 1);
    deployment.wait_master_is(1, 2);
    u1.send("after the failover");
    u2.wait_for(">> after the failover\n");
    for client in [&mut u1, &mut u2] {
        client.finish();
        let seen = client.stdout();
        assert!(
            !seen.contains("127.0.0.1:1\n") && !seen.contains("connection failed"),
            "no client was sent to the forger's address: {seen}"
        );
    }
    assert!(deployment.server(1, 2).is_running());
}
