//! [`Throttle`]: a warning that repeats, logged at most every few seconds.

use std::time::{Duration, Instant};

/// How long a [`Throttle`] stays quiet after it let a warning through.
const QUIET: Duration = Duration::from_secs(10);

/// Lets a repeated warning through at most once every [`QUIET`], so that a failing disk,
/// which fails every write, does not flood the log.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    /// Whether to log the warning now; if so, the next ones stay quiet for a while.
    pub(crate) fn allows(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|at| now.duration_since(at) < QUIET) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_warning_passes_and_the_next_ones_wait() {
        let mut throttle = Throttle::default();
        assert!(throttle.allows());
        assert!(!throttle.allows());
        throttle.last = Instant::now().checked_sub(QUIET);
        assert!(throttle.allows());
    }
}
