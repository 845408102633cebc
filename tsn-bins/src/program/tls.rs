//! The TLS flags of the server programs, and turning TLS on from them.

use std::path::PathBuf;

use clap::Args;
use tsn_grpc::tls::{self, Identity, KeyFiles, Security};

use crate::cli::Fatal;

/// `--tls-cert`, `--tls-key`, `--tls-ca`: given together, they turn TLS on for every
/// connection the program makes and takes.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// This process's certificate (PEM), naming what it is (see the README): with
    /// --tls-key and --tls-ca, every connection to and from it is TLS, both sides verified.
    /// A renewed file is used from the next connection on.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The certificate authority (PEM) that signs the deployment's certificates.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
}

impl TlsFlags {
    /// Turns TLS on for this process if the flags say so, checking that the certificate
    /// names `me`; its servers take plaintext client calls only with `plaintext_clients`.
    /// Call it before any connection is made.
    pub fn install(&self, me: Identity, plaintext_clients: bool) -> Result<(), Fatal> {
        let (Some(certificate), Some(key), Some(ca)) =
            (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            if plaintext_clients {
                return Err(Fatal(
                    "--allow-plaintext-clients needs TLS on (--tls-cert, --tls-key, --tls-ca)"
                        .into(),
                ));
            }
            return Ok(());
        };
        let files = KeyFiles {
            certificate: certificate.clone(),
            key: key.clone(),
        };
        let security = Security::server(files, ca, plaintext_clients)
            .map_err(|e| Fatal::new("cannot turn TLS on", e))?;
        match security.identity() {
            Some(named) if named == me => {}
            named => {
                return Err(Fatal(format!(
                    "the certificate in {} names {}, but this is {me} (a certificate for it names {})",
                    certificate.display(),
                    named.map_or_else(|| "no TSN identity".to_owned(), |i| i.to_string()),
                    me.dns_name()
                )));
            }
        }
        tls::install(security).map_err(|e| Fatal::new("cannot turn TLS on", e))
    }
}
