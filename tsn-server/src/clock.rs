//! The runtime's clocks: the one place it reads them.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tsn_core::id::Time;

/// The wall clock now, as a core time.
pub fn wall_clock() -> Time {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Time::from_unix(since.as_secs(), since.subsec_nanos())
}

/// The monotonic clock now, as the core's decisions take it. Read through tokio's clock, so
/// that a test that pauses tokio's time pauses it too.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
