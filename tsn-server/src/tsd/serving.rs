//! [`Serving`]: the serving runtime of a tsd as its role sees it, with the pulse that says
//! it still runs (see [`runtime`](crate::tsd::runtime) for why the role runs elsewhere).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

/// How many heartbeat intervals the serving runtime may run nothing before the role stops
/// reporting: far above the lateness of a loaded runtime, and short enough that a wedged
/// server is replaced within seconds (2 s with the default 200 ms interval).
pub const STALL_BEATS: u32 = 10;

/// The serving runtime, as the role sees it: where its duties are started, and whether it
/// still runs.
#[derive(Clone, Debug)]
pub struct Serving {
    handle: Handle,
    pulse: Arc<Mutex<Instant>>,
}

impl Serving {
    /// The runtime this is called on, beating every `interval` for as long as a clone of
    /// the returned value lives.
    pub fn current(interval: Duration) -> Self {
        let pulse = Arc::new(Mutex::new(Instant::now()));
        let beat: Weak<Mutex<Instant>> = Arc::downgrade(&pulse);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(pulse) = beat.upgrade() else { return };
                *pulse.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            }
        });
        Serving {
            handle: Handle::current(),
            pulse,
        }
    }

    /// The runtime's handle, to start the duties' tasks on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// How long the runtime has run nothing, as far as the pulse tells.
    pub fn silent_for(&self) -> Duration {
        self.pulse
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}
