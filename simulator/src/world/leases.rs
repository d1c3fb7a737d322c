//! The world's side of leases: every candidate asks once it starts, each
//! agent's persisted state survives its crashes, `crash-holder` faults find
//! their target, and [`LeaseCheck`] judges every event. Besides the
//! scenario's `[[leases]]`, the budget scopes of the released remediation
//! policy are checked (their voters, who ask by themselves, are the
//! candidates), and so is any other scope an agent reports acquiring.

use super::{Action, What, World, nanos};
use crate::checkers::Violation;
use crate::checkers::lease::{HELD_AGAIN, LeaseCheck};
use crate::outcome::LeaseOutcome;
use crate::scenario::Scenario;
use fleetmesh_node::Policy;
use fleetmesh_node::crdt::PublicKey;
use fleetmesh_node::{Agent, Event};
use std::collections::BTreeSet;
use std::time::Duration;

/// One lease scope of the run, resolved against the fleet.
pub(super) struct SimLease {
    scope: String,
    voters: BTreeSet<PublicKey>,
    voter_indices: Vec<u32>,
    candidates: Vec<u32>,
    ttl: Duration,
    /// The simulator asks for it on the candidates' behalf (`[[leases]]`);
    /// agents ask for policy and learned scopes by themselves.
    driven: bool,
    check: LeaseCheck,
}

impl SimLease {
    /// A vacancy is explained by the candidates that did not take the
    /// lease over, as much as by the last holder the checker names: add
    /// the first few. Other violations already name their agents.
    fn name_candidates(&self, mut violation: Violation) -> Violation {
        if violation.invariant == HELD_AGAIN {
            let others: Vec<u32> = self
                .candidates
                .iter()
                .copied()
                .filter(|candidate| !violation.agents.contains(candidate))
                .take(4)
                .collect();
            violation.agents.extend(others);
        }
        violation
    }

    /// The scenario's leases, with voter keys from the fleet.
    pub(super) fn resolve(scenario: &Scenario, keys: impl Fn(u32) -> PublicKey) -> Vec<SimLease> {
        let bound = scenario.expect.lease_held_within.map(nanos);
        scenario
            .leases
            .iter()
            .map(|spec| {
                let voter_indices = spec.voter_indices(&scenario.fleet);
                SimLease {
                    scope: spec.scope.clone(),
                    voters: voter_indices.iter().copied().map(&keys).collect(),
                    voter_indices,
                    candidates: spec.candidate_indices(&scenario.fleet),
                    ttl: spec.ttl,
                    driven: true,
                    check: LeaseCheck::new(&spec.scope, bound),
                }
            })
            .collect()
    }
}

impl World {
    /// Hands a starting agent what it persisted before it crashed.
    pub(super) fn restore_durable(&mut self, index: u32) {
        let durable = self.nodes[index as usize].durable.clone();
        self.with_agent(index, |agent, now| agent.restore(now, durable));
    }

    /// Makes agent `index` ask for the leases it is a candidate of.
    pub(super) fn acquire_leases(&mut self, index: u32) {
        let wanted: Vec<(String, BTreeSet<PublicKey>, Duration)> = self
            .leases
            .iter()
            .filter(|lease| lease.driven && lease.candidates.contains(&index))
            .map(|lease| (lease.scope.clone(), lease.voters.clone(), lease.ttl))
            .collect();
        for (scope, voters, ttl) in wanted {
            self.with_agent(index, |agent, now| {
                agent
                    .acquire(now, &scope, voters, ttl)
                    .expect("scenario loading validated every lease");
            });
        }
    }

    /// A lease event: agent `index` claims the epoch, and so does the
    /// holder its own published lease of that epoch names (the same agent,
    /// unless two valid leases exist for one epoch).
    pub(super) fn lease_event(&mut self, index: u32, agent: &Agent, event: &Event) {
        let Event::LeaseAcquired { scope, epoch } = event else {
            return;
        };
        let now = self.now;
        self.remedy.acquired(scope, *epoch);
        let published = agent.replicas().leases().get(scope).map(|signed| {
            let holder = self.fleet.node_index(signed.lease.holder.node_id());
            (signed.lease.epoch, holder.unwrap_or(u32::MAX))
        });
        if !self.leases.iter().any(|lease| &lease.scope == scope) {
            // A scope the simulator did not know of: whoever acquires it is
            // a candidate, so both promises are still checked among them.
            self.leases.push(SimLease {
                scope: scope.clone(),
                voters: BTreeSet::new(),
                voter_indices: Vec::new(),
                candidates: Vec::new(),
                ttl: Duration::ZERO,
                driven: false,
                check: LeaseCheck::new(scope, None),
            });
        }
        let Some(lease) = self.leases.iter_mut().find(|lease| &lease.scope == scope) else {
            return;
        };
        if !lease.candidates.contains(&index) {
            lease.candidates.push(index);
        }
        lease.check.acquired();
        let mut claims = vec![index];
        if let Some((published_epoch, holder)) = published
            && published_epoch == *epoch
        {
            claims.push(holder);
        }
        for agent in claims {
            if let Some(violation) = lease.check.claimed(now, agent, *epoch) {
                self.violations.push(violation);
            }
        }
    }

    /// Checks every lease scope against what the candidates hold now.
    pub(super) fn check_leases(&mut self) {
        let now = self.now;
        let mut violations: Vec<Violation> = Vec::new();
        for at in 0..self.leases.len() {
            let lease = &self.leases[at];
            let mut holders = Vec::new();
            for &candidate in &lease.candidates {
                let node = &self.nodes[candidate as usize];
                let Some(agent) = &node.agent else {
                    continue;
                };
                if let Some(epoch) = agent.holds(node.clock.local(now), &lease.scope) {
                    holders.push((candidate, epoch));
                }
            }
            let electable = self.electable(lease);
            let exclusive = self.clocks_exclusive;
            let lease = &mut self.leases[at];
            let observed = lease.check.observe(now, &holders, exclusive, electable);
            violations.extend(observed.into_iter().map(|v| lease.name_candidates(v)));
        }
        self.violations.extend(violations);
    }

    /// Whether some running candidate of `lease` reaches, both ways, a
    /// majority of its voters that are running: only then can anyone hold
    /// it, so only then does a vacancy count (a three-way partition may
    /// leave no side with a majority until it heals). A lease learned from
    /// events, with no voters known, counts while a candidate runs.
    fn electable(&self, lease: &SimLease) -> bool {
        let running = |index: u32| self.convergence.is_tracked(index);
        let linked = |from: u32, to: u32| {
            self.network
                .cut
                .as_ref()
                .is_none_or(|cut| cut.permits(from, to) && cut.permits(to, from))
        };
        lease.candidates.iter().any(|&candidate| {
            if !running(candidate) {
                return false;
            }
            if lease.voter_indices.is_empty() {
                return true;
            }
            let reached = lease
                .voter_indices
                .iter()
                .filter(|&&voter| running(voter) && linked(candidate, voter))
                .count();
            reached * 2 > lease.voter_indices.len()
        })
    }

    /// Checks the budget scopes of a newly released `policy` from now on:
    /// each disruptive rule's voters vote and are its candidates. A scope
    /// already checked keeps its history.
    pub(super) fn adopt_budget_scopes(&mut self, policy: &Policy) {
        let bound = self.lease_held_within;
        let budgets = policy.rules.values().flat_map(|rule| {
            rule.budgets()
                .into_iter()
                .map(move |(scope, budget)| (scope, budget.voters.clone(), rule.lease_ttl))
        });
        for (scope, voters, ttl) in budgets {
            let voter_indices: Vec<u32> = voters
                .iter()
                .filter_map(|key| self.fleet.node_index(key.node_id()))
                .collect();
            let at = match self.leases.iter().position(|lease| lease.scope == scope) {
                Some(at) => at,
                None => {
                    self.leases.push(SimLease {
                        check: LeaseCheck::new(&scope, bound),
                        scope,
                        voters: BTreeSet::new(),
                        voter_indices: Vec::new(),
                        candidates: Vec::new(),
                        ttl: Duration::ZERO,
                        driven: false,
                    });
                    self.leases.len() - 1
                }
            };
            let lease = &mut self.leases[at];
            lease.voters = voters;
            lease.candidates = voter_indices.clone();
            lease.voter_indices = voter_indices;
            lease.ttl = ttl;
            if self.drift_breaks(ttl) {
                self.clocks_exclusive = false;
            }
        }
    }

    /// Whether the largest drift given so far outgrows the drift bound plus
    /// the lock-delay over `ttl` (twice: holder and voter may drift apart).
    fn drift_breaks(&self, ttl: Duration) -> bool {
        let slack = self.config.lease_drift_bound + self.config.lease_lock_delay;
        let error = ttl.as_secs_f64() * 2.0 * self.lease_drift_ppm as f64 / 1e6;
        error > slack.as_secs_f64()
    }

    /// A clock fault: does the one holder at a time promise still apply?
    /// Not once a running agent's clock is stepped, nor with a drift that
    /// over one ttl outgrows the drift bound plus the lock-delay.
    pub(super) fn clock_changed(&mut self, index: u32, offset: i64, drift_ppm: i64) {
        let stepped = offset != 0 && self.nodes[index as usize].agent.is_some();
        self.lease_drift_ppm = self.lease_drift_ppm.max(drift_ppm.unsigned_abs());
        let drifting = self.leases.iter().any(|lease| self.drift_breaks(lease.ttl));
        if stepped || drifting {
            self.clocks_exclusive = false;
        }
    }

    /// Crashes whoever holds `scope` now, restarting it later if asked.
    pub(super) fn crash_holder(&mut self, scope: &str, restart_after: Option<Duration>) {
        let now = self.now;
        let holder = self
            .leases
            .iter()
            .find(|lease| lease.scope == scope)
            .and_then(|lease| {
                lease.candidates.iter().copied().find(|&candidate| {
                    let node = &self.nodes[candidate as usize];
                    node.agent
                        .as_ref()
                        .is_some_and(|agent| agent.holds(node.clock.local(now), scope).is_some())
                })
            });
        let Some(holder) = holder else {
            return;
        };
        self.stop(holder, true);
        if let Some(after) = restart_after {
            let at = now + nanos(after);
            self.schedule
                .push((Duration::from_nanos(at), Action::Restart(vec![holder])));
            let act = self.schedule.len() - 1;
            self.push(at, What::Act(act));
        }
    }

    /// The leases' summary, with a vacancy still open past its bound.
    pub(super) fn finish_leases(&mut self) -> Vec<LeaseOutcome> {
        let end = self.now.min(self.end);
        let mut outcomes = Vec::new();
        for lease in &mut self.leases {
            if let Some(violation) = lease.check.finish(end) {
                self.violations.push(lease.name_candidates(violation));
            }
            outcomes.push(LeaseOutcome {
                scope: lease.check.scope().to_owned(),
                acquisitions: lease.check.acquisitions(),
                max_epoch: lease.check.max_epoch(),
                vacancies: lease.check.vacancies().to_vec(),
                holders: lease.check.changes().to_vec(),
            });
        }
        outcomes
    }
}
