//! The remediation tests' world (`tests/remedy.rs`, `tests/stop.rs`): a
//! modelled service per node answering the agents' check tasks, actions
//! that fix it, a record of what ran, the operator's laptop, and the
//! policies and ledger views the tests share.

use super::mesh::{Mesh, World};
use super::{FLEET, Laptop, key};
use fleetmesh_node::ActionClass;
use fleetmesh_node::Entry;
use fleetmesh_node::crdt::{Hlc, IdempotencyKey, LedgerRecord, RecordKind, SignedRecord, Value};
use fleetmesh_node::{Config, NodeMeta, POLICY_DOC, Task, TaskResult};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const CHECK_LATENCY: Duration = Duration::from_millis(2);
pub const ACTION_TIME: Duration = Duration::from_millis(200);

/// One action as the world saw it start.
#[derive(Clone, Debug)]
pub struct Ran {
    pub node: u64,
    pub action: String,
    pub class: ActionClass,
    pub epoch: u64,
}

/// What lies outside the agents: each node's modelled service, the actions
/// that fix it, what ran, and the operator's laptop.
pub struct Site {
    /// Whether each node's modelled service is up.
    pub healthy: BTreeMap<u64, bool>,
    /// Actions that bring a node's service back.
    pub fixes: BTreeSet<String>,
    /// Nodes whose actions wait for the test to complete them.
    pub held_actions: BTreeSet<u64>,
    pub ran: Vec<Ran>,
    /// Disruptive actions running now, per zone, and the most ever at
    /// once, per zone and in all.
    pub disruptive_running: BTreeMap<&'static str, usize>,
    pub disruptive_peak: BTreeMap<&'static str, usize>,
    pub disruptive_peak_all: usize,
    pub laptop: Laptop,
    /// The policy document's last released version.
    pub version: u64,
}

impl World for Site {
    fn task_started(&mut self, n: u64, task: &Task) -> Option<Duration> {
        let Task::Action { step, epoch, .. } = task else {
            return Some(CHECK_LATENCY);
        };
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
        (!self.held_actions.contains(&n)).then_some(ACTION_TIME)
    }

    fn task_finished(&mut self, n: u64, task: &Task) -> TaskResult {
        let success = match task {
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
        TaskResult {
            success,
            exit_code: Some(if success { 0 } else { 1 }),
            detail: String::new(),
        }
    }
}

/// Even nodes are in zone a, odd ones in zone b.
pub fn zone(n: u64) -> &'static str {
    if n.is_multiple_of(2) { "a" } else { "b" }
}

pub fn tags(n: u64, role: &str) -> NodeMeta {
    NodeMeta {
        tags: BTreeMap::from([
            ("role".to_owned(), role.to_owned()),
            ("zone".to_owned(), zone(n).to_owned()),
        ]),
        addrs: Vec::new(),
    }
}

/// `count` agents with healthy services, `voters` of them (the first)
/// tagged `db`, the rest `web`, after five seconds to find each other.
pub fn fleet(count: u64, voters: u64) -> Mesh<Site> {
    let site = Site {
        healthy: (0..count).map(|n| (n, true)).collect(),
        fixes: BTreeSet::from(["restart".to_owned()]),
        held_actions: BTreeSet::new(),
        ran: Vec::new(),
        disruptive_running: BTreeMap::new(),
        disruptive_peak: BTreeMap::new(),
        disruptive_peak_all: 0,
        laptop: Laptop::new(),
        version: 0,
    };
    let mut mesh = Mesh::empty(Config::lan(), site);
    for n in 0..count {
        let role = if n < voters { "db" } else { "web" };
        mesh.add_with_meta(n, tags(n, role));
    }
    mesh.run_for(Duration::from_secs(5));
    mesh
}

impl Mesh<Site> {
    /// Releases `policy` as the next version of the policy document.
    pub fn release(&mut self, policy: &Value) {
        let (operator, _) = &*FLEET;
        let site = &mut self.world;
        site.version += 1;
        let entries = site
            .laptop
            .write_doc(operator, POLICY_DOC, policy, site.version, None);
        self.publish(0, entries);
        self.run_for(Duration::from_secs(2));
        for (n, agent) in self.agents() {
            assert!(agent.policy().is_some(), "agent {n} runs the policy");
        }
    }

    /// Records about `node` in agent 0's ledger, as (kind name, incident).
    pub fn records(&self, node: u64) -> Vec<(&'static str, String)> {
        self.agent(0)
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

    pub fn count(&self, node: u64, kind: &str) -> usize {
        self.records(node)
            .iter()
            .filter(|(name, _)| *name == kind)
            .count()
    }

    /// The actions that ran, as (node, action), in the order they started.
    pub fn ran_actions(&self) -> Vec<(u64, &str)> {
        self.world
            .ran
            .iter()
            .map(|ran| (ran.node, ran.action.as_str()))
            .collect()
    }

    /// The reasons of the skipped and needs-human records about `node`,
    /// as (incident, reason).
    pub fn reasons(&self, node: u64) -> Vec<(String, String)> {
        self.agent(0)
            .replicas()
            .ledger()
            .iter()
            .filter(|signed| signed.record.key.target == key(node).public())
            .filter_map(|signed| match &signed.record.kind {
                RecordKind::Skipped { reason } | RecordKind::NeedsHuman { reason } => {
                    Some((signed.record.key.incident.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// An operator's approval of every record of kind `awaiting` (as
    /// [`kind_name`] names it) about `node`, lapsing `ttl` from now.
    pub fn approve(&mut self, node: u64, awaiting: &str, ttl: Duration) {
        let (operator, _) = &*FLEET;
        let keys: BTreeSet<IdempotencyKey> = self
            .agent(0)
            .replicas()
            .ledger()
            .iter()
            .filter(|signed| {
                signed.record.key.target == key(node).public()
                    && kind_name(&signed.record.kind) == awaiting
            })
            .map(|signed| signed.record.key.clone())
            .collect();
        assert!(!keys.is_empty(), "something awaits approval");
        let now_millis = self.now().0 / 1_000_000;
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

pub fn kind_name(kind: &RecordKind) -> &'static str {
    match kind {
        RecordKind::Intent { .. } => "intent",
        RecordKind::Request { .. } => "request",
        RecordKind::Started { .. } => "started",
        RecordKind::Outcome { .. } => "outcome",
        RecordKind::Skipped { .. } => "skipped",
        RecordKind::NeedsHuman { .. } => "needs-human",
        RecordKind::Approval { .. } => "approval",
        RecordKind::Stop { .. } => "stop",
        RecordKind::Resume { .. } => "resume",
        RecordKind::Attest { .. } => "attest",
    }
}

pub fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

pub fn text(value: &str) -> Value {
    Value::Str(value.to_owned())
}

pub fn step(action: &str, class: &str, timeout_ms: i64) -> Value {
    map(vec![
        ("action", text(action)),
        ("class", text(class)),
        ("timeout_ms", Value::Int(timeout_ms)),
    ])
}

/// The fields of check `web`: a TCP connect on the web nodes every
/// second, down after 2 failures.
pub fn web_check() -> Vec<(&'static str, Value)> {
    vec![
        ("kind", text("tcp")),
        ("addr", text("127.0.0.1:8080")),
        ("select", text("role=web")),
        ("interval_ms", Value::Int(1_000)),
        ("timeout_ms", Value::Int(500)),
        ("fall", Value::Int(2)),
    ]
}

/// A policy with one check `web` on the web nodes (1 s interval, 2 failures
/// down, 1 pass up) and one rule `web-down` with `steps`; `extra` adds or
/// replaces rule fields. Voters are the `voters` first nodes.
pub fn policy(steps: Vec<Value>, voters: u64, extra: Vec<(&str, Value)>) -> Value {
    let mut check = web_check();
    check.push(("rise", Value::Int(1)));
    let check = map(check);
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

/// A [`fleet`] of `count` agents, three of them voters, running a
/// [`policy`] whose one step restarts locally within `timeout_ms`, with
/// `extra` rule fields.
pub fn restarting(count: u64, timeout_ms: i64, extra: Vec<(&str, Value)>) -> Mesh<Site> {
    let mut harness = fleet(count, 3);
    harness.release(&policy(
        vec![step("restart", "local", timeout_ms)],
        3,
        extra,
    ));
    harness
}
