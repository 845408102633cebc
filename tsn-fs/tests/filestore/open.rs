//! Opening: where replicas live, and folders that cannot hold one.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tsn_core::Error;
use tsn_core::id::{ClusterId, ServerId};
use tsn_fs::{FileStore, replica_dir};

use crate::common::{membership, open};

/// The error of opening `dir`, which must fail with a storage error naming `names`.
fn refused(dir: &Path, names: &Path) -> String {
    let error = FileStore::open(dir, membership()).expect_err("the open fails");
    assert!(matches!(error, Error::Storage { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&names.display().to_string()),
        "the message names {}: {message}",
        names.display()
    );
    message
}

#[test]
fn replicas_live_in_the_course_layout() {
    assert_eq!(
        replica_dir(Path::new("/data"), ClusterId(2), ServerId(1)),
        Path::new("/data/cluster_2/1")
    );
}

#[test]
fn open_creates_the_replica_folder() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let dir = replica_dir(data.path(), ClusterId(1), ServerId(2));
    let (store, recovery) = open(&dir);
    assert_eq!(recovery.entries, 0);
    assert_eq!(recovery.view_files, 1, "all_users.txt");
    assert_eq!(store.dir(), dir);
    assert!(dir.join("changes.log").is_file());
    assert_eq!(
        fs::read_to_string(dir.join("all_users.txt")).expect("read"),
        ""
    );
}

#[test]
fn a_regular_file_is_no_replica_folder() {
    let data = tempfile::tempdir().expect("a temporary folder");
    let file = data.path().join("plain");
    fs::write(&file, "not a folder").expect("write");
    let message = refused(&file, &file);
    assert!(message.contains("creating the replica folder"), "{message}");
    let below = file.join("cluster_1").join("1");
    refused(&below, &below);
}

#[test]
fn a_log_that_is_a_folder_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    fs::create_dir(dir.path().join("changes.log")).expect("mkdir");
    refused(dir.path(), &dir.path().join("changes.log"));
}

#[test]
fn one_replica_is_opened_once() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let message = refused(dir.path(), &dir.path().join("changes.log"));
    assert!(message.contains("another process"), "{message}");
    drop(store);
    open(dir.path());
}

#[test]
fn a_folder_that_cannot_be_used_is_refused() {
    let data = tempfile::tempdir().expect("a temporary folder");
    // Under a file: no one, root included, can make the folder.
    let file = data.path().join("a-file");
    fs::write(&file, "not a folder").expect("write");
    let under_a_file = file.join("replica");
    refused(&under_a_file, &under_a_file);
    assert_eq!(
        fs::read_to_string(&file).expect("read"),
        "not a folder",
        "the file is kept"
    );

    // Without permission: refused, unless the tests run with privileges that ignore
    // permissions (root), which the folder under a file above covers.
    let locked = data.path().join("locked");
    fs::create_dir(&locked).expect("mkdir");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
    if fs::read_dir(&locked).is_err() {
        refused(&locked, &locked.join("changes.log"));
    }
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("chmod");
}
