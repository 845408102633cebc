//! The core's `Store` contract, run against the file store.

use tempfile::TempDir;
use tsn_core::store::conformance::{self, Harness};
use tsn_fs::FileStore;

use crate::common::{membership, open};

/// Each store in a fresh temporary folder; a reopen drops the store and opens its folder.
#[derive(Default)]
struct FileHarness {
    dirs: Vec<TempDir>,
}

impl Harness for FileHarness {
    type Store = FileStore;

    fn open(&mut self) -> FileStore {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (store, recovery) = open(dir.path());
        assert_eq!(recovery.entries, 0);
        assert_eq!(recovery.cut, None);
        self.dirs.push(dir);
        store
    }

    fn reopen(&mut self, store: FileStore) -> FileStore {
        let dir = store.dir().to_path_buf();
        drop(store);
        let (store, recovery) = FileStore::open(&dir, membership()).expect("reopen");
        assert_eq!(recovery.cut, None, "a clean close leaves nothing to repair");
        store
    }
}

#[tokio::test]
async fn file_store_meets_the_store_contract() {
    conformance::run_all(&mut FileHarness::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_meets_the_store_contract_on_many_threads() {
    conformance::run_all(&mut FileHarness::default()).await;
}
