//! TLS on every connection: who may not join is refused, each with a clear error at the
//! caller and a warning line at the server, and every process stays up; plaintext clients
//! only where the operator allows them; a renewed certificate is used without a restart.

use std::path::Path;
use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tsn_bins::harness::certs::{Authority, TlsFiles, Validity};
use tsn_grpc::proto::csce438::Id;
use tsn_grpc::proto::csce438::coord_service_client::CoordServiceClient;
use tsn_grpc::proto::tsn::feed_client::FeedClient;
use tsn_grpc::proto::tsn::replication_client::ReplicationClient;
use tsn_grpc::proto::tsn::{FeedRequest, Hello, SlaveMessage, slave_message};
use tsn_grpc::tls::Identity;

use crate::startup::{AT_ONCE, fails_with_one_line};
use crate::support::{
    Deployment, STEADY, Tls, endpoint, eventually, presenting, ring, roots, runtime,
    stub_heartbeat, unused_port, within,
};

/// Sends a heartbeat of server 1 of `cluster` through `channel`; the refusal.
async fn heartbeat_refusal(channel: Channel, cluster: u32) -> Status {
    let mut coordinator = CoordServiceClient::new(channel);
    within(
        "a heartbeat",
        coordinator.heartbeat(stub_heartbeat(cluster, 1, "new", 0)),
    )
    .await
    .expect_err("the heartbeat is refused")
}

/// Opens a replication stream through `channel`, saying Hello as server 7 of cluster 1,
/// and reads it until it fails: the refusal, of the call or of the Hello.
async fn replication_refusal(channel: Channel) -> Status {
    let hello = SlaveMessage {
        kind: Some(slave_message::Kind::Hello(Hello {
            server_id: 7,
            cluster_id: 1,
            ..Default::default()
        })),
    };
    let mut replication = ReplicationClient::new(channel);
    let answers = within(
        "a replication stream",
        replication.replicate(tokio_stream::iter([hello]).chain(tokio_stream::pending())),
    )
    .await;
    let mut answers = match answers {
        Ok(answers) => answers.into_inner(),
        Err(status) => return status,
    };
    loop {
        match within("the stream's end", answers.message()).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a refusal"),
            Err(status) => return status,
        }
    }
}

/// Asks for a change feed through `channel`; the refusal.
async fn feed_refusal(channel: Channel) -> Status {
    let mut feed = FeedClient::new(channel);
    let ask = FeedRequest {
        cluster: 2,
        after: 0,
        source: 0,
    };
    within("a change feed", feed.changes(ask))
        .await
        .expect_err("the feed is refused")
}

/// Asserts that `status` has `code` and says `says`.
fn refused_as(status: &Status, code: Code, says: &str) {
    assert!(
        status.code() == code && status.message().contains(says),
        "refused with {code:?}, saying '{says}': {status:?}"
    );
}

#[test]
fn with_tls_every_caller_that_may_not_is_refused_and_every_process_stays_up() {
    let mut deployment = Deployment::with_tls(3, STEADY);
    let master_port = deployment.start_master(1);
    deployment.start_synchronizer(1);
    let sync_port = deployment.synchronizer_port(1);
    let coordinator = deployment.coordinator_address();
    let master = format!("127.0.0.1:{master_port}");
    let synchronizer = format!("127.0.0.1:{sync_port}");
    let tls = deployment.tls();
    let stranger = tempfile::tempdir().expect("a temporary folder");
    let other_authority =
        Authority::create(stranger.path(), "another CA").expect("a certificate authority");
    let server_1 = Identity::Tsd {
        cluster: 1,
        server: 1,
    };
    let of_other_authority = other_authority
        .issue(server_1, Validity::Lasting)
        .expect("a certificate");
    let of_cluster_2 = Identity::Tsd {
        cluster: 2,
        server: 1,
    };
    let to = |address: &str, server: Identity| (address.to_owned(), server);
    let at_coordinator = to(&coordinator, Identity::Coordinator);
    let at_master = to(&master, server_1);
    let at_synchronizer = to(&synchronizer, Identity::Synchronizer { cluster: 1 });
    let caller = |identity, validity, (address, server): &(String, Identity)| {
        tls.caller(identity, validity, address, *server)
    };

    runtime().block_on(async {
        // No certificate: a user's calls are taken, a server's are not.
        let anonymous = tls.channel(&coordinator);
        let routed = CoordServiceClient::new(anonymous.clone())
            .get_server(Id { id: 1 })
            .await
            .expect("a user's client is routed");
        assert_eq!(routed.into_inner().port, master_port.to_string());
        let status = heartbeat_refusal(anonymous, 1).await;
        refused_as(&status, Code::Unauthenticated, "needs the certificate of a TSN server");

        let status = heartbeat_refusal(
            presenting(
                &of_other_authority,
                &tls.authority.file(),
                &coordinator,
                Identity::Coordinator,
            ),
            1,
        )
        .await;
        refused_as(&status, Code::Unauthenticated, "certificate was refused: invalid peer certificate: UnknownIssuer");
        let status = heartbeat_refusal(caller(server_1, Validity::Expired, &at_coordinator), 1).await;
        refused_as(&status, Code::Unauthenticated, "certificate was refused: invalid peer certificate: certificate expired");

        let status = heartbeat_refusal(caller(of_cluster_2, Validity::Lasting, &at_coordinator), 1).await;
        refused_as(
            &status,
            Code::PermissionDenied,
            "the certificate of server 1 of cluster 2 cannot call /csce438.CoordService/Heartbeat as server 1 of cluster 1",
        );
        let status = replication_refusal(caller(of_cluster_2, Validity::Lasting, &at_master)).await;
        refused_as(&status, Code::PermissionDenied, "as a server of cluster 1");


        let server_9 = Identity::Tsd {
            cluster: 1,
            server: 9,
        };
        let status = replication_refusal(caller(server_9, Validity::Lasting, &at_master)).await;
        refused_as(
            &status,
            Code::PermissionDenied,
            "the certificate of server 9 of cluster 1 cannot say Hello as server 7 of cluster 1",
        );
        let status = heartbeat_refusal(caller(Identity::Client, Validity::Lasting, &at_coordinator), 1).await;
        refused_as(&status, Code::PermissionDenied, "a client may not call /csce438.CoordService/Heartbeat");
        let status = replication_refusal(caller(Identity::Client, Validity::Lasting, &at_master)).await;
        refused_as(&status, Code::PermissionDenied, "a client may not call /tsn.Replication/Replicate");
        let status = feed_refusal(caller(Identity::Client, Validity::Lasting, &at_synchronizer)).await;
        refused_as(&status, Code::PermissionDenied, "a client may not call /tsn.Feed/Changes");

        let plaintext = endpoint(&coordinator).connect_lazy();
        let status = CoordServiceClient::new(plaintext)
            .get_server(Id { id: 1 })
            .await
            .expect_err("a plaintext client is refused");
        refused_as(&status, Code::Unauthenticated, "this server takes only TLS connections");
    });

    let coordinator_log = deployment.coordinator.stderr();
    for line in [
        "refused a call to /csce438.CoordService/Heartbeat: /csce438.CoordService/Heartbeat needs the certificate",
        "refused the certificate of a TLS connection: invalid peer certificate: UnknownIssuer",
        "refused the certificate of a TLS connection: invalid peer certificate: certificate expired",
        "cannot call /csce438.CoordService/Heartbeat as server 1 of cluster 1",
        "a client may not call /csce438.CoordService/Heartbeat",
        "this server takes only TLS connections",
    ] {
        assert!(
            coordinator_log.contains(line),
            "the coordinator warns '{line}':\n{coordinator_log}"
        );
    }
    assert!(
        coordinator_log.contains("certificate expired") || coordinator_log.contains("Expired"),
        "{coordinator_log}"
    );
    deployment
        .server(1, 1)
        .wait_for_log_count("a client may not call /tsn.Replication/Replicate", 1);
    deployment
        .server(1, 1)
        .wait_for_log_count("as a server of cluster 1", 1);
    deployment
        .server(1, 1)
        .wait_for_log_count("cannot say Hello as server 7 of cluster 1", 1);
    deployment
        .synchronizer(1)
        .wait_for_log_count("a client may not call /tsn.Feed/Changes", 1);

    // The course's client, which speaks no TLS, is told why it cannot connect.
    let mut course_client = deployment.plaintext_client(1);
    assert!(!course_client.wait_exit().success());
    let said = course_client.stderr();
    assert!(said.contains("takes only TLS connections"), "{said}");
    assert!(deployment.coordinator.is_running());
    assert!(deployment.server(1, 1).is_running());
    assert!(deployment.synchronizer(1).is_running());
    assert_eq!(
        deployment.master_port(1),
        Some(master_port),
        "nothing moved"
    );
}

#[test]
fn plaintext_clients_are_taken_where_the_operator_allows_them_and_servers_calls_never() {
    let mut deployment = Deployment::with_tls_and_plaintext_clients(1, STEADY);
    deployment.start_master(1);
    let mut course_client = deployment.plaintext_client(1);
    course_client.wait_for("Cmd> ");
    course_client.command("LIST", "All users: 1");
    course_client.finish();

    let coordinator = deployment.coordinator_address();
    let status = runtime()
        .block_on(async { heartbeat_refusal(endpoint(&coordinator).connect_lazy(), 1).await });
    refused_as(
        &status,
        Code::Unauthenticated,
        "this server takes only TLS connections with a server's certificate",
    );
    assert_eq!(deployment.wait_master(1), 1);
}

/// The certificate the server at `address` presents now, read by a plain TLS handshake
/// that verifies it as `identity` against the authority in `ca`.
async fn presented_certificate(address: &str, ca: &Path, identity: Identity) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("TLS settings")
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("a connection");
    let name = rustls_pki_types::ServerName::try_from(identity.dns_name()).expect("a name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a handshake that verifies the server as its identity");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// The certificate in the PEM file at `path`.
fn certificate_in(path: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path)
        .expect("a certificate")
        .to_vec()
}

#[test]
fn a_server_uses_a_renewed_certificate_without_a_restart() {
    let mut deployment = Deployment::with_tls(1, STEADY);
    let port = deployment.start_master(1);
    let address = format!("127.0.0.1:{port}");
    let me = Identity::Tsd {
        cluster: 1,
        server: 1,
    };
    let ca = deployment.tls().authority.file();
    let pem = deployment
        .tls()
        .dir
        .path()
        .join(format!("{}.pem", me.dns_name()));
    let runtime = runtime();
    let presented = || runtime.block_on(presented_certificate(&address, &ca, me));
    let first = certificate_in(&pem);
    assert_eq!(presented(), first);

    // A renewal written half-way is not used: the server warns and keeps what it has.
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMII").expect("a write");
    eventually("the server to notice the unreadable renewal", || {
        assert_eq!(
            presented(),
            first,
            "the last good certificate is used meanwhile"
        );
        let log = deployment.server(1, 1).stderr();
        log.contains("a changed certificate cannot be used yet")
            .then_some(())
    });

    let renewed = deployment
        .tls()
        .authority
        .issue(me, Validity::Lasting)
        .expect("a renewed certificate");
    let second = certificate_in(&renewed.certificate);
    assert_ne!(first, second);
    eventually("the renewed certificate in use", || {
        (presented() == second).then_some(())
    });
    deployment
        .server(1, 1)
        .wait_for_log_count("using the renewed certificate", 1);
    let mut client = deployment.logged_in_client(1);
    client.command("LIST", "All users: 1");
    client.finish();
    assert!(deployment.server(1, 1).is_running(), "no restart");
}

#[test]
fn a_server_given_a_certificate_it_cannot_use_says_so_in_one_line_at_start() {
    let tls = Tls::new();
    let me = Identity::Tsd {
        cluster: 1,
        server: 1,
    };
    let dead = unused_port().to_string();
    let tsd = |files: &TlsFiles| {
        let mut args: Vec<String> = ["-c", "1", "-s", "1", "-k", &dead, "-p", "0"]
            .map(str::to_owned)
            .to_vec();
        args.extend(files.flags());
        args
    };
    let expired = tls
        .authority
        .issue_into(me, Validity::Expired, &tls.dir.path().join("expired"))
        .expect("a certificate");
    fails_with_one_line("tsd", &tsd(&expired), "certificate expired", AT_ONCE);
    let someone_else = tls
        .authority
        .issue(
            Identity::Tsd {
                cluster: 2,
                server: 1,
            },
            Validity::Lasting,
        )
        .expect("a certificate");
    fails_with_one_line(
        "tsd",
        &tsd(&someone_else),
        "names server 1 of cluster 2, but this is server 1 of cluster 1",
        AT_ONCE,
    );
    let mut half = tls
        .authority
        .issue_into(me, Validity::Lasting, &tls.dir.path().join("half"))
        .expect("a certificate");
    half.authority = half.certificate.clone();
    fails_with_one_line("tsd", &tsd(&half), "cannot be used", AT_ONCE);
    fails_with_one_line(
        "tsd",
        &["--tls-cert", "/nonexistent.pem"],
        "--tls-key",
        AT_ONCE,
    );
}

#[test]
fn a_server_pointed_at_another_kind_of_server_for_its_coordinator_says_so_in_one_line() {
    let mut deployment = Deployment::with_tls(1, STEADY);
    deployment.start_synchronizer(1);
    let not_the_coordinator = deployment.synchronizer_port(1).to_string();
    let mut args: Vec<String> = ["-c", "1", "-s", "1", "-k", &not_the_coordinator, "-p", "0"]
        .map(str::to_owned)
        .to_vec();
    args.extend(deployment.tls().flags(Identity::Tsd {
        cluster: 1,
        server: 1,
    }));
    args.extend([
        "--data-dir".to_owned(),
        deployment.data_dir().display().to_string(),
    ]);
    fails_with_one_line("tsd", &args, "coordinator.tsn", AT_ONCE);
    assert!(deployment.synchronizer(1).is_running());
}
