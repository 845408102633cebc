//! Certificates for a deployment that runs with TLS: a certificate authority and one
//! certificate per process, each naming the process's [`Identity`], made with rcgen and
//! written as PEM files.

use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tsn_grpc::tls::{Identity, KeyFiles};

/// The certificate authority's file in a folder of certificates.
pub const CA_FILE: &str = "ca.pem";

/// How long a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096 (rcgen's default): valid for any test or deployment.
    Lasting,
    /// Throughout 2020, and no more: expired.
    Expired,
}

/// The files of one process's certificate, and the authority's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The certificate authority (PEM).
    pub authority: PathBuf,
}

impl TlsFiles {
    /// The certificate's and key's files.
    pub fn key_files(&self) -> KeyFiles {
        KeyFiles {
            certificate: self.certificate.clone(),
            key: self.key.clone(),
        }
    }

    /// The flags that give a server program these files.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.certificate.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--tls-ca".into(),
            self.authority.display().to_string(),
        ]
    }
}

/// A certificate authority whose certificate is in `<dir>/ca.pem`, issuing certificates
/// into `dir`.
#[derive(Debug)]
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

fn failed(e: rcgen::Error) -> io::Error {
    io::Error::other(format!("cannot make a certificate: {e}"))
}

impl Authority {
    /// Makes a new authority called `name` and writes its certificate to `<dir>/ca.pem`
    /// (making `dir`). Its key stays in memory: a lost authority is replaced, with every
    /// certificate it issued.
    pub fn create(dir: &Path, name: &str) -> io::Result<Authority> {
        std::fs::create_dir_all(dir)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(failed)?)
            .map_err(failed)?;
        std::fs::write(dir.join(CA_FILE), issuer.pem())?;
        Ok(Authority {
            issuer,
            dir: dir.to_owned(),
        })
    }

    /// The authority's certificate file.
    pub fn file(&self) -> PathBuf {
        self.dir.join(CA_FILE)
    }

    /// Issues a certificate naming `identity`, valid as `validity` says, for serving and
    /// for calling servers, and writes it and its key (readable by the owner only) as
    /// `<dir>/<name>.pem` and `<dir>/<name>.key`, `name` being the identity's DNS name
    /// (replacing an earlier one: a renewal).
    pub fn issue(&self, identity: Identity, validity: Validity) -> io::Result<TlsFiles> {
        self.issue_into(identity, validity, &self.dir)
    }

    /// Like [`Authority::issue`], writing the certificate and key into `dir` (made if
    /// need be) instead.
    pub fn issue_into(
        &self,
        identity: Identity,
        validity: Validity,
        dir: &Path,
    ) -> io::Result<TlsFiles> {
        std::fs::create_dir_all(dir)?;
        let name = identity.dns_name();
        let mut params = CertificateParams::new(vec![name.clone()]).map_err(failed)?;
        params.distinguished_name = distinguished(&name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().map_err(failed)?;
        let certificate = params.signed_by(&key, &self.issuer).map_err(failed)?;
        let files = TlsFiles {
            certificate: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            authority: self.file(),
        };
        write_private(&files.key, &key.serialize_pem())?;
        std::fs::write(&files.certificate, certificate.pem())?;
        Ok(files)
    }
}

fn distinguished(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// Writes `text` to `path`, readable and writable by the owner only.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}
