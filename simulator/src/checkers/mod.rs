//! Invariant checkers. Each one is incremental: it is told about every view
//! change and every change of the ground truth, keeps counters, and never
//! scans the fleet on its own, so checking stays cheap at 10,000 agents.
//! They judge agents against the simulator's ground truth (who is really
//! running), never against another agent's view.

pub mod config;
pub mod convergence;
pub mod detection;
pub mod false_death;
pub mod lease;
pub mod remedy;
pub mod rollout;
pub mod spread;
pub mod stop;

use std::fmt;

/// Whether a violated invariant is about safety (something bad happened) or
/// liveness (something good did not happen in time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something that must never happen happened.
    Safety,
    /// Something that must happen did not, within its bound.
    Liveness,
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Name of the invariant.
    pub invariant: &'static str,
    /// Safety or liveness.
    pub kind: Kind,
    /// True time of the violation, in nanoseconds.
    pub at: u64,
    /// What happened, with the agents involved.
    pub details: String,
    /// The agents involved (first few), whose events explain it.
    pub agents: Vec<u32>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={:.3}s {} ({:?}): {}",
            self.at as f64 / 1e9,
            self.invariant,
            self.kind,
            self.details
        )
    }
}
