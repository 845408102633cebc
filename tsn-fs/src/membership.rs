//! The replica's membership, recorded beside its log: which cluster it belongs to and how
//! many clusters the deployment had when the replica was made.
//!
//! The file `membership.json` holds `{"cluster":C,"clusters":N}`. A server that restarts
//! reads it to open its replica before it can ask the coordinator, and a replica is never
//! opened with a different membership: its delivery decisions depended on it.

use std::io::Write;
use std::path::Path;

use tsn_core::id::Membership;
use tsn_core::{Error, Result};

/// The name of the membership file in a replica folder.
pub const MEMBERSHIP_FILE: &str = "membership.json";

/// The membership recorded in the replica folder `dir`, or `None` for a new replica.
pub fn recorded_membership(dir: &Path) -> Result<Option<Membership>> {
    let path = dir.join(MEMBERSHIP_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{} is unreadable: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(format!("reading {}", path.display()), e)),
    }
}

/// Records `membership` in `dir` if nothing is recorded yet; refuses a different one.
pub(crate) fn record(dir: &Path, membership: Membership) -> Result<()> {
    match recorded_membership(dir)? {
        Some(recorded) if recorded == membership => Ok(()),
        Some(recorded) => Err(Error::Invalid(format!(
            "the replica in {} belongs to cluster {} of {}, not to cluster {} of {}",
            dir.display(),
            recorded.cluster,
            recorded.clusters,
            membership.cluster,
            membership.clusters
        ))),
        None => {
            let path = dir.join(MEMBERSHIP_FILE);
            let temporary = dir.join(format!(".{MEMBERSHIP_FILE}.tmp"));
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&temporary)?;
                file.write_all(&serde_json::to_vec(&membership)?)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &path)?;
                std::fs::File::open(dir)?.sync_all()
            };
            write().map_err(|e| Error::storage(format!("writing {}", path.display()), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsn_core::id::ClusterId;

    #[test]
    fn a_membership_is_recorded_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let one_of_three = Membership {
            cluster: ClusterId(1),
            clusters: 3,
        };
        assert_eq!(recorded_membership(dir.path()).unwrap(), None);
        record(dir.path(), one_of_three).unwrap();
        record(dir.path(), one_of_three).unwrap();
        assert_eq!(recorded_membership(dir.path()).unwrap(), Some(one_of_three));
        let other = Membership {
            cluster: ClusterId(1),
            clusters: 4,
        };
        let refused = record(dir.path(), other).unwrap_err().to_string();
        assert!(
            refused.contains("cluster 1 of 3, not to cluster 1 of 4"),
            "{refused}"
        );
    }

    #[test]
    fn a_damaged_membership_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MEMBERSHIP_FILE), b"{\"clus").unwrap();
        assert!(matches!(
            recorded_membership(dir.path()),
            Err(Error::Corrupt(_))
        ));
    }
}
