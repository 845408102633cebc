//! Real etcd clusters for the tests of coordination on etcd.

use std::net::Ipv4Addr;

use tempfile::TempDir;
use tsn_bins::harness::EtcdCluster;
use tsn_bins::harness::certs::TlsFiles;
use tsn_bins::harness::etcd::REQUIRE_ETCD;

use super::runtime;

/// A running etcd cluster of 3 members, the runtime its client runs on, and the folder of
/// its data and logs.
pub(crate) struct Etcd {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) cluster: EtcdCluster,
    _dir: TempDir,
}

impl Etcd {
    /// The member (from 0) that leads now; waits for one to be elected.
    pub(crate) fn leader(&self) -> usize {
        self.runtime
            .block_on(self.cluster.wait_leader(std::time::Duration::from_secs(15)))
            .unwrap_or_else(|e| panic!("{}", e.0))
    }
}

/// Starts a cluster of 3 etcd members on free loopback ports; `None`, after one line on
/// standard error saying why, where no `etcd` can be started. With `TSN_REQUIRE_ETCD=1` (as
/// in CI) it must start: the test fails instead.
pub(crate) fn etcd_cluster() -> Option<Etcd> {
    etcd_cluster_at(Ipv4Addr::LOCALHOST, None)
}

/// Like [`etcd_cluster`], its members listening at `address`, serving over TLS with the
/// certificate `tls` if given.
pub(crate) fn etcd_cluster_at(address: Ipv4Addr, tls: Option<&TlsFiles>) -> Option<Etcd> {
    if !etcd_available() {
        return None;
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let runtime = runtime();
    let cluster = runtime
        .block_on(EtcdCluster::start_at(3, dir.path(), address, tls))
        .unwrap_or_else(|e| panic!("{}", e.0));
    Some(Etcd {
        runtime,
        cluster,
        _dir: dir,
    })
}

/// Whether `etcd` can be started here; if not, says why in one line on standard error.
/// With `TSN_REQUIRE_ETCD=1` (as in CI) it must: a test fails instead.
pub(crate) fn etcd_available() -> bool {
    let Err(why) = EtcdCluster::available() else {
        return true;
    };
    assert!(
        std::env::var(REQUIRE_ETCD).as_deref() != Ok("1"),
        "{REQUIRE_ETCD}=1, but etcd cannot be started: {why}"
    );
    eprintln!("did not run on etcd: {why}");
    false
}
