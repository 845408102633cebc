//! TSN's [`Store`](tsn_core::Store) on the local file system: [`FileStore`], one folder per
//! replica, holding a change log that is the truth and, beside it, the course's readable
//! files kept current from it.
//!
//! # Files
//!
//! A replica lives in `<data-dir>/cluster_<c>/<s>/` ([`replica_dir`]):
//!
//! | file | what it holds |
//! | --- | --- |
//! | `changes.log` | the change log: every entry of the replica, in position order |
//! | `membership.json` | the replica's cluster and the number of clusters it was made for ([`recorded_membership`]) |
//! | `all_users.txt` | every known user, one id a line, in the order they became known |
//! | `<id>_following.txt` | whom local user `<id>` follows, one id a line, in the order those follows began |
//! | `<id>_followers.txt` | who follows local user `<id>`, likewise |
//! | `<id>.txt` | the posts local user `<id>` wrote, oldest first |
//! | `<id>_timeline.txt` | the posts delivered to `<id>`'s timeline, in delivery order |
//!
//! The `.txt` files are the course's MP2.2 layout (SPEC section 5a), written for people
//! and course tools to read: the *course view*. A local user (one of the replica's
//! cluster) has its four files as soon as any entry names it. A post in `<id>.txt` and
//! `<id>_timeline.txt` is the course's four-line record:
//!
//! ```text
//! T 2026-11-25 14:03:07
//! U 4
//! W the post's text, escaped
//!
//! ```
//!
//! with the post's time in local time and the text escaped so that no text can break a
//! record ([`escape()`]: `\` → `\\`, newline → `\n`, carriage return → `\r`, other control
//! characters but tab, and U+2028/U+2029, → `\u{XXXX}`; [`unescape`] undoes it and
//! [`parse_post_records`] reads a whole file). Everything else the system needs (follow
//! times, epochs, post ids, positions) is in the change log.
//!
//! The view's files are written by the store and by nothing else: a rebuild removes the view
//! files (names of the forms above) of users the view does not have, and leftover
//! temporary files `.<name>.tmp`. Other files in the folder are left alone.
//!
//! # The change log
//!
//! `changes.log` is a sequence of records, each
//!
//! ```text
//! [u32 little-endian: payload length][u32 little-endian: CRC-32 of the payload][payload]
//! ```
//!
//! the payload being the JSON ([serde_json]) of one [`tsn_core::change::Entry`]; payloads
//! are at most 1 MiB. Records are in position order from position 1, without gaps. The log
//! is only ever appended to, except by [`Store::truncate_after`](tsn_core::Store), which
//! cuts it at a record boundary.
//!
//! # What is durable when
//!
//! * [`append`](tsn_core::Store::append) applies entries to the in-memory state (every
//!   later read sees them) and queues their records in memory: nothing is written, and
//!   they are served by `entries_after` already (a master replicates entries before they
//!   are durable on its own disk).
//! * [`flush`](tsn_core::Store::flush) writes every queued record with one `write` and one
//!   `fdatasync`; callers that flush at the same time share it (group commit). When it
//!   returns, everything appended before the call is durable.
//! * [`truncate_after`](tsn_core::Store::truncate_after) flushes, cuts the file and syncs
//!   before returning.
//! * The course view is written by a background thread shortly after each append, from
//!   entries that may not be durable yet, and is never synced: after a crash it may be
//!   behind or ahead of the log, and the next open rebuilds it from the log.
//!   [`FileStore::settle_view`] waits until the queued view writes are done.
//!
//! # Repair at open
//!
//! [`FileStore::open`] reads the log from its start and stops at the first record that is
//! incomplete, fails its checksum, is longer than the limit, holds no entry, or is not the
//! log's next position. It cuts the file at the end of the last sound record (and syncs),
//! reports the cut in the [`Recovery`] it returns and logs it with `tracing::warn!`. A crash
//! in the middle of a flush thus loses only that flush's entries, which no caller was told
//! were durable. Damage in the middle of the log (a flipped bit on disk) cuts everything
//! after it too; the replica then catches up from its master. The open then rewrites every
//! view file from the rebuilt state (each under a temporary name, renamed over the old).
//!
//! The log file is locked (`flock`) while a store has it open, so that two processes never
//! write one replica.
//!
//! # Caveats
//!
//! * The whole state and an index of record offsets (8 bytes an entry) are kept in memory,
//!   and an open replays the whole log; there are no snapshots.
//! * A failed write to the log is cut off again and retried by the next flush; if even the
//!   cut fails, the store refuses every further write (reopen it to recover).
//! * Entries appended while a `truncate_after` runs are dropped with the tail.
//! * A view write that fails (a full disk) is logged and skipped: the view is then out of
//!   date until the next open.

mod escape;
mod layout;
mod log;
mod membership;
mod recovery;
mod store;
mod view;

pub use escape::{
    BadEscape, BadRecord, PostRecord, escape, local_time, parse_post_records, post_record, unescape,
};
pub use log::Damage;
pub use membership::{MEMBERSHIP_FILE, recorded_membership};
pub use recovery::{Cut, Recovery};
pub use store::{FileStore, LOG_FILE, replica_dir};
