//! Appends, flushes and reads from many tasks at once keep the log whole and in order.

use std::sync::{Arc, Mutex};

use tsn_core::Store;
use tsn_core::id::{Position, Time};

use crate::common::{Writer, open};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_flushes_and_reads_agree() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (store, _) = open(dir.path());
    let store = Arc::new(store);
    let writer = Arc::new(Mutex::new(Writer::after(&store)));
    store
        .append(&[writer.lock().expect("writer").join(1)])
        .expect("append");

    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let (store, writer) = (Arc::clone(&store), Arc::clone(&writer));
        tasks.push(tokio::spawn(async move {
            for seq in 1..=25 {
                {
                    let mut w = writer.lock().expect("writer");
                    let text = format!("post {seq} of task {task}");
                    let entry = w.post(1, task * 100 + seq, Time(seq), &text);
                    store.append(&[entry]).expect("append");
                }
                let appended = store.read(|s| s.last().position);
                let durable = store.flush().await.expect("flush");
                assert!(durable >= appended, "a flush covers what came before it");
            }
        }));
    }
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for _ in 0..50 {
                let entries = store.entries_after(Position(0), 1000).await.expect("read");
                for (i, entry) in entries.iter().enumerate() {
                    assert_eq!(entry.position, Position(i as u64 + 1), "in order, no gaps");
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for task in tasks {
        task.await.expect("a writer task");
    }
    reader.await.expect("the reader task");

    let all = store.entries_after(Position(0), 1000).await.expect("read");
    assert_eq!(all.len(), 201);
    assert_eq!(store.durable(), Position(201));
    let store = Arc::into_inner(store).expect("the last handle");
    drop(store);
    let (store, recovery) = open(dir.path());
    assert_eq!(recovery.entries, 201);
    assert_eq!(
        store.entries_after(Position(0), 1000).await.expect("read"),
        all
    );
}
