//! Helpers: entries at consecutive positions, and opening stores in temporary folders.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tsn_core::Store;
use tsn_core::change::{Change, Entry};
use tsn_core::id::{Epoch, Membership, Position, Time, UserId};
use tsn_core::post::{Post, PostId, PostText};
use tsn_core::store::conformance;
use tsn_fs::{COMMIT_FILE, FileStore, LOG_FILE, MEMBERSHIP_FILE, Recovery, VIEW_POS_FILE};

/// Cluster 1 of 3: users 1, 4, 7 ... are local.
pub(crate) fn membership() -> Membership {
    conformance::membership()
}

pub(crate) fn user(n: u32) -> UserId {
    UserId::new(n).expect("a valid user id")
}

/// Opens the store in `dir`, which must succeed.
pub(crate) fn open(dir: &Path) -> (FileStore, Recovery) {
    FileStore::open(dir, membership()).expect("open the store")
}

/// Builds entries at consecutive positions.
pub(crate) struct Writer {
    next: Position,
}

impl Writer {
    pub(crate) fn after(store: &FileStore) -> Self {
        Writer {
            next: store.read(|s| s.last().position).next(),
        }
    }

    pub(crate) fn entry(&mut self, change: Change) -> Entry {
        let position = self.next;
        self.next = position.next();
        Entry {
            position,
            epoch: Epoch(1),
            change,
        }
    }

    pub(crate) fn join(&mut self, n: u32) -> Entry {
        self.entry(Change::UserJoined {
            user: user(n),
            time: Time(n.into()),
        })
    }

    pub(crate) fn follow(&mut self, follower: u32, followee: u32, time: u64) -> Entry {
        self.entry(Change::Followed {
            follower: user(follower),
            followee: user(followee),
            time: Time(time),
        })
    }

    pub(crate) fn unfollow(&mut self, follower: u32, followee: u32, time: u64) -> Entry {
        self.entry(Change::Unfollowed {
            follower: user(follower),
            followee: user(followee),
            time: Time(time),
        })
    }

    pub(crate) fn post(&mut self, author: u32, seq: u64, time: Time, text: &str) -> Entry {
        self.entry(Change::Posted(Post {
            id: PostId { origin: 42, seq },
            author: user(author),
            time,
            text: PostText::new(text).expect("a valid post"),
        }))
    }
}

/// Every file of a replica folder but the log, the membership record, the commit marker
/// and the view marker, by name, with its content.
pub(crate) fn view_files(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
        .expect("list the folder")
        .map(|item| item.expect("a folder entry").path())
        .filter(|path| {
            path.file_name().is_some_and(|name| {
                name != LOG_FILE
                    && name != MEMBERSHIP_FILE
                    && name != COMMIT_FILE
                    && name != VIEW_POS_FILE
            })
        })
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 name")
                .to_owned();
            (name, fs::read_to_string(&path).expect("read a view file"))
        })
        .collect()
}
