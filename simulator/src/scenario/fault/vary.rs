//! How a swarm seed varies one chaos fault: its intensity scaled by a
//! factor, its start moved by a shift, kept within the run. The kinds'
//! [`crate::scenario::fault::kind::Kind::vary`] are written with these.

use crate::scenario::fleet::Nodes;
use std::time::Duration;

/// One seed's variation of one fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Variation {
    /// Intensity factor.
    pub factor: f64,
    /// Shift of the start, in nanoseconds.
    pub shift: i128,
    /// The run's end: no time moves past it.
    pub end: Duration,
}

impl Variation {
    /// `at` moved by the shift, kept within the run.
    pub fn moved(&self, at: Duration) -> Duration {
        let nanos = (at.as_nanos() as i128 + self.shift).clamp(0, self.end.as_nanos() as i128);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// A window `from`..`until` moved by the shift, its end never before
    /// its start.
    pub fn window(&self, from: Duration, until: Duration) -> (Duration, Duration) {
        let start = self.moved(from);
        (start, self.moved(until).max(start))
    }

    /// A fault from `at` until `end` (if it ends) moved by the shift, its
    /// length scaled by the factor.
    pub fn span(&self, at: Duration, end: Option<Duration>) -> (Duration, Option<Duration>) {
        let start = self.moved(at);
        let end = end.map(|end| start + end.saturating_sub(at).mul_f64(self.factor));
        (start, end)
    }

    /// `nodes` with its count or fraction scaled by the factor (a count
    /// stays at least 1).
    pub fn nodes(&self, nodes: &Nodes) -> Nodes {
        let mut nodes = nodes.clone();
        nodes.count = nodes
            .count
            .map(|count| ((f64::from(count) * self.factor).round() as u32).max(1));
        nodes.fraction = nodes
            .fraction
            .map(|fraction| (fraction * self.factor).clamp(f64::MIN_POSITIVE, 1.0));
        nodes
    }

    /// A probability scaled by the factor, at most 1.
    pub fn probability(&self, value: f64) -> f64 {
        (value * self.factor).min(1.0)
    }
}
