//! Lifeguard's local health multiplier.
//!
//! An agent that is itself slow or cut off sees everyone else as failing.
//! The score counts evidence of that (a failed probe in which helpers did
//! not even send a nack, having to refute a suspicion of oneself) and
//! decays with each successful probe; probe interval and timeout are
//! multiplied by `1 + score`, so an unhealthy agent slows down instead of
//! accusing.

use std::time::Duration;

/// The local health score, in `0..=max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalHealth {
    score: u8,
    max: u8,
}

impl LocalHealth {
    /// A healthy score with ceiling `max`.
    pub(crate) fn new(max: u8) -> LocalHealth {
        LocalHealth { score: 0, max }
    }

    /// Records evidence that this agent is the problem.
    pub(crate) fn worsen(&mut self) {
        self.score = (self.score + 1).min(self.max);
    }

    /// Records a successful probe.
    pub(crate) fn improve(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// `base` stretched by the score.
    pub(crate) fn scale(self, base: Duration) -> Duration {
        base * (u32::from(self.score) + 1)
    }
}
