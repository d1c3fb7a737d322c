//! Lease safety and liveness, judged on every event against what each
//! agent's own [`fleetmesh_node::Agent::holds`] answers at its own clock
//! reading, and against the leases agents publish.
//!
//! - **One holder per epoch** (always promised): no two agents ever hold, or
//!   publish a lease for, the same (scope, epoch).
//! - **One holder at a time** (promised only for clocks within the drift
//!   bound): no two agents hold one scope at the same true time. The world
//!   checks it only while every clock drifts little enough that
//!   `ttl × 2 × drift ≤ drift_bound + lock_delay` and no running agent's
//!   clock was stepped; skew (a fixed offset) alone never matters, since
//!   both sides measure durations.
//! - **Held again in time** (the scenario's `lease_held_within_s`):
//!   whenever a scope has no holder while one of its candidates runs, some
//!   candidate holds it again within the bound.

use super::{Kind, Violation};
use std::collections::BTreeMap;

/// The checker of one lease scope.
#[derive(Debug)]
pub struct LeaseCheck {
    scope: String,
    bound: Option<u64>,
    /// Who held (or published) each epoch: agent index.
    epochs: BTreeMap<u64, u32>,
    vacant_since: Option<u64>,
    vacancy_reported: bool,
    vacancies: Vec<u64>,
    acquisitions: u64,
    /// Each change of the holders, for reports; capped at
    /// [`HOLDER_CHANGES_MAX`].
    changes: Vec<HolderChange>,
}

/// The invariant a vacancy past its bound breaks.
pub const HELD_AGAIN: &str = "lease held again in time";

/// Most holder changes a scope's checker remembers for the report.
pub const HOLDER_CHANGES_MAX: usize = 10_000;

/// The holders of a scope from true time `.0` (nanoseconds) on, as
/// (agent, epoch).
pub type HolderChange = (u64, Vec<(u32, u64)>);

impl LeaseCheck {
    /// A checker for `scope`, expecting a holder within `bound` nanoseconds
    /// of a vacancy, if set.
    pub fn new(scope: &str, bound: Option<u64>) -> LeaseCheck {
        LeaseCheck {
            scope: scope.to_owned(),
            bound,
            epochs: BTreeMap::new(),
            vacant_since: None,
            vacancy_reported: false,
            vacancies: Vec::new(),
            acquisitions: 0,
            changes: Vec::new(),
        }
    }

    /// Agent `agent` holds or published epoch `epoch` at true time `now`.
    pub fn claimed(&mut self, now: u64, agent: u32, epoch: u64) -> Option<Violation> {
        let first = *self.epochs.entry(epoch).or_insert(agent);
        (first != agent).then(|| Violation {
            invariant: "one lease holder per epoch",
            kind: Kind::Safety,
            at: now,
            details: format!(
                "scope {:?} epoch {epoch} is held by agent {first} and agent {agent}",
                self.scope
            ),
            agents: vec![first, agent],
        })
    }

    /// Counts an acquisition event.
    pub fn acquired(&mut self) {
        self.acquisitions += 1;
    }

    /// The agents holding the scope at true time `now` (agent, epoch);
    /// `exclusive` says whether clocks are good enough for the one holder
    /// at a time promise; `candidates_running` whether a vacancy counts.
    pub fn observe(
        &mut self,
        now: u64,
        holders: &[(u32, u64)],
        exclusive: bool,
        candidates_running: bool,
    ) -> Vec<Violation> {
        if self
            .changes
            .last()
            .map_or(!holders.is_empty(), |(_, last)| last != holders)
            && self.changes.len() < HOLDER_CHANGES_MAX
        {
            self.changes.push((now, holders.to_vec()));
        }
        let mut violations: Vec<Violation> = holders
            .iter()
            .filter_map(|&(agent, epoch)| self.claimed(now, agent, epoch))
            .collect();
        if exclusive && holders.len() > 1 {
            violations.push(Violation {
                invariant: "one lease holder at a time",
                kind: Kind::Safety,
                at: now,
                details: format!(
                    "scope {:?} is held at once by (agent, epoch) {holders:?}",
                    self.scope
                ),
                agents: holders.iter().map(|(agent, _)| *agent).collect(),
            });
        }
        if !holders.is_empty() || !candidates_running {
            if let Some(since) = self.vacant_since.take() {
                self.vacancies.push(now - since);
            }
            self.vacancy_reported = false;
            return violations;
        }
        let since = *self.vacant_since.get_or_insert(now);
        if let Some(violation) = self.overdue(now, since) {
            violations.push(violation);
        }
        violations
    }

    /// At the end of the run: a vacancy still open past its bound.
    pub fn finish(&mut self, now: u64) -> Option<Violation> {
        let since = self.vacant_since?;
        self.overdue(now, since)
    }

    fn overdue(&mut self, now: u64, since: u64) -> Option<Violation> {
        let bound = self.bound?;
        if self.vacancy_reported || now - since <= bound {
            return None;
        }
        self.vacancy_reported = true;
        Some(Violation {
            invariant: HELD_AGAIN,
            kind: Kind::Liveness,
            at: now,
            details: format!(
                "scope {:?} had no holder for over {:.1}s (since t={:.3}s)",
                self.scope,
                bound as f64 / 1e9,
                since as f64 / 1e9
            ),
            // The last holders: whoever was expected to hold it again.
            agents: self
                .changes
                .iter()
                .rev()
                .find(|(_, holders)| !holders.is_empty())
                .map(|(_, holders)| holders.iter().map(|(agent, _)| *agent).collect())
                .unwrap_or_default(),
        })
    }

    /// The scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Each change of the holders, in time order.
    pub fn changes(&self) -> &[HolderChange] {
        &self.changes
    }

    /// Lengths of the vacancies that ended, in nanoseconds.
    pub fn vacancies(&self) -> &[u64] {
        &self.vacancies
    }

    /// The highest epoch held.
    pub fn max_epoch(&self) -> u64 {
        self.epochs.keys().next_back().copied().unwrap_or(0)
    }

    /// Acquisition events seen.
    pub fn acquisitions(&self) -> u64 {
        self.acquisitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn two_holders_of_one_epoch_break_safety() {
        let mut check = LeaseCheck::new("s", None);
        assert!(check.observe(0, &[(1, 4)], true, true).is_empty());
        assert!(check.claimed(SECOND, 1, 4).is_none());
        let violation = check.claimed(2 * SECOND, 2, 4).expect("a second holder");
        assert_eq!(violation.kind, Kind::Safety);
        assert_eq!(check.max_epoch(), 4);
    }

    #[test]
    fn two_holders_at_once_break_safety_only_under_good_clocks() {
        let mut check = LeaseCheck::new("s", None);
        let holders = [(1, 4), (2, 5)];
        assert!(check.observe(0, &holders, false, true).is_empty());
        let violations = check.observe(1, &holders, true, true);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].invariant, "one lease holder at a time");
    }

    #[test]
    fn a_vacancy_past_its_bound_breaks_liveness_once() {
        let mut check = LeaseCheck::new("s", Some(10 * SECOND));
        assert!(check.observe(0, &[], true, true).is_empty());
        assert!(check.observe(10 * SECOND, &[], true, true).is_empty());
        let late = check.observe(11 * SECOND, &[], true, true);
        assert_eq!(late[0].kind, Kind::Liveness);
        assert!(check.observe(12 * SECOND, &[], true, true).is_empty());
        assert!(check.observe(13 * SECOND, &[(1, 1)], true, true).is_empty());
        assert_eq!(check.vacancies(), [13 * SECOND]);
        // No candidate running: no vacancy.
        assert!(check.observe(14 * SECOND, &[], true, false).is_empty());
        assert!(check.finish(100 * SECOND).is_none());
    }
}
