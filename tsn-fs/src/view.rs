//! The course view's writer: a thread that carries out the edits the store computes, and
//! rebuilds the whole view from a state.
//!
//! The view is never synced to disk: the log is the truth, and the view is rebuilt from it
//! at every open. A write that fails is logged and skipped; the next open repairs it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tsn_core::state::State;

use crate::layout::{Edit, Layout, ViewFile};
use tsn_core::course::post_record;

/// How many append handles the writer keeps open; the least recently used is closed first.
const OPEN_FILES: usize = 64;

/// Work for the writer thread, in the order the store queued it.
#[derive(Debug)]
pub(crate) enum Op {
    /// The edits of one append.
    Edits(Vec<Edit>),
    /// Rewrite the whole view from a state and its layout.
    Rebuild(Box<(State, Layout)>),
    /// Answer once everything queued before is written.
    Settle(oneshot::Sender<()>),
}

/// Starts the writer thread for the view in `dir`; it runs until every sender is dropped
/// and its queue is done.
pub(crate) fn spawn(dir: PathBuf) -> io::Result<(Sender<Op>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("tsn-fs-view".to_owned())
        .spawn(move || Writer::new(dir).run(rx))?;
    Ok((tx, thread))
}

/// The writer thread's side.
struct Writer {
    dir: PathBuf,
    open: Handles,
}

impl Writer {
    fn new(dir: PathBuf) -> Self {
        Writer {
            dir,
            open: Handles::default(),
        }
    }

    fn run(mut self, rx: Receiver<Op>) {
        for op in rx {
            match op {
                Op::Edits(edits) => {
                    for edit in edits {
                        self.edit(edit);
                    }
                }
                Op::Rebuild(rebuild) => {
                    self.open.clear();
                    let (state, layout) = *rebuild;
                    if let Err(e) = rebuild_view(&self.dir, &layout, &state) {
                        tracing::warn!(
                            dir = %self.dir.display(),
                            error = %e,
                            "could not rebuild the course view; the next open rebuilds it"
                        );
                    }
                }
                Op::Settle(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn edit(&mut self, edit: Edit) {
        match edit {
            Edit::Append { file, text } => self.append(file, text.as_bytes()),
            Edit::Post { files, post } => {
                let record = post_record(&post);
                for file in files {
                    self.append(file, record.as_bytes());
                }
            }
            Edit::Rewrite { file, text } => {
                self.open.remove(file);
                if let Err(e) = replace(&self.dir, file, &text) {
                    self.warn(file, &e);
                }
            }
        }
    }

    fn append(&mut self, file: ViewFile, bytes: &[u8]) {
        let dir = &self.dir;
        let written = self
            .open
            .get(file, || {
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(dir.join(file.name()))
            })
            .and_then(|handle| handle.write_all(bytes));
        if let Err(e) = written {
            self.open.remove(file);
            self.warn(file, &e);
        }
    }

    fn warn(&self, file: ViewFile, error: &io::Error) {
        tracing::warn!(
            file = %self.dir.join(file.name()).display(),
            %error,
            "could not update the course view; the next open rebuilds it"
        );
    }
}

/// Open append handles, the least recently used closed first.
#[derive(Default)]
struct Handles {
    files: HashMap<ViewFile, (File, u64)>,
    clock: u64,
}

impl Handles {
    fn get(
        &mut self,
        file: ViewFile,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<&mut File> {
        self.clock += 1;
        if !self.files.contains_key(&file) {
            if self.files.len() >= OPEN_FILES {
                let oldest = self
                    .files
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(&f, _)| f);
                if let Some(oldest) = oldest {
                    self.files.remove(&oldest);
                }
            }
            self.files.insert(file, (open()?, 0));
        }
        let (handle, used) = self
            .files
            .get_mut(&file)
            .expect("the handle was just inserted");
        *used = self.clock;
        Ok(handle)
    }

    fn remove(&mut self, file: ViewFile) {
        self.files.remove(&file);
    }

    fn clear(&mut self) {
        self.files.clear();
    }
}

/// Replaces the content of `file`: written under a temporary name, then renamed over it.
fn replace(dir: &Path, file: ViewFile, text: &str) -> io::Result<()> {
    let name = file.name();
    let temporary = dir.join(temporary_name(&name));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, dir.join(name))
}

fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// Writes every file of the view from `state` and its `layout`, and removes view files
/// (and leftover temporary files) of users the view no longer has. Returns how many files
/// were written.
pub(crate) fn rebuild_view(dir: &Path, layout: &Layout, state: &State) -> io::Result<usize> {
    let mut written = 0;
    for file in layout.files() {
        replace(dir, file, &layout.render(file, state))?;
        written += 1;
    }
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match ViewFile::parse(name) {
            Some(file) => !layout.has(file),
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
    Ok(written)
}
