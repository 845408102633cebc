//! TSN's [`Store`](tsn_core::Store) on the local file system: [`FileStore`], one folder per
//! replica, holding a change log that is the truth and, beside it, the course's readable
//! files kept current from it; and a synchronizer's own folder ([`synchronizer_dir`]),
//! which holds only its identity and its lock. No two processes share a folder: a
//! synchronizer meets its cluster's master over the network.
//!
//! # Files
//!
//! A replica lives in `<data-dir>/cluster_<c>/<s>/` ([`replica_dir`]):
//!
//! | file | what it holds |
//! | --- | --- |
//! | `changes.log` | the change log: every entry of the replica, in position order |
//! | `membership.json` | the replica's cluster and the number of clusters it was made for ([`recorded_membership`]) |
//! | `replica.id` | the replica's identity, a random number made with the folder ([`folder_id()`]): a server restarted on this folder is the same server; another folder claiming its place while it runs is a second copy |
//! | `commit` | the commit marker: how far the log is committed, as the replica last knew it as master ([`COMMIT_FILE`]); an open refuses to cut damaged entries up to it |
//! | `view.pos` | the view marker: the log position through which the course view is current ([`VIEW_POS_FILE`]; see [The course view](#the-course-view)) |
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
//! # Who writes and who reads
//!
//! Every file has one writer, the replica's own store, and the replica's folder one
//! process, its server (the log is locked while a store has it open):
//!
//! | file | written by | read by | durable |
//! | --- | --- | --- | --- |
//! | `<s>/changes.log` | server `s`'s [`FileStore`] | that store | up to [`Store::durable`](tsn_core::Store::durable): synced by `flush` |
//! | `<s>/commit` | server `s`'s store, while master ([`Store::record_commit`](tsn_core::Store::record_commit)) | the store, at open | never synced: a lower bound of the commit position |
//! | `<s>/membership.json` | the store, once | the store; `tsd` at start | synced |
//! | `<s>/*.txt` | the store's view writer | people and course tools | never synced; repaired at open from `view.pos` |
//! | `<s>/view.pos` | the store's view writer | the store, at open | never synced |

//! # The course view
//!
//! The view is a copy of the log's content for people to read, kept by a background thread
//! of the store, the *view writer*: each append computes the edits it makes to the view
//! files (lines appended to a list, a post's record appended to its author's posts file and
//! to the timelines it is delivered to, a list rewritten after an unfollow, a new local
//! user's four files), and queues them.
//!
//! * **Only durable entries.** The writer writes an entry's edits once the entry is durable
//!   (after the flush that wrote it), so that the view never shows what a crash can take
//!   from the log. [`FileStore::settle_view`] is the exception: it has everything queued
//!   written at once, and the marker says "unknown" until the log is durable that far.
//! * **In batches.** The writer takes everything that is ready at once, groups the edits by
//!   file (keeping their order within a file) and writes each file once: one append (one
//!   `write`), or one rewrite under a temporary name renamed over the file. After a batch it
//!   gathers edits for 20 ms before the next (unless the queue fills), so that under a
//!   steady stream of appends a busy file is written once per batch, not once per append.
//! * **A bounded queue.** The queued edits take at most a few MB (4 MiB, counting a post's
//!   record once per file it goes to). An append never waits for the writer: when the
//!   queue is full, it drops the edits of that append and of every later one and notes only
//!   which files they touch — the view is *stale*. Once the writer has written what was
//!   queued before, it repairs those files a chunk at a time from the store's state (for
//!   the files that only grow, just the records or lines they lack), then takes edits
//!   again. Under an overload the view lags behind and catches up once the load drops;
//!   memory stays bounded, and an append waits at most for one repair step's taking under
//!   the store's lock: about 2 ms of rendering, at most 4,096 records of any one file (a
//!   file further behind gets the rest on later steps), the files read and their records
//!   counted before the lock is taken. The log is never affected.
//! * **The marker**, `view.pos`: 8 bytes little-endian at offset 0, written in place (a
//!   positioned write, never synced) by the writer when it runs out of work, and at most
//!   every 200 ms while it is busy. It holds a position `P`: every edit of the entries up to
//!   `P` is written, and no file shows anything of an entry the log may lose; a file may
//!   show entries after `P` only if one of them touches it. It holds `u64::MAX` while that
//!   cannot be said (a rebuild in progress, or edits written early for `settle_view`), and
//!   it is removed when a view write fails.
//!
//! At open, after the log is read (and repaired):
//!
//! * if the marker equals the log's end, nothing is written: the open only lists the folder,
//!   writes the view files that are missing and removes files of users the view does not
//!   have and leftover temporary files;
//! * if it is behind the log's end (a crash, or a close during an overload), the files the
//!   entries after it touch (a post's author's posts file and the timelines it is delivered
//!   to, `all_users.txt` for a new user, the follower's following file and the followee's
//!   followers file for a follow or an unfollow, the four files of a user first named
//!   there) are made to hold what the state says, and the missing ones written, as above;
//! * if it is missing, unreadable or ahead of the log (a log cut by a truncation or by a
//!   crash), or the open cut a damaged tail off the log, every file is made to hold what the
//!   state says, and files of users the view does not have are removed: a *full rebuild*.
//!
//! A file is only written when it does not hold what it should already: appended to when it
//! holds a beginning of it, else replaced (under a temporary name, renamed over the old);
//! [`Recovery::view_files`] counts them. The open then records the log's end in the marker.
//! [`Store::truncate_after`](tsn_core::Store::truncate_after) has the writer rebuild the view
//! whole (the marker "unknown" meanwhile) and record the kept position.
//!
//! **After a power loss**, neither the view files nor the marker were synced: the marker may
//! say the view is current while files lost their last writes. Delete `view.pos` before the
//! next open to force a full rebuild (likewise after editing view files by hand).
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
//!   are durable on its own disk). The last 32,768 durable entries stay in memory too, so
//!   that a slave or a feed that keeps up reads neither the file nor its JSON.
//! * [`flush`](tsn_core::Store::flush) writes every queued record with one `write` and one
//!   `fdatasync`; callers that flush at the same time share it (group commit). When it
//!   returns, everything appended before the call is durable.
//! * [`truncate_after`](tsn_core::Store::truncate_after) flushes, cuts the file and syncs
//!   before returning.
//! * The course view is written by a background thread shortly after each flush, from
//!   entries that are durable, and is never synced: after a crash it may be behind the log,
//!   and the next open repairs it from the log, as its marker says (see [The course
//!   view](#the-course-view)). [`FileStore::settle_view`] waits until the queued view writes
//!   are done, including those of entries not yet durable.
//! * [`record_commit`](tsn_core::Store::record_commit) writes the commit marker in place
//!   (8 bytes, little-endian, at offset 0, through a handle opened at open) when the
//!   position grows, and never syncs it. An open creates it holding 0, and resets it to 0
//!   if it names more entries than the log holds; a truncation lowers it to what is kept.
//!
//! # Repair at open
//!
//! [`FileStore::open`] reads the log from its start and stops at the first record that is
//! incomplete, fails its checksum, is longer than the limit, holds no entry, or is not the
//! log's next position. If no sound record follows it anywhere in the file, that is a
//! *torn tail*: it cuts the file at the end of the last sound record (and syncs), reports
//! the cut in the [`Recovery`] it returns and logs it with `tracing::warn!`. A crash in the
//! middle of a flush thus loses only that flush's entries, which no caller was told were
//! durable. A bad record with sound records after it, at a position the view or commit
//! marker says was durable, is damage in the middle of the log (a flipped bit on disk),
//! which no crash makes: cutting there would drop committed entries and reuse their
//! positions, so the open refuses ([`Error::Corrupt`](tsn_core::Error), naming the file,
//! the position and the offset) and changes nothing. (Past the markers, sound records after
//! a bad one can be a multi-record write that a power loss tore, later sectors kept: that
//! is cut as a torn tail.) The replica's folder
//! can then be restored, or moved away so that its server starts empty and copies the log
//! from its master. The open then brings the course view up to date from the rebuilt
//! state, as [the view's marker](#the-course-view) says.
//!
//! The log file is locked (`flock`) while a store has it open, so that two processes never
//! write one replica.
//!
//! # Caveats
//!
//! * The whole state and a sparse index of record offsets (8 bytes per 64 entries) are
//!   kept in memory, and an open replays the whole log; there are no snapshots.
//! * A failed write to the log is cut off again and retried by the next flush; if even the
//!   cut fails, the store refuses every further write (reopen it to recover).
//! * Entries appended while a `truncate_after` runs are dropped with the tail.
//! * A view write that fails (a full disk) is logged and skipped, and the writer removes
//!   `view.pos`: the view is then out of date until the next open, which rebuilds it whole.
//! * The view is never read at open when its marker is current (the folder is only listed):
//!   a view file changed behind the store's back stays as it is. Deleting `view.pos` makes
//!   the next open compare every file with what it should hold.

mod audit;
mod commit;
mod folder_id;
mod index;
mod layout;
mod log;
mod membership;
mod recovery;
mod store;
mod synchronizer;
mod throttle;
mod view;

pub use audit::{Audit, audit};
pub use commit::COMMIT_FILE;
pub use folder_id::{REPLICA_ID_FILE, SYNCHRONIZER_ID_FILE, folder_id};
pub use log::Damage;
pub use membership::{MEMBERSHIP_FILE, recorded_membership};
pub use recovery::{Cut, Recovery};
pub use store::{FileStore, LOG_FILE, cluster_dir, replica_dir};
pub use synchronizer::{SYNCHRONIZER_LOCK_FILE, SynchronizerClaim, synchronizer_dir};
pub use view::VIEW_POS_FILE;
