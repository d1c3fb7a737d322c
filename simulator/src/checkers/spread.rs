//! Measures (and bounds, when the scenario asks) how long a member's new
//! incarnation takes to reach every running agent: the dissemination
//! figure of the benchmarks.

use super::{Kind, Violation};
use std::collections::{BTreeMap, BTreeSet};

struct Pending {
    started: u64,
    /// Running agents at the announcement that have not learned it yet.
    /// Agents started later are not waited for.
    waiting: BTreeSet<u32>,
}

/// The spread tracker, keyed by (member, incarnation): a member retagged
/// twice in quick succession is measured twice.
#[derive(Default)]
pub struct Spread {
    pending: BTreeMap<(u32, u32), Pending>,
    times: Vec<u64>,
}

impl Spread {
    /// Time for each tracked news to reach everyone, in nanoseconds.
    pub fn times(&self) -> &[u64] {
        &self.times
    }

    /// `member` announced `incarnation` at `now`; the running agents in
    /// `waiting` do not know it yet.
    pub fn announced(&mut self, now: u64, member: u32, incarnation: u32, waiting: BTreeSet<u32>) {
        if waiting.is_empty() {
            self.times.push(0);
            return;
        }
        self.pending.insert(
            (member, incarnation),
            Pending {
                started: now,
                waiting,
            },
        );
    }

    /// Agent `agent` now holds `incarnation` (or later) of `member`.
    pub fn learned(&mut self, now: u64, member: u32, incarnation: u32, agent: u32) {
        let keys: Vec<(u32, u32)> = self
            .pending
            .range((member, 0)..=(member, incarnation))
            .map(|(&key, _)| key)
            .collect();
        for key in keys {
            let pending = self.pending.get_mut(&key).expect("listed just above");
            pending.waiting.remove(&agent);
            if pending.waiting.is_empty() {
                self.times.push(now - pending.started);
                self.pending.remove(&key);
            }
        }
    }

    /// Agent `agent` stopped running: nobody waits for it any more.
    pub fn forget(&mut self, now: u64, agent: u32) {
        let keys: Vec<(u32, u32)> = self.pending.keys().copied().collect();
        for (member, incarnation) in keys {
            self.learned(now, member, incarnation, agent);
        }
    }

    /// Checks, at `now`, that incarnation `incarnation` of `member`,
    /// announced at least `bound` ago, reached everyone.
    pub fn check(&self, now: u64, member: u32, incarnation: u32, bound: u64) -> Option<Violation> {
        let pending = self.pending.get(&(member, incarnation))?;
        (now >= pending.started + bound).then(|| Violation {
            invariant: "news-spread",
            kind: Kind::Liveness,
            at: now,
            details: format!(
                "incarnation {incarnation} of agent {member} announced at t={:.3}s has not reached {} running agents in {:.1}s",
                pending.started as f64 / 1e9,
                pending.waiting.len(),
                bound as f64 / 1e9
            ),
            agents: std::iter::once(member)
                .chain(pending.waiting.iter().copied().take(4))
                .collect(),
        })
    }
}
