//! The one harness every node test drives agents with, modelled on
//! quinn-proto's `Pair`: a few agents on a virtual clock that jumps to the
//! next thing due (a message, a task's completion, an agent's timeout),
//! linked by [`Links`] the test can cut and slow.
//!
//! The mesh drives the core as every driver does: after each input it
//! drains [`Agent::poll_output`] to the timeout ([`outputs`]), folds each
//! agent's persists into its own [`Durable`] (a restarted agent gets it
//! back), keeps its journal entries, events and the tasks it handed out,
//! and routes its transmits. A test may look at every message on the way
//! ([`Mesh::capture`]), deliver crafted bytes ([`Mesh::inject`]), complete
//! tasks itself ([`Mesh::complete`]) or let its [`World`] complete them,
//! and run for a while ([`Mesh::run_for`]), until something holds
//! ([`Mesh::run_until`]) or checking a property after every step
//! ([`Mesh::run_checking`]). Every run is bounded in steps.

use super::links::Links;
use super::{id, identity, verifier};
use fleetmesh_node::Entry;
use fleetmesh_node::{
    Agent, Config, Durable, Event, Instant, NodeId, NodeMeta, Output, Task, TaskId, TaskResult,
    Transmit,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// When every mesh starts.
const START: Instant = Instant(1_000_000_000);
/// Most steps one run may take before it is called stuck.
const STEPS_MAX: usize = 2_000_000;
/// Most outputs one drain may yield before the agent is called stuck:
/// more than a full journal (the core's bound on entries left to journal) plus
/// a message's worth of everything else.
const OUTPUTS_MAX: usize = 100_000;

/// Drains `agent` after an input, as a driver must: every output up to the
/// timeout, in the order the core hands them out. Returns them with the
/// final [`Output::Timeout`] (or [`Output::Idle`]) last.
pub fn outputs(agent: &mut Agent) -> Vec<Output> {
    let mut outputs = Vec::new();
    for _ in 0..OUTPUTS_MAX {
        let output = agent.poll_output();
        let last = matches!(output, Output::Timeout(_) | Output::Idle);
        outputs.push(output);
        if last {
            return outputs;
        }
    }
    panic!(
        "agent {:?} did not finish a drain in {OUTPUTS_MAX} outputs",
        agent.id()
    );
}

/// Drains `agent` as [`outputs`] does and keeps only what it sends.
pub fn transmits(agent: &mut Agent) -> Vec<Transmit> {
    (outputs(agent).into_iter())
        .filter_map(|output| match output {
            Output::Transmit(transmit) => Some(transmit),
            _ => None,
        })
        .collect()
}

/// A message between two of the mesh's nodes.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The sender's test number.
    pub from: u64,
    /// The recipient's test number.
    pub to: u64,
    /// The encoded message.
    pub bytes: Vec<u8>,
}

/// What the capture hook decides for a message an agent sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it over its link.
    Deliver,
    /// Keep it undelivered in [`Mesh::held`] for the test to read.
    Hold,
}

/// What lies outside the agents in a test: it runs the tasks they hand
/// out.
pub trait World {
    /// After how long `task`, just handed out by node `n`, completes by
    /// itself; `None` keeps it for the test to [`Mesh::complete`].
    fn task_started(&mut self, n: u64, task: &Task) -> Option<Duration>;

    /// How `task` of node `n` ended, asked when it completes by itself.
    fn task_finished(&mut self, n: u64, task: &Task) -> TaskResult;
}

/// The world of tests that model nothing: every task waits for
/// [`Mesh::complete`].
impl World for () {
    fn task_started(&mut self, _: u64, _: &Task) -> Option<Duration> {
        None
    }

    fn task_finished(&mut self, n: u64, task: &Task) -> TaskResult {
        unreachable!("node {n}'s task {task:?} was kept for Mesh::complete")
    }
}

/// One node of the mesh: its agent while it runs, and what its driver
/// kept of the agent's outputs.
#[derive(Default)]
pub struct Node {
    /// `None` while crashed.
    agent: Option<Agent>,
    /// Frozen: no timers, no messages in or out.
    paused: bool,
    /// Starts so far; a task completion from an earlier life is lost.
    generation: u64,
    meta: NodeMeta,
    /// When the agent last asked to be woken, `None` when idle.
    timeout: Option<Instant>,
    /// The test touched the agent directly: drain it before the next step.
    undrained: bool,
    /// Every persist the agent handed out, folded: what a restart gets.
    pub durable: Durable,
    /// Every entry the agent handed out to journal, oldest first.
    pub journal: Vec<Entry>,
    /// Every event the agent handed out, oldest first.
    pub events: Vec<Event>,
    /// Tasks handed out that the world left to [`Mesh::complete`].
    pub tasks: BTreeMap<TaskId, Task>,
}

/// Something due at an instant besides agents' timeouts.
enum Due {
    Deliver(Sent),
    Finish { n: u64, generation: u64, task: Task },
}

/// A hook that sees every message sent over a link.
type Capture = Box<dyn FnMut(&Sent) -> Verdict>;

/// Agents keyed by their test number `n` (identity [`super::identity`]),
/// a virtual clock, the links between them and the test's [`World`].
pub struct Mesh<W: World = ()> {
    config: Config,
    now: Instant,
    nodes: BTreeMap<u64, Node>,
    numbers: BTreeMap<NodeId, u64>,
    due: BTreeMap<(Instant, u64), Due>,
    sequence: u64,
    capture: Option<Capture>,
    held: Vec<Sent>,
    /// The network between the nodes.
    pub links: Links,
    /// What runs the agents' tasks.
    pub world: W,
}

impl Mesh {
    /// Nodes `0..count` under [`Config::lan`], each (but node 0) joining
    /// through node 0; no time has passed.
    pub fn new(count: u64) -> Mesh {
        Mesh::with_config(count, Config::lan())
    }

    /// As [`Mesh::new`] under `config`.
    pub fn with_config(count: u64, config: Config) -> Mesh {
        let mut mesh = Mesh::empty(config, ());
        for n in 0..count {
            mesh.add(n);
        }
        mesh
    }
}

impl<W: World> Mesh<W> {
    /// A mesh of no node yet, in `world`.
    pub fn empty(config: Config, world: W) -> Mesh<W> {
        Mesh {
            config,
            now: START,
            nodes: BTreeMap::new(),
            numbers: BTreeMap::new(),
            due: BTreeMap::new(),
            sequence: 0,
            capture: None,
            held: Vec::new(),
            links: Links::default(),
            world,
        }
    }

    /// Starts node `n` with no metadata.
    pub fn add(&mut self, n: u64) {
        self.add_with_meta(n, NodeMeta::default());
    }

    /// Starts node `n` announcing `meta`, which it keeps across restarts.
    pub fn add_with_meta(&mut self, n: u64, meta: NodeMeta) {
        assert!(!self.nodes.contains_key(&n), "node {n} was already added");
        self.numbers.insert(id(n), n);
        self.nodes.insert(
            n,
            Node {
                meta,
                ..Node::default()
            },
        );
        self.start(n);
    }

    /// Stops node `n` as a crash does: its agent, messages to it and its
    /// tasks are lost; what it persisted stays.
    pub fn crash(&mut self, n: u64) {
        let node = self.node_mut(n);
        node.agent = None;
        node.timeout = None;
        node.tasks.clear();
    }

    /// (Re)starts node `n` as a new process (a new seed) that takes back
    /// what it persisted and joins through node 0.
    pub fn start(&mut self, n: u64) {
        let (now, config) = (self.now, self.config.clone());
        let node = self.node_mut(n);
        let seed = n + 1_000 * node.generation;
        node.generation += 1;
        let mut agent = Agent::new(
            config,
            identity(n),
            node.meta.clone(),
            seed,
            now,
            verifier(),
        )
        .unwrap_or_else(|error| panic!("node {n} does not start: {error}"));
        agent.restore(now, node.durable.clone());
        if n > 0 {
            agent.join(now, &[id(0)]);
        }
        node.agent = Some(agent);
        self.drain(n);
    }

    /// Freezes node `n` (a stopped process, a host off the network): it
    /// fires no timer, and messages to or from it are lost.
    pub fn pause(&mut self, n: u64) {
        self.node_mut(n).paused = true;
    }

    /// Undoes [`Mesh::pause`]; overdue timers fire at the next step.
    pub fn resume(&mut self, n: u64) {
        self.node_mut(n).paused = false;
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Node `n`'s running agent.
    pub fn agent(&self, n: u64) -> &Agent {
        self.node(n)
            .agent
            .as_ref()
            .unwrap_or_else(|| panic!("node {n} is not running"))
    }

    /// Node `n`'s running agent, for a test that feeds it by hand and may
    /// drain it by hand; the mesh drains what is left before its next step.
    pub fn agent_mut(&mut self, n: u64) -> &mut Agent {
        let node = self.node_mut(n);
        node.undrained = true;
        node.agent
            .as_mut()
            .unwrap_or_else(|| panic!("node {n} is not running"))
    }

    /// The running agents by test number.
    pub fn agents(&self) -> impl Iterator<Item = (u64, &Agent)> {
        self.nodes
            .iter()
            .filter_map(|(&n, node)| Some((n, node.agent.as_ref()?)))
    }

    /// Node `n` and what its driver kept.
    pub fn node(&self, n: u64) -> &Node {
        self.nodes
            .get(&n)
            .unwrap_or_else(|| panic!("node {n} was never added"))
    }

    /// As [`Mesh::node`], to take what the driver kept.
    pub fn node_mut(&mut self, n: u64) -> &mut Node {
        self.nodes
            .get_mut(&n)
            .unwrap_or_else(|| panic!("node {n} was never added"))
    }

    /// Hands node `n` an input at the current time, then drains it.
    pub fn input<R>(&mut self, n: u64, input: impl FnOnce(&mut Agent, Instant) -> R) -> R {
        let now = self.now;
        let result = input(self.agent_mut(n), now);
        self.drain(n);
        result
    }

    /// Publishes `entries` at node `n`, as an operator's CLI does.
    pub fn publish(&mut self, n: u64, entries: Vec<Entry>) {
        self.input(n, |agent, now| {
            for entry in entries {
                agent
                    .publish(now, entry)
                    .unwrap_or_else(|error| panic!("node {n} refuses the entry: {error}"));
            }
        });
    }

    /// Delivers `bytes` to node `to` now, as if `from` had sent them.
    pub fn inject(&mut self, from: u64, to: u64, bytes: &[u8]) {
        self.input(to, |agent, now| agent.handle_message(now, id(from), bytes));
    }

    /// Shows every message sent from now on to `hook`, which decides whether it
    /// is delivered or held (after the links: a cut link loses it first).
    pub fn capture(&mut self, hook: impl FnMut(&Sent) -> Verdict + 'static) {
        self.capture = Some(Box::new(hook));
    }

    /// Takes the messages the capture hook held, oldest first.
    pub fn held(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.held)
    }

    /// Hands in the result of node `n`'s task `task`, kept since the agent
    /// handed it out.
    pub fn complete(&mut self, n: u64, task: TaskId, result: TaskResult) {
        let kept = self.node_mut(n).tasks.remove(&task);
        assert!(kept.is_some(), "node {n} has no task {task:?} to complete");
        self.input(n, |agent, now| agent.handle_task_result(now, task, result));
    }

    /// Advances time by `duration`, delivering messages, completing tasks
    /// and firing timers as they come due.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_checking(duration, |_| {});
    }

    /// As [`Mesh::run_for`], calling `check` after every step.
    pub fn run_checking(&mut self, duration: Duration, mut check: impl FnMut(&Mesh<W>)) {
        let end = self.now + duration;
        for _ in 0..STEPS_MAX {
            if !self.step(end) {
                self.now = end;
                return;
            }
            check(self);
        }
        panic!("the mesh did not run {duration:?} within {STEPS_MAX} steps");
    }

    /// Steps until `done` holds (checked first, then after every step), at
    /// most `limit` of time; panics naming `what` if it never does.
    pub fn run_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&Mesh<W>) -> bool,
    ) {
        let end = self.now + limit;
        for _ in 0..STEPS_MAX {
            if done(self) {
                return;
            }
            if !self.step(end) {
                panic!("{what}: not within {limit:?}");
            }
        }
        panic!("{what}: not within {STEPS_MAX} steps");
    }

    /// Acts on the earliest thing due at or before `end`: a message or a
    /// task completion first, then the earliest timeout. Returns whether
    /// there was one.
    fn step(&mut self, end: Instant) -> bool {
        let undrained: Vec<u64> = (self.nodes.iter())
            .filter(|(_, node)| node.undrained)
            .map(|(&n, _)| n)
            .collect();
        for n in undrained {
            self.drain(n);
        }
        let next_due = self.due.keys().next().map(|&(at, _)| at);
        let next_timeout = (self.nodes.iter())
            .filter(|(_, node)| !node.paused)
            .filter_map(|(&n, node)| Some((node.timeout?, n)))
            .min();
        let next = [next_due, next_timeout.map(|(at, _)| at)]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next.filter(|&next| next <= end) else {
            return false;
        };
        self.now = self.now.max(next);
        match next_timeout {
            Some((at, n)) if next_due != Some(next) && at == next => {
                self.input(n, |agent, now| agent.handle_timeout(now));
            }
            _ => {
                if let Some((_, due)) = self.due.pop_first() {
                    self.act_on(due);
                }
            }
        }
        true
    }

    fn act_on(&mut self, due: Due) {
        match due {
            Due::Deliver(sent) => {
                let node = self.node(sent.to);
                let lost = node.paused || node.agent.is_none();
                if lost || self.links.route(sent.from, sent.to).is_none() {
                    return;
                }
                self.inject(sent.from, sent.to, &sent.bytes);
            }
            Due::Finish {
                n,
                generation,
                task,
            } => {
                let node = self.node(n);
                if node.generation != generation || node.agent.is_none() {
                    return;
                }
                let result = self.world.task_finished(n, &task);
                self.input(n, |agent, now| {
                    agent.handle_task_result(now, task.id(), result)
                });
            }
        }
    }

    /// Acts on everything node `n`'s agent has to say, in the core's order
    /// (the one place the mesh drains an agent).
    fn drain(&mut self, n: u64) {
        let node = self.node_mut(n);
        node.undrained = false;
        let Some(agent) = node.agent.as_mut() else {
            return;
        };
        let outputs = outputs(agent);
        assert!(
            (outputs.windows(2)).all(|pair| pair[0].is_durable() || !pair[1].is_durable()),
            "node {n} handed out durable state after what depends on it: {outputs:?}"
        );
        for output in outputs {
            let node = self.node_mut(n);
            match output {
                Output::Journal(entry) => node.journal.push(entry),
                Output::Persist(persist) => node.durable.apply(persist),
                Output::Transmit(transmit) => self.send(n, transmit.to, transmit.bytes),
                Output::Event(event) => node.events.push(event),
                Output::Task(task) => self.hand_out(n, task),
                Output::Timeout(at) => node.timeout = Some(at),
                Output::Idle => node.timeout = None,
            }
        }
    }

    fn hand_out(&mut self, n: u64, task: Task) {
        match self.world.task_started(n, &task) {
            Some(after) => {
                let generation = self.node(n).generation;
                self.push(
                    self.now + after,
                    Due::Finish {
                        n,
                        generation,
                        task,
                    },
                );
            }
            None => {
                self.node_mut(n).tasks.insert(task.id(), task);
            }
        }
    }

    fn send(&mut self, from: u64, to: NodeId, bytes: Vec<u8>) {
        let to = *self
            .numbers
            .get(&to)
            .unwrap_or_else(|| panic!("node {from} sent to {to}, which is not in the mesh"));
        let sent = Sent { from, to, bytes };
        let recipient = self.node(to);
        if self.node(from).paused || recipient.paused || recipient.agent.is_none() {
            return;
        }
        let Some(delay) = self.links.route(from, to) else {
            return;
        };
        let verdict = self
            .capture
            .as_mut()
            .map_or(Verdict::Deliver, |hook| hook(&sent));
        match verdict {
            Verdict::Deliver => self.push(self.now + delay, Due::Deliver(sent)),
            Verdict::Hold => self.held.push(sent),
        }
    }

    fn push(&mut self, at: Instant, due: Due) {
        self.sequence += 1;
        self.due.insert((at, self.sequence), due);
    }
}
