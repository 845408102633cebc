//! The operators' tools on every server program: the gRPC health service and server
//! reflection.

use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::{Deployment, runtime, within};

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

/// The services `grpcurl list` would show at `port`.
async fn listed_services(port: u16) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel(port).await);
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
}

#[test]
fn every_server_answers_health_checks_and_reflection() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    deployment.start_synchronizer(1);
    let tsd = deployment.master_port(1).expect("a master");
    let synchronizer = deployment.synchronizer_port(1);
    let coordinator = deployment.coordinator_port;
    runtime().block_on(async {
        for (port, services) in [
            (coordinator, vec!["csce438.CoordService"]),
            (
                tsd,
                vec!["csce438.SNSService", "tsn.Replication", "tsn.Session"],
            ),
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
            let listed = listed_services(port).await;
            for service in services {
                assert!(
                    listed.iter().any(|s| s == service),
                    "{service} in {listed:?}"
                );
            }
            assert!(
                listed.iter().any(|s| s == "grpc.health.v1.Health"),
                "{listed:?}"
            );
        }
    });
}
