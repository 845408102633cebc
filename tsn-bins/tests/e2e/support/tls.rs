//! TLS for a test deployment: a certificate authority in a temporary folder, a certificate
//! for each process as it starts, and the test's own TLS settings for asking the servers.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::codegen::http::Uri;
use tonic::transport::Channel;
use tsn_bins::harness::certs::{Authority, TlsFiles, Validity};
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

    /// A channel to the server that is `server` at `address` (`host:port`), from a caller
    /// holding a certificate of this deployment's authority that names `identity`, valid
    /// as `validity` says: a process started by hand, or a stolen or expired certificate.
    pub(crate) fn caller(
        &self,
        identity: Identity,
        validity: Validity,
        address: &str,
        server: Identity,
    ) -> Channel {
        let callers = self.dir.path().join("callers");
        let files = self
            .authority
            .issue_into(identity, validity, &callers)
            .expect("a certificate");
        presenting(&files, &self.authority.file(), address, server)
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

/// A channel to the server that is `server` at `address`, presenting the certificate of
/// `files` and verifying the server against the authority in `trusting`, made with rustls
/// alone: as a caller that has certificates TSN itself would not use (another authority's,
/// an expired one, a client's) connects.
pub(crate) fn presenting(
    files: &TlsFiles,
    trusting: &Path,
    address: &str,
    server: Identity,
) -> Channel {
    let chain = vec![CertificateDer::from_pem_file(&files.certificate).expect("a certificate")];
    let key = PrivateKeyDer::from_pem_file(&files.key).expect("a key");
    let mut config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("TLS settings")
        .with_root_certificates(roots(trusting))
        .with_client_auth_cert(chain, key)
        .expect("a client certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server.dns_name()).expect("a name");
    endpoint(address).connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
        let (connector, name) = (connector.clone(), name.clone());
        async move {
            let host = uri.host().unwrap_or_default().to_owned();
            let tcp = tokio::net::TcpStream::connect((host, uri.port_u16().unwrap_or(80))).await?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    }))
}

/// rustls's ring provider.
pub(crate) fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate authorities in the PEM file `ca`.
pub(crate) fn roots(ca: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).expect("the CA") {
        roots
            .add(certificate.expect("a certificate"))
            .expect("a root");
    }
    roots
}
