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
pub mod policy;
mod started;
pub mod task;

use crate::members::MemberTable;
use crate::persist::Persist;
use crate::state::{Entry, Replicas};
use crate::stats::RemedyStats;
use crate::time::Instant;
use checks::{Checks, Transition};
use fleetmesh_crdt::{
    Digest, HealthReport, HealthState, HlcClock, IdempotencyKey, Keypair, LeaseKind, Ledger,
    LedgerRecord, MemberState, NodeMeta, PublicKey, RecordKind, SignedHealth, SignedRecord, Value,
    health_limits, ledger_limits,
};
use policy::{ActionClass, Budget, Policy, RuleSpec, Step};
use started::StartedLog;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use task::{Task, TaskId, TaskResult};

/// Most remediation keys this node remembers having started (persisted):
/// it never starts one twice, even across a restart.
pub const STARTED_MAX: usize = 4_096;
/// Most pending requests and in-flight intents a voter indexes.
pub const INDEX_MAX: usize = 4_096;
/// A request whose incident opened longer ago than this is dropped from a
/// voter's index (its target's reports stopped arriving).
const REQUEST_MAX_AGE: Duration = Duration::from_secs(3600);
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
    /// The ladder ran out.
    exhausted: bool,
}

impl Incident {
    fn key(&self, rule: &str, target: PublicKey) -> IdempotencyKey {
        IdempotencyKey {
            rule: rule.to_owned(),
            target,
            incident: format!("{}#{}", self.name, self.step),
        }
    }

    fn next_step(&mut self, now: Instant) {
        self.step += 1;
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
    /// The release the policy came from.
    loaded_from: Option<Digest>,
    checks: Checks,
    incidents: BTreeMap<String, Incident>,
    /// Rules stopped for this node until an operator approves the
    /// `needs-human` record with this key.
    blocked: BTreeMap<String, IdempotencyKey>,
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
    /// [`INDEX_MAX`] and the log of starts is consistent: for the agent's
    /// `check_invariants`.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.requests.len() <= INDEX_MAX && self.planned.len() <= INDEX_MAX,
            "remedy: {} requests or {} intents indexed over {INDEX_MAX}",
            self.requests.len(),
            self.planned.len()
        );
        self.started.check_invariants();
    }

    /// Takes back the starts persisted before a restart.
    pub(crate) fn restore(&mut self, started: Vec<(IdempotencyKey, u64)>) {
        self.started.restore(started);
    }

    /// Adopts the policy of release `digest` (`value` is the document's
    /// content there). A document that does not parse is counted and
    /// ignored. Nothing is started by a reload: incidents open only on a
    /// later change of health, and new or changed checks start in grace.
    pub(crate) fn load(
        &mut self,
        cx: &mut Cx<'_>,
        digest: Digest,
        value: &Value,
        out: &mut Vec<Out>,
    ) {
        if self.loaded_from == Some(digest) {
            return;
        }
        self.loaded_from = Some(digest);
        let policy = match Policy::parse(value) {
            Ok(policy) => Arc::new(policy),
            Err(_) => {
                cx.stats.policies_refused += 1;
                return;
            }
        };
        cx.stats.policies_loaded += 1;
        self.policy = Some(Arc::clone(&policy));
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

    /// Notes a ledger record new to this node: requests and intents of the
    /// scopes it votes in.
    pub(crate) fn index(&mut self, signed: &SignedRecord, stats: &mut RemedyStats) {
        let record = &signed.record;
        match &record.kind {
            RecordKind::Request { scope, .. } if self.wanted.contains(scope) => {
                if self.requests.contains_key(&record.key) {
                    return;
                }
                if self.requests.len() >= INDEX_MAX {
                    stats.index_dropped += 1;
                    return;
                }
                self.requests.insert(record.key.clone(), scope.clone());
            }
            RecordKind::Intent {
                scope,
                deadline_millis,
                dry_run,
                ..
            } if self.wanted.contains(scope) => {
                if self.planned.len() >= INDEX_MAX && !self.planned.contains_key(&record.key) {
                    stats.index_dropped += 1;
                    return;
                }
                let planned = self.planned.entry(record.key.clone()).or_insert(Planned {
                    scope: scope.clone(),
                    deadline_millis: 0,
                    dry_run: *dry_run,
                });
                planned.deadline_millis = planned.deadline_millis.max(*deadline_millis);
            }
            _ => {}
        }
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
                consider(incident.since + step.timeout);
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

    fn on_transition(&mut self, cx: &mut Cx<'_>, transition: Transition, out: &mut Vec<Out>) {
        let cause = self
            .causes
            .get(&transition.check)
            .filter(|(_, until)| cx.now < *until)
            .map(|(digest, _)| *digest);
        let at = cx.hlc.now(cx.now_millis);
        let report = HealthReport {
            node: cx.keypair.public(),
            check: transition.check.clone(),
            state: transition.state,
            at,
            detail: shorten(&transition.detail, health_limits::DETAIL_MAX),
            cause,
        };
        cx.stats.health_changes += 1;
        out.push(Out::Publish(Entry::Health(Box::new(SignedHealth::sign(
            report, cx.keypair,
        )))));
        let Some(policy) = self.policy.clone() else {
            return;
        };
        match transition.state {
            HealthState::Healthy => {
                // The action's effect ends with the recovery: a failure
                // after it is a new incident.
                if cause.is_some() {
                    self.causes.remove(&transition.check);
                }
                let closed: Vec<String> = self
                    .incidents
                    .iter()
                    .filter(|(_, incident)| incident.check == transition.check)
                    .map(|(rule, _)| rule.clone())
                    .collect();
                for rule in closed {
                    let Some(incident) = self.incidents.remove(&rule) else {
                        continue;
                    };
                    if incident.acted {
                        let millis = duration_millis(cx.now, incident.opened);
                        cx.stats.fixes += 1;
                        cx.stats.fix_millis_total += millis;
                        cx.stats.fix_millis_max = cx.stats.fix_millis_max.max(millis);
                    }
                }
            }
            HealthState::Unhealthy if cause.is_none() => {
                for rule in policy.rules_for(&transition.check, cx.meta) {
                    if self.incidents.contains_key(&rule.name) {
                        continue;
                    }
                    cx.stats.incidents += 1;
                    self.incidents.insert(
                        rule.name.clone(),
                        Incident {
                            check: transition.check.clone(),
                            name: format!("{}@{}", transition.check, at.millis),
                            opened: cx.now,
                            step: 0,
                            since: cx.now + rule.unhealthy_for,
                            phase: Phase::Waiting,
                            noted: BTreeSet::new(),
                            acted: false,
                            exhausted: false,
                        },
                    );
                }
            }
            HealthState::Unhealthy | HealthState::Unknown => {}
        }
    }

    /// Moves one incident along its ladder as far as it can go now.
    fn advance(&mut self, cx: &mut Cx<'_>, rule_name: &str, out: &mut Vec<Out>) {
        let Some(policy) = self.policy.clone() else {
            return;
        };
        let Some(rule) = policy.rules.get(rule_name) else {
            self.incidents.remove(rule_name);
            return;
        };
        let me = cx.keypair.public();
        if let Some(blocked) = self.blocked.get(rule_name) {
            if cx.approval(blocked) != Approval::Valid {
                return;
            }
            self.blocked.remove(rule_name);
            self.started.rearm(rule_name, cx.now_millis);
        }
        let Some(incident) = self.incidents.get_mut(rule_name) else {
            return;
        };
        if incident.exhausted || cx.now < incident.opened + rule.unhealthy_for {
            return;
        }
        // Past the step's window with the check still unhealthy: climb.
        while let Some(step) = rule.steps.get(incident.step) {
            let window_over = cx.now >= incident.since + step.timeout;
            let climb = match incident.phase {
                Phase::Done => window_over,
                // An approval that never came skips the step; any other
                // wait (cooldown, the budget, a partition) holds it.
                Phase::Waiting => window_over && step.approval,
                Phase::Running(_) => false,
            };
            if !climb {
                break;
            }
            if incident.phase == Phase::Waiting {
                cx.stats.skipped_no_approval += 1;
                let key = incident.key(rule_name, me);
                let reason = "no valid approval within the step's window".to_owned();
                out.push(Out::Publish(cx.sign(key, RecordKind::Skipped { reason })));
            }
            incident.next_step(cx.now);
        }
        if incident.step >= rule.steps.len() {
            incident.exhausted = true;
            cx.stats.ladders_exhausted += 1;
            let key = IdempotencyKey {
                rule: rule_name.to_owned(),
                target: me,
                incident: format!("{}#end", incident.name),
            };
            let reason = format!(
                "every step of the ladder ran and {} is still unhealthy",
                incident.check
            );
            out.push(Out::Publish(
                cx.sign(key, RecordKind::NeedsHuman { reason }),
            ));
            return;
        }
        if incident.phase != Phase::Waiting {
            return;
        }
        let step = rule.steps[incident.step].clone();
        let key = incident.key(rule_name, me);
        if self.started.contains(&key) {
            // Started before a restart: never again for this incident.
            incident.phase = Phase::Done;
            return;
        }
        if cx.systemic(rule) {
            if incident.noted.insert(Noted::Systemic) {
                cx.stats.skipped_systemic += 1;
                let reason = format!(
                    "more than {:.0}% of the rule's nodes report {} unhealthy",
                    rule.max_unhealthy * 100.0,
                    rule.check
                );
                out.push(Out::Publish(cx.sign(key, RecordKind::Skipped { reason })));
            }
            return;
        }
        let mut tell = Vec::new();
        let epoch = match step.class {
            ActionClass::Local => {
                if rule.dry_run || step.approval {
                    if incident.noted.insert(Noted::Intent) {
                        let kind = RecordKind::Intent {
                            scope: format!("local:{rule_name}"),
                            epoch: 0,
                            action: step.action.clone(),
                            planner: me,
                            dry_run: rule.dry_run,
                            deadline_millis: cx.now_millis,
                        };
                        out.push(Out::Publish(cx.sign(key.clone(), kind)));
                    }
                    if rule.dry_run {
                        cx.stats.dry_runs += 1;
                        incident.phase = Phase::Done;
                        incident.since = cx.now;
                        return;
                    }
                }
                0
            }
            ActionClass::Disruptive => {
                if cx.safe_mode {
                    if incident.noted.insert(Noted::SafeMode) {
                        cx.stats.skipped_safe_mode += 1;
                    }
                    return;
                }
                let Some((scope, budget)) = rule.budget_for(cx.meta) else {
                    if incident.noted.insert(Noted::NoSlot) {
                        let reason = "no budget slot for this node's escrow tag".to_owned();
                        out.push(Out::Publish(cx.sign(key, RecordKind::Skipped { reason })));
                    }
                    return;
                };
                if incident.noted.insert(Noted::Requested) {
                    let kind = RecordKind::Request {
                        scope: scope.clone(),
                        action: step.action.clone(),
                    };
                    let entry = cx.sign(key.clone(), kind);
                    let voters = budget.voters.iter().filter(|&&voter| voter != me);
                    out.push(Out::Publish(entry.clone()));
                    out.push(Out::Tell(voters.copied().collect(), entry));
                }
                match fenced_intent(cx, &scope, budget, &key, &step) {
                    Fence::Run {
                        epoch,
                        dry_run,
                        planner,
                    } => {
                        tell = vec![planner];
                        if dry_run {
                            cx.stats.dry_runs += 1;
                            incident.phase = Phase::Done;
                            incident.since = cx.now;
                            return;
                        }
                        epoch
                    }
                    Fence::Wait => return,
                    Fence::Refuse(noted) => {
                        if incident.noted.insert(noted) {
                            match noted {
                                Noted::Stale => cx.stats.refused_stale_epoch += 1,
                                _ => cx.stats.refused_late += 1,
                            }
                        }
                        return;
                    }
                }
            }
        };
        if step.approval {
            match cx.approval(&key) {
                Approval::Valid => {}
                Approval::Expired => {
                    if incident.noted.insert(Noted::ApprovalExpired) {
                        cx.stats.skipped_approval_expired += 1;
                        let reason = "the approval expired before the action started".to_owned();
                        out.push(Out::Publish(
                            cx.sign(key.clone(), RecordKind::Skipped { reason }),
                        ));
                    }
                    return;
                }
                Approval::None => return,
            }
        }
        // Rails on this node, whatever planned the step.
        let window = rule.limit_window.as_millis() as u64;
        let (recent, last) = self
            .started
            .of_rule(rule_name, cx.now_millis.saturating_sub(window));
        if last.is_some_and(|last| cx.now_millis < last + rule.cooldown.as_millis() as u64) {
            if incident.noted.insert(Noted::Cooldown) {
                cx.stats.skipped_cooldown += 1;
            }
            return;
        }
        if recent >= rule.limit_count as usize {
            cx.stats.skipped_limit += 1;
            let needs = IdempotencyKey {
                rule: rule_name.to_owned(),
                target: me,
                incident: format!("limit@{}", cx.now_millis),
            };
            let reason = format!(
                "{recent} actions within {} s: stopped for this node until an operator approves this record",
                rule.limit_window.as_secs()
            );
            out.push(Out::Publish(
                cx.sign(needs.clone(), RecordKind::NeedsHuman { reason }),
            ));
            self.blocked.insert(rule_name.to_owned(), needs);
            return;
        }
        // Start.
        self.next_task += 1;
        let id = TaskId(self.next_task);
        incident.phase = Phase::Running(id);
        incident.since = cx.now;
        incident.acted = true;
        let check = incident.check.clone();
        let started = cx.sign(key.clone(), RecordKind::Started { epoch });
        if let Entry::Ledger(signed) = &started {
            self.causes
                .insert(check.clone(), (signed.digest(), cx.now + step.timeout));
        }
        self.started.record(key.clone(), cx.now_millis);
        out.push(Out::Persist(Persist::Remediations(self.started.snapshot())));
        out.push(Out::Publish(started));
        cx.stats.attempts += 1;
        self.running.insert(
            id,
            Running {
                rule: rule_name.to_owned(),
                key: key.clone(),
                deadline: cx.now + step.timeout,
                tell,
            },
        );
        out.push(Out::Task(Task::Action {
            id,
            key,
            check,
            timeout: step.timeout,
            epoch,
            step,
        }));
    }

    fn finish_action(
        &mut self,
        cx: &mut Cx<'_>,
        id: TaskId,
        result: TaskResult,
        out: &mut Vec<Out>,
    ) {
        let Some(running) = self.running.remove(&id) else {
            return;
        };
        if result.success {
            cx.stats.successes += 1;
        } else {
            cx.stats.failures += 1;
        }
        let kind = RecordKind::Outcome {
            success: result.success,
            exit_code: result.exit_code,
            detail: shorten(&result.detail, ledger_limits::TEXT_MAX),
        };
        let entry = cx.sign(running.key, kind);
        out.push(Out::Publish(entry.clone()));
        if !running.tell.is_empty() {
            out.push(Out::Tell(running.tell, entry));
        }
        if let Some(incident) = self.incidents.get_mut(&running.rule)
            && incident.phase == Phase::Running(id)
        {
            incident.phase = Phase::Done;
        }
    }

    /// As the holder of a scope's budget lease: plans intents for the
    /// requests it sees, within the budget.
    fn plan(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Out>) {
        if self.requests.is_empty() || cx.safe_mode {
            return;
        }
        let Some(policy) = self.policy.clone() else {
            return;
        };
        let me = cx.keypair.public();
        // Past its deadline an intent's action has ended, wherever it ran.
        self.planned
            .retain(|_, planned| planned.deadline_millis > cx.now_millis);
        let requests: Vec<(IdempotencyKey, String)> = self
            .requests
            .iter()
            .map(|(key, scope)| (key.clone(), scope.clone()))
            .collect();
        for (key, scope) in requests {
            let Some((rule, budget)) = policy
                .rules
                .get(&key.rule)
                .and_then(|rule| Some((rule, rule.budget(&scope)?)))
            else {
                self.requests.remove(&key);
                continue;
            };
            let Some((epoch, until)) = (cx.held)(&scope) else {
                continue;
            };
            match standing(cx, rule, &key) {
                _ if cx.has_outcome(&key) => {
                    self.requests.remove(&key);
                    continue;
                }
                Standing::Over => {
                    self.requests.remove(&key);
                    continue;
                }
                // The request can outrun the report that opened it.
                Standing::NotYet => continue,
                Standing::Stands => {}
            }
            // An intent still live stands, and a key that started is done
            // with; one that ran out unstarted (the target was busy, or heard
            // of it or its lease late) is planned again. The target starts a
            // key at most once whatever it is sent.
            let planned =
                cx.replicas
                    .ledger()
                    .records_for(&key)
                    .any(|signed| match signed.record.kind {
                        RecordKind::Intent {
                            deadline_millis, ..
                        } => deadline_millis > cx.now_millis,
                        RecordKind::Started { .. } => true,
                        _ => false,
                    });
            if planned {
                continue;
            }
            if !cx.alive(&key.target) {
                continue;
            }
            if cx.systemic(rule) {
                // Recorded once per holder; the request stands, and is
                // planned if the fault turns out not to be systemic.
                let recorded = cx.replicas.ledger().records_for(&key).any(|signed| {
                    signed.record.author == me
                        && matches!(signed.record.kind, RecordKind::Skipped { .. })
                });
                if !recorded {
                    cx.stats.skipped_systemic += 1;
                    let reason = format!(
                        "planner: more than {:.0}% of the rule's nodes report {} unhealthy",
                        rule.max_unhealthy * 100.0,
                        rule.check
                    );
                    out.push(Out::Publish(
                        cx.sign(key.clone(), RecordKind::Skipped { reason }),
                    ));
                }
                continue;
            }
            let in_use = self.budget_in_use(&scope, cx.now_millis, cx.replicas.ledger());
            if in_use >= budget.max_concurrent as usize {
                cx.stats.budget_full += 1;
                continue;
            }
            let Some(step) = step_of(rule, &key) else {
                self.requests.remove(&key);
                continue;
            };
            let left = Duration::from_nanos(until.0.saturating_sub(cx.now.0));
            let deadline_millis = cx.now_millis + left.as_millis() as u64;
            let kind = RecordKind::Intent {
                scope: scope.clone(),
                epoch,
                action: step.action.clone(),
                planner: me,
                dry_run: rule.dry_run,
                deadline_millis,
            };
            cx.stats.intents_planned += 1;
            self.planned.insert(
                key.clone(),
                Planned {
                    scope: scope.clone(),
                    deadline_millis,
                    dry_run: rule.dry_run,
                },
            );
            let entry = cx.sign(key.clone(), kind);
            out.push(Out::Publish(entry.clone()));
            out.push(Out::Tell(vec![key.target], entry));
        }
    }
}

/// What the target makes of the intent for a disruptive step.
enum Fence {
    Run {
        epoch: u64,
        dry_run: bool,
        planner: PublicKey,
    },
    Wait,
    Refuse(Noted),
}

/// Looks for an intent for `key` this node may run: planned by the holder
/// of the highest lease this node has seen for the rule's scope, backed by
/// the rule's voters, and leaving time to finish before its deadline. A
/// holder may plan a key again once an intent ran late, so every intent is
/// looked at.
fn fenced_intent(
    cx: &Cx<'_>,
    scope: &str,
    budget: Budget<'_>,
    key: &IdempotencyKey,
    step: &Step,
) -> Fence {
    let Some(lease) = cx.replicas.leases().get(scope) else {
        return Fence::Wait;
    };
    let lease = &lease.lease;
    let backed = matches!(&lease.kind, LeaseKind::Quorum { voters, .. } if voters == budget.voters);
    let finish = cx.now_millis + step.timeout.as_millis() as u64;
    let mut verdict = Fence::Wait;
    for intent in cx.replicas.ledger().intents_for(key) {
        let RecordKind::Intent {
            scope: theirs,
            epoch,
            planner,
            dry_run,
            deadline_millis,
            ..
        } = &intent.record.kind
        else {
            continue;
        };
        if *theirs != scope {
            continue;
        }
        if *epoch < lease.epoch {
            verdict = Fence::Refuse(Noted::Stale);
        } else if *epoch == lease.epoch && lease.holder == *planner && backed {
            if finish <= *deadline_millis {
                return Fence::Run {
                    epoch: *epoch,
                    dry_run: *dry_run,
                    planner: *planner,
                };
            }
            verdict = Fence::Refuse(Noted::Late);
        }
        // A higher epoch waits for its lease to arrive; an intent whose
        // planner does not hold that lease is never run.
    }
    verdict
}

/// Where a request's incident stands in the target's reports.
enum Standing {
    /// Its latest report is the unhealthy one that opened the incident.
    Stands,
    /// That report has not arrived yet.
    NotYet,
    /// A later report replaced it, or the request is too old or malformed.
    Over,
}

/// Compares the incident a request names (`check@millis#step`) with the
/// target's latest report of the rule's check.
fn standing(cx: &Cx<'_>, rule: &RuleSpec, key: &IdempotencyKey) -> Standing {
    let opened = key
        .incident
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('#'))
        .and_then(|(millis, _)| millis.parse::<u64>().ok());
    let Some(opened) = opened else {
        return Standing::Over;
    };
    if opened + (REQUEST_MAX_AGE.as_millis() as u64) < cx.now_millis {
        return Standing::Over;
    }
    let Some(signed) = cx.replicas.health().get(&key.target, &rule.check) else {
        return Standing::NotYet;
    };
    let report = &signed.report;
    match report.at.millis.cmp(&opened) {
        std::cmp::Ordering::Less => Standing::NotYet,
        std::cmp::Ordering::Equal if report.state == HealthState::Unhealthy => Standing::Stands,
        _ => Standing::Over,
    }
}

/// The step a key names (`check@millis#step`).
fn step_of<'a>(rule: &'a RuleSpec, key: &IdempotencyKey) -> Option<&'a Step> {
    let (_, step) = key.incident.rsplit_once('#')?;
    let step = rule.steps.get(step.parse::<usize>().ok()?)?;
    (step.class == ActionClass::Disruptive).then_some(step)
}

fn has_outcome(ledger: &Ledger, key: &IdempotencyKey) -> bool {
    ledger
        .records_for(key)
        .any(|signed| matches!(signed.record.kind, RecordKind::Outcome { .. }))
}

fn duration_millis(later: Instant, earlier: Instant) -> u64 {
    later.0.saturating_sub(earlier.0) / 1_000_000
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
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
