//! [`folder_id`]: the identity of a data folder, kept in a file of its own, so that the
//! folder — not the process using it — says who a server or a synchronizer is (see
//! [`FolderId`]).
//!
//! The file holds the id as 16 hexadecimal digits and a newline. It is made once, with a
//! random id, by linking a fully written and synced temporary file to its name, so that
//! two processes making it at the same moment end up reading the same id.

use std::io::Write;
use std::path::Path;

use tsn_core::id::FolderId;
use tsn_core::{Error, Result};

/// The name of a replica's identity file, in its folder ([`replica_dir`](crate::replica_dir)).
pub const REPLICA_ID_FILE: &str = "replica.id";

/// The name of a synchronizer's identity file, in its folder
/// ([`synchronizer_dir`](crate::synchronizer_dir)).
pub const SYNCHRONIZER_ID_FILE: &str = "synchronizer.id";

/// The id recorded in `dir/name`, made (with `dir`) if there is none yet.
pub fn folder_id(dir: &Path, name: &str) -> Result<FolderId> {
    let path = dir.join(name);
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let fresh = FolderId(rand::random::<u64>().max(1));
    let temporary = dir.join(format!("{name}.{:016x}.new", rand::random::<u64>()));
    let make = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut file = std::fs::File::create(&temporary)?;
        writeln!(file, "{fresh}")?;
        file.sync_all()?;
        let linked = std::fs::hard_link(&temporary, &path);
        std::fs::remove_file(&temporary)?;
        match linked {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        std::fs::File::open(dir)?.sync_all()
    };
    make().map_err(|e| Error::storage(format!("writing {}", path.display()), e))?;
    read(&path)?
        .ok_or_else(|| Error::Corrupt(format!("{} vanished as it was made", path.display())))
}

/// The id in the file at `path`, or `None` when there is no such file.
fn read(path: &Path) -> Result<Option<FolderId>> {
    match std::fs::read_to_string(path) {
        Ok(text) => u64::from_str_radix(text.trim_end_matches('\n'), 16)
            .ok()
            .filter(|&id| id != 0 && text.len() == 17)
            .map(|id| Some(FolderId(id)))
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{} does not hold a folder id; delete it to give the folder a new identity",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(format!("reading {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_keeps_the_id_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("new");
        let id = folder_id(&inside, REPLICA_ID_FILE).unwrap();
        assert_ne!(id, FolderId::UNKNOWN);
        assert_eq!(folder_id(&inside, REPLICA_ID_FILE).unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(folder_id(other.path(), REPLICA_ID_FILE).unwrap(), id);
        let names: Vec<_> = std::fs::read_dir(&inside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [REPLICA_ID_FILE], "no temporary file is left");
    }

    #[test]
    fn a_damaged_id_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SYNCHRONIZER_ID_FILE), "not hex\n").unwrap();
        let error = folder_id(dir.path(), SYNCHRONIZER_ID_FILE).unwrap_err();
        assert!(error.to_string().contains(SYNCHRONIZER_ID_FILE), "{error}");
    }
}
