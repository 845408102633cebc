//! A local deployment's data folder, as `tsn-local` owns it: a lock held while a deployment
//! runs on it, and a reset that removes only what TSN made, and only when nothing uses it.
//!
//! What TSN makes in a data folder: `cluster_<c>` folders (each holding replica folders
//! named by server id, and in folders of earlier versions an `inbox`), `synchronizer_<c>`
//! folders (a synchronizer's identity and lock), the `logs` folder, the lock file
//! [`LOCK_FILE`], and with `--hosts` one folder per member (`tsd-<c>-<s>`,
//! `synchronizer-<c>`) holding that member's own such folders. A folder holding anything
//! else is not a TSN data folder, and is never reset.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::cli::Fatal;

/// The file `tsn-local` holds locked (`flock`) in the data folder while it runs.
pub const LOCK_FILE: &str = "tsn-local.lock";

/// The data folder, locked against a second `tsn-local` until dropped.
#[derive(Debug)]
pub struct Claim {
    dir: PathBuf,
    _lock: File,
}

impl Claim {
    /// Creates the folder if needed and takes its lock; refuses, in one line, a folder
    /// another `tsn-local` holds.
    pub fn take(dir: &Path) -> Result<Claim, Fatal> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Fatal::new(format_args!("cannot create {}", dir.display()), e))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Fatal::new(format_args!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Claim {
                dir: dir.to_path_buf(),
                _lock: file,
            }),
            Err(TryLockError::WouldBlock) => Err(Fatal(format!(
                "{} is in use by another tsn-local; stop it first, or give another --data-dir",
                dir.display()
            ))),
            Err(TryLockError::Error(e)) => Err(Fatal::new(
                format_args!("cannot lock {}", path.display()),
                e,
            )),
        }
    }

    /// Deletes the deployment data in the claimed folder: every `cluster_<c>` and
    /// `synchronizer_<c>` folder and the logs, keeping the lock. Refuses, in one line and
    /// deleting nothing, while a server or synchronizer started by hand still has its
    /// folder open.
    pub fn reset(&self) -> Result<(), Fatal> {
        let made = made_by_tsn(&self.dir)?;
        // The locks of every log and synchronizer, held until the deletion is over, so that
        // a process starting meanwhile is refused rather than deleted from under.
        let mut held = Vec::new();
        for path in &made {
            for file in lockable_files(path)? {
                match lock(&file)? {
                    Some(lock) => held.push(lock),
                    None => {
                        return Err(Fatal(format!(
                            "refusing to reset {}: {} is in use by a running process (a tsd or \
                             a synchronizer); stop it first",
                            self.dir.display(),
                            file.display()
                        )));
                    }
                }
            }
        }
        for path in made {
            std::fs::remove_dir_all(&path)
                .map_err(|e| Fatal::new(format_args!("cannot delete {}", path.display()), e))?;
        }
        Ok(())
    }
}

/// Refuses, in one line and before anything is created or deleted, to reset a folder that
/// holds anything TSN did not make. A missing folder is fine.
pub fn check_resettable(dir: &Path) -> Result<(), Fatal> {
    made_by_tsn(dir).map(drop)
}

/// The folders TSN made in `dir` (not the lock file), or a refusal naming what it holds
/// that TSN did not make. A missing folder holds nothing.
fn made_by_tsn(dir: &Path) -> Result<Vec<PathBuf>, Fatal> {
    let refuse = |what: &Path| {
        Fatal(format!(
            "refusing to reset {}: it holds {}, which TSN did not make; give a folder of TSN's \
             data, or delete it yourself",
            dir.display(),
            what.display()
        ))
    };
    let mut made = Vec::new();
    for path in listing(dir)? {
        let name = file_name(&path);
        if name == LOCK_FILE && path.is_file() {
            continue;
        }
        let is_dir = path.is_dir() && !path.is_symlink();
        if is_dir && name == "logs" {
            // The children's logs: `<member>.log` files.
            if let Some(foreign) = listing(&path)?.into_iter().find(|inside| {
                !(file_name(inside).ends_with(".log") && inside.is_file() && !inside.is_symlink())
            }) {
                return Err(refuse(&foreign));
            }
            made.push(path);
        } else if is_dir && is_numbered(&path, "synchronizer_") {
            if let Some(foreign) = listing(&path)?.into_iter().find(|inside| {
                let name = file_name(inside);
                !(name.starts_with(tsn_fs::SYNCHRONIZER_ID_FILE)
                    || name == tsn_fs::SYNCHRONIZER_LOCK_FILE)
            }) {
                return Err(refuse(&foreign));
            }
            made.push(path);
        } else if is_dir && is_member_dir(&name) {
            // A member's own folder, on a host of its own: TSN's folders, nothing else.
            made_by_tsn(&path).map_err(|_| refuse(&path))?;
            made.push(path);
        } else if is_dir && is_numbered(&path, "cluster_") {
            if let Some(foreign) = listing(&path)?.into_iter().find(|inside| {
                let name = file_name(inside);
                let known = name == "inbox" || is_number(&name);
                !(known && inside.is_dir() && !inside.is_symlink())
            }) {
                return Err(refuse(&foreign));
            }
            made.push(path);
        } else {
            return Err(refuse(&path));
        }
    }
    Ok(made)
}

/// Whether `name` is a member's own folder, as `tsn-local --hosts` gives each member:
/// `tsd-<c>-<s>` or `synchronizer-<c>`.
fn is_member_dir(name: &str) -> bool {
    let numbers = |rest: &str, count: usize| {
        let parts: Vec<&str> = rest.split('-').collect();
        parts.len() == count && parts.iter().all(|p| is_number(p))
    };
    name.strip_prefix("tsd-")
        .is_some_and(|rest| numbers(rest, 2))
        || name
            .strip_prefix("synchronizer-")
            .is_some_and(|rest| numbers(rest, 1))
}

/// Whether `path` is named `<prefix><c>`, as `cluster_2` or `synchronizer_2`.
fn is_numbered(path: &Path, prefix: &str) -> bool {
    file_name(path).strip_prefix(prefix).is_some_and(is_number)
}

/// Whether `name` is a cluster or server id as TSN writes it: digits, no leading zero.
fn is_number(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('0')
        && name.bytes().all(|b| b.is_ascii_digit())
        && name.parse::<u32>().is_ok()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The entries of `dir`, sorted; none when it does not exist.
fn listing(dir: &Path) -> Result<Vec<PathBuf>, Fatal> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Fatal::new(format_args!("cannot read {}", dir.display()), e)),
    };
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Fatal::new(format_args!("cannot read {}", dir.display()), e))?;
    paths.sort();
    Ok(paths)
}

/// The files under `made` (a folder TSN made) that a running process holds locked: each
/// replica's change log (a tsd; and the inbox files of earlier versions), a synchronizer's
/// lock.
fn lockable_files(made: &Path) -> Result<Vec<PathBuf>, Fatal> {
    let mut files = Vec::new();
    if is_member_dir(&file_name(made)) {
        for inside in made_by_tsn(made)? {
            files.extend(lockable_files(&inside)?);
        }
    } else if is_numbered(made, "synchronizer_") {
        files.push(made.join(tsn_fs::SYNCHRONIZER_LOCK_FILE));
    } else if is_numbered(made, "cluster_") {
        for inside in listing(made)? {
            if file_name(&inside) == "inbox" {
                files.extend(listing(&inside)?);
            } else {
                files.push(inside.join(tsn_fs::LOG_FILE));
            }
        }
    }
    files.retain(|f| f.is_file());
    Ok(files)
}

/// `path`'s lock, held while the returned file is open; `None` when another process holds
/// it.
fn lock(path: &Path) -> Result<Option<File>, Fatal> {
    let file = File::open(path)
        .map_err(|e| Fatal::new(format_args!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(Fatal::new(
            format_args!("cannot lock {}", path.display()),
            e,
        )),
    }
}
