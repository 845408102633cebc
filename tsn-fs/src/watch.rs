//! [`DirWatch`]: waking a waiter when something in a folder changes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// How often a watch that could not be set up (or was lost) is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Wakes waiters when a file in a folder is created, written, truncated, renamed or
/// removed: [`notify`]'s watcher (inotify on Linux), with polling as the fallback.
///
/// [`changed`](DirWatch::changed) returns as soon as a change arrived since the last time
/// it returned, or else after the fallback interval, so a loop that reads, then waits,
/// then reads again never misses a change and never waits longer than the fallback. The
/// waiter reads the files again after each return: a return says only that something may
/// have changed. Reading files (opening, closing, reading them) wakes nobody.
///
/// When the watcher cannot be set up (the folder does not exist yet, or the system's
/// limit of watches is reached) or the folder itself is removed, the watch is polling:
/// `changed` returns after the fallback interval, and the watcher is tried again about
/// once a second.
///
/// One `DirWatch` serves one waiting loop: "since the last time it returned" is counted
/// per `DirWatch`. Give each loop its own.
#[derive(Debug)]
pub struct DirWatch {
    dir: PathBuf,
    /// Only changes to files of these names wake (all, when `None`).
    names: Option<Arc<[OsString]>>,
    signal: Arc<Signal>,
    /// The change count `changed` last returned at.
    seen: AtomicU64,
    watching: Mutex<Watching>,
}

/// What the watcher's callback and the waiters share.
#[derive(Debug, Default)]
struct Signal {
    /// Counts the changes seen.
    changes: AtomicU64,
    notify: Notify,
    /// Set when the watched folder itself went away: the watch must be set up again.
    lost: AtomicBool,
}

#[derive(Debug)]
enum Watching {
    Active {
        /// Kept for its thread, which stops when it is dropped.
        _watcher: RecommendedWatcher,
    },
    /// No watcher: try again at this time.
    Polling(Instant),
}

impl DirWatch {
    /// Watches every file in `dir`. Never fails: without a watcher it polls.
    pub fn new(dir: &Path) -> DirWatch {
        DirWatch::watch(dir, None)
    }

    /// Watches only the files of `dir` named in `names` (such as a replica's
    /// [`COMMIT_FILE`](crate::COMMIT_FILE) and [`LOG_FILE`](crate::LOG_FILE), leaving out
    /// the course view's files). Never fails: without a watcher it polls.
    pub fn for_files(dir: &Path, names: &[&str]) -> DirWatch {
        let names = names.iter().map(OsString::from).collect();
        DirWatch::watch(dir, Some(names))
    }

    fn watch(dir: &Path, names: Option<Arc<[OsString]>>) -> DirWatch {
        let watch = DirWatch {
            dir: dir.to_path_buf(),
            names,
            signal: Arc::new(Signal::default()),
            seen: AtomicU64::new(0),
            watching: Mutex::new(Watching::Polling(Instant::now())),
        };
        watch.set_up(&mut watch.lock());
        watch
    }

    /// The folder watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a watcher is set up (false: polling).
    pub fn is_watching(&self) -> bool {
        let mut watching = self.lock();
        self.keep_up(&mut watching);
        matches!(*watching, Watching::Active { .. })
    }

    /// Returns when a change arrived since the last time this returned, or after
    /// `fallback`, whichever comes first.
    pub async fn changed(&self, fallback: Duration) {
        {
            let mut watching = self.lock();
            self.keep_up(&mut watching);
        }
        let notified = self.signal.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let changes = self.signal.changes.load(Ordering::Acquire);
        if changes == self.seen.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(fallback, notified).await;
        }
        self.seen.store(
            self.signal.changes.load(Ordering::Acquire),
            Ordering::Release,
        );
    }

    fn lock(&self) -> MutexGuard<'_, Watching> {
        self.watching.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops a watcher whose folder went away, and tries again to set one up when it is
    /// time.
    fn keep_up(&self, watching: &mut Watching) {
        if self.signal.lost.swap(false, Ordering::AcqRel) {
            tracing::debug!(dir = %self.dir.display(), "the watched folder went away; polling");
            *watching = Watching::Polling(Instant::now() + RETRY);
        }
        if let Watching::Polling(at) = watching
            && Instant::now() >= *at
        {
            self.set_up(watching);
        }
    }

    /// Sets up the watcher, or schedules the next try.
    fn set_up(&self, watching: &mut Watching) {
        let signal = Arc::clone(&self.signal);
        let dir = self.dir.clone();
        let names = self.names.clone();
        let handler = move |event: notify::Result<Event>| {
            let wakes = match &event {
                Ok(event) => {
                    if matches!(event.kind, EventKind::Remove(_)) && event.paths.contains(&dir) {
                        signal.lost.store(true, Ordering::Release);
                    }
                    wakes(event, &dir, names.as_deref())
                }
                Err(_) => true,
            };
            if wakes {
                signal.changes.fetch_add(1, Ordering::AcqRel);
                signal.notify.notify_waiters();
            }
        };
        let started = notify::recommended_watcher(handler).and_then(|mut watcher| {
            watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
            Ok(watcher)
        });
        *watching = match started {
            Ok(watcher) => Watching::Active { _watcher: watcher },
            Err(e) => {
                tracing::debug!(
                    dir = %self.dir.display(),
                    error = %e,
                    "cannot watch the folder; polling"
                );
                Watching::Polling(Instant::now() + RETRY)
            }
        };
    }
}

/// Whether `event` in `dir` is a change that wakes: anything but reading a file, and,
/// with `names`, only to a file of those names or to the folder itself.
fn wakes(event: &Event, dir: &Path, names: Option<&[OsString]>) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    let Some(names) = names else {
        return true;
    };
    event.paths.is_empty()
        || event.paths.iter().any(|path| {
            path == dir
                || path
                    .file_name()
                    .is_some_and(|name| names.iter().any(|n| n == name))
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A bound on waits that should end at once: long, so that a slow machine does not
    /// fail the test, and never reached when the watch works.
    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_write_wakes_the_waiter_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::new(dir.path());
        assert!(watch.is_watching());
        let path = dir.path().join("a.log");
        let writer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            std::fs::write(path, b"x").unwrap();
        });
        let start = Instant::now();
        watch.changed(LONG).await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_missed() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::new(dir.path());
        let mut file = std::fs::File::create(dir.path().join("a.log")).unwrap();
        file.write_all(b"x").unwrap();
        let start = Instant::now();
        watch.changed(LONG).await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn reading_wakes_nobody_and_other_names_neither() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("commit"), b"x").unwrap();
        let watch = DirWatch::for_files(dir.path(), &["commit"]);
        assert!(watch.is_watching());
        std::fs::read(dir.path().join("commit")).unwrap();
        std::fs::write(dir.path().join("1.txt"), b"view").unwrap();
        let start = Instant::now();
        watch.changed(Duration::from_millis(100)).await;
        assert!(start.elapsed() >= Duration::from_millis(100));
        std::fs::write(dir.path().join("commit"), b"y").unwrap();
        let start = Instant::now();
        watch.changed(LONG).await;
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_missing_folder_is_polled_until_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let watch = DirWatch::new(&inbox);
        assert!(!watch.is_watching());
        let start = Instant::now();
        watch.changed(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        std::fs::create_dir(&inbox).unwrap();
        // Set up again at the next try, about a second later.
        let start = Instant::now();
        while !watch.is_watching() && start.elapsed() < LONG {
            watch.changed(Duration::from_millis(50)).await;
        }
        assert!(watch.is_watching());
    }
}
