//! Reading a change log back into a state at open, and what the open repaired.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::sync::mpsc;

use tsn_core::change::Entry;
use tsn_core::id::Membership;
use tsn_core::state::State;

use crate::index::Index;
use crate::layout::{Layout, ViewFile};
use crate::log::{At, Damage, Record, Scanner};

/// What [`FileStore::open`](crate::FileStore::open) found and repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Whole, sound records read from the log and applied.
    pub entries: u64,
    /// The damaged tail cut from the log, if there was one.
    pub cut: Option<Cut>,
    /// How many course view files were written: none when the view's marker said it was
    /// current (and no file was missing), at most the files the entries after the marker
    /// touch when it was behind, at most every file when the whole view was rebuilt. A
    /// file that already held what it should is not written.
    pub view_files: usize,
}

/// A damaged tail cut from the change log at open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Where the log now ends: the end of its last sound record.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// What was wrong with the first record cut.
    pub damage: Damage,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "read {} log entries", self.entries)?;
        if let Some(cut) = &self.cut {
            write!(f, "; {cut}")?;
        }
        write!(f, "; wrote {} course view files", self.view_files)
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cut {} bytes from the log at offset {} ({})",
            self.bytes, self.offset, self.damage
        )
    }
}

/// A log read back: the state it implies, and where its records are.
#[derive(Debug)]
pub(crate) struct Replay {
    /// Every sound record applied.
    pub(crate) state: State,
    /// The course view's lists.
    pub(crate) layout: Layout,
    /// Where the records start.
    pub(crate) index: Index,
    /// The end of the last sound record.
    pub(crate) end: u64,
    /// What stopped the reading before `len`, if anything did.
    pub(crate) damage: Option<Damage>,
    /// The view files the entries after the position `replay` was given touch.
    pub(crate) touched: HashSet<ViewFile>,
}

/// Reads the records of `file` from its start up to `len` bytes, applying each, and stops
/// at the first one that is not whole, sound and the next of the log; notes the view files
/// the entries after position `touched_after` (if given) touch. An error is a failure to
/// read.
pub(crate) fn replay(
    file: &File,
    membership: Membership,
    len: u64,
    touched_after: Option<u64>,
) -> io::Result<Replay> {
    let mut replay = Replay {
        state: State::new(membership),
        layout: Layout::new(membership),
        index: Index::default(),
        end: 0,
        damage: None,
        touched: HashSet::new(),
    };
    // One thread reads and decodes the records while this one applies them: at the scale
    // of millions of records the two take about as long each. Where this one stops early,
    // it drops `decoded`; the decoding thread's next send fails, and it ends.
    let (records, decoded) = mpsc::sync_channel::<io::Result<Vec<Record>>>(BATCHES_AHEAD);
    std::thread::scope(|scope| -> io::Result<()> {
        scope.spawn(move || decode(file, len, &records));
        let mut edits = Vec::new();
        for batch in decoded {
            for record in batch? {
                let (entry, len) = match record {
                    Record::End => return Ok(()),
                    Record::Damaged(damage) => {
                        replay.damage = Some(damage);
                        return Ok(());
                    }
                    Record::Whole { value, len } => (value, len),
                };
                let watched = touched_after.is_some_and(|after| entry.position.0 > after);
                let applied = replay
                    .state
                    .check_follows(std::slice::from_ref(&entry))
                    .and_then(|()| {
                        replay.layout.apply(
                            &mut replay.state,
                            &entry,
                            watched.then_some(&mut edits),
                        )
                    });
                for edit in edits.drain(..) {
                    replay.touched.extend(edit.files());
                }
                if let Err(e) = applied {
                    replay.damage = Some(Damage::OutOfOrder(e.to_string()));
                    return Ok(());
                }
                replay.index.push(replay.end);
                replay.end += len;
            }
        }
        Ok(())
    })?;
    Ok(replay)
}

/// How many records one batch from the decoding thread holds.
const BATCH: usize = 1024;

/// How many batches the decoding thread may be ahead of the applying one.
const BATCHES_AHEAD: usize = 16;

/// Reads and decodes the records of `file` up to `len`, in batches of [`BATCH`], into
/// `records`, until the first that is not whole and sound (sent as the last record), a
/// failure to read (sent as an error), or `records` has no receiver.
fn decode(file: &File, len: u64, records: &mpsc::SyncSender<io::Result<Vec<Record>>>) {
    let mut scanner = Scanner::new(BufReader::with_capacity(1 << 16, At::new(file, 0, len)));
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        let mut last = false;
        while batch.len() < BATCH && !last {
            match scanner.next::<Entry>() {
                Ok(record) => {
                    last = !matches!(record, Record::Whole { .. });
                    batch.push(record);
                }
                Err(e) => {
                    let _ = records.send(Err(e));
                    return;
                }
            }
        }
        if records.send(Ok(batch)).is_err() || last {
            return;
        }
    }
}
