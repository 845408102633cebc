//! How a process verifies the servers it calls, and presents its own certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tsn_core::{Error, Result};

use super::connect::ANY_SERVER;
use super::{Identity, RenewedKey};

/// Verifies a server by the identity its certificate names, not by the host name it was
/// reached at (servers move between hosts; what matters is what they are): the
/// certificate must be signed by the deployment's certificate authority, be in date, and
/// name the identity the handshake asked for (the coordinator, a master, etcd), or, where
/// the caller asked for any server ([`ANY_SERVER`]), name one of TSN's servers or an etcd
/// member.
#[derive(Debug)]
pub(super) struct ServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerVerifier {
    pub(super) fn new(
        roots: Arc<RootCertStore>,
        provider: &Arc<CryptoProvider>,
        authorities: &Path,
    ) -> Result<Arc<ServerVerifier>> {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(provider))
            .build()
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot verify servers with {}: {e}",
                    authorities.display()
                ))
            })?;
        Ok(Arc::new(ServerVerifier { webpki }))
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let expected = match server_name {
            ServerName::DnsName(name) if name.as_ref() != ANY_SERVER => server_name.to_owned(),
            _ => {
                let identity = Identity::of_certificate(end_entity)
                    .filter(Identity::may_serve)
                    .ok_or(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName,
                    ))?;
                ServerName::try_from(identity.dns_name()).map_err(|_| {
                    rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
                })?
            }
        };
        self.webpki
            .verify_server_cert(end_entity, intermediates, &expected, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Presents the process's current certificate, as a server and as a client.
#[derive(Debug)]
pub(super) struct KeyResolver(pub(super) Arc<RenewedKey>);

impl ResolvesServerCert for KeyResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.key())
    }
}

impl ResolvesClientCert for KeyResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Takes any client certificate whose holder proves it holds the key, valid or not, so
/// that a refused certificate is refused in words the caller reads (a gRPC status) rather
/// than by a TLS alert it may never see: under TLS 1.3 a client sends its first request
/// before the server has judged its certificate, and reads a reset, not the alert. The
/// certificate is judged right after the handshake, by `strict` (see [`judge_client`]),
/// and a connection whose certificate fails is refused every call.
#[derive(Debug)]
pub(super) struct HeardClients {
    pub(super) strict: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for HeardClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.strict.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.strict.supported_verify_schemes()
    }
}

/// Judges the certificate chain a client presented (its certificate first) with `strict`:
/// the identity it names, or why it is refused (another authority, expired, ...).
pub(super) fn judge_client(
    strict: &dyn ClientCertVerifier,
    chain: &[CertificateDer<'_>],
) -> std::result::Result<Option<Identity>, String> {
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Ok(None);
    };
    strict
        .verify_client_cert(end_entity, intermediates, UnixTime::now())
        .map_err(|e| e.to_string())?;
    Ok(Identity::of_certificate(end_entity))
}
