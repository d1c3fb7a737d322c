//! Remediation (DESIGN §3.5 and §4; `docs/remediation.md`).
//!
//! **On every node**: the node runs the checks the released policy selects
//! it for ([`checks`]), reports each change of health to the mesh, and
//! opens an *incident* when a rule's check turns unhealthy by itself (not
//! as the effect of an action). It then climbs the rule's ladder. A
//! `local` step runs right away, under the node's own rails: cooldown,
//! a limit of actions per window (past it, a `needs-human` record and
//! nothing more until an operator approves it), the systemic-failure
//! short-circuit, approvals, dry run. A `disruptive` step is asked for with
//! a `Request` record and run only on an intent from the holder of the
//! rule's budget lease; the node checks the intent's epoch against the
//! highest lease it has seen for the scope (fencing) and starts only if the
//! action can end before the intent's deadline, which is when the
//! planner's lease runs out.
//!
//! **On the rule's voters**: each asks for the budget lease; the holder
//! plans intents for the requests it sees, while fewer than
//! `max_concurrent` intents of the scope are in flight and the fault is not
//! systemic. Nobody runs anything on another host.
//!
//! Pure logic, like [`crate::lease`]: the agent lends what it needs ([`Cx`])
//! and carries out what comes back ([`Out`]).

mod checks;
mod ladder;
mod planner;
pub(crate) mod policy;
mod started;
pub(crate) mod task;

use crate::event::Event;
use crate::members::MemberTable;
use crate::persist::Persist;
use crate::state::{Entry, Replicas};
use crate::stats::RemedyStats;
use crate::time::Instant;
use checks::Checks;
use fleetmesh_crdt::{
    ActiveStop, Digest, HealthState, HlcClock, IdempotencyKey, Keypair, Ledger, LedgerRecord,
    MemberState, NodeMeta, PublicKey, RecordKind, SignedRecord, Value, active_stops,
};
use policy::{Policy, PolicyRefusal, RuleSpec, Step};
use started::StartedLog;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use task::{Task, TaskId, TaskResult};

/// Most remediation keys this node remembers having started (persisted):
/// it never starts one twice, even across a restart.
pub(crate) const STARTED_MAX: usize = 4_096;
/// Most pending requests and in-flight intents a voter indexes.
pub(crate) const INDEX_MAX: usize = 4_096;
/// A request whose incident opened longer ago than this is dropped from a
/// voter's index (its target's reports stopped arriving).
const REQUEST_MAX_AGE: Duration = Duration::from_secs(3600);
/// Most needs-human records of closed incidents this node remembers, to
/// answer a late approval of one with a note that nothing ran.
const OVER_MAX: usize = 64;
/// How often a holder with pending requests looks at them again.
const PLAN_INTERVAL: Duration = Duration::from_millis(250);

/// What the agent lends the remediation logic for one input.
pub(crate) struct Cx<'a> {
    pub now: Instant,
    /// The HLC's physical reading now.
    pub now_millis: u64,
    pub keypair: &'a Keypair,
    pub hlc: &'a mut HlcClock,
    pub meta: &'a NodeMeta,
    pub members: &'a MemberTable,
    pub replicas: &'a Replicas,
    pub safe_mode: bool,
    /// The epoch this node holds a scope at and until when.
    pub held: &'a dyn Fn(&str) -> Option<(u64, Instant)>,
    pub stats: &'a mut RemedyStats,
}

impl Cx<'_> {
    fn sign(&mut self, key: IdempotencyKey, kind: RecordKind) -> Entry {
        let record = LedgerRecord {
            key,
            kind,
            author: self.keypair.public(),
            at: self.hlc.now(self.now_millis),
        };
        Entry::Ledger(Box::new(SignedRecord::sign(record, self.keypair)))
    }

    fn alive(&self, node: &PublicKey) -> bool {
        self.members
            .get(node.node_id())
            .is_some_and(|member| member.state() == MemberState::Alive)
    }

    /// More than `max_unhealthy` of the rule's nodes report its check
    /// unhealthy, as this node's view has it.
    fn systemic(&self, rule: &RuleSpec) -> bool {
        let mut selected = 0usize;
        for at in 0..self.members.len() {
            let member = self.members.member_at(at);
            if member.state() == MemberState::Left {
                continue;
            }
            if self
                .members
                .meta(member.id)
                .is_some_and(|meta| rule.select.matches(meta))
            {
                selected += 1;
            }
        }
        let unhealthy = self
            .replicas
            .health()
            .iter()
            .filter(|signed| {
                let report = &signed.report;
                report.check == rule.check
                    && report.state == HealthState::Unhealthy
                    && self
                        .members
                        .meta(report.node.node_id())
                        .is_some_and(|meta| rule.select.matches(meta))
            })
            .count();
        unhealthy as f64 > rule.max_unhealthy * selected as f64
    }

    fn approval(&self, key: &IdempotencyKey) -> Approval {
        let mut seen = Approval::None;
        for signed in self.replicas.ledger().records_for(key) {
            if let RecordKind::Approval { expires_millis, .. } = signed.record.kind {
                if expires_millis > self.now_millis {
                    return Approval::Valid;
                }
                seen = Approval::Expired;
            }
        }
        seen
    }

    fn has_outcome(&self, key: &IdempotencyKey) -> bool {
        has_outcome(self.replicas.ledger(), key)
    }

    /// The oldest emergency stop in force that applies to a node with
    /// `meta`, if any.
    fn stop_for(&self, meta: &NodeMeta) -> Option<ActiveStop> {
        active_stops(self.replicas.ledger(), self.now_millis)
            .into_iter()
            .find(|stop| stop.applies_to(meta))
    }
}

/// What the agent must do on behalf of the remediation logic, in order.
pub(crate) enum Out {
    /// Merge and spread an entry this node signed (a health report, a
    /// ledger record).
    Publish(Entry),
    /// Hand the driver a task.
    Task(Task),
    /// Ask for (or keep asking for) a budget lease.
    Acquire {
        scope: String,
        voters: BTreeSet<PublicKey>,
        ttl: Duration,
    },
    /// Stop asking for a budget lease.
    Release(String),
    /// Make this durable before anything is sent.
    Persist(Persist),
    /// Hand the entry just published straight to these nodes, who act on
    /// it (the scope's voters, an intent's target, its planner), besides
    /// gossiping it.
    Tell(Vec<PublicKey>, Entry),
    /// Tell the driver (a refused policy).
    Event(Event),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Approval {
    None,
    Valid,
    Expired,
}

/// Where an incident's current step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not started: waiting on a rail, an approval or an intent.
    Waiting,
    /// The action runs.
    Running(TaskId),
    /// The action ended (or was a dry run) at `since`; the check has until
    /// the step's timeout to recover.
    Done,
}

/// Rails already recorded for the current step, so each is recorded once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Noted {
    Systemic,
    Cooldown,
    SafeMode,
    ApprovalExpired,
    Stale,
    Late,
    Requested,
    Intent,
    NoSlot,
    Stopped,
}

/// A rule's open incident on this node.
struct Incident {
    check: String,
    /// `check@millis`: the incident part of every ledger key about it.
    name: String,
    opened: Instant,
    step: usize,
    /// When the step became current, or when its action started.
    since: Instant,
    phase: Phase,
    noted: BTreeSet<Noted>,
    /// An action ran for it: a recovery counts as a fix.
    acted: bool,
    /// The ladder ran out and a `needs-human` record asks for an operator.
    exhausted: bool,
    /// How many times the ladder ran out: names the current `needs-human`
    /// record (`#end`, then `#end2`, ...).
    rounds: u32,
    /// The current step runs again because an operator approved the
    /// `needs-human` record: it runs under that record's key, once.
    rerun: bool,
    /// The highest step skipped for want of an approval: what an approval
    /// of the `needs-human` record runs (else the last step).
    skipped_for_approval: Option<usize>,
}

impl Incident {
    /// An incident of `check` named `name`, opened at `opened`, waiting at
    /// `step` since `since`: nothing has run for it yet.
    fn waiting(check: String, name: String, opened: Instant, step: usize, since: Instant) -> Self {
        Incident {
            check,
            name,
            opened,
            step,
            since,
            phase: Phase::Waiting,
            noted: BTreeSet::new(),
            acted: false,
            exhausted: false,
            rounds: 0,
            rerun: false,
            skipped_for_approval: None,
        }
    }

    fn key(&self, rule: &str, target: PublicKey) -> IdempotencyKey {
        if self.rerun {
            return self.end_key(rule, target);
        }
        IdempotencyKey {
            rule: rule.to_owned(),
            target,
            incident: format!("{}#{}", self.name, self.step),
        }
    }

    /// The key of the `needs-human` record of the ladder's latest run-out.
    fn end_key(&self, rule: &str, target: PublicKey) -> IdempotencyKey {
        let round = match self.rounds {
            0 | 1 => String::new(),
            round => round.to_string(),
        };
        IdempotencyKey {
            rule: rule.to_owned(),
            target,
            incident: format!("{}#end{round}", self.name),
        }
    }

    /// Whether the current step waits for an approval: its own, or, on a
    /// rerun, the approval of the `needs-human` record.
    fn gated(&self, step: &Step) -> bool {
        step.approval || self.rerun
    }

    /// When the current step's window ends: a step waiting for an approval
    /// gives up after its approval window; otherwise the step's timeout
    /// bounds the action and then the recovery.
    fn window_end(&self, step: &Step) -> Instant {
        if self.phase == Phase::Waiting && self.gated(step) {
            self.since + step.approval_window
        } else {
            self.since + step.timeout
        }
    }

    /// Moves past the current step; a rerun goes straight back to the end
    /// of the ladder.
    fn next_step(&mut self, steps: usize, now: Instant) {
        if self.rerun {
            self.rerun = false;
            self.step = steps;
        } else {
            self.step += 1;
        }
        self.since = now;
        self.phase = Phase::Waiting;
        self.noted.clear();
    }

    /// An operator approved the `needs-human` record of a ladder that ran
    /// out (`steps` long): the step skipped for want of an approval, else
    /// the last one, runs once more under the usual rails.
    fn rerun(&mut self, steps: usize, now: Instant) {
        self.exhausted = false;
        self.rerun = true;
        self.step = self
            .skipped_for_approval
            .take()
            .unwrap_or(steps.saturating_sub(1));
        self.since = now;
        self.phase = Phase::Waiting;
        self.noted.clear();
    }
}

/// An action running on this node.
struct Running {
    rule: String,
    key: IdempotencyKey,
    deadline: Instant,
    /// Who waits for the outcome: the planner of a disruptive step.
    tell: Vec<PublicKey>,
}

/// An intent in one of this node's scopes, for its budget.
struct Planned {
    scope: String,
    deadline_millis: u64,
    dry_run: bool,
}

/// Checks and remediation for one agent.
#[derive(Default)]
pub(crate) struct Remedy {
    policy: Option<Arc<Policy>>,
    /// The release the policy in force came from.
    policy_from: Option<Digest>,
    /// The release whose policy was read last, loaded or refused: each is
    /// read once.
    read_from: Option<Digest>,
    /// The last release whose policy was refused, until one loads.
    refused: Option<PolicyRefusal>,
    checks: Checks,
    incidents: BTreeMap<String, Incident>,
    /// Rules stopped for this node until an operator approves the
    /// `needs-human` record with this key.
    blocked: BTreeMap<String, IdempotencyKey>,
    /// The unanswered `needs-human` records of ladders whose incident has
    /// since closed, with the check, oldest first (at most [`OVER_MAX`]).
    over: VecDeque<(IdempotencyKey, String)>,
    running: BTreeMap<TaskId, Running>,
    started: StartedLog,
    /// Health changes of a check until this instant are the effect of the
    /// action whose `Started` record has this digest.
    causes: BTreeMap<String, (Digest, Instant)>,
    /// Budget scopes asked for.
    wanted: BTreeSet<String>,
    /// Requests for disruptive steps in the wanted scopes.
    requests: BTreeMap<IdempotencyKey, String>,
    /// Intents in the wanted scopes.
    planned: BTreeMap<IdempotencyKey, Planned>,
    next_task: u64,
    /// When [`Remedy::tick`] last ran.
    last_tick: Instant,
}

impl Remedy {
    /// The policy in force, if any.
    pub(crate) fn policy(&self) -> Option<&Arc<Policy>> {
        self.policy.as_ref()
    }

    /// The health of check `name` on this node and when its last result
    /// came in; `None` when this node does not run it.
    pub(crate) fn check_health(&self, name: &str) -> Option<(HealthState, Option<Instant>)> {
        self.checks.health(name)
    }

    /// The release the policy in force came from.
    pub(crate) fn policy_from(&self) -> Option<Digest> {
        self.policy_from
    }

    /// The last release whose policy this node refused, unless a later
    /// one loaded.
    pub(crate) fn refused(&self) -> Option<&PolicyRefusal> {
        self.refused.as_ref()
    }

    /// Disruptive intents in flight in `scope` as this node sees them.
    pub(crate) fn budget_in_use(&self, scope: &str, now_millis: u64, ledger: &Ledger) -> usize {
        self.planned
            .iter()
            .filter(|(key, planned)| {
                planned.scope == scope
                    && !planned.dry_run
                    && planned.deadline_millis > now_millis
                    && !has_outcome(ledger, key)
            })
            .count()
    }

    /// Panics unless the indexes of requests and intents are within
    /// [`INDEX_MAX`], the closed needs-human records within [`OVER_MAX`],
    /// and the log of starts is consistent: for the agent's
    /// `check_invariants`.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.requests.len() <= INDEX_MAX && self.planned.len() <= INDEX_MAX,
            "remedy: {} requests or {} intents indexed over {INDEX_MAX}",
            self.requests.len(),
            self.planned.len()
        );
        assert!(
            self.over.len() <= OVER_MAX,
            "remedy: {} closed needs-human records kept over {OVER_MAX}",
            self.over.len()
        );
        self.started.check_invariants();
    }

    /// Takes back the starts persisted before a restart.
    pub(crate) fn restore(&mut self, started: Vec<(IdempotencyKey, u64)>) {
        self.started.restore(started);
    }

    /// Adopts the policy of release `version` with `digest` (`value` is
    /// the document's content there). A document that does not parse is
    /// counted, recorded and told as [`Event::PolicyRefused`]; the policy
    /// in force stays. Nothing is started by a reload: incidents open only
    /// on a later change of health, and new or changed checks start in
    /// grace.
    pub(crate) fn load(
        &mut self,
        cx: &mut Cx<'_>,
        (version, digest): (u64, Digest),
        value: &Value,
        out: &mut Vec<Out>,
    ) {
        if self.read_from == Some(digest) {
            return;
        }
        self.read_from = Some(digest);
        let policy = match Policy::parse(value) {
            Ok(policy) => Arc::new(policy),
            Err(error) => {
                cx.stats.policies_refused += 1;
                out.push(Out::Event(Event::PolicyRefused {
                    version,
                    digest,
                    field: error.field.clone(),
                    problem: error.problem.clone(),
                }));
                self.refused = Some(PolicyRefusal {
                    version,
                    digest,
                    error,
                });
                return;
            }
        };
        cx.stats.policies_loaded += 1;
        self.policy = Some(Arc::clone(&policy));
        self.policy_from = Some(digest);
        self.refused = None;
        self.reload_checks(cx);
        self.incidents.retain(|rule, incident| {
            policy
                .rules
                .get(rule)
                .is_some_and(|spec| spec.check == incident.check && spec.select.matches(cx.meta))
        });
        let me = cx.keypair.public();
        let wanted: BTreeMap<String, (BTreeSet<PublicKey>, Duration)> = policy
            .rules
            .values()
            .flat_map(|rule| {
                rule.budgets()
                    .into_iter()
                    .filter(|(_, budget)| budget.voters.contains(&me))
                    .map(|(scope, budget)| (scope, (budget.voters.clone(), rule.lease_ttl)))
            })
            .collect();
        for scope in &self.wanted {
            if !wanted.contains_key(scope) {
                out.push(Out::Release(scope.clone()));
            }
        }
        self.requests.retain(|_, scope| wanted.contains_key(scope));
        self.planned
            .retain(|_, planned| wanted.contains_key(&planned.scope));
        let fresh: Vec<String> = wanted
            .keys()
            .filter(|scope| !self.wanted.contains(*scope))
            .cloned()
            .collect();
        for (scope, (voters, ttl)) in &wanted {
            out.push(Out::Acquire {
                scope: scope.clone(),
                voters: voters.clone(),
                ttl: *ttl,
            });
        }
        self.wanted = wanted.into_keys().collect();
        // Requests and intents that arrived before this node cared.
        if !fresh.is_empty() {
            for signed in cx.replicas.ledger().iter() {
                self.index(signed, cx.stats);
            }
        }
    }

    /// Re-selects the checks after this node's tags changed.
    pub(crate) fn reload_checks(&mut self, cx: &Cx<'_>) {
        let specs = match &self.policy {
            Some(policy) => policy.checks_for(cx.meta).cloned().map(Arc::new).collect(),
            None => Vec::new(),
        };
        // Tags change outside of any timed input: the last tick stands in.
        self.checks.reload(self.last_tick.max(cx.now), specs);
    }

    /// Everything due at `now`.
    pub(crate) fn tick(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Out>) {
        if self.policy.is_none() {
            return;
        }
        self.last_tick = cx.now;
        let (transitions, expired) = self.checks.expire(cx.now);
        cx.stats.check_timeouts += expired;
        for transition in transitions {
            self.on_transition(cx, transition, out);
        }
        let mut next_task = self.next_task;
        for (id, check) in self.checks.due(cx.now, || {
            next_task += 1;
            TaskId(next_task)
        }) {
            cx.stats.checks_run += 1;
            out.push(Out::Task(Task::Check { id, check }));
        }
        self.next_task = next_task;
        let timed_out: Vec<TaskId> = self
            .running
            .iter()
            .filter(|(_, running)| running.deadline <= cx.now)
            .map(|(id, _)| *id)
            .collect();
        for id in timed_out {
            let result = TaskResult {
                success: false,
                exit_code: None,
                detail: "timed out".to_owned(),
            };
            self.finish_action(cx, id, result, out);
        }
        let rules: Vec<String> = self.incidents.keys().cloned().collect();
        for rule in rules {
            self.advance(cx, &rule, out);
        }
        self.answer_late_approvals(cx, out);
        self.plan(cx, out);
    }

    /// A task's result.
    pub(crate) fn result(
        &mut self,
        cx: &mut Cx<'_>,
        id: TaskId,
        result: TaskResult,
        out: &mut Vec<Out>,
    ) {
        if self.running.contains_key(&id) {
            self.finish_action(cx, id, result, out);
            return;
        }
        match self
            .checks
            .result(cx.now, id, result.success, &result.detail)
        {
            Some(Some(transition)) => self.on_transition(cx, transition, out),
            Some(None) => {}
            None => cx.stats.results_ignored += 1,
        }
    }

    /// When [`Remedy::tick`] must next run.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let policy = self.policy.as_ref()?;
        let now = self.last_tick;
        let mut next = self.checks.next_deadline();
        let mut consider = |at: Instant| next = Some(next.map_or(at, |next: Instant| next.min(at)));
        for running in self.running.values() {
            consider(running.deadline);
        }
        // What is already past was seen by the last tick and is waiting on
        // something else; only future instants wake the agent.
        let mut consider = |at: Instant| {
            if at > now {
                consider(at);
            }
        };
        for (rule, incident) in &self.incidents {
            if incident.exhausted {
                continue;
            }
            let Some(spec) = policy.rules.get(rule) else {
                continue;
            };
            let actionable = incident.opened + spec.unhealthy_for;
            if now < actionable {
                consider(actionable);
                continue;
            }
            if let Some(step) = spec.steps.get(incident.step) {
                consider(incident.window_end(step));
            }
            if incident.phase == Phase::Waiting {
                // Cooldowns, approvals and intents are looked at again at
                // the check's own pace.
                consider(now + PLAN_INTERVAL.max(Duration::from_secs(1)));
            }
        }
        if !self.requests.is_empty() {
            consider(now + PLAN_INTERVAL);
        }
        next
    }
}

fn has_outcome(ledger: &Ledger, key: &IdempotencyKey) -> bool {
    ledger
        .records_for(key)
        .any(|signed| matches!(signed.record.kind, RecordKind::Outcome { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "indexed over")]
    fn check_invariants_fires_past_the_index_bound() {
        let mut remedy = Remedy::default();
        remedy.check_invariants();
        let target = fleetmesh_crdt::Keypair::from_seed([1; 32]).public();
        for incident in 0..=INDEX_MAX {
            let key = IdempotencyKey {
                rule: "restart".to_owned(),
                target,
                incident: incident.to_string(),
            };
            remedy.requests.insert(key, "scope".to_owned());
        }
        remedy.check_invariants();
    }
}
