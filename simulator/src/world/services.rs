//! The world's side of remediation: each host's modelled services, the
//! checks and actions agents hand out (`Output::Task`) and their
//! results, the operators' remediation faults (`policy`, `service`,
//! `approve`), and the truth [`RemedyCheck`] judges.
//!
//! Every host has a service per check name, healthy unless a `service`
//! fault broke it. A check returns after the model's latency and passes
//! when the service is healthy then. An action runs for its modelled
//! duration on the host, whatever becomes of the agent that started it (a
//! process it spawned does not die with it), and succeeds; the driver kills
//! it at its timeout instead, unsuccessful. An action that ends well and is
//! in the failure's `fixed_by` fixes the service; a disruptive action
//! (reboot-like) makes the service unhealthy while it runs.
//!
//! A result belongs to the process that asked: one for an older process
//! generation is lost, as timers are. A paused agent gets its results when
//! it resumes, up to [`WAITING_MAX`]: the runtime's executors run beside
//! the agent, so a stopped agent finds their exit statuses waiting.

use super::{What, World};
use crate::checkers::remedy::{RemedyCheck, Start, fixed_in_time};
use crate::clock::wall_millis;
use crate::event::TraceEvent;
use crate::outcome::RemedyOutcome;
use crate::scenario::Scenario;
use crate::scenario::fault::Fault;
use crate::scenario::fault::service::ServiceFault;
use crate::scenario::operators::{Content, Publication};
use crate::scenario::schedule::Approval;
use crate::scenario::services::{ServiceModel, resolve_voters};
use fleetmesh_node::crdt::{IdempotencyKey, PublicKey, RecordKind};
use fleetmesh_node::{ActionClass, Policy};
use fleetmesh_node::{Task, TaskId, TaskResult};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Results a paused agent's executors hold for it; more are lost (counted).
pub(super) const WAITING_MAX: usize = 1_024;

/// One host's service of one check, when it is not plainly healthy.
#[derive(Default)]
struct Service {
    /// The failure in force, by index into [`Remediation::failures`].
    failure: Option<usize>,
    /// Disruptive actions running on the host for this check.
    disrupted: u32,
}

/// One service failure, from a `service` fault.
struct Failure {
    agent: u32,
    check: String,
    /// Which `service` fault, in file order.
    fault: usize,
    onset: u64,
    /// When it ended, by an action or by itself.
    fixed: Option<u64>,
}

/// An action running on a host.
struct Running {
    agent: u32,
    generation: u32,
    id: TaskId,
    check: String,
    action: String,
    scope: String,
    disruptive: bool,
    /// Ends well (else the driver kills it at its timeout).
    success: bool,
}

/// Remediation's ground truth and pending work in one run.
pub(super) struct Remediation {
    model: ServiceModel,
    /// The scenario's `service` faults, in file order.
    faults: Vec<ServiceFault>,
    services: BTreeMap<(u32, String), Service>,
    failures: Vec<Failure>,
    running: BTreeMap<u64, Running>,
    next_handle: u64,
    /// Results held for paused agents.
    waiting: BTreeMap<u32, VecDeque<(TaskId, TaskResult)>>,
    /// The latest policy the operators released.
    policy: Option<Arc<Policy>>,
    check: RemedyCheck,
    outcome: RemedyOutcome,
}

impl Remediation {
    /// The remediation side of `scenario`'s run.
    pub(super) fn new(scenario: &Scenario) -> Remediation {
        let faults = scenario
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::Service(service) => Some(ServiceFault::clone(service)),
                _ => None,
            })
            .collect();
        let slack = scenario.config.lease_drift_bound.as_millis() as u64;
        Remediation {
            model: scenario.services.clone(),
            faults,
            services: BTreeMap::new(),
            failures: Vec::new(),
            running: BTreeMap::new(),
            next_handle: 0,
            waiting: BTreeMap::new(),
            policy: None,
            check: RemedyCheck::new(slack),
            outcome: RemedyOutcome::default(),
        }
    }

    fn healthy(&self, agent: u32, check: &str) -> bool {
        self.services
            .get(&(agent, check.to_owned()))
            .is_none_or(|service| service.failure.is_none() && service.disrupted == 0)
    }

    /// Agent `index`'s process stopped: results held for it are lost.
    pub(super) fn forget(&mut self, index: u32) {
        if let Some(waiting) = self.waiting.remove(&index) {
            self.outcome.results_lost += waiting.len() as u64;
        }
    }

    /// Notes an acquisition of `scope` at `epoch` by any agent.
    pub(super) fn acquired(&mut self, scope: &str, epoch: u64) {
        self.check.acquired(scope, epoch);
    }
}

impl World {
    /// Takes a task agent `index` handed out.
    pub(super) fn take_task(&mut self, index: u32, task: Task) {
        match task {
            Task::Check { id, check } => {
                let generation = self.nodes[index as usize].generation;
                let at = self.now + super::nanos(self.remedy.model.check_latency);
                let check = check.name.clone();
                self.push(
                    at,
                    What::CheckDone {
                        node: index,
                        generation,
                        id,
                        check,
                    },
                );
            }
            action @ Task::Action { .. } => self.start_action(index, action),
        }
    }

    /// An action starts on agent `index`'s host: judged, then run.
    fn start_action(&mut self, index: u32, action: Task) {
        let Task::Action {
            id,
            key,
            check,
            step,
            epoch,
            timeout,
        } = action
        else {
            return;
        };
        let disruptive = step.class == ActionClass::Disruptive;
        let rule = self
            .remedy
            .policy
            .as_ref()
            .and_then(|policy| policy.rules.get(&key.rule));
        let meta = &self.nodes[index as usize].meta;
        let budget = rule.and_then(|rule| rule.budget_for(meta));
        let scope = budget.as_ref().map_or_else(
            || format!("remediate:{}", key.rule),
            |(scope, _)| scope.clone(),
        );
        let start = Start {
            now: self.now,
            agent: index,
            key: &key,
            disruptive,
            scope: &scope,
            epoch,
            approval: step.approval,
            budget: budget.map(|(_, budget)| budget.max_concurrent),
            wall_millis: wall_millis(self.now),
        };
        let violations = self.remedy.check.started(&start);
        self.violations.extend(violations);
        let phase = u8::from(disruptive);
        self.trace.record(
            self.now,
            TraceEvent::Action {
                agent: index,
                phase,
            },
        );
        if disruptive {
            self.remedy.outcome.disruptive.push((index, self.now));
            self.remedy
                .services
                .entry((index, check.clone()))
                .or_default()
                .disrupted += 1;
        } else {
            self.remedy.outcome.local += 1;
        }
        // The driver kills the action when its timeout passes on the
        // agent's clock.
        let node = &self.nodes[index as usize];
        let local = node.clock.local(self.now);
        let kill_at = node.clock.true_time_of(local + timeout, self.now);
        let ends = self.now + super::nanos(self.remedy.model.duration_of(&step.action));
        let handle = self.remedy.next_handle;
        self.remedy.next_handle += 1;
        self.remedy.running.insert(
            handle,
            Running {
                agent: index,
                generation: node.generation,
                id,
                check,
                action: step.action,
                scope,
                disruptive,
                success: ends <= kill_at,
            },
        );
        self.push(ends.min(kill_at), What::ActionDone(handle));
    }

    /// A check's result is due.
    pub(super) fn check_done(&mut self, index: u32, generation: u32, id: TaskId, check: &str) {
        if self.nodes[index as usize].generation != generation {
            self.remedy.outcome.results_lost += 1;
            return;
        }
        let success = self.remedy.healthy(index, check) && !self.broken_by_release(index, check);
        let result = TaskResult {
            success,
            exit_code: Some(if success { 0 } else { 1 }),
            detail: if success { "ok" } else { "failing" }.to_owned(),
        };
        self.task_result(index, id, result);
    }

    /// Whether agent `index` runs a release whose content breaks `check`
    /// (a scenario's bad release).
    fn broken_by_release(&self, index: u32, check: &str) -> bool {
        let breaking = &self.operators.truth().breaking;
        if breaking.is_empty() {
            return false;
        }
        self.nodes[index as usize]
            .agent
            .as_ref()
            .is_some_and(|agent| {
                agent.applied_releases().values().any(|applied| {
                    !applied.void
                        && breaking
                            .get(&applied.content_digest())
                            .is_some_and(|checks| checks.iter().any(|broken| broken == check))
                })
            })
    }

    /// An action ends on its host.
    pub(super) fn action_done(&mut self, handle: u64) {
        let Some(run) = self.remedy.running.remove(&handle) else {
            return;
        };
        let service_key = (run.agent, run.check.clone());
        if run.disruptive {
            self.remedy.check.ended(&run.scope);
            if let Some(service) = self.remedy.services.get_mut(&service_key) {
                service.disrupted = service.disrupted.saturating_sub(1);
            }
        }
        let phase = if run.success { 2 } else { 3 };
        self.trace.record(
            self.now,
            TraceEvent::Action {
                agent: run.agent,
                phase,
            },
        );
        if run.success {
            let remedy = &mut self.remedy;
            if let Some(service) = remedy.services.get_mut(&service_key)
                && let Some(at) = service.failure
                && remedy.faults[remedy.failures[at].fault]
                    .fixed_by
                    .contains(&run.action)
            {
                service.failure = None;
                let failure = &mut remedy.failures[at];
                failure.fixed = Some(self.now);
                remedy.outcome.fix_times.push(self.now - failure.onset);
            }
        }
        if self.nodes[run.agent as usize].generation != run.generation {
            self.remedy.outcome.results_lost += 1;
            return;
        }
        let result = if run.success {
            TaskResult {
                success: true,
                exit_code: Some(0),
                detail: format!("{} done", run.action),
            }
        } else {
            TaskResult {
                success: false,
                exit_code: None,
                detail: format!("{} killed at its timeout", run.action),
            }
        };
        self.task_result(run.agent, run.id, result);
    }

    /// Hands a result to its agent, or holds it while the agent is paused.
    fn task_result(&mut self, index: u32, id: TaskId, result: TaskResult) {
        let node = &self.nodes[index as usize];
        if node.agent.is_none() {
            self.remedy.outcome.results_lost += 1;
            return;
        }
        if node.paused > 0 {
            let waiting = self.remedy.waiting.entry(index).or_default();
            if waiting.len() >= WAITING_MAX {
                self.remedy.outcome.results_lost += 1;
            } else {
                waiting.push_back((id, result));
            }
            return;
        }
        self.with_agent(index, |agent, now| {
            agent.handle_task_result(now, id, result)
        });
    }

    /// A paused agent resumes: the results its executors held.
    pub(super) fn resume_tasks(&mut self, index: u32) {
        let Some(waiting) = self.remedy.waiting.remove(&index) else {
            return;
        };
        for (id, result) in waiting {
            self.with_agent(index, |agent, now| {
                agent.handle_task_result(now, id, result)
            });
        }
    }

    /// A `service` fault's turn: the service fails, or recovers by itself.
    pub(super) fn service_turn(&mut self, fault: u32, agents: &[u32], failing: bool) {
        let fault = fault as usize;
        let Some(spec) = self.remedy.faults.get(fault) else {
            return;
        };
        let check = spec.check.clone();
        let bound = spec.expect_fixed_within;
        for &agent in agents {
            let remedy = &mut self.remedy;
            let service = remedy.services.entry((agent, check.clone())).or_default();
            if failing {
                // A service already failing stays in its first failure.
                if service.failure.is_some() {
                    continue;
                }
                service.failure = Some(remedy.failures.len());
                remedy.failures.push(Failure {
                    agent,
                    check: check.clone(),
                    fault,
                    onset: self.now,
                    fixed: None,
                });
                remedy.outcome.failures += 1;
                if let Some(bound) = bound {
                    let at = self.now + super::nanos(bound);
                    self.push(at, What::CheckFixed(self.remedy.failures.len() - 1));
                }
            } else if let Some(at) = service.failure
                && remedy.failures[at].fault == fault
            {
                service.failure = None;
                remedy.failures[at].fixed = Some(self.now);
                remedy.outcome.healed += 1;
            }
        }
    }

    /// The deadline of failure `at`'s `expect_fixed_within_s`.
    pub(super) fn check_fixed(&mut self, at: usize) {
        let Some(failure) = self.remedy.failures.get(at) else {
            return;
        };
        if let Some(violation) = fixed_in_time(
            self.now,
            failure.onset,
            failure.fixed,
            failure.agent,
            &failure.check,
        ) {
            self.violations.push(violation);
        }
    }

    /// An operator releases the remediation policy, its voter selectors
    /// resolved against the hosts' current tags.
    pub(super) fn publish_policy(&mut self, publication: &Publication, via: &[u32]) {
        let Content::Inline(value) = &publication.content else {
            return;
        };
        let nodes = &self.nodes;
        let fleet = &self.fleet;
        let resolved = resolve_voters(value, |select| {
            (0..nodes.len() as u32)
                .filter(|&index| {
                    let tags = &nodes[index as usize].meta.tags;
                    select
                        .iter()
                        .all(|(key, value)| tags.get(key) == Some(value))
                })
                .map(|index| fleet.node_key(index))
                .collect()
        });
        let Ok(resolved) = resolved else {
            self.traffic.publications_lost += 1;
            return;
        };
        let policy = Policy::parse(&resolved);
        let publication = Publication {
            content: Content::Inline(resolved),
            ..publication.clone()
        };
        if !self.publish_config(&publication, via) {
            return;
        }
        self.remedy.outcome.policy = true;
        if let Ok(policy) = policy {
            let policy = Arc::new(policy);
            self.adopt_budget_scopes(&policy);
            self.remedy.policy = Some(policy);
        }
    }

    /// An operator approves every pending remediation of `fault.rule` on
    /// `targets` that the ledger of one running agent of `via` shows: keys
    /// with an intent, a request or a `needs-human` record and no start.
    pub(super) fn approve(&mut self, fault: &Approval, targets: &[u32], via: &[u32]) {
        let Some(index) = self.pick_running(via) else {
            self.traffic.publications_lost += 1;
            return;
        };
        let Some(agent) = &self.nodes[index as usize].agent else {
            return;
        };
        let targets: BTreeSet<PublicKey> = targets
            .iter()
            .map(|&target| self.fleet.node_key(target))
            .collect();
        let mut pending: BTreeSet<IdempotencyKey> = BTreeSet::new();
        let mut started: BTreeSet<IdempotencyKey> = BTreeSet::new();
        for signed in agent.replicas().ledger().iter() {
            let key = &signed.record.key;
            if key.rule != fault.rule || !targets.contains(&key.target) {
                continue;
            }
            match signed.record.kind {
                RecordKind::Intent { .. }
                | RecordKind::Request { .. }
                | RecordKind::NeedsHuman { .. } => {
                    pending.insert(key.clone());
                }
                RecordKind::Started { .. } | RecordKind::Outcome { .. } => {
                    started.insert(key.clone());
                }
                RecordKind::Skipped { .. }
                | RecordKind::Approval { .. }
                | RecordKind::Stop { .. }
                | RecordKind::Resume { .. }
                | RecordKind::Attest { .. } => {}
            }
        }
        let keys: Vec<IdempotencyKey> = pending.difference(&started).cloned().collect();
        if keys.is_empty() {
            return;
        }
        let signed_at = wall_millis(self.now.saturating_sub(super::nanos(fault.late_by)));
        let expires = signed_at + fault.ttl.as_millis() as u64;
        for key in &keys {
            self.remedy.check.approved(key, expires);
        }
        self.remedy.outcome.approvals += keys.len() as u64;
        let entries = self.operators.approve(keys, signed_at, expires);
        self.hand(index, entries);
    }

    /// Remediation's summary; failures still failing are counted.
    pub(super) fn finish_remedy(&mut self) -> RemedyOutcome {
        let mut outcome = std::mem::take(&mut self.remedy.outcome);
        outcome.still_failing = self
            .remedy
            .failures
            .iter()
            .filter(|failure| failure.fixed.is_none())
            .count() as u64;
        outcome
    }
}
