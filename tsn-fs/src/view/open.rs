//! The view's half of [`FileStore::open`](crate::FileStore::open): what the marker says
//! the open must write (see the crate docs, "The course view"), in two steps around the
//! repair of the log.

use std::collections::HashSet;
use std::path::Path;

use tsn_core::state::State;
use tsn_core::{Error, Result};

use super::files::{Scope, update_view};
use super::marker::{UNKNOWN, ViewPos};
use crate::layout::{Layout, ViewFile};

/// The view of a replica being opened, between the two steps.
#[derive(Debug)]
pub(crate) struct Opening {
    pos: ViewPos,
    /// What the marker held at open.
    recorded: Option<u64>,
    /// Through where the view is current, when the open may trust it: the marker is not
    /// ahead of the log, and the log loses nothing (what it loses, the view may show
    /// anywhere).
    current_through: Option<u64>,
}

impl Opening {
    /// The first step, before the log is repaired: opens the marker in `dir`, which held
    /// `recorded` when the log (`entries` whole entries) was read, and marks the view
    /// unknown unless it can be trusted (`log_is_whole`: the open cuts nothing), so that a
    /// crash before the second step rebuilds it whole.
    pub(crate) fn start(
        dir: &Path,
        recorded: Option<u64>,
        entries: u64,
        log_is_whole: bool,
    ) -> Result<Opening> {
        let current_through = recorded.filter(|&p| p <= entries && log_is_whole);
        let mut pos =
            ViewPos::open(dir).map_err(|e| failed("opening the course view marker in", dir, e))?;
        if current_through.is_none() {
            pos.record(UNKNOWN)
                .map_err(|e| failed("writing the course view marker in", dir, e))?;
        }
        Ok(Opening {
            pos,
            recorded,
            current_through,
        })
    }

    /// The second step, once the log holds its `entries` entries: makes the view hold what
    /// `state` (with `layout`) says — the files `touched` by the entries after the marker
    /// when it was behind, every file when it could not be trusted — and records `entries`
    /// in the marker. Returns the marker and how many files were written.
    pub(crate) fn finish(
        mut self,
        dir: &Path,
        layout: &Layout,
        state: &State,
        touched: &HashSet<ViewFile>,
        entries: u64,
    ) -> Result<(ViewPos, usize)> {
        let written = match self.current_through {
            Some(through) => {
                let written = update_view(dir, layout, state, Scope::Touched(touched));
                if through < entries {
                    tracing::info!(
                        dir = %dir.display(),
                        through,
                        entries,
                        touched = touched.len(),
                        "the course view was behind the log; repaired what the later entries touch"
                    );
                }
                written
            }
            None => {
                tracing::info!(
                    dir = %dir.display(),
                    marker = ?self.recorded,
                    entries,
                    "rebuilding the whole course view"
                );
                update_view(dir, layout, state, Scope::Every)
            }
        }
        .map_err(|e| failed("writing the course view in", dir, e))?;
        self.pos
            .record(entries)
            .map_err(|e| failed("writing the course view marker in", dir, e))?;
        Ok((self.pos, written))
    }
}

fn failed(what: &str, dir: &Path, e: std::io::Error) -> Error {
    Error::storage(format!("{what} {}", dir.display()), e)
}
