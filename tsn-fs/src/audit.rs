//! A replica's folder read back without changing it, for checkers: its log's entries, and
//! whether its course view holds what the log says.
//!
//! Unlike [`FileStore::open`](crate::FileStore::open), an audit repairs nothing and takes no
//! lock: it is meant for a folder whose server has stopped.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use tsn_core::change::Entry;
use tsn_core::{Error, Result};

use crate::layout::ViewFile;
use crate::log::{At, Damage, Record, Scanner};
use crate::recovery::replay;
use crate::{LOG_FILE, recorded_membership};

/// What a replica's folder holds.
#[derive(Debug)]
pub struct Audit {
    /// Every whole, sound entry of the log, in position order.
    pub entries: Vec<Entry>,
    /// What stopped the reading of the log before its end, if anything did.
    pub damage: Option<Damage>,
    /// The course view's files that do not hold what the log's entries say, or that the
    /// view should not have, each with what is wrong.
    pub view_differences: Vec<String>,
}

/// Reads the replica in `dir`: its log, and each file of its course view compared with
/// what the log says it should hold.
pub fn audit(dir: &Path) -> Result<Audit> {
    let failed =
        |what: &str, e: std::io::Error| Error::storage(format!("{what} in {}", dir.display()), e);
    let membership = recorded_membership(dir)?
        .ok_or_else(|| Error::Corrupt(format!("{} holds no replica", dir.display())))?;
    let file = File::open(dir.join(LOG_FILE)).map_err(|e| failed("opening the log", e))?;
    let len = file
        .metadata()
        .map_err(|e| failed("reading the log's size", e))?
        .len();
    let replayed =
        replay(&file, membership, len, None).map_err(|e| failed("reading the log", e))?;
    let mut entries = Vec::new();
    let mut scanner = Scanner::new(BufReader::new(At::new(&file, 0, replayed.end)));
    while let Record::Whole { value, .. } = scanner
        .next::<Entry>()
        .map_err(|e| failed("reading the log", e))?
    {
        entries.push(value);
    }

    let mut view_differences = Vec::new();
    for file in replayed.layout.files() {
        let name = file.name();
        let expected = replayed.layout.render(file, &replayed.state);
        match std::fs::read(dir.join(&name)) {
            Ok(held) if held == expected.as_bytes() => {}
            Ok(held) => view_differences.push(format!(
                "{name} holds {} bytes, not the {} the log says",
                held.len(),
                expected.len()
            )),
            Err(e) => view_differences.push(format!("{name} cannot be read: {e}")),
        }
    }
    let listing = std::fs::read_dir(dir).map_err(|e| failed("listing the files", e))?;
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ViewFile::parse(&name).is_some_and(|file| !replayed.layout.has(file)) {
            view_differences.push(format!("{name} is of no user the log names"));
        }
    }
    view_differences.sort();
    Ok(Audit {
        entries,
        damage: replayed.damage,
        view_differences,
    })
}
