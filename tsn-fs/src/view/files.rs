//! Writing view files: a file made to hold a text with as little writing as it can, and a
//! whole view brought up to date at open.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use tsn_core::state::State;

use crate::layout::{Layout, ViewFile};

/// Replaces the content of `file`: written under a temporary name, then renamed over it.
pub(super) fn replace(dir: &Path, file: ViewFile, text: &[u8]) -> io::Result<()> {
    let name = file.name();
    let temporary = dir.join(temporary_name(&name));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, dir.join(name))
}

/// Makes `file` hold `text`, writing as little as it can: nothing if it does already; what
/// it lacks if it holds a beginning of `text` (a file a crash or a repair left behind);
/// else a new file, or a replacement ([`replace`]). Returns whether it wrote.
fn update(dir: &Path, file: ViewFile, text: &[u8]) -> io::Result<bool> {
    let path = dir.join(file.name());
    match fs::read(&path) {
        Ok(old) if old == text => Ok(false),
        Ok(old) if text.starts_with(&old) => {
            OpenOptions::new()
                .append(true)
                .open(&path)?
                .write_all(&text[old.len()..])?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut new) => new.write_all(text)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => replace(dir, file, text)?,
                Err(e) => return Err(e),
            }
            Ok(true)
        }
        _ => replace(dir, file, text).map(|()| true),
    }
}

fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// The view files in `dir` that `layout` has; removes the view files (names of the view's
/// forms) of users it does not have and leftover temporary files.
fn scan(dir: &Path, layout: &Layout) -> io::Result<HashSet<ViewFile>> {
    let mut present = HashSet::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match ViewFile::parse(name) {
            Some(file) if layout.has(file) => {
                present.insert(file);
                false
            }
            Some(_) => true,
            None => name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .and_then(ViewFile::parse)
                .is_some(),
        };
        if stale && item.file_type()?.is_file() {
            fs::remove_file(item.path())?;
        }
    }
    Ok(present)
}

/// Which files [`update_view`] compares with what they should hold.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope<'a> {
    /// Every file of the view: a full rebuild.
    Every,
    /// These (the files the entries after the marker touch), and the missing ones: a view
    /// that was current through the marker's position.
    Touched(&'a HashSet<ViewFile>),
}

/// Makes the files of the view in `scope` hold what `state` and its `layout` say (writing
/// only those that differ), and removes view files (and leftover temporary files) of users
/// the view does not have. Returns how many files were written.
pub(crate) fn update_view(
    dir: &Path,
    layout: &Layout,
    state: &State,
    scope: Scope<'_>,
) -> io::Result<usize> {
    let present = scan(dir, layout)?;
    let mut written = 0;
    for file in layout.files() {
        let compared = match scope {
            Scope::Every => true,
            Scope::Touched(touched) => touched.contains(&file) || !present.contains(&file),
        };
        if compared && update(dir, file, layout.render(file, state).as_bytes())? {
            written += 1;
        }
    }
    Ok(written)
}
