//! Remediation on bare agents: a harness with a virtual clock, fixed-delay
//! links, modelled services answering the agents' check tasks, and actions
//! that fix them. These tests pin what each rail does; the simulator's
//! scenarios check the fleet-wide invariants under faults.

mod common;

use common::{FLEET, Laptop, id, identity, key, verifier};
use fleetmesh_node::crdt::{Hlc, IdempotencyKey, LedgerRecord, RecordKind, SignedRecord, Value};
use fleetmesh_node::remedy::policy::ActionClass;
use fleetmesh_node::state::Entry;
use fleetmesh_node::{
    Agent, Config, Durable, Instant, NodeId, NodeMeta, POLICY_DOC, Policy, Task, TaskResult,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LINK_DELAY: Duration = Duration::from_millis(1);
const CHECK_LATENCY: Duration = Duration::from_millis(2);
const ACTION_TIME: Duration = Duration::from_millis(200);
const STEPS_MAX: usize = 2_000_000;

/// What happens at an instant besides timers.
enum Due {
    Deliver(u64, u64, Vec<u8>),
    Result(u64, Task),
}

/// One action as the harness saw it start.
#[derive(Clone, Debug)]
struct Ran {
    node: u64,
    action: String,
    class: ActionClass,
    epoch: u64,
}

struct Harness {
    now: Instant,
    agents: BTreeMap<u64, Agent>,
    durable: BTreeMap<u64, Durable>,
    due: BTreeMap<(Instant, u64), Due>,
    sequence: u64,
    /// Whether each node's modelled service is up.
    healthy: BTreeMap<u64, bool>,
    /// Actions that bring a node's service back.
    fixes: BTreeSet<String>,
    ran: Vec<Ran>,
    /// Disruptive actions running now, and the most ever at once.
    /// Disruptive actions running now, per zone, and the most ever at
    /// once, per zone and in all.
    disruptive_running: BTreeMap<&'static str, usize>,
    disruptive_peak: BTreeMap<&'static str, usize>,
    disruptive_peak_all: usize,
    laptop: Laptop,
    version: u64,
    /// Nodes `0..voters` are tagged `db`, the rest `web`.
    voters: u64,
}

/// Even nodes are in zone a, odd ones in zone b.
fn zone(n: u64) -> &'static str {
    if n.is_multiple_of(2) { "a" } else { "b" }
}

fn tags(n: u64, role: &str) -> NodeMeta {
    NodeMeta {
        tags: BTreeMap::from([
            ("role".to_owned(), role.to_owned()),
            ("zone".to_owned(), zone(n).to_owned()),
        ]),
        addrs: Vec::new(),
    }
}

impl Harness {
    /// `count` agents, `voters` of them (the first) tagged `db`, the rest
    /// `web`.
    fn new(count: u64, voters: u64) -> Harness {
        let mut harness = Harness {
            now: Instant(1_000_000_000),
            agents: BTreeMap::new(),
            durable: BTreeMap::new(),
            due: BTreeMap::new(),
            sequence: 0,
            healthy: BTreeMap::new(),
            fixes: BTreeSet::from(["restart".to_owned()]),
            ran: Vec::new(),
            disruptive_running: BTreeMap::new(),
            disruptive_peak: BTreeMap::new(),
            disruptive_peak_all: 0,
            laptop: Laptop::new(),
            version: 0,
            voters,
        };
        for n in 0..count {
            let agent = Agent::new(
                Config::lan(),
                identity(n),
                tags(n, harness.role(n)),
                n,
                harness.now,
                verifier(),
            )
            .expect("valid metadata");
            harness.agents.insert(n, agent);
            harness.healthy.insert(n, true);
            if n > 0 {
                let now = harness.now;
                harness.agents.get_mut(&n).unwrap().join(now, &[id(0)]);
            }
            harness.drain(n);
        }
        harness.run_for(Duration::from_secs(5));
        harness
    }

    fn role(&self, n: u64) -> &'static str {
        if n < self.voters { "db" } else { "web" }
    }

    /// Crashes agent `n` and starts it again with what it persisted; its
    /// tasks in flight are lost with the process.
    fn restart(&mut self, n: u64) {
        self.due
            .retain(|_, due| !matches!(due, Due::Result(node, _) if *node == n));
        let mut agent = Agent::new(
            Config::lan(),
            identity(n),
            tags(n, self.role(n)),
            n + 1000,
            self.now,
            verifier(),
        )
        .expect("valid metadata");
        agent.restore(self.now, self.durable.get(&n).cloned().unwrap_or_default());
        agent.join(self.now, &[id(0)]);
        self.agents.insert(n, agent);
        self.drain(n);
    }

    fn index_of(who: NodeId) -> u64 {
        (0..1000).find(|&n| id(n) == who).expect("a test agent")
    }

    fn push(&mut self, at: Instant, due: Due) {
        self.sequence += 1;
        self.due.insert((at, self.sequence), due);
    }

    fn drain(&mut self, n: u64) {
        let agent = self.agents.get_mut(&n).unwrap();
        while let Some(persist) = agent.poll_persist() {
            self.durable.entry(n).or_default().apply(persist);
        }
        let mut out = Vec::new();
        while let Some(transmit) = agent.poll_transmit() {
            out.push((Harness::index_of(transmit.to), transmit.bytes));
        }
        while agent.poll_event().is_some() {}
        let mut tasks = Vec::new();
        while let Some(task) = agent.poll_task() {
            tasks.push(task);
        }
        for (to, bytes) in out {
            self.push(self.now + LINK_DELAY, Due::Deliver(n, to, bytes));
        }
        for task in tasks {
            let after = match &task {
                Task::Check { .. } => CHECK_LATENCY,
                Task::Action { step, epoch, .. } => {
                    self.ran.push(Ran {
                        node: n,
                        action: step.action.clone(),
                        class: step.class,
                        epoch: *epoch,
                    });
                    if step.class == ActionClass::Disruptive {
                        let running = self.disruptive_running.entry(zone(n)).or_default();
                        *running += 1;
                        let peak = self.disruptive_peak.entry(zone(n)).or_default();
                        *peak = (*peak).max(*running);
                        let all = self.disruptive_running.values().sum();
                        self.disruptive_peak_all = self.disruptive_peak_all.max(all);
                    }
                    ACTION_TIME
                }
            };
            self.push(self.now + after, Due::Result(n, task));
        }
    }

    fn finish(&mut self, n: u64, task: Task) {
        let success = match &task {
            Task::Check { .. } => self.healthy[&n],
            Task::Action { step, .. } => {
                if step.class == ActionClass::Disruptive {
                    *self.disruptive_running.entry(zone(n)).or_default() -= 1;
                }
                if self.fixes.contains(&step.action) {
                    self.healthy.insert(n, true);
                }
                true
            }
        };
        let result = TaskResult {
            success,
            exit_code: Some(if success { 0 } else { 1 }),
            detail: String::new(),
        };
        let now = self.now;
        self.agents
            .get_mut(&n)
            .unwrap()
            .handle_task_result(now, task.id(), result);
        self.drain(n);
    }

    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..STEPS_MAX {
            let next_due = self.due.keys().next().map(|&(at, _)| at);
            let next_timer = self
                .agents
                .iter()
                .filter_map(|(&n, agent)| agent.poll_timeout().map(|at| (at, n)))
                .min();
            let next = [next_due, next_timer.map(|(at, _)| at)]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&next| next <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            if next_due == Some(next) {
                match self.due.pop_first().unwrap().1 {
                    Due::Deliver(from, to, bytes) => {
                        self.agents
                            .get_mut(&to)
                            .unwrap()
                            .handle_message(now, id(from), &bytes);
                        self.drain(to);
                    }
                    Due::Result(n, task) => self.finish(n, task),
                }
            } else if let Some((_, n)) = next_timer {
                self.agents.get_mut(&n).unwrap().handle_timeout(now);
                self.drain(n);
            }
        }
        panic!("harness did not reach the end of its run within {STEPS_MAX} steps");
    }

    /// Releases `policy` as the next version of the policy document.
    fn release(&mut self, policy: &Value) {
        let (operator, _) = &*FLEET;
        self.version += 1;
        let entries = self
            .laptop
            .write_doc(operator, POLICY_DOC, policy, self.version, None);
        self.publish(0, entries);
        self.run_for(Duration::from_secs(2));
        for (n, agent) in &self.agents {
            assert!(agent.policy().is_some(), "agent {n} runs the policy");
        }
    }

    fn publish(&mut self, to: u64, entries: Vec<Entry>) {
        let now = self.now;
        let agent = self.agents.get_mut(&to).unwrap();
        for entry in entries {
            agent.publish(now, entry).unwrap();
        }
        self.drain(to);
    }

    /// Records about `node` in agent 0's ledger, as (kind name, incident).
    fn records(&self, node: u64) -> Vec<(&'static str, String)> {
        self.agents[&0]
            .replicas()
            .ledger()
            .iter()
            .filter(|signed| signed.record.key.target == key(node).public())
            .map(|signed| {
                (
                    kind_name(&signed.record.kind),
                    signed.record.key.incident.clone(),
                )
            })
            .collect()
    }

    fn count(&self, node: u64, kind: &str) -> usize {
        self.records(node)
            .iter()
            .filter(|(name, _)| *name == kind)
            .count()
    }

    /// An operator's approval of every intent about `node`, lapsing `ttl`
    /// from now.
    fn approve(&mut self, node: u64, ttl: Duration) {
        let (operator, _) = &*FLEET;
        let keys: BTreeSet<IdempotencyKey> = self.agents[&0]
            .replicas()
            .ledger()
            .iter()
            .filter(|signed| {
                signed.record.key.target == key(node).public()
                    && matches!(signed.record.kind, RecordKind::Intent { .. })
            })
            .map(|signed| signed.record.key.clone())
            .collect();
        assert!(!keys.is_empty(), "something awaits approval");
        let now_millis = self.now.0 / 1_000_000;
        let entries = keys
            .into_iter()
            .map(|about| {
                let record = LedgerRecord {
                    key: about,
                    kind: RecordKind::Approval {
                        approver: operator.public(),
                        expires_millis: now_millis + ttl.as_millis() as u64,
                        trust_version: 1,
                    },
                    author: operator.public(),
                    at: Hlc {
                        millis: now_millis,
                        counter: 0,
                    },
                };
                Entry::Ledger(Box::new(SignedRecord::sign(record, operator)))
            })
            .collect();
        self.publish(0, entries);
    }
}

fn kind_name(kind: &RecordKind) -> &'static str {
    match kind {
        RecordKind::Intent { .. } => "intent",
        RecordKind::Request { .. } => "request",
        RecordKind::Started { .. } => "started",
        RecordKind::Outcome { .. } => "outcome",
        RecordKind::Skipped { .. } => "skipped",
        RecordKind::NeedsHuman { .. } => "needs-human",
        RecordKind::Approval { .. } => "approval",
    }
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn text(value: &str) -> Value {
    Value::Str(value.to_owned())
}

fn step(action: &str, class: &str, timeout_ms: i64) -> Value {
    map(vec![
        ("action", text(action)),
        ("class", text(class)),
        ("timeout_ms", Value::Int(timeout_ms)),
    ])
}

/// A policy with one check `web` on the web nodes (1 s interval, 2 failures
/// down, 1 pass up) and one rule `web-down` with `steps`; `extra` adds or
/// replaces rule fields. Voters are the `voters` first nodes.
fn policy(steps: Vec<Value>, voters: u64, extra: Vec<(&str, Value)>) -> Value {
    let check = map(vec![
        ("kind", text("tcp")),
        ("addr", text("127.0.0.1:8080")),
        ("select", text("role=web")),
        ("interval_ms", Value::Int(1_000)),
        ("timeout_ms", Value::Int(500)),
        ("fall", Value::Int(2)),
        ("rise", Value::Int(1)),
    ]);
    let mut rule = BTreeMap::from([
        ("check".to_owned(), text("web")),
        ("select".to_owned(), text("role=web")),
        ("steps".to_owned(), Value::List(steps)),
        ("cooldown_ms".to_owned(), Value::Int(0)),
        ("max_unhealthy".to_owned(), Value::Float(0.5)),
        (
            "voters".to_owned(),
            Value::List(
                (0..voters)
                    .map(|n| text(&key(n).public().to_hex()))
                    .collect(),
            ),
        ),
        ("lease_ttl_ms".to_owned(), Value::Int(10_000)),
    ]);
    for (field, value) in extra {
        rule.insert(field.to_owned(), value);
    }
    map(vec![
        ("checks", map(vec![("web", check)])),
        ("rules", map(vec![("web-down", Value::Map(rule))])),
    ])
}

#[test]
fn a_crashed_service_is_restarted_by_its_own_node_and_the_fix_is_recorded() {
    let mut harness = Harness::new(6, 3);
    harness.release(&policy(vec![step("restart", "local", 5_000)], 3, vec![]));
    harness.run_for(Duration::from_secs(3));
    assert!(harness.ran.is_empty(), "a healthy fleet runs nothing");
    harness.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    let ran: Vec<(u64, &str)> = harness
        .ran
        .iter()
        .map(|ran| (ran.node, ran.action.as_str()))
        .collect();
    assert_eq!(ran, [(4, "restart")]);
    assert!(harness.healthy[&4]);
    assert_eq!(harness.count(4, "started"), 1);
    assert_eq!(harness.count(4, "outcome"), 1);
    let stats = &harness.agents[&4].stats().remedy;
    assert_eq!((stats.incidents, stats.attempts, stats.fixes), (1, 1, 1));
    // Two failed checks at 1 s, then the restart: well under 4 s.
    assert!(stats.fix_millis_max < 4_000, "{stats:?}");
}

#[test]
fn a_flapping_service_stops_at_the_limit_and_asks_for_a_human() {
    let mut harness = Harness::new(5, 3);
    let limit = vec![("limit_count", Value::Int(2))];
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, limit));
    for _ in 0..5 {
        harness.healthy.insert(4, false);
        harness.run_for(Duration::from_secs(8));
    }
    let restarts = harness.ran.iter().filter(|ran| ran.node == 4).count();
    assert_eq!(restarts, 2, "the limit stops the third restart");
    assert_eq!(harness.count(4, "needs-human"), 1);
    assert!(!harness.healthy[&4]);
    // An operator who approves the needs-human record re-arms the rule.
    let (operator, _) = &*FLEET;
    let needs = harness.agents[&0]
        .replicas()
        .ledger()
        .iter()
        .find(|signed| matches!(signed.record.kind, RecordKind::NeedsHuman { .. }))
        .unwrap()
        .record
        .key
        .clone();
    let now_millis = harness.now.0 / 1_000_000;
    let approval = LedgerRecord {
        key: needs,
        kind: RecordKind::Approval {
            approver: operator.public(),
            expires_millis: now_millis + 60_000,
            trust_version: 1,
        },
        author: operator.public(),
        at: Hlc {
            millis: now_millis,
            counter: 0,
        },
    };
    harness.publish(
        0,
        vec![Entry::Ledger(Box::new(SignedRecord::sign(
            approval, operator,
        )))],
    );
    harness.run_for(Duration::from_secs(5));
    assert_eq!(harness.ran.iter().filter(|ran| ran.node == 4).count(), 3);
    assert!(harness.healthy[&4]);
}

#[test]
fn a_disruptive_step_runs_once_on_the_target_under_the_holders_epoch() {
    let mut harness = Harness::new(7, 3);
    harness.fixes = BTreeSet::from(["reboot".to_owned()]);
    let steps = vec![
        step("restart", "local", 2_000),
        step("reboot", "disruptive", 3_000),
    ];
    harness.release(&policy(steps, 3, vec![]));
    harness.run_for(Duration::from_secs(5));
    let holders: Vec<(u64, u64)> = (0..3)
        .filter_map(|n| {
            harness.agents[&n]
                .holds(harness.now, "remediate:web-down")
                .map(|epoch| (n, epoch))
        })
        .collect();
    assert_eq!(holders.len(), 1, "one voter holds the budget: {holders:?}");
    harness.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(15));
    let ran: Vec<(&str, ActionClass, u64)> = harness
        .ran
        .iter()
        .map(|ran| (ran.action.as_str(), ran.class, ran.epoch))
        .collect();
    assert_eq!(
        ran,
        [
            ("restart", ActionClass::Local, 0),
            ("reboot", ActionClass::Disruptive, holders[0].1)
        ]
    );
    assert!(harness.ran.iter().all(|ran| ran.node == 5));
    assert!(harness.healthy[&5]);
    assert_eq!(harness.count(5, "request"), 1);
    assert_eq!(harness.count(5, "intent"), 1);
    let planner = holders[0].0;
    assert_eq!(harness.agents[&planner].stats().remedy.intents_planned, 1);
}

#[test]
fn the_budget_holds_concurrent_disruptive_steps_to_max_concurrent() {
    let mut harness = Harness::new(9, 3);
    harness.fixes = BTreeSet::from(["reboot".to_owned()]);
    let steps = vec![step("reboot", "disruptive", 3_000)];
    harness.release(&policy(
        steps,
        3,
        vec![("max_unhealthy", Value::Float(0.9))],
    ));
    harness.run_for(Duration::from_secs(5));
    for n in 4..7 {
        harness.healthy.insert(n, false);
    }
    harness.run_for(Duration::from_secs(20));
    let rebooted: Vec<u64> = harness.ran.iter().map(|ran| ran.node).collect();
    assert_eq!(rebooted.len(), 3, "each target rebooted once: {rebooted:?}");
    assert_eq!(harness.disruptive_peak_all, 1, "max_concurrent is 1");
    let outcomes: Vec<u64> = (4..7).map(|n| harness.count(n, "outcome") as u64).collect();
    assert_eq!(outcomes, [1, 1, 1]);
    // Never two at once: each intent was planned after the previous outcome.
    let ledger = harness.agents[&0].replicas().ledger();
    let mut intents: Vec<u64> = Vec::new();
    let mut outcomes_at: Vec<u64> = Vec::new();
    for signed in ledger.iter() {
        match signed.record.kind {
            RecordKind::Intent { .. } => intents.push(signed.record.at.millis),
            RecordKind::Outcome { .. } => outcomes_at.push(signed.record.at.millis),
            _ => {}
        }
    }
    intents.sort_unstable();
    outcomes_at.sort_unstable();
    for pair in 1..intents.len() {
        assert!(
            intents[pair] >= outcomes_at[pair - 1],
            "intent {pair} at {} before outcome {} at {}",
            intents[pair],
            pair - 1,
            outcomes_at[pair - 1]
        );
    }
}

#[test]
fn a_systemic_failure_is_recorded_and_nothing_runs() {
    let mut harness = Harness::new(7, 3);
    // Failures detected at the same check round are only known to be
    // systemic once their reports have spread: `unhealthy_for` is that
    // wait.
    let wait = vec![("unhealthy_for_ms", Value::Int(2_000))];
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, wait));
    // 3 of the 4 web nodes: above max_unhealthy = 50%.
    for n in 3..6 {
        harness.healthy.insert(n, false);
    }
    harness.run_for(Duration::from_secs(10));
    assert!(harness.ran.is_empty(), "{:?}", harness.ran);
    let skipped: usize = (3..6).map(|n| harness.count(n, "skipped")).sum();
    assert_eq!(skipped, 3, "the short-circuit is recorded once per node");
    // One node recovering by itself brings the fleet under the threshold:
    // the others are remediated.
    harness.healthy.insert(3, true);
    harness.run_for(Duration::from_secs(10));
    let ran: BTreeSet<u64> = harness.ran.iter().map(|ran| ran.node).collect();
    assert_eq!(ran, BTreeSet::from([4, 5]));
}

#[test]
fn an_approval_gated_step_waits_and_an_expired_approval_denies_it() {
    let mut harness = Harness::new(5, 3);
    let gated = vec![("require_approval", Value::Bool(true))];
    harness.release(&policy(vec![step("restart", "local", 20_000)], 3, gated));
    harness.healthy.insert(3, false);
    harness.run_for(Duration::from_secs(5));
    assert!(harness.ran.is_empty(), "waits for an approval");
    assert_eq!(
        harness.count(3, "intent"),
        1,
        "what awaits approval is recorded"
    );
    // An approval that lapses before it reaches the node denies.
    harness.approve(3, Duration::ZERO);
    harness.run_for(Duration::from_secs(2));
    assert!(harness.ran.is_empty());
    assert_eq!(harness.count(3, "skipped"), 1);
    // A valid one lets it run.
    harness.approve(3, Duration::from_secs(30));
    harness.run_for(Duration::from_secs(2));
    assert_eq!(harness.ran.len(), 1);
    assert!(harness.healthy[&3]);
}

#[test]
fn a_dry_run_records_the_intent_and_runs_nothing() {
    let mut harness = Harness::new(5, 3);
    let dry = vec![("dry_run", Value::Bool(true))];
    harness.release(&policy(vec![step("restart", "local", 2_000)], 3, dry));
    harness.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert!(harness.ran.is_empty());
    assert_eq!(harness.count(4, "intent"), 1);
    assert_eq!(harness.agents[&4].stats().remedy.dry_runs, 1);
}

#[test]
fn a_reload_never_starts_an_action_for_a_failure_already_known() {
    let mut harness = Harness::new(5, 3);
    let no_rule = map(vec![(
        "checks",
        map(vec![(
            "web",
            map(vec![
                ("kind", text("tcp")),
                ("addr", text("127.0.0.1:8080")),
                ("select", text("role=web")),
                ("interval_ms", Value::Int(1_000)),
                ("timeout_ms", Value::Int(500)),
                ("fall", Value::Int(2)),
            ]),
        )]),
    )]);
    harness.release(&no_rule);
    harness.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(5));
    harness.release(&policy(vec![step("restart", "local", 2_000)], 3, vec![]));
    harness.run_for(Duration::from_secs(10));
    assert!(harness.ran.is_empty(), "{:?}", harness.ran);
}

#[test]
fn policies_that_would_act_on_everything_or_unsafely_are_refused_naming_the_field() {
    let good = policy(vec![step("reboot", "disruptive", 3_000)], 3, vec![]);
    let parsed = Policy::parse(&good).expect("valid");
    assert_eq!(parsed.rules["web-down"].voters.len(), 3);
    let refused = |extra: Vec<(&str, Value)>, steps: Vec<Value>| {
        Policy::parse(&policy(steps, 3, extra)).unwrap_err().field
    };
    let reboot = || vec![step("reboot", "disruptive", 3_000)];
    assert_eq!(
        refused(vec![("select", text("*"))], reboot()),
        "rules.web-down.select"
    );
    assert_eq!(
        refused(vec![("select", text(""))], reboot()),
        "rules.web-down.select"
    );
    assert_eq!(
        refused(vec![("colour", text("red"))], reboot()),
        "rules.web-down.colour"
    );
    assert_eq!(
        refused(vec![("voters", Value::List(vec![]))], reboot()),
        "rules.web-down.voters"
    );
    // A lease must outlast twice the longest disruptive step.
    assert_eq!(
        refused(vec![("lease_ttl_ms", Value::Int(5_000))], reboot()),
        "rules.web-down.lease_ttl_ms"
    );
    assert_eq!(
        refused(vec![], vec![step("reboot", "sideways", 3_000)]),
        "rules.web-down.steps[0].class"
    );
    assert_eq!(
        refused(vec![("max_unhealthy", Value::Float(1.5))], reboot()),
        "rules.web-down.max_unhealthy"
    );
    assert_eq!(
        refused(vec![("check", text("db"))], reboot()),
        "rules.web-down.check"
    );
    // An escrow names each slot's voters, and no rule-wide ones.
    let slot = map(vec![(
        "voters",
        Value::List(vec![text(&key(0).public().to_hex())]),
    )]);
    let escrow = |slot: Value| {
        map(vec![
            ("tag", text("zone")),
            ("slots", map(vec![("a", slot)])),
        ])
    };
    assert_eq!(
        refused(vec![("escrow", escrow(slot.clone()))], reboot()),
        "rules.web-down.voters"
    );
}

#[test]
fn an_intent_not_backed_by_the_scopes_lease_is_never_run() {
    let mut harness = Harness::new(6, 3);
    harness.fixes = BTreeSet::from(["reboot".to_owned()]);
    // Voters that do not exist: nobody can hold the budget.
    let mut doc = policy(vec![step("reboot", "disruptive", 3_000)], 0, vec![]);
    if let Value::Map(root) = &mut doc
        && let Some(Value::Map(rules)) = root.get_mut("rules")
        && let Some(Value::Map(rule)) = rules.get_mut("web-down")
    {
        let ghosts = (100..103)
            .map(|n| text(&key(n).public().to_hex()))
            .collect();
        rule.insert("voters".into(), Value::List(ghosts));
    }
    harness.release(&doc);
    harness.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(5));
    let requested = harness.agents[&0]
        .replicas()
        .ledger()
        .iter()
        .find(|signed| matches!(signed.record.kind, RecordKind::Request { .. }))
        .expect("the target asked for the disruptive step")
        .record
        .key
        .clone();
    // Any admitted node can sign an intent with any epoch; without the
    // scope's lease at that epoch, held by its planner, it is not run.
    let forger = key(3);
    let forged = LedgerRecord {
        key: requested,
        kind: RecordKind::Intent {
            scope: "remediate:web-down".into(),
            epoch: 99,
            action: "reboot".into(),
            planner: forger.public(),
            dry_run: false,
            deadline_millis: u64::MAX,
        },
        author: forger.public(),
        at: Hlc {
            millis: harness.now.0 / 1_000_000,
            counter: 0,
        },
    };
    harness.publish(
        3,
        vec![Entry::Ledger(Box::new(SignedRecord::sign(forged, &forger)))],
    );
    harness.run_for(Duration::from_secs(10));
    assert!(harness.ran.is_empty(), "{:?}", harness.ran);
    assert!(!harness.healthy[&5]);
}

#[test]
fn the_limit_holds_across_a_restart_of_the_agent() {
    let mut harness = Harness::new(5, 3);
    let limit = vec![("limit_count", Value::Int(1))];
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, limit));
    harness.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert_eq!(harness.ran.len(), 1);
    harness.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert_eq!(harness.ran.len(), 1, "the limit stops the second restart");
    // A crash loop of the agent must not reset the rails.
    for _ in 0..3 {
        harness.restart(4);
        harness.run_for(Duration::from_secs(8));
    }
    assert_eq!(harness.ran.len(), 1, "{:?}", harness.ran);
    let agent = &harness.agents[&4];
    assert!(
        agent.policy().is_some(),
        "the restarted agent runs the policy"
    );
    assert_eq!(
        agent.stats().remedy.incidents,
        1,
        "and saw the failure again"
    );
    assert!(harness.count(4, "needs-human") >= 2);
}

#[test]
fn a_lease_of_a_budget_scope_naming_other_voters_is_refused() {
    use fleetmesh_node::crdt::{Grant, GrantBody, Lease, LeaseKind, SignedLease};
    let mut harness = Harness::new(6, 3);
    harness.release(&policy(
        vec![step("reboot", "disruptive", 3_000)],
        3,
        vec![],
    ));
    harness.run_for(Duration::from_secs(5));
    let scope = "remediate:web-down";
    let holder = |harness: &Harness| {
        (0..3)
            .filter_map(|n| harness.agents[&n].holds(harness.now, scope))
            .collect::<Vec<u64>>()
    };
    let before = holder(&harness);
    assert_eq!(before.len(), 1);
    // An admitted node makes itself sole voter of the scope at a huge
    // epoch: well-formed, well-signed, and it would outrank every real
    // lease and become the fencing token.
    let rogue = key(4);
    let at = Hlc {
        millis: harness.now.0 / 1_000_000,
        counter: 0,
    };
    let grant = Grant::sign(
        GrantBody {
            scope: scope.into(),
            epoch: 1_000_000,
            holder: rogue.public(),
            ttl_millis: 3_600_000,
            voter: rogue.public(),
            issued: at,
        },
        &rogue,
    );
    let lease = Lease {
        scope: scope.into(),
        epoch: 1_000_000,
        holder: rogue.public(),
        granted_at: at,
        ttl_millis: 3_600_000,
        kind: LeaseKind::Quorum {
            voters: BTreeSet::from([rogue.public()]),
            grants: vec![grant],
        },
    };
    let entry = Entry::Lease(Box::new(SignedLease::sign(lease, &rogue)));
    let now = harness.now;
    let refused = harness.agents.get_mut(&4).unwrap().publish(now, entry);
    assert!(refused.is_err(), "refused where the policy runs");
    harness.run_for(Duration::from_secs(5));
    assert_eq!(holder(&harness), before, "the real holder keeps the scope");
    for agent in harness.agents.values() {
        let table = agent.replicas().leases();
        assert_eq!(table.max_epoch(scope), Some(before[0]));
    }
}

#[test]
fn an_escrowed_budget_gives_each_zone_its_own_slot_granted_by_its_own_voters() {
    let mut harness = Harness::new(12, 6);
    harness.fixes = BTreeSet::from(["reboot".to_owned()]);
    let slot = |zone_of: u64| {
        let voters = (0..6)
            .filter(|n| n % 2 == zone_of)
            .map(|n| text(&key(n).public().to_hex()))
            .collect();
        map(vec![("voters", Value::List(voters))])
    };
    let escrow = map(vec![
        ("tag", text("zone")),
        ("slots", map(vec![("a", slot(0)), ("b", slot(1))])),
    ]);
    let mut doc = policy(
        vec![step("reboot", "disruptive", 3_000)],
        0,
        vec![("escrow", escrow), ("max_unhealthy", Value::Float(0.9))],
    );
    if let Value::Map(root) = &mut doc
        && let Some(Value::Map(rules)) = root.get_mut("rules")
        && let Some(Value::Map(rule)) = rules.get_mut("web-down")
    {
        rule.remove("voters");
    }
    // A slot must name its voters.
    let mut no_voters = doc.clone();
    if let Value::Map(root) = &mut no_voters
        && let Some(Value::Map(rules)) = root.get_mut("rules")
        && let Some(Value::Map(rule)) = rules.get_mut("web-down")
    {
        rule.insert(
            "escrow".into(),
            map(vec![
                ("tag", text("zone")),
                ("slots", map(vec![("a", map(vec![]))])),
            ]),
        );
    }
    let refused = Policy::parse(&no_voters).unwrap_err();
    assert_eq!(refused.field, "rules.web-down.escrow.slots.a.voters");
    harness.release(&doc);
    harness.run_for(Duration::from_secs(5));
    for (scope, voters) in [
        ("remediate:web-down:a", [0, 2, 4]),
        ("remediate:web-down:b", [1, 3, 5]),
    ] {
        let holders: Vec<u64> = (0..6)
            .filter(|&n| harness.agents[&n].holds(harness.now, scope).is_some())
            .collect();
        assert_eq!(holders.len(), 1, "{scope}: {holders:?}");
        assert!(
            voters.contains(&holders[0]),
            "{scope} is held by its own zone"
        );
    }
    // Two web nodes down in each zone.
    for n in 6..10 {
        harness.healthy.insert(n, false);
    }
    harness.run_for(Duration::from_secs(20));
    assert_eq!(harness.ran.len(), 4, "{:?}", harness.ran);
    assert!((6..10).all(|n| harness.healthy[&n]));
    assert_eq!(harness.disruptive_peak.get("a"), Some(&1));
    assert_eq!(harness.disruptive_peak.get("b"), Some(&1));
    assert_eq!(
        harness.disruptive_peak_all, 2,
        "the zones' slots run side by side"
    );
}
