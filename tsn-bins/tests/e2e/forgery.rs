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

use crate::support::{Deployment, STEADY, Timers, runtime, stub_heartbeat, within};

/// How many times the burst makes each forged claim, and how far apart its calls are:
/// 21 calls over 4.2 seconds.
const BURST: (usize, Duration) = (3, Duration::from_millis(200));

/// What the coordinator answers a forged claim with: its code and words from its message.
type Refusal = fn(&ServerInfo) -> (Code, &'static str);

/// A forged claim and the coordinator's answer: a refusal, or a role that is not master.
type Answered = (ServerInfo, Result<Confirmation, Status>);

/// Sends the burst through `channel` (to the coordinator): first a plain heartbeat of a
/// new server 9, which tells the cluster's epoch if it is taken, then the forged claims in
/// turn. That first answer, and the answers to the claims, each with what was claimed.
async fn forged_burst(channel: Channel) -> (Option<Confirmation>, Vec<Answered>) {
    let mut coordinator = CoordServiceClient::new(channel);
    let told = within(
        "a heartbeat",
        coordinator.heartbeat(stub_heartbeat(1, 9, "new", 0)),
    )
    .await
    .ok()
    .map(tonic::Response::into_inner);
    let epoch = told.as_ref().map_or(1, |t| t.epoch);
    // Above every epoch granted so far, whether or not the coordinator said which: epochs
    // start above the wall clock's milliseconds at a coordinator's start.
    let above_all = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64;
    let claims = [
        stub_heartbeat(1, 9, "master", 1 << 62),
        stub_heartbeat(1, 9, "master", epoch + 1),
        stub_heartbeat(1, 9, "master", epoch),
        stub_heartbeat(1, 9, "slave", epoch + 1),
        stub_heartbeat(1, 9, "slave", above_all),
        stub_heartbeat(1, 9, "master", above_all),
        stub_heartbeat(1, 1, "master", epoch + 1),
    ];
    let mut pace = tokio::time::interval(BURST.1);
    let mut answers = Vec::new();
    for forged in claims.iter().cycle().take(claims.len() * BURST.0) {
        pace.tick().await;
        let answer = within("a forged heartbeat", coordinator.heartbeat(forged.clone()))
            .await
            .map(tonic::Response::into_inner);
        if let Ok(taken) = &answer {
            assert_ne!(
                taken.r#type, "master",
                "a forged claim {forged:?} was taken"
            );
        }
        answers.push((forged.clone(), answer));
    }
    (told, answers)
}

/// Runs the burst through the channel `caller` makes against cluster 1 of `deployment`,
/// while user 2 follows user 1 on screen (right after the coordinator restarted, with
/// `restart`): each claim is refused as `refusal` says (with none, while a restarted
/// coordinator cannot refuse what it knows nothing of, each is refused or answered with
/// another role than master), the coordinator logs each of `warnings` (a line, how often),
/// and clients see nothing of it, then or at the next failover.
fn a_burst_changes_nothing(
    mut deployment: Deployment,
    caller: impl FnOnce(&Deployment) -> Channel,
    refusal: Option<Refusal>,
    warnings: &[(&str, usize)],
    restart: bool,
) {
    let master_port = deployment.start_master_and_in_sync_slave(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u2 = deployment.logged_in_client(2);
    u2.command("FOLLOW 1", "Command completed successfully");
    u1.enter_timeline();
    u2.enter_timeline();
    u1.send("before the burst");
    u2.wait_for(">> before the burst\n");

    if restart {
        deployment.restart_coordinator();
    }
    let runtime = runtime();
    let channel = runtime.block_on(async { caller(&deployment) });
    let (told, answers) = runtime.block_on(forged_burst(channel));
    // (A coordinator that has just restarted may know of no master yet.)
    if let Some(master) = told.and_then(|t| t.master) {
        assert_eq!(
            master.port,
            master_port.to_string(),
            "a new server is told the real master"
        );
    }
    for (forged, answer) in &answers {
        let Some(refusal) = refusal else {
            continue;
        };
        let (code, says) = refusal(forged);
        assert!(
            matches!(answer, Err(status) if status.code() == code && status.message().contains(says)),
            "{forged:?} is refused with {code:?}, saying '{says}': {answer:?}"
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
    let master_log = deployment.server(1, 1).stderr();
    assert_eq!(
        (
            master_log.matches("serving as master").count(),
            master_log
                .matches("waiting for the cluster to have a master")
                .count()
        ),
        (1, 0),
        "the master was never demoted:\n{master_log}"
    );
    for client in [&u1, &u2] {
        assert_eq!(
            client.stdout().matches("Reconnecting to").count(),
            1,
            "no client moved:\n{}",
            client.stdout()
        );
    }

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
    a_burst_changes_nothing(deployment, plaintext, Some(refusal), &warnings, false);
}

#[test]
fn a_burst_right_after_the_coordinator_restarted_changes_nothing_either() {
    // A failure timeout long enough that the whole burst falls while the restarted
    // coordinator still listens, taking what it cannot check against a grant.
    let listening = Timers {
        heartbeat_interval: Duration::from_millis(200),
        failure_timeout: Duration::from_secs(6),
    };
    let deployment = Deployment::start_with(1, listening);
    let plaintext = |d: &Deployment| {
        Channel::from_shared(format!("http://{}", d.coordinator_address()))
            .expect("an address")
            .connect_lazy()
    };
    a_burst_changes_nothing(deployment, plaintext, None, &[], true);
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
    let warnings = [("refused a call to /csce438.CoordService/Heartbeat", 22)];
    a_burst_changes_nothing(deployment, no_certificate, Some(refusal), &warnings, false);
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
    let warnings = [("refusing its heartbeat", 18), ("cannot call", 3)];
    a_burst_changes_nothing(deployment, server_9, Some(refusal), &warnings, false);
}
