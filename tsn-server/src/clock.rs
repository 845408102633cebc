//! The wall clock, as the core's [`Time`]: the one place the runtime reads it.

use std::time::{SystemTime, UNIX_EPOCH};

use tsn_core::id::Time;

/// The wall clock now, as a core time.
pub fn wall_clock() -> Time {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Time::from_unix(since.as_secs(), since.subsec_nanos())
}
