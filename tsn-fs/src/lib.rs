//! TSN's [`Store`](tsn_core::Store) on the local file system: [`FileStore`], one folder per
//! replica, holding a change log that is the truth and, beside it, the course's readable
//! files kept current from it; and the files through which a cluster's synchronizer and
//! its master hand each other what goes to and comes from other clusters ([`LogTail`],
//! [`read_commit`], [`InboxWriter`], [`InboxPeer`], [`DirWatch`]).
//!
//! # Files
//!
//! A replica lives in `<data-dir>/cluster_<c>/<s>/` ([`replica_dir`]):
//!
//! | file | what it holds |
//! | --- | --- |
//! | `changes.log` | the change log: every entry of the replica, in position order |
//! | `membership.json` | the replica's cluster and the number of clusters it was made for ([`recorded_membership`]) |
//! | `commit` | the commit marker: how far the log is committed, as the replica last knew it as master ([`COMMIT_FILE`], [`read_commit`]) |
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
//! with the post's time in UTC and the text escaped so that no text can break a record
//! (see [`tsn_core::course`], which also reads such files back). Everything else the system needs (follow
//! times, epochs, post ids, positions) is in the change log.
//!
//! The view's files are written by the store and by nothing else: a rebuild removes the view
//! files (names of the forms above) of users the view does not have, and leftover
//! temporary files `.<name>.tmp`. Other files in the folder are left alone.
//!
//! Beside the replicas, the cluster's folder holds its **inbox**,
//! `<data-dir>/cluster_<c>/inbox/` ([`inbox_dir`]), with one file `from_<x>.log` per other
//! cluster `x` ([`inbox_file`]): what the cluster's synchronizer received from `x`.
//!
//! # Who writes and who reads
//!
//! Every file has one writer. The synchronizer of a cluster is a process of its own that
//! talks only to the coordinator and the other synchronizers; with its cluster it talks
//! through these files:
//!
//! | file | written by | read by | durable |
//! | --- | --- | --- | --- |
//! | `<s>/changes.log` | server `s`'s [`FileStore`] | that store; the synchronizer, in its master's folder, with a [`LogTail`] | up to [`Store::durable`](tsn_core::Store::durable): synced by `flush` |
//! | `<s>/commit` | server `s`'s store, while master ([`Store::record_commit`](tsn_core::Store::record_commit)) | the synchronizer ([`read_commit`]): it exports the entries up to it | never synced: a lower bound of the commit position |
//! | `<s>/membership.json` | the store, once | the store; `tsd` at start | synced |
//! | `<s>/*.txt` | the store's view writer | people and course tools | never synced; rebuilt at open |
//! | `inbox/from_<x>.log` | the synchronizer ([`InboxWriter`], which locks it) | the master ([`InboxPeer`]): it merges and appends to its log | never synced: a buffer |
//!
//! * **Out.** The synchronizer reads its master's commit marker, then the log with a
//!   [`LogTail`], and exports only entries up to the marker: entries no failover can take
//!   back. The marker is written after the entries it names are durable on the master, so
//!   it is never ahead of the log, even after a crash of the machine; it can be behind (or
//!   0), which delays an export and loses nothing.
//! * **In.** The synchronizer appends each batch it receives to the inbox file of its
//!   source. The master reads it through [`InboxPeer`], merges
//!   ([`tsn_core::sync::merge`]) and appends the result — with the merge cursor,
//!   [`Change::Imported`](tsn_core::change::Change::Imported) — through its normal write
//!   path: committed, replicated, durable. Nothing of the inbox needs to survive a crash:
//!   the synchronizer fetches again from the cursor in the cluster's log, and merging twice
//!   changes nothing. Once the file is over [`INBOX_COMPACT_LIMIT`] and everything in it is
//!   merged, the synchronizer starts it afresh ([`InboxWriter::compact`]).
//! * **Waiting.** Both sides wait for the other's writes with a [`DirWatch`] (inotify, with
//!   polling as the fallback): the master on the inbox folder, the synchronizer on its
//!   master's folder (`commit` and `changes.log`).
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
//! cuts it at a record boundary. An inbox file is framed the same way, each payload the
//! JSON of a batch, a [`Changes`](tsn_core::sync::Changes): `{"through":P,"entries":[...]}`.
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
//! * [`record_commit`](tsn_core::Store::record_commit) writes the commit marker in place
//!   (8 bytes, little-endian, at offset 0, through a handle opened at open) when the
//!   position grows, and never syncs it. An open creates it holding 0, and resets it to 0
//!   if it names more entries than the log holds; a truncation lowers it to what is kept.
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
//! * A [`LogTail`] reads whatever is in the file, durable or not, committed or not: its
//!   reader bounds what it uses by the commit marker.
//! * Damage in the middle of an inbox file (only a damaged disk or a foreign writer makes
//!   it: [`InboxWriter`] cuts a torn tail before it appends) is logged and passed over to
//!   the end of the file; the changes it held reach this cluster only if the synchronizer
//!   fetches them again.

mod commit;
mod inbox;
mod layout;
mod log;
mod membership;
mod recovery;
mod store;
mod tail;
mod view;
mod watch;

pub use commit::{COMMIT_FILE, read_commit};
pub use inbox::{INBOX_COMPACT_LIMIT, InboxPeer, InboxWriter, inbox_dir, inbox_file};
pub use log::Damage;
pub use membership::{MEMBERSHIP_FILE, recorded_membership};
pub use recovery::{Cut, Recovery};
pub use store::{FileStore, LOG_FILE, cluster_dir, replica_dir};
pub use tail::LogTail;
pub use watch::DirWatch;
