//! Mutual TLS between TSN's processes, and who may call what.
//!
//! A process runs with TLS when it [installs](install) a [`Security`] at start: from then
//! on every channel it opens speaks TLS, verifying that the peer holds a certificate of a
//! TSN server ([`Identity`]) signed by the deployment's certificate authority, and
//! presenting its own; and every server it runs takes TLS connections, and plaintext ones
//! only for client calls where the operator allows them. Without one, everything is
//! plaintext, as the course's programs speak.
//!
//! * [`Identity`] — what a certificate names: the coordinator, a tsd of a cluster, a
//!   synchronizer, a client.
//! * [`KeyFiles`] — the process's certificate and key, read again when their files are
//!   renewed.
//! * [`incoming`] — a server's connections: TLS and plaintext told apart on one port by
//!   their first byte, each with the [`Peer`] it comes from.
//! * [`access`] — which calls need which identity: client calls from anyone the server
//!   takes, server-to-server calls only from the identity that may make them.
//!
//! The certificates' TLS is rustls (ring), through tokio-rustls rather than tonic's TLS
//! options, so that one port can tell TLS from plaintext, certificates can be renewed
//! without a restart, and peers are verified by the identity they name rather than by
//! their host name.

mod accept;
pub mod access;
mod connect;
mod files;
mod identity;
mod verify;

pub use accept::{Conn, Peer, incoming};
pub use access::Access;
pub use files::KeyFiles;
use files::RenewedKey;
pub use identity::Identity;

pub(crate) use connect::connector;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, ServerConfig};
use tsn_core::{Error, Result};

use rustls::client::danger::ServerCertVerifier;
use verify::{HeardClients, KeyResolver, ServerVerifier};

/// The ALPN protocol gRPC runs on.
const H2: &[u8] = b"h2";

/// A process's TLS settings: whom it trusts, what it presents, and whether its servers
/// take plaintext client calls.
#[derive(Debug)]
pub struct Security {
    client: Arc<ClientConfig>,
    /// `None` for a process that serves nothing (a client).
    server: Option<Arc<ServerConfig>>,
    /// How its servers judge the certificates of those that call them, right after the
    /// handshake (which takes any, see `HeardClients`).
    clients: Option<Arc<dyn ClientCertVerifier>>,
    key: Option<Arc<RenewedKey>>,
    plaintext_clients: bool,
}

/// The settings installed for this process, if any.
static INSTALLED: OnceLock<Arc<Security>> = OnceLock::new();

/// Installs `security` for the rest of this process's life: every channel opened and every
/// server run from now on uses it. Install it before opening any. Fails if settings were
/// installed already.
pub fn install(security: Security) -> Result<()> {
    INSTALLED
        .set(Arc::new(security))
        .map_err(|_| Error::Invalid("TLS settings were installed already".into()))
}

/// The settings [installed](install) for this process, if any.
pub fn installed() -> Option<&'static Arc<Security>> {
    INSTALLED.get()
}

/// The settings of the connections a process opens: servers verified by `servers`, and
/// the process's own certificate presented where it has one (`presenting`).
fn client_config(
    provider: &Arc<CryptoProvider>,
    servers: Arc<ServerVerifier>,
    presenting: Option<Arc<KeyResolver>>,
) -> Result<Arc<ClientConfig>> {
    let verifying = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_error("TLS settings"))?
        .dangerous()
        .with_custom_certificate_verifier(servers);
    let mut client = match presenting {
        Some(resolver) => verifying.with_client_cert_resolver(resolver),
        None => verifying.with_no_client_auth(),
    };
    client.alpn_protocols = vec![H2.to_vec()];
    Ok(Arc::new(client))
}

/// The check a process's own certificate passes before it is used, at start and at each
/// renewal: the deployment's authority signed it, it is in date, and it serves both ways
/// (as a server's certificate naming a server identity, and as a client's), so that a
/// wrong certificate is told at once rather than by every peer that refuses it.
fn own_certificate_check(
    files: &KeyFiles,
    clients: Arc<dyn ClientCertVerifier>,
    servers: Arc<ServerVerifier>,
) -> files::Vet {
    let path = files.certificate.clone();
    Box::new(move |key| {
        let unusable = |e: rustls::Error| {
            Error::Invalid(format!(
                "the certificate in {} cannot be used: {e}",
                path.display()
            ))
        };
        let (end_entity, intermediates) = key
            .cert
            .split_first()
            .ok_or_else(|| unusable(rustls::Error::NoCertificatesPresented))?;
        let now = rustls_pki_types::UnixTime::now();
        clients
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(unusable)?;
        let anyone = rustls_pki_types::ServerName::try_from("tsn").expect("a valid DNS name");
        servers
            .verify_server_cert(end_entity, intermediates, &anyone, &[], now)
            .map_err(unusable)?;
        Ok(())
    })
}

/// The cryptography: ring's. rustls 0.23.48 marks it deprecated for lacking post-quantum
/// key exchange, which its aws-lc-rs provider has; that one needs a C build of aws-lc
/// (minutes on a fresh machine). Post-quantum exchange guards recorded traffic against
/// future quantum computers, which a deployment's internal links may well want later.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str) -> impl Fn(rustls::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("{what}: {e}"))
}

impl Security {
    /// A server process's settings: it presents the certificate and key of `key`
    /// (renewed as their files change) and trusts the certificate authorities in
    /// `authorities` (a PEM file), both to verify the servers it calls and to verify the
    /// certificates of those that call it. Its servers take plaintext calls from clients
    /// only with `plaintext_clients`.
    pub fn server(key: KeyFiles, authorities: &Path, plaintext_clients: bool) -> Result<Security> {
        let provider = provider();
        let roots = Arc::new(files::authorities(authorities)?);
        let clients =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .allow_unauthenticated()
                .build()
                .map_err(|e| {
                    Error::Invalid(format!(
                        "cannot verify clients with {}: {e}",
                        authorities.display()
                    ))
                })?;
        let servers = ServerVerifier::new(roots, &provider, authorities)?;
        let vet = own_certificate_check(&key, Arc::clone(&clients), Arc::clone(&servers));
        let key = Arc::new(RenewedKey::load(key, Arc::clone(&provider), vet)?);
        let resolver = Arc::new(KeyResolver(Arc::clone(&key)));
        let heard = Arc::new(HeardClients {
            strict: Arc::clone(&clients),
        });
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(tls_error("TLS settings"))?
            .with_client_cert_verifier(heard)
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![H2.to_vec()];
        Ok(Security {
            client: client_config(&provider, servers, Some(resolver))?,
            server: Some(Arc::new(server)),
            clients: Some(clients),
            key: Some(key),
            plaintext_clients,
        })
    }

    /// A client's settings: it verifies the servers it calls against the certificate
    /// authorities in `authorities` (a PEM file) and presents no certificate.
    pub fn client(authorities: &Path) -> Result<Security> {
        let provider = provider();
        let roots = Arc::new(files::authorities(authorities)?);
        let servers = ServerVerifier::new(roots, &provider, authorities)?;
        Ok(Security {
            client: client_config(&provider, servers, None)?,
            server: None,
            clients: None,
            key: None,
            plaintext_clients: false,
        })
    }

    /// A channel to the server `endpoint` leads to (its URI `http://host:port`), speaking
    /// TLS with these settings, connecting when first used. Channels a process opens with
    /// the settings it [installed](install) are made so already; this is for a program
    /// that runs without installed settings and reaches some servers over TLS (a test).
    pub fn channel(
        self: &Arc<Self>,
        endpoint: &tonic::transport::Endpoint,
    ) -> tonic::transport::Channel {
        endpoint.connect_with_connector_lazy(connector(Arc::clone(self), None))
    }

    /// Like [`Security::channel`], to the server that is `expected` only: a server whose
    /// certificate names another identity is refused at the handshake.
    pub fn channel_to(
        self: &Arc<Self>,
        endpoint: &tonic::transport::Endpoint,
        expected: Identity,
    ) -> tonic::transport::Channel {
        endpoint.connect_with_connector_lazy(connector(Arc::clone(self), Some(expected)))
    }

    /// What this process's own certificate names it, if it has one that names an identity.
    pub fn identity(&self) -> Option<Identity> {
        self.key.as_ref().and_then(|key| key.identity())
    }

    /// Whether its servers take plaintext calls from clients.
    pub fn takes_plaintext_clients(&self) -> bool {
        self.plaintext_clients
    }
}
