//! Injected time.
//!
//! The core never reads a clock: every input carries `now`. [`Instant`] is a
//! point on the driver's monotonic clock in nanoseconds from an arbitrary
//! origin. The simulator maps virtual time (with per-agent skew and drift) to
//! it; the runtime maps `std::time::Instant` to it.

use std::ops::Add;
use std::time::Duration;

/// A point on the driver's monotonic clock, in nanoseconds from its origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}
