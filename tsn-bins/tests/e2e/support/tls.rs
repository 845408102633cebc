//! TLS for a test deployment: a certificate authority in a temporary folder, a certificate
//! for each process as it starts, and the test's own TLS settings for asking the servers.

use std::sync::Arc;

use tonic::transport::Channel;
use tsn_bins::harness::certs::{Authority, Validity};
use tsn_grpc::tls::{Identity, Security};

/// A deployment's certificates.
pub(crate) struct Tls {
    /// The folder of the certificates (removed when dropped).
    pub(crate) dir: tempfile::TempDir,
    /// The deployment's certificate authority.
    pub(crate) authority: Authority,
    /// The test's own settings: it trusts the authority and presents no certificate, as
    /// a user's client.
    pub(crate) client: Arc<Security>,
    /// Whether the coordinator and the tsd servers take plaintext client calls too.
    pub(crate) plaintext_clients: bool,
}

impl Tls {
    /// A new authority, in a folder of its own.
    pub(crate) fn new() -> Tls {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let authority =
            Authority::create(dir.path(), "TSN test CA").expect("a certificate authority");
        let client = Arc::new(Security::client(&authority.file()).expect("TLS settings"));
        Tls {
            dir,
            authority,
            client,
            plaintext_clients: false,
        }
    }

    /// The TLS flags of the server process that is `identity`, with a new certificate.
    pub(crate) fn flags(&self, identity: Identity) -> Vec<String> {
        let mut flags = self
            .authority
            .issue(identity, Validity::Lasting)
            .expect("a certificate")
            .flags();
        let serves_clients = matches!(identity, Identity::Coordinator | Identity::Tsd { .. });
        if self.plaintext_clients && serves_clients {
            flags.push("--allow-plaintext-clients".into());
        }
        flags
    }

    /// The flags of a tsc that verifies the servers.
    pub(crate) fn client_flags(&self) -> Vec<String> {
        vec![
            "--tls-ca".into(),
            self.authority.file().display().to_string(),
        ]
    }

    /// The TLS settings of a caller holding a certificate of this deployment's authority
    /// that names `identity`, valid as `validity` says (a process started by hand, or a
    /// stolen certificate).
    pub(crate) fn caller(&self, identity: Identity, validity: Validity) -> Arc<Security> {
        let files = self
            .authority
            .issue_into(identity, validity, &self.dir.path().join("callers"))
            .expect("a certificate");
        Arc::new(
            Security::server(files.key_files(), &files.authority, false).expect("TLS settings"),
        )
    }

    /// A channel to `address` (`host:port`) with the test's settings.
    pub(crate) fn channel(&self, address: &str) -> Channel {
        self.client.channel(&endpoint(address))
    }
}

/// The endpoint of a server at `address` (`host:port`).
pub(crate) fn endpoint(address: &str) -> tonic::transport::Endpoint {
    Channel::from_shared(format!("http://{address}")).expect("an address")
}
