//! Remediation safety and liveness, judged against the simulator's ground
//! truth: which actions really run on which hosts (started when an agent
//! hands the task out, ended when the modelled action ends, whatever became
//! of the agent), which epochs agents really acquired, and which approvals
//! the operators really signed. The safety checks run at every action start,
//! the only event that can break them.
//!
//! - **Budget**: disruptive actions running at once in a scope never exceed
//!   its rule's `max_concurrent` (the latest released policy's), across any
//!   partition shape.
//! - **No stale epoch**: a disruptive action starts under epoch `e` of
//!   scope `S` only while no agent has acquired `S` at an epoch above `e`.
//! - **Once per key**: an idempotency key (rule, target, incident and step)
//!   starts at most once fleet-wide, across restarts.
//! - **Approved**: the action of a step that needs approval starts only
//!   while an approval the operators signed for its key is unexpired, on
//!   true time, give or take the lease drift bound (the slack the core's
//!   clocks are promised).
//! - **Fixed in time** (liveness, per `service` fault with
//!   `expect_fixed_within_s`): each failure is healthy again within the
//!   bound of its start.

use super::{Kind, Violation};
use fleetmesh_node::crdt::IdempotencyKey;
use std::collections::BTreeMap;

/// One action start, as the checker needs it.
#[derive(Clone, Debug)]
pub struct Start<'a> {
    /// True time, in nanoseconds.
    pub now: u64,
    /// The agent (host) it runs on.
    pub agent: u32,
    /// Its idempotency key.
    pub key: &'a IdempotencyKey,
    /// Disruptive (else local).
    pub disruptive: bool,
    /// The budget scope of the key's rule.
    pub scope: &'a str,
    /// The fencing epoch it runs under.
    pub epoch: u64,
    /// Its step needs an approval.
    pub approval: bool,
    /// The rule's `max_concurrent` in the latest released policy, if the
    /// rule is in it.
    pub budget: Option<u32>,
    /// An operator's (perfect) clock now, in milliseconds.
    pub wall_millis: u64,
}

/// The remediation checker of one run.
#[derive(Debug, Default)]
pub struct RemedyCheck {
    /// Every key started: the agent and true time of its first start.
    started: BTreeMap<IdempotencyKey, (u32, u64)>,
    /// Disruptive actions running now, per scope.
    running: BTreeMap<String, u32>,
    /// The highest epoch any agent acquired, per scope.
    acquired: BTreeMap<String, u64>,
    /// Expiries (operator milliseconds) of the approvals signed, per key.
    approvals: BTreeMap<IdempotencyKey, Vec<u64>>,
    /// How far past its expiry an approval may still be honoured.
    slack_millis: u64,
}

impl RemedyCheck {
    /// A checker honouring approvals up to `slack_millis` past their expiry.
    pub fn new(slack_millis: u64) -> RemedyCheck {
        RemedyCheck {
            slack_millis,
            ..RemedyCheck::default()
        }
    }

    /// An agent acquired `scope` at `epoch`.
    pub fn acquired(&mut self, scope: &str, epoch: u64) {
        let highest = self.acquired.entry(scope.to_owned()).or_insert(epoch);
        *highest = (*highest).max(epoch);
    }

    /// An operator signed an approval of `key` lapsing at `expires_millis`.
    pub fn approved(&mut self, key: &IdempotencyKey, expires_millis: u64) {
        self.approvals
            .entry(key.clone())
            .or_default()
            .push(expires_millis);
    }

    /// An action starts; returns the invariants it breaks.
    pub fn started(&mut self, start: &Start<'_>) -> Vec<Violation> {
        let mut violations = Vec::new();
        let mut safety = |invariant: &'static str, details: String| {
            violations.push(Violation {
                invariant,
                kind: Kind::Safety,
                at: start.now,
                details,
                agents: vec![start.agent],
            });
        };
        match self.started.get(start.key) {
            Some(&(agent, at)) => safety(
                "remediation once per key",
                format!(
                    "{:?} started on agent {} after it already started on agent {agent} at t={:.3}s",
                    start.key,
                    start.agent,
                    at as f64 / 1e9
                ),
            ),
            None => {
                self.started
                    .insert(start.key.clone(), (start.agent, start.now));
            }
        }
        if start.approval {
            let valid = self.approvals.get(start.key).is_some_and(|expiries| {
                expiries
                    .iter()
                    .any(|&expires| start.wall_millis < expires.saturating_add(self.slack_millis))
            });
            if !valid {
                safety(
                    "remediation approved",
                    format!(
                        "{:?} started on agent {} at operator time {} ms without an unexpired approval (signed expiries: {:?}, slack {} ms)",
                        start.key,
                        start.agent,
                        start.wall_millis,
                        self.approvals.get(start.key).cloned().unwrap_or_default(),
                        self.slack_millis
                    ),
                );
            }
        }
        if !start.disruptive {
            return violations;
        }
        if let Some(&highest) = self.acquired.get(start.scope)
            && highest > start.epoch
        {
            safety(
                "remediation no stale epoch",
                format!(
                    "{:?} started on agent {} under epoch {} of {:?}, already acquired at epoch {highest}",
                    start.key, start.agent, start.epoch, start.scope
                ),
            );
        }
        let running = self.running.entry(start.scope.to_owned()).or_insert(0);
        *running += 1;
        if let Some(budget) = start.budget
            && *running > budget
        {
            safety(
                "remediation budget",
                format!(
                    "{} disruptive actions of {:?} run at once (max_concurrent {budget}); the latest is {:?} on agent {}",
                    *running, start.scope, start.key, start.agent
                ),
            );
        }
        violations
    }

    /// A disruptive action of `scope` ended.
    pub fn ended(&mut self, scope: &str) {
        if let Some(running) = self.running.get_mut(scope) {
            *running = running.saturating_sub(1);
        }
    }
}

/// The deadline of a failure that must be fixed in time: a violation
/// unless it was fixed (`fixed_at`, true time) by `now`.
pub fn fixed_in_time(
    now: u64,
    onset: u64,
    fixed_at: Option<u64>,
    agent: u32,
    check: &str,
) -> Option<Violation> {
    if fixed_at.is_some_and(|at| at <= now) {
        return None;
    }
    Some(Violation {
        invariant: "remediation fixed in time",
        kind: Kind::Liveness,
        at: now,
        details: format!(
            "the {check:?} service of agent {agent}, failing since t={:.3}s, is still failing {:.1}s later",
            onset as f64 / 1e9,
            (now - onset) as f64 / 1e9
        ),
        agents: vec![agent],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_node::crdt::PublicKey;

    fn key(incident: &str) -> IdempotencyKey {
        IdempotencyKey {
            rule: "r".into(),
            target: PublicKey([7; 32]),
            incident: incident.into(),
        }
    }

    fn start<'a>(key: &'a IdempotencyKey, agent: u32, epoch: u64) -> Start<'a> {
        Start {
            now: 1,
            agent,
            key,
            disruptive: true,
            scope: "remediate:r",
            epoch,
            approval: false,
            budget: Some(1),
            wall_millis: 10_000,
        }
    }

    fn names(violations: &[Violation]) -> Vec<&'static str> {
        violations
            .iter()
            .map(|violation| violation.invariant)
            .collect()
    }

    #[test]
    fn a_second_running_action_breaks_the_budget_until_one_ends() {
        let mut check = RemedyCheck::new(500);
        let (first, second, third) = (key("a#1"), key("b#1"), key("c#1"));
        assert!(check.started(&start(&first, 1, 1)).is_empty());
        assert_eq!(
            names(&check.started(&start(&second, 2, 1))),
            ["remediation budget"]
        );
        check.ended("remediate:r");
        check.ended("remediate:r");
        assert!(check.started(&start(&third, 3, 1)).is_empty());
    }

    #[test]
    fn a_key_started_twice_or_under_a_superseded_epoch_breaks_safety() {
        let mut check = RemedyCheck::new(500);
        let first = key("a#1");
        assert!(check.started(&start(&first, 1, 1)).is_empty());
        check.ended("remediate:r");
        assert_eq!(
            names(&check.started(&start(&first, 1, 1))),
            ["remediation once per key"]
        );
        check.ended("remediate:r");
        check.acquired("remediate:r", 3);
        let other = key("b#1");
        assert_eq!(
            names(&check.started(&start(&other, 2, 2))),
            ["remediation no stale epoch"]
        );
    }

    #[test]
    fn an_approval_counts_until_its_expiry_plus_the_slack() {
        let mut check = RemedyCheck::new(500);
        let approved = key("a#0");
        let mut local = start(&approved, 1, 0);
        local.disruptive = false;
        local.approval = true;
        assert_eq!(names(&check.started(&local)), ["remediation approved"]);
        let again = key("b#0");
        check.approved(&again, 9_600);
        local.key = &again;
        assert!(check.started(&local).is_empty());
        let late = key("c#0");
        check.approved(&late, 9_500);
        local.key = &late;
        assert_eq!(names(&check.started(&local)), ["remediation approved"]);
    }

    #[test]
    fn a_failure_must_be_fixed_by_its_deadline() {
        assert!(fixed_in_time(10, 0, Some(9), 1, "web").is_none());
        let late = fixed_in_time(10, 0, None, 1, "web").expect("still failing");
        assert_eq!(late.kind, Kind::Liveness);
    }
}
