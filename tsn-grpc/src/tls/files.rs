//! The PEM files a process's TLS settings come from, and [`RenewedKey`]: its certificate
//! and key, read again when the files change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tsn_core::{Error, Result};

use super::Identity;

/// How often the certificate files are looked at for a renewal, at most.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Reads the certificates of the PEM file at `path` (one or more: an end-entity
/// certificate and the intermediates that follow it, or certificate authorities).
pub(super) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let unreadable = |e: &dyn std::fmt::Display| {
        Error::Invalid(format!(
            "cannot read the certificates in {}: {e}",
            path.display()
        ))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certificates.is_empty() {
        return Err(unreadable(&"the file holds no PEM certificate"));
    }
    Ok(certificates)
}

/// The certificate authorities of the PEM file at `path`, as roots of trust.
pub(super) fn authorities(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path)? {
        roots.add(certificate).map_err(|e| {
            Error::Invalid(format!(
                "{} holds a certificate that is no certificate authority: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// A certificate file and its private key's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFiles {
    /// The certificate (PEM), followed by any intermediates.
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl KeyFiles {
    /// Reads the certificate and key, and checks that they belong together.
    fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey> {
        let chain = certificates(&self.certificate)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            Error::Invalid(format!(
                "cannot read the private key in {}: {e}",
                self.key.display()
            ))
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            Error::Invalid(format!(
                "the key in {} does not serve the certificate in {}: {e}",
                self.key.display(),
                self.certificate.display()
            ))
        })
    }

    /// When either file was last changed (and how big it is), to notice a renewal.
    fn stamp(&self) -> Option<(SystemTime, u64, SystemTime, u64)> {
        let of = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        let (cert_time, cert_len) = of(&self.certificate)?;
        let (key_time, key_len) = of(&self.key)?;
        Some((cert_time, cert_len, key_time, key_len))
    }
}

/// A check a certificate and key must pass before they are used (see
/// [`RenewedKey::load`]).
pub(super) type Vet = Box<dyn Fn(&CertifiedKey) -> Result<()> + Send + Sync>;

/// When and how big the files were: a renewal changes it.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

/// A process's certificate and key, read from their files, and read again when the files
/// change (looked at once a second at most, when a connection needs them): a renewed
/// certificate is used from the next connection on, without a restart. A renewal that
/// cannot be used (half written, a key that does not match, a certificate that fails the
/// check it was loaded with, or names another identity) is ignored, with one warning,
/// until it can; the last good one is used meanwhile.
pub(super) struct RenewedKey {
    files: KeyFiles,
    provider: Arc<CryptoProvider>,
    vet: Vet,
    current: Mutex<Current>,
}

impl std::fmt::Debug for RenewedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewedKey")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

struct Current {
    key: Arc<CertifiedKey>,
    identity: Option<Identity>,
    stamp: Stamp,
    /// The stamp of a renewal found unusable (warned about once).
    refused: Stamp,
    looked: Instant,
}

/// What a certificate and key name their holder.
fn identity_of(key: &CertifiedKey) -> Option<Identity> {
    key.end_entity_cert()
        .ok()
        .and_then(Identity::of_certificate)
}

impl RenewedKey {
    /// Reads `files`; fails if they cannot be read, do not belong together, or fail `vet`.
    pub(super) fn load(
        files: KeyFiles,
        provider: Arc<CryptoProvider>,
        vet: Vet,
    ) -> Result<RenewedKey> {
        let stamp = files.stamp();
        let key = files.load(&provider)?;
        vet(&key)?;
        Ok(RenewedKey {
            current: Mutex::new(Current {
                identity: identity_of(&key),
                key: Arc::new(key),
                stamp,
                refused: None,
                looked: Instant::now(),
            }),
            files,
            provider,
            vet,
        })
    }

    /// Reads the files again, for a renewal: what they hold if it can be used instead of
    /// the current one (which names `identity`).
    fn renewal(&self, identity: Option<Identity>) -> Result<CertifiedKey> {
        let renewed = self.files.load(&self.provider)?;
        (self.vet)(&renewed)?;
        match identity_of(&renewed) {
            named if named == identity => Ok(renewed),
            named => Err(Error::Invalid(format!(
                "it names {}, not {}",
                named.map_or_else(|| "no TSN identity".to_owned(), |i| i.to_string()),
                identity.map_or_else(|| "no TSN identity".to_owned(), |i| i.to_string())
            ))),
        }
    }

    /// The certificate and key to present now.
    pub(super) fn key(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.looked.elapsed() >= LOOK_EVERY {
            current.looked = Instant::now();
            let stamp = self.files.stamp();
            if stamp != current.stamp && stamp != current.refused {
                match self.renewal(current.identity) {
                    Ok(renewed) => {
                        tracing::info!(certificate = %self.files.certificate.display(), "using the renewed certificate");
                        current.key = Arc::new(renewed);
                        current.stamp = stamp;
                        current.refused = None;
                    }
                    Err(error) => {
                        tracing::warn!(certificate = %self.files.certificate.display(), %error, "a changed certificate cannot be used yet; keeping the previous one");
                        current.refused = stamp;
                    }
                }
            }
        }
        Arc::clone(&current.key)
    }

    /// What the current certificate says its holder is.
    pub(super) fn identity(&self) -> Option<Identity> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .identity
    }
}
