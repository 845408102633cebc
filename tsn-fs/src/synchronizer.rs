//! A synchronizer's own folder: `<data-dir>/synchronizer_<c>/` ([`synchronizer_dir`]),
//! holding its identity (`synchronizer.id`, [`folder_id`](crate::folder_id())) and the lock
//! that one synchronizer process holds while it runs ([`SynchronizerClaim`]). A
//! synchronizer keeps no data: that is all the folder holds.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use tsn_core::id::ClusterId;
use tsn_core::{Error, Result};

/// The folder of the synchronizer of `cluster` under `data_dir`:
/// `<data_dir>/synchronizer_<cluster>`.
pub fn synchronizer_dir(data_dir: &Path, cluster: ClusterId) -> PathBuf {
    data_dir.join(format!("synchronizer_{}", cluster.0))
}

/// The file of a synchronizer's folder that it holds locked while it runs.
pub const SYNCHRONIZER_LOCK_FILE: &str = "synchronizer.lock";

/// A synchronizer's folder claimed by one process: a second synchronizer on the same folder
/// is refused while the first runs. Released when dropped (or when the process dies,
/// however it dies).
#[derive(Debug)]
pub struct SynchronizerClaim {
    _lock: File,
}

impl SynchronizerClaim {
    /// Claims `dir` (creating it if missing). Fails with [`Error::Storage`] when it cannot,
    /// or when another synchronizer holds it.
    pub fn take(dir: &Path) -> Result<SynchronizerClaim> {
        let failed = |e| Error::storage(format!("claiming the folder {}", dir.display()), e);
        std::fs::create_dir_all(dir).map_err(failed)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(SYNCHRONIZER_LOCK_FILE))
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => Ok(SynchronizerClaim { _lock: file }),
            Err(TryLockError::WouldBlock) => Err(failed(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another synchronizer of this cluster runs on this data folder",
            ))),
            Err(TryLockError::Error(e)) => Err(failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_claimed_by_one_synchronizer_at_a_time() {
        let data = tempfile::tempdir().expect("a folder");
        let dir = synchronizer_dir(data.path(), ClusterId(2));
        assert!(dir.ends_with("synchronizer_2"));
        let first = SynchronizerClaim::take(&dir).expect("the first claim");
        let refused = SynchronizerClaim::take(&dir).expect_err("a second claim");
        assert!(
            refused.to_string().contains("another synchronizer"),
            "{refused}"
        );
        drop(first);
        SynchronizerClaim::take(&dir).expect("claimed again once released");
    }
}
