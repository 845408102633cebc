//! [`Identity`]: what a certificate says its holder is, as one DNS name among its subject
//! alternative names.

use std::fmt;

use rustls_pki_types::CertificateDer;

/// The domain every TSN identity is named under.
const DOMAIN: &str = "tsn";

/// What a certificate's holder is in a deployment. A certificate names it as a DNS
/// subject alternative name:
///
/// | identity | name |
/// | --- | --- |
/// | the coordinator | `coordinator.tsn` |
/// | server `s` of cluster `c` | `s<s>.c<c>.tsd.tsn` |
/// | the synchronizer of cluster `c` | `c<c>.synchronizer.tsn` |
/// | a client | `client.tsn` |
/// | an etcd member | `etcd.tsn` |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A coordinator.
    Coordinator,
    /// A tsd: server `server` of cluster `cluster`.
    Tsd {
        /// Its cluster.
        cluster: u32,
        /// Its server id.
        server: u32,
    },
    /// The synchronizer of `cluster`.
    Synchronizer {
        /// Its cluster.
        cluster: u32,
    },
    /// A client (a user's program): it may call only what clients call.
    Client,
    /// A member of the etcd cluster the coordinators keep their records on.
    Etcd,
}

impl Identity {
    /// The DNS name a certificate carries for this identity.
    pub fn dns_name(&self) -> String {
        match self {
            Identity::Coordinator => format!("coordinator.{DOMAIN}"),
            Identity::Tsd { cluster, server } => format!("s{server}.c{cluster}.tsd.{DOMAIN}"),
            Identity::Synchronizer { cluster } => format!("c{cluster}.synchronizer.{DOMAIN}"),
            Identity::Client => format!("client.{DOMAIN}"),
            Identity::Etcd => format!("etcd.{DOMAIN}"),
        }
    }

    /// The identity a DNS name stands for, if it is one.
    pub fn from_dns_name(name: &str) -> Option<Identity> {
        let labels: Vec<&str> = name
            .strip_suffix(DOMAIN)?
            .strip_suffix('.')?
            .split('.')
            .collect();
        let number = |label: &str, prefix: char| -> Option<u32> {
            let digits = label.strip_prefix(prefix)?;
            let n: u32 = digits.parse().ok()?;
            (n > 0 && digits == n.to_string()).then_some(n)
        };
        match labels.as_slice() {
            ["coordinator"] => Some(Identity::Coordinator),
            ["client"] => Some(Identity::Client),
            ["etcd"] => Some(Identity::Etcd),
            [server, cluster, "tsd"] => Some(Identity::Tsd {
                cluster: number(cluster, 'c')?,
                server: number(server, 's')?,
            }),
            [cluster, "synchronizer"] => Some(Identity::Synchronizer {
                cluster: number(cluster, 'c')?,
            }),
            _ => None,
        }
    }

    /// The identity a certificate names: the first of its DNS names that is one. The
    /// certificate is not verified here; the TLS handshake did that.
    pub fn of_certificate(certificate: &CertificateDer<'_>) -> Option<Identity> {
        let parsed = webpki::EndEntityCert::try_from(certificate).ok()?;
        parsed.valid_dns_names().find_map(Identity::from_dns_name)
    }

    /// Whether it is one of TSN's server processes (coordinator, tsd, synchronizer): one
    /// that may make the calls between servers.
    pub fn is_tsn_server(&self) -> bool {
        matches!(
            self,
            Identity::Coordinator | Identity::Tsd { .. } | Identity::Synchronizer { .. }
        )
    }

    /// Whether a process may serve with this identity: one of TSN's servers, or an etcd
    /// member (the coordinators' store).
    pub fn may_serve(&self) -> bool {
        self.is_tsn_server() || *self == Identity::Etcd
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Coordinator => f.write_str("the coordinator"),
            Identity::Tsd { cluster, server } => {
                write!(f, "server {server} of cluster {cluster}")
            }
            Identity::Synchronizer { cluster } => {
                write!(f, "the synchronizer of cluster {cluster}")
            }
            Identity::Client => f.write_str("a client"),
            Identity::Etcd => f.write_str("an etcd member"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_reads_back_from_its_name() {
        let all = [
            Identity::Coordinator,
            Identity::Tsd {
                cluster: 2,
                server: 13,
            },
            Identity::Synchronizer { cluster: 3 },
            Identity::Client,
            Identity::Etcd,
        ];
        for identity in all {
            assert_eq!(
                Identity::from_dns_name(&identity.dns_name()),
                Some(identity)
            );
        }
    }

    #[test]
    fn names_that_are_no_identity_are_none() {
        for name in [
            "tsn",
            "coordinator.example",
            "s1.c0.tsd.tsn",
            "s01.c1.tsd.tsn",
            "s1.c1.tsd.tsn.evil",
            "x.s1.c1.tsd.tsn",
            "c1.tsd.tsn",
            "*.c1.synchronizer.tsn",
        ] {
            assert_eq!(Identity::from_dns_name(name), None, "{name}");
        }
    }
}
