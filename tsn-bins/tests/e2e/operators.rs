//! The operators' tools on every server program: the gRPC health service (which says
//! whether each service takes calls now) and server reflection, v1 and v1alpha (which lists
//! the services served, no other); and logs that show TSN's own decisions at debug.

use crate::support::{Deployment, Proc, eventually, runtime, within};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A channel to the server at `port`.
async fn channel(port: u16) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).expect("an address");
    within("a connection", endpoint.connect())
        .await
        .expect("connect")
}

/// The health of `service` ("" for the whole server) at `port`.
async fn health(port: u16, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(channel(port).await);
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let reply = within("a health check", client.check(request))
        .await
        .expect("health check");
    reply.into_inner().status()
}

/// The services `grpcurl list` would show at `port`, asked with reflection `$version`
/// (`v1` or `v1alpha`), sorted.
macro_rules! listed_services {
    ($version:ident, $port:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(channel($port).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = within(
            "a reflection answer",
            client.server_reflection_info(tokio_stream::iter([request])),
        )
        .await
        .expect("reflection")
        .into_inner();
        let reply = within("the list of services", replies.next())
            .await
            .expect("an answer")
            .expect("a list");
        match reply.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                names.sort();
                names
            }
            other => panic!("not a list of services: {other:?}"),
        }
    }};
}

/// The operators' services every server lists beside its own.
const OPERATORS: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

#[test]
fn every_server_answers_health_checks_and_lists_what_it_serves() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    deployment
        .start_server(1, 2)
        .wait_for_log_count("serving as slave", 1);
    deployment.start_synchronizer(1);
    let tsd = deployment.master_port(1).expect("a master");
    let synchronizer = deployment.synchronizer_port(1);
    let coordinator = deployment.coordinator_port;
    // A tsd also serves its synchronizer: its cluster's committed changes and users.
    let tsd_services = vec![
        "csce438.SNSService",
        "csce438.SynchService",
        "tsn.Feed",
        "tsn.Replication",
        "tsn.Session",
    ];
    runtime().block_on(async {
        for (port, services) in [
            (coordinator, vec!["csce438.CoordService"]),
            (tsd, tsd_services.clone()),
            (synchronizer, vec!["csce438.SynchService", "tsn.Feed"]),
        ] {
            assert_eq!(
                health(port, "").await,
                ServingStatus::Serving,
                "port {port}"
            );
            for service in &services {
                assert_eq!(
                    health(port, service).await,
                    ServingStatus::Serving,
                    "{service}"
                );
            }
            let mut expected: Vec<String> = services
                .iter()
                .chain(&OPERATORS)
                .map(|s| s.to_string())
                .collect();
            expected.sort();
            assert_eq!(listed_services!(v1, port), expected, "port {port}");
            assert_eq!(listed_services!(v1alpha, port), expected, "port {port}");
        }
    });

    // The slave refuses the master's calls, and says so; promoted, it serves them.
    let slave = deployment.server(1, 2).stdout();
    let slave_port: u16 = slave
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .expect("the slave's port");
    runtime().block_on(async {
        assert_eq!(health(slave_port, "").await, ServingStatus::Serving);
        for service in &tsd_services {
            assert_eq!(
                health(slave_port, service).await,
                ServingStatus::NotServing,
                "{service} on the slave"
            );
        }
    });
    deployment.stop_server(1, 1);
    deployment.wait_master_is(1, 2);
    deployment
        .server(1, 2)
        .wait_for_log_count("serving as master", 1);
    eventually("the promoted slave to serve the master's services", || {
        runtime()
            .block_on(health(slave_port, "csce438.SNSService"))
            .eq(&ServingStatus::Serving)
            .then_some(())
    });
}

#[test]
fn debug_logs_show_tsns_decisions_and_no_http2_frames() {
    let mut deployment = Deployment::start(1);
    deployment.start_master(1);
    let data = tempfile::tempdir().expect("a folder");
    let args = deployment.tsd_flags(1, 2, data.path());
    let slave = Proc::start_logging("tsd", &args, "debug");
    slave.wait_for_log_count("serving as slave", 1);
    slave.wait_for_log_count("the coordinator answered", 2);
    let log = slave.stderr();
    for library in ["frame=", "Connection{peer", "hyper", "h2::"] {
        assert!(!log.contains(library), "no '{library}' at debug:\n{log}");
    }
}
