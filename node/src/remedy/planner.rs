//! The voters' side: indexing the requests and intents of the budget
//! scopes this node votes in, and, as the holder of a scope's lease,
//! planning intents for the requests that still stand, within the
//! budget. Apart from the ladder because only a rule's voters run it.

use super::policy::{ActionClass, RuleSpec, Step};
use super::{Cx, INDEX_MAX, Out, Planned, REQUEST_MAX_AGE, Remedy};
use crate::stats::RemedyStats;
use fleetmesh_crdt::{HealthState, IdempotencyKey, Ledger, NodeMeta, RecordKind, SignedRecord};
use std::time::Duration;

impl Remedy {
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
            // Requests and intents of scopes this agent does not vote on,
            // and what the targets record: nothing to plan. Named, so a
            // new kind of record is a decision here, not a silent skip.
            RecordKind::Request { .. }
            | RecordKind::Intent { .. }
            | RecordKind::Started { .. }
            | RecordKind::Outcome { .. }
            | RecordKind::Skipped { .. }
            | RecordKind::NeedsHuman { .. }
            | RecordKind::Approval { .. }
            | RecordKind::Stop { .. }
            | RecordKind::Resume { .. }
            | RecordKind::Attest { .. } => {}
        }
    }

    /// As the holder of a scope's budget lease: plans intents for the
    /// requests it sees, within the budget.
    pub(super) fn plan(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Out>) {
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
            // An emergency stop on the target: its request waits, unplanned
            // (the target would refuse to start it anyway).
            let unknown = NodeMeta::default();
            let target_meta = cx.members.meta(key.target.node_id());
            if cx
                .stop_for(target_meta.map_or(&unknown, |meta| &**meta))
                .is_some()
            {
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
            let Some(step) = step_of(rule, &key, cx.replicas.ledger()) else {
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

/// The disruptive step a key names: `check@millis#step`, or, for a rerun
/// an operator approved on a `needs-human` record (`check@millis#end`),
/// the step the target's own request names.
fn step_of<'a>(rule: &'a RuleSpec, key: &IdempotencyKey, ledger: &Ledger) -> Option<&'a Step> {
    let (_, step) = key.incident.rsplit_once('#')?;
    let step = match step.parse::<usize>() {
        Ok(index) => rule.steps.get(index)?,
        Err(_) => {
            let requested =
                ledger
                    .records_for(key)
                    .find_map(|signed| match &signed.record.kind {
                        RecordKind::Request { action, .. }
                            if signed.record.author == key.target =>
                        {
                            Some(action)
                        }
                        _ => None,
                    })?;
            // Only the intent's action name comes from the step, so two
            // steps of one name are as good as each other.
            rule.steps
                .iter()
                .rev()
                .find(|step| step.action == *requested)?
        }
    };
    (step.class == ActionClass::Disruptive).then_some(step)
}
