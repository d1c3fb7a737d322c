//! Measures (and bounds, when the scenario asks) how long a member's new
//! incarnation takes to reach every running agent: the dissemination
//! figure of the benchmarks.

use super::{Kind, Violation};
use std::collections::BTreeMap;

struct Pending {
    incarnation: u32,
    started: u64,
    remaining: u32,
}

/// The spread tracker.
#[derive(Default)]
pub struct Spread {
    pending: BTreeMap<u32, Pending>,
    times: Vec<u64>,
}

impl Spread {
    /// Time for each tracked news to reach everyone, in nanoseconds.
    pub fn times(&self) -> &[u64] {
        &self.times
    }

    /// The incarnation of `member` being waited for, if any.
    pub fn target(&self, member: u32) -> Option<u32> {
        self.pending.get(&member).map(|pending| pending.incarnation)
    }

    /// `member` announced `incarnation` at `now`; `remaining` running agents
    /// do not know it yet.
    pub fn announced(&mut self, now: u64, member: u32, incarnation: u32, remaining: u32) {
        if remaining == 0 {
            self.times.push(0);
            return;
        }
        self.pending.insert(
            member,
            Pending {
                incarnation,
                started: now,
                remaining,
            },
        );
    }

    /// One running agent learned the news about `member` (or stopped running
    /// before it did).
    pub fn learned(&mut self, now: u64, member: u32) {
        let Some(pending) = self.pending.get_mut(&member) else {
            return;
        };
        pending.remaining -= 1;
        if pending.remaining == 0 {
            self.times.push(now - pending.started);
            self.pending.remove(&member);
        }
    }

    /// Checks, at `now`, that news of `member` announced at least `bound` ago
    /// reached everyone.
    pub fn check(&self, now: u64, member: u32, bound: u64) -> Option<Violation> {
        let pending = self.pending.get(&member)?;
        (now >= pending.started + bound).then(|| Violation {
            invariant: "news-spread",
            kind: Kind::Liveness,
            at: now,
            details: format!(
                "incarnation {} of agent {member} announced at t={:.3}s has not reached {} running agents in {:.1}s",
                pending.incarnation,
                pending.started as f64 / 1e9,
                pending.remaining,
                bound as f64 / 1e9
            ),
        })
    }
}
