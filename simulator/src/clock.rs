//! Per-agent clocks: skew (offset) and drift over the simulator's true time.
//!
//! An agent's local time is `base + offset + t + t * drift_ppm / 10^6`, where
//! `t` is true time in nanoseconds; `base` keeps it positive under negative
//! offsets. It is monotonic, as the runtime's clock is: a clock fault changes
//! drift and offset from now on without a jump backwards.

use fleetmesh_node::Instant;

const BASE_NANOS: i128 = 3_600_000_000_000;

/// Milliseconds on a perfect clock at true time `t` (nanoseconds): what an
/// operator's workstation, synchronized to the fleet's time, reads. Release
/// expiries are stamped with it.
pub fn wall_millis(t: u64) -> u64 {
    let nanos = BASE_NANOS as u64 + t;
    nanos / 1_000_000
}
const PPM: i128 = 1_000_000;

/// One agent's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    offset_nanos: i128,
    drift_ppm: i64,
}

impl Clock {
    /// A clock `offset_nanos` ahead of true time (behind if negative),
    /// running `drift_ppm` parts per million fast (slow if negative).
    pub fn new(offset_nanos: i64, drift_ppm: i64) -> Clock {
        assert!(drift_ppm.abs() < 100_000, "drift beyond 10% is not a clock");
        Clock {
            offset_nanos: i128::from(offset_nanos),
            drift_ppm,
        }
    }

    /// Local time at true time `t`.
    pub fn local(&self, t: u64) -> Instant {
        let t = i128::from(t);
        let local = BASE_NANOS + self.offset_nanos + t + t * i128::from(self.drift_ppm) / PPM;
        Instant(u64::try_from(local.max(0)).unwrap_or(u64::MAX))
    }

    /// The earliest true time at or after `not_before` whose local time is at
    /// least `local`.
    pub fn true_time_of(&self, local: Instant, not_before: u64) -> u64 {
        let target = i128::from(local.0) - BASE_NANOS - self.offset_nanos;
        let estimate = target * PPM / (PPM + i128::from(self.drift_ppm));
        let mut t = u64::try_from(estimate.max(0))
            .unwrap_or(u64::MAX)
            .max(not_before);
        // Integer rounding leaves the estimate a few nanoseconds off either
        // way; local time is monotonic, so walk to the earliest match.
        while self.local(t) < local {
            t += 1;
        }
        while t > not_before && self.local(t - 1) >= local {
            t -= 1;
        }
        t
    }

    /// This clock with a new skew and drift from true time `now` on, without
    /// a jump backwards.
    pub fn reset(&self, now: u64, offset_nanos: i64, drift_ppm: i64) -> Clock {
        let wanted = Clock::new(offset_nanos, drift_ppm);
        let current = self.local(now);
        if wanted.local(now) >= current {
            return wanted;
        }
        // Keep the requested rate but start from the current reading.
        let shortfall = i128::from(current.0) - i128::from(wanted.local(now).0);
        Clock {
            offset_nanos: wanted.offset_nanos + shortfall,
            drift_ppm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_time_inverts_local_time() {
        for clock in [
            Clock::new(0, 0),
            Clock::new(-500_000_000, 250),
            Clock::new(500_000_000, -300),
        ] {
            for t in [0u64, 1, 999_999, 5_000_000_000, 7_200_000_000_000] {
                let local = clock.local(t);
                let back = clock.true_time_of(local, 0);
                assert!(clock.local(back) >= local);
                assert!(back <= t, "{back} > {t}");
                assert!(clock.local(back.saturating_sub(1)) < local || back == 0);
            }
        }
    }

    #[test]
    fn reset_never_goes_back() {
        let clock = Clock::new(500_000_000, 0);
        let now = 10_000_000_000;
        let reset = clock.reset(now, -500_000_000, 100);
        assert!(reset.local(now) >= clock.local(now));
        assert!(reset.local(now + 1_000_000_000) > reset.local(now));
    }
}
