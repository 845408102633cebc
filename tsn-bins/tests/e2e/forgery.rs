//! Forged heartbeats: a caller with the course's generated stubs claims, for three seconds,
//! to be a master of a running cluster (an unknown server at a huge epoch, at the next
//! epoch, at the current one; a slave of a newer epoch; the real master from nowhere):
//! without TLS, with TLS and no certificate, and with TLS and a real certificate of
//! another server of the cluster. Every claim is refused with a clear error and a warning
//! line at the coordinator, and nothing a client sees changes, then or at the next
//! failover.

use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Status};
use tsn_bins::harness::certs::Validity;
use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
use tsn_grpc::proto::csce438::{Confirmation, ServerInfo};
use tsn_grpc::tls::Identity;

use crate::support::{Deployment, STEADY, runtime, within};

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

/// What the coordinator answers a forged claim with: its code and words from its message.
type Refusal = fn(&ServerInfo) -> (Code, &'static str);

/// Sends the burst through `channel` (to the coordinator): first a plain heartbeat of a
/// new server 9, which tells the cluster's epoch if it is taken, then the forged claims in
/// turn. That first answer, and the answers to the claims, each with what was claimed.
async fn forged_burst(channel: Channel) -> (Option<Confirmation>, Vec<(ServerInfo, Status)>) {
    let mut coordinator = CoordServiceClient::new(channel);
    let told = within("a heartbeat", coordinator.heartbeat(claim(9, "new", 0)))
        .await
        .ok()
        .map(tonic::Response::into_inner);
    let epoch = told.as_ref().map_or(1, |t| t.epoch);
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

/// Runs the burst through the channel `caller` makes against cluster 1 of `deployment`,
/// while user 2 follows user 1 on screen: each claim is refused as `refusal` says, the
/// coordinator logs each of `warnings` (a line, how often), and clients see nothing of it,
/// then or at the next failover.
fn a_burst_changes_nothing(
    mut deployment: Deployment,
    caller: impl FnOnce(&Deployment) -> Channel,
    refusal: Refusal,
    warnings: &[(&str, usize)],
) {
    let master_port = deployment.start_master_and_in_sync_slave(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    u2.command("FOLLOW 1", "Command completed successfully");
    u1.enter_timeline();
    u2.enter_timeline();
    u1.send("before the burst");
    u2.wait_for(">> before the burst\n");

    let runtime = runtime();
    let channel = runtime.block_on(async { caller(&deployment) });
    let (told, refusals) = runtime.block_on(forged_burst(channel));
    if let Some(told) = told {
        assert_eq!(
            told.master.map(|m| m.port),
            Some(master_port.to_string()),
            "a new server is told the real master"
        );
    }
    for (forged, status) in &refusals {
        let (code, says) = refusal(forged);
        assert!(
            status.code() == code && status.message().contains(says),
            "{forged:?} is refused with {code:?}, saying '{says}': {status:?}"
        );
    }
    for (line, count) in warnings {
        deployment.coordinator.wait_for_log_count(line, *count);
    }

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

#[test]
fn a_burst_of_forged_heartbeats_changes_nothing_that_clients_see() {
    let deployment = Deployment::start(1);
    let plaintext = |d: &Deployment| {
        Channel::from_shared(format!("http://{}", d.coordinator_address()))
            .expect("an address")
            .connect_lazy()
    };
    let refusal: Refusal = |forged| match forged.server_id {
        1 => (Code::AlreadyExists, "refusing a second copy"),
        _ => (Code::PermissionDenied, "refusing its heartbeat"),
    };
    let warnings = [
        ("refusing its heartbeat", 12),
        ("refusing a second copy", 3),
    ];
    a_burst_changes_nothing(deployment, plaintext, refusal, &warnings);
}

#[test]
fn with_tls_a_burst_without_a_certificate_is_refused_before_it_is_read() {
    let deployment = Deployment::with_tls(1, STEADY);
    let no_certificate = |d: &Deployment| d.tls().channel(&d.coordinator_address());
    let refusal: Refusal = |_| {
        (
            Code::Unauthenticated,
            "needs the certificate of a TSN server",
        )
    };
    let warnings = [("refused a call to /csce438.CoordService/Heartbeat", 16)];
    a_burst_changes_nothing(deployment, no_certificate, refusal, &warnings);
}

#[test]
fn with_tls_a_burst_from_a_real_certificate_of_the_cluster_is_refused_all_the_same() {
    let deployment = Deployment::with_tls(1, STEADY);
    let server_9 = |d: &Deployment| {
        let nine = Identity::Tsd {
            cluster: 1,
            server: 9,
        };
        let at = d.coordinator_address();
        d.tls()
            .caller(nine, Validity::Lasting, &at, Identity::Coordinator)
    };
    let refusal: Refusal = |forged| match forged.server_id {
        1 => (
            Code::PermissionDenied,
            "cannot call /csce438.CoordService/Heartbeat as server 1 of cluster 1",
        ),
        _ => (Code::PermissionDenied, "refusing its heartbeat"),
    };
    let warnings = [("refusing its heartbeat", 12), ("cannot call", 3)];
    a_burst_changes_nothing(deployment, server_9, refusal, &warnings);
}
