//! The unhealthy node's side: opening an incident when a check turns
//! unhealthy by itself, climbing the rule's ladder under the node's own
//! rails, checking a disruptive step's intent against the highest lease
//! seen (fencing), and recording how each action ended. Apart from the
//! planner because this runs on every node for its own checks, and
//! never decides for another host.

use super::checks::Transition;
use super::policy::{ActionClass, Budget, RuleSpec, Step};
use super::task::{Task, TaskId, TaskResult};
use super::{Approval, Cx, Incident, Noted, OVER_MAX, Out, Phase, Remedy, Running};
use crate::persist::Persist;
use crate::state::Entry;
use crate::time::Instant;
use fleetmesh_crdt::{
    HealthReport, HealthState, IdempotencyKey, LeaseKind, PublicKey, RecordKind, SignedHealth,
    health_limits, ledger_limits,
};
use std::collections::VecDeque;

impl Remedy {
    pub(super) fn on_transition(
        &mut self,
        cx: &mut Cx<'_>,
        transition: Transition,
        out: &mut Vec<Out>,
    ) {
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
                    if incident.exhausted {
                        let key = incident.end_key(&rule, cx.keypair.public());
                        self.over.push_back((key, incident.check.clone()));
                        if self.over.len() > OVER_MAX {
                            self.over.pop_front();
                            cx.stats.index_dropped += 1;
                        }
                    }
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
                    let incident = waiting_before_restart(cx, rule).unwrap_or_else(|| {
                        Incident::waiting(
                            transition.check.clone(),
                            format!("{}@{}", transition.check, at.millis),
                            cx.now,
                            0,
                            cx.now + rule.unhealthy_for,
                        )
                    });
                    self.incidents.insert(rule.name.clone(), incident);
                }
            }
            HealthState::Unhealthy | HealthState::Unknown => {}
        }
    }

    /// Moves one incident along its ladder as far as it can go now.
    pub(super) fn advance(&mut self, cx: &mut Cx<'_>, rule_name: &str, out: &mut Vec<Out>) {
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
        if cx.now < incident.opened + rule.unhealthy_for {
            return;
        }
        // An emergency stop freezes the ladder where it stands: nothing
        // starts, no step is climbed past, and the step waiting to start
        // records the skip once. The checks go on, and the ladder goes on
        // by itself once the stop lapses or is lifted.
        if let Some(stop) = cx.stop_for(cx.meta) {
            if incident.phase == Phase::Waiting && incident.noted.insert(Noted::Stopped) {
                cx.stats.skipped_stopped += 1;
                let reason = format!(
                    "emergency stop {:?} until {} ms: {}",
                    stop.digest, stop.expires_millis, stop.reason
                );
                let key = incident.key(rule_name, me);
                out.push(Out::Publish(cx.sign(key, RecordKind::Skipped { reason })));
            }
            return;
        }
        if incident.exhausted {
            // The incident is still open, so the check is still unhealthy:
            // an operator's approval of its needs-human record runs the fix
            // once more.
            if cx.approval(&incident.end_key(rule_name, me)) != Approval::Valid {
                return;
            }
            cx.stats.reruns_approved += 1;
            incident.rerun(rule.steps.len(), cx.now);
        }
        // Past the step's window with the check still unhealthy: climb.
        while let Some(step) = rule.steps.get(incident.step) {
            let window_over = cx.now >= incident.window_end(step);
            let climb = match incident.phase {
                Phase::Done => window_over,
                // An approval that never came skips the step; any other
                // wait (cooldown, the budget, a partition) holds it.
                Phase::Waiting => window_over && incident.gated(step),
                Phase::Running(_) => false,
            };
            if !climb {
                break;
            }
            if incident.phase == Phase::Waiting {
                cx.stats.skipped_no_approval += 1;
                let key = incident.key(rule_name, me);
                let reason = format!(
                    "no valid approval within the step's approval window (approval_window_s = {})",
                    step.approval_window.as_secs()
                );
                out.push(Out::Publish(cx.sign(key, RecordKind::Skipped { reason })));
                if !incident.rerun {
                    incident.skipped_for_approval = Some(incident.step);
                }
            }
            incident.next_step(rule.steps.len(), cx.now);
        }
        if incident.step >= rule.steps.len() {
            incident.exhausted = true;
            incident.rounds += 1;
            cx.stats.ladders_exhausted += 1;
            let key = incident.end_key(rule_name, me);
            let skipped = incident
                .skipped_for_approval
                .and_then(|at| rule.steps.get(at));
            let reason = match skipped {
                None => format!(
                    "every step of the ladder ran and {} is still unhealthy",
                    incident.check
                ),
                Some(skipped) => format!(
                    "the ladder ran out and {} is still unhealthy; {} was skipped for want of an approval: approving this record runs it",
                    incident.check, skipped.action
                ),
            };
            needs_human(cx, out, key, reason);
            return;
        }
        if incident.phase != Phase::Waiting {
            return;
        }
        let step = rule.steps[incident.step].clone();
        let key = incident.key(rule_name, me);
        let gated = incident.gated(&step);
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
                if rule.dry_run || gated {
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
        if gated {
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
            let reason = format!(
                "{recent} actions within {} s: stopped for this node until an operator approves this record",
                rule.limit_window.as_secs()
            );
            let needs = IdempotencyKey {
                rule: rule_name.to_owned(),
                target: me,
                incident: format!("limit@{}", cx.now_millis),
            };
            needs_human(cx, out, needs.clone(), reason);
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
            step: Box::new(step),
        }));
    }

    /// Answers each approval of a `needs-human` record whose incident is
    /// over: nothing runs, and the ledger says so under the record's key.
    pub(super) fn answer_late_approvals(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Out>) {
        let mut kept = VecDeque::with_capacity(self.over.len());
        while let Some((key, check)) = self.over.pop_front() {
            if cx.approval(&key) == Approval::None {
                kept.push_back((key, check));
                continue;
            }
            cx.stats.approvals_after_recovery += 1;
            let reason =
                format!("approved after {check} recovered: the incident is over and nothing ran");
            out.push(Out::Publish(cx.sign(key, RecordKind::Skipped { reason })));
        }
        self.over = kept;
    }

    pub(super) fn finish_action(
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
}

/// The incident this node left waiting for an approval when it stopped, if
/// the failure it names is the one now seen again: the node's own latest
/// report of the check (from before this transition) is the unhealthy one
/// that opened it, and the ledger holds this node's intent (a local step)
/// or request (a disruptive one) for an approval-gated step that neither
/// started nor was skipped. The step goes on waiting under the same key, so
/// an approval given before the restart still counts, and its window runs
/// from when the wait began, not from the restart.
fn waiting_before_restart(cx: &Cx<'_>, rule: &RuleSpec) -> Option<Incident> {
    let me = cx.keypair.public();
    let report = &cx.replicas.health().get(&me, &rule.check)?.report;
    if report.state != HealthState::Unhealthy || report.cause.is_some() {
        return None;
    }
    let name = format!("{}@{}", rule.check, report.at.millis);
    let ledger = cx.replicas.ledger();
    let (step, began_millis) = (0..rule.steps.len()).rev().find_map(|step| {
        if !rule.steps[step].approval {
            return None;
        }
        let key = IdempotencyKey {
            rule: rule.name.clone(),
            target: me,
            incident: format!("{name}#{step}"),
        };
        let mut began = None;
        for signed in ledger.records_for(&key) {
            match signed.record.kind {
                RecordKind::Started { .. } | RecordKind::Skipped { .. } => return None,
                RecordKind::Intent { .. } | RecordKind::Request { .. }
                    if signed.record.author == me =>
                {
                    began = Some(signed.record.at.millis);
                }
                _ => {}
            }
        }
        Some((step, began?))
    })?;
    let ago = |millis: u64| {
        let nanos = cx
            .now_millis
            .saturating_sub(millis)
            .saturating_mul(1_000_000);
        Instant(cx.now.0.saturating_sub(nanos))
    };
    Some(Incident::waiting(
        rule.check.clone(),
        name,
        ago(report.at.millis),
        step,
        ago(began_millis),
    ))
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

/// Publishes that the rule of `key` needs an operator on this node, saying
/// why; the operator's approval names `key`.
fn needs_human(cx: &mut Cx<'_>, out: &mut Vec<Out>, key: IdempotencyKey, reason: String) {
    out.push(Out::Publish(
        cx.sign(key, RecordKind::NeedsHuman { reason }),
    ));
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
