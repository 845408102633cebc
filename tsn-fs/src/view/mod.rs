//! The course view's writer: a thread that carries out the edits the store computes, in
//! batches, and keeps the view's marker (`view.pos`); and the repairs of the view at open.
//! What the view holds, what its marker promises and how an open uses it are described
//! once, in the crate docs ([`crate`], "The course view").
//!
//! * [`marker`]: the view marker, `view.pos`.
//! * [`queue`]: the bounded queue of edits between the store and the writer.
//! * [`writer`]: the writer thread, its batches and its repairs of a stale view.
//! * [`files`]: writing a view file, and bringing a whole view up to date.
//! * [`open`]: the view's half of an open of the store.

mod files;
mod marker;
mod open;
mod queue;
mod writer;

#[cfg(test)]
pub(crate) use files::{Scope, update_view};
pub use marker::VIEW_POS_FILE;
pub(crate) use marker::{UNKNOWN, recorded_position};
pub(crate) use open::Opening;
pub(crate) use queue::{Queue, Rebuild};
pub(crate) use writer::{Source, spawn};
