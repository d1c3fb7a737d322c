//! Real time for the core.
//!
//! The core takes `now: Instant` with every input and uses it twice: as a
//! monotonic clock for its timers, and, in milliseconds, as the physical
//! part of its hybrid logical clock (HLC), which stamps health reports,
//! ledger records and leases and is what certificate and release expiries
//! are compared with. Those stamps travel, so they must mean the same on
//! every host: wall-clock time. The runtime therefore reads the wall clock
//! once, at start, and counts from there on the monotonic clock:
//! `now = unix_nanos_at_start + monotonic_elapsed`. The result never goes
//! backwards while the agent runs (a wall clock stepped by NTP or an
//! operator does not step the agent's timers), and stays as close to the
//! wall clock as the monotonic clock's rate is to real time (NTP slews
//! both). A restarted process reads the wall clock afresh, so a step
//! reaches the agent at its next start; the core is built for that (it
//! compares its own readings only within one process, and a restored
//! voter counts its grants as made at the restart).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetmesh_node::Instant;

/// The agent's clock: wall-clock time at start, advanced monotonically.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: tokio::time::Instant,
    start_unix_nanos: u64,
}

impl Clock {
    /// A clock reading the wall clock now. A wall clock set before 1970
    /// reads as the epoch: expiries then look far in the future, which the
    /// operator sees in the agent's info (`now_millis`).
    pub fn new() -> Clock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            start: tokio::time::Instant::now(),
            start_unix_nanos: u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Now, for the core.
    pub fn now(&self) -> Instant {
        self.at(tokio::time::Instant::now())
    }

    /// The core's instant for a reading of tokio's clock.
    pub fn at(&self, instant: tokio::time::Instant) -> Instant {
        let elapsed = instant.saturating_duration_since(self.start);
        Instant(self.start_unix_nanos) + elapsed
    }

    /// The tokio instant at which the core's `at` falls; an instant before
    /// the start is the start (a deadline in the past is due now).
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        let nanos = at.0.saturating_sub(self.start_unix_nanos);
        self.start + Duration::from_nanos(nanos)
    }

    /// Milliseconds since the Unix epoch now: the HLC's physical time.
    pub fn now_millis(&self) -> u64 {
        self.now().0 / 1_000_000
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_wall_clock_and_map_back_to_deadlines() {
        let clock = Clock::new();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        assert!(clock.now_millis().abs_diff(wall) < 1_000);
        let later = clock.now() + Duration::from_millis(250);
        let deadline = clock.deadline(later);
        assert_eq!(clock.at(deadline), later);
        // The past is due at once, never before the clock's start.
        assert_eq!(clock.deadline(Instant(0)), clock.start);
        let first = clock.now();
        assert!(clock.now() >= first);
    }
}
