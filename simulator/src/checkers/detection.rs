//! Invariant: a crashed agent is declared down by every running agent
//! within a bound.
//!
//! At each crash it counts the running agents that still see the crashed
//! agent up, and counts down as they declare it; a restart cancels the
//! wait. A check is scheduled at `crash + bound`.

use super::{Kind, Violation};
use std::collections::BTreeMap;

struct Pending {
    crashed_at: u64,
    remaining: u32,
}

/// The detection checker.
pub struct Detection {
    pending: BTreeMap<u32, Pending>,
    bound: u64,
    times: Vec<u64>,
}

impl Detection {
    /// A checker allowing `bound` nanoseconds.
    pub fn new(bound: u64) -> Detection {
        Detection {
            pending: BTreeMap::new(),
            bound,
            times: Vec::new(),
        }
    }

    /// The bound, in nanoseconds.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Time from each crash until every running agent knew, in nanoseconds.
    pub fn times(&self) -> &[u64] {
        &self.times
    }

    /// Agent `member` crashed at `now`; `remaining` running agents see it up.
    /// Returns when to check.
    pub fn crashed(&mut self, now: u64, member: u32, remaining: u32) -> u64 {
        if remaining == 0 {
            self.times.push(0);
        } else {
            self.pending.insert(
                member,
                Pending {
                    crashed_at: now,
                    remaining,
                },
            );
        }
        now + self.bound
    }

    /// Agent `member` is running again: stop waiting for it.
    pub fn restarted(&mut self, member: u32) {
        self.pending.remove(&member);
    }

    /// Is the crash of `member` awaiting detection?
    pub fn is_pending(&self, member: u32) -> bool {
        self.pending.contains_key(&member)
    }

    /// One running agent's view of `member` went down (`true`) or up again.
    pub fn view_changed(&mut self, now: u64, member: u32, went_down: bool) {
        let Some(pending) = self.pending.get_mut(&member) else {
            return;
        };
        if went_down {
            pending.remaining -= 1;
        } else {
            pending.remaining += 1;
        }
        if pending.remaining == 0 {
            self.times.push(now - pending.crashed_at);
            self.pending.remove(&member);
        }
    }

    /// The scheduled check for the crash of `member`.
    pub fn check(&self, now: u64, member: u32) -> Option<Violation> {
        let pending = self.pending.get(&member)?;
        if now < pending.crashed_at + self.bound {
            return None;
        }
        Some(Violation {
            invariant: "crash-detected",
            kind: Kind::Liveness,
            at: now,
            details: format!(
                "agent {member} crashed at t={:.3}s and {} running agents still see it up after {:.1}s",
                pending.crashed_at as f64 / 1e9,
                pending.remaining,
                self.bound as f64 / 1e9
            ),
            agents: vec![member],
        })
    }
}
