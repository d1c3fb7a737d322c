//! Check scheduling and hysteresis: when each check runs on this node, and
//! when its results add up to a change of health worth reporting.

use super::policy::CheckSpec;
use super::task::TaskId;
use crate::time::Instant;
use fleetmesh_crdt::HealthState;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One check's state on this node.
struct CheckState {
    spec: Arc<CheckSpec>,
    next_run: Instant,
    /// The run in flight and when it times out.
    running: Option<(TaskId, Instant)>,
    fails: u32,
    passes: u32,
    state: HealthState,
    /// Failures before this do not count.
    grace_until: Instant,
    /// When the last result came in, if one did.
    last_result: Option<Instant>,
}

/// A check's health changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    pub check: String,
    pub state: HealthState,
    pub detail: String,
}

/// The checks this node runs.
#[derive(Default)]
pub(crate) struct Checks {
    checks: BTreeMap<String, CheckState>,
}

impl Checks {
    /// Adopts the checks of a new policy. A check kept by name keeps its
    /// health and counts under its new parameters, so a reload by itself
    /// reports no change; a new one starts unknown, in grace from `now`.
    pub(crate) fn reload(&mut self, now: Instant, specs: Vec<Arc<CheckSpec>>) {
        let mut old = std::mem::take(&mut self.checks);
        for spec in specs {
            let state = match old.remove(&spec.name) {
                Some(mut state) => {
                    state.next_run = state.next_run.min(now + spec.interval);
                    state.spec = spec;
                    state
                }
                None => CheckState {
                    next_run: now,
                    running: None,
                    fails: 0,
                    passes: 0,
                    state: HealthState::Unknown,
                    grace_until: now + spec.grace,
                    last_result: None,
                    spec,
                },
            };
            self.checks.insert(state.spec.name.clone(), state);
        }
    }

    /// Checks due at `now`, each with the id `next_id` hands out.
    pub(crate) fn due(
        &mut self,
        now: Instant,
        mut next_id: impl FnMut() -> TaskId,
    ) -> Vec<(TaskId, Arc<CheckSpec>)> {
        let mut due = Vec::new();
        for state in self.checks.values_mut() {
            if state.running.is_some() || state.next_run > now {
                continue;
            }
            let id = next_id();
            state.running = Some((id, now + state.spec.timeout));
            state.next_run = now + state.spec.interval;
            due.push((id, Arc::clone(&state.spec)));
        }
        due
    }

    /// Runs that timed out by `now`, counted as failures.
    pub(crate) fn expire(&mut self, now: Instant) -> (Vec<Transition>, u64) {
        let mut transitions = Vec::new();
        let mut expired = 0;
        for state in self.checks.values_mut() {
            if state.running.is_some_and(|(_, deadline)| deadline <= now) {
                state.running = None;
                expired += 1;
                transitions.extend(state.record(now, false, "timed out"));
            }
        }
        (transitions, expired)
    }

    /// A run's result; `None` as the first element when no run of that id
    /// is in flight (late, after its timeout, or unknown).
    pub(crate) fn result(
        &mut self,
        now: Instant,
        id: TaskId,
        success: bool,
        detail: &str,
    ) -> Option<Option<Transition>> {
        let state = self
            .checks
            .values_mut()
            .find(|state| state.running.is_some_and(|(running, _)| running == id))?;
        state.running = None;
        Some(state.record(now, success, detail))
    }

    /// The health of the check named `name` on this node and when its last
    /// result came in; `None` when this node does not run it.
    pub(crate) fn health(&self, name: &str) -> Option<(HealthState, Option<Instant>)> {
        let state = self.checks.get(name)?;
        Some((state.state, state.last_result))
    }

    /// The next instant a check is due or times out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.checks
            .values()
            .map(|state| match state.running {
                Some((_, deadline)) => deadline,
                None => state.next_run,
            })
            .min()
    }
}

impl CheckState {
    fn record(&mut self, now: Instant, success: bool, detail: &str) -> Option<Transition> {
        self.last_result = Some(now);
        let next = if success {
            self.fails = 0;
            self.passes = self.passes.saturating_add(1);
            (self.passes >= self.spec.rise).then_some(HealthState::Healthy)
        } else if now < self.grace_until {
            None
        } else {
            self.passes = 0;
            self.fails = self.fails.saturating_add(1);
            (self.fails >= self.spec.fall).then_some(HealthState::Unhealthy)
        };
        let next = next.filter(|&next| next != self.state)?;
        self.state = next;
        Some(Transition {
            check: self.spec.name.clone(),
            state: next,
            detail: detail.to_owned(),
        })
    }
}
