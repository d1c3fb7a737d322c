//! The discrete-event engine: one virtual clock, one event queue ordered by
//! `(time, sequence)`, the simulated network, and every agent of the fleet.
//!
//! The loop pops the earliest event, hands it to the agent or applies the
//! fault, then drains the agent's outputs (str0m's rule: after any input,
//! drain until the next timeout). Every delivery, drop and membership change
//! feeds the trace hash and the invariant checkers.
//!
//! This module holds the loop, the network side and the drain of an agent
//! (`World::drain`); its seams are submodules: `act` applies the fault
//! schedule's actions, `lifecycle` starts, stops and resumes processes,
//! `operators` hands operators' publications to agents, `leases` and
//! `services` keep the lease and remediation truth, `finish` reports.

use crate::checkers::config::{AgentConfig, ConfigChecks};
use crate::checkers::convergence::Convergence;
use crate::checkers::detection::Detection;
use crate::checkers::false_death::FalseDeath;
use crate::checkers::rollout::RolloutCheck;
use crate::checkers::spread::Spread;
use crate::checkers::stop;
use crate::checkers::{Kind, Violation};
use crate::clock::Clock;
use crate::event::{REAPED, TraceEvent};
use crate::fingerprint::Step;
use crate::fleet::Fleet;
use crate::network::{DropReason, LinkOverride, Network, Verdict};
use crate::operator::Operators;
use crate::outcome::{Outcome, Traffic};
use crate::queue::EventQueue;
use crate::rng::Seeds;
use crate::scenario::Scenario;
use crate::scenario::fault;
use crate::scenario::fleet::Nodes;
use crate::scenario::schedule::{Action, Schedule};
use crate::timeline::Timeline;
use crate::trace::{Trace, Watch};
use fleetmesh_node::{
    Agent, Config, Durable, Event, Liveness, MemberState, NodeId, NodeMeta, Output, Stats, Task,
    TaskId,
};
use fleetmesh_node::{Kind as StateKind, StateStats};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Duration;

mod act;
mod finish;
mod leases;
mod lifecycle;
mod operators;
mod services;
use finish::Bounds;
use leases::SimLease;
use services::Remediation;

/// How long a leaving agent keeps running to gossip its departure (the
/// schedule's `Stop` comes this long after `Leave`).
const LEAVE_GOSSIP_NANOS: u64 = 1_000_000_000;
/// Messages a paused agent's receive buffer holds before dropping.
pub(crate) const PAUSED_INBOX_MAX: usize = 4096;
/// Wake-ups of one agent at one instant past which it is busy-looping: it
/// keeps asking for a deadline that has already passed.
pub(crate) const WAKES_PER_INSTANT_MAX: u32 = 10_000;

#[derive(Debug)]
enum What {
    Deliver {
        from: u32,
        to: u32,
        bytes: Vec<u8>,
    },
    Wake {
        node: u32,
        generation: u32,
    },
    Act(usize),
    CheckConvergence,
    CheckDetection(u32),
    CheckSpread(u32, u32),
    CheckPublications,
    /// Stop an agent whose leave had to wait for the end of a pause.
    StopAfterLeave(u32),
    /// A check run's result is due for the process that asked.
    CheckDone {
        node: u32,
        generation: u32,
        id: TaskId,
        check: String,
    },
    /// A running action ends on its host.
    ActionDone(u64),
    /// A service failure's `expect_fixed_within_s` deadline.
    CheckFixed(usize),
}

#[derive(Default)]
struct Node {
    /// Boxed: each event takes the agent out of its node and puts it back,
    /// and moving the agent itself cost a seventh of a run's CPU.
    agent: Option<Box<Agent>>,
    clock: Clock,
    /// Pause depth: overlapping pauses nest, and the agent runs again when
    /// the last one ends.
    paused: u32,
    /// Operator actions aimed at the agent while it was paused, applied when
    /// it resumes (a stopped process does nothing).
    deferred: Vec<Deferred>,
    inbox: VecDeque<(u32, Vec<u8>)>,
    wake_at: Option<u64>,
    /// The instant of the last wake-up, and how many came at it.
    woken: (u64, u32),
    generation: u32,
    running_since: Option<u64>,
    running_nanos: u64,
    retired: Stats,
    retired_state: StateStats,
    meta: NodeMeta,
    /// What the agent persisted: survives crashes, handed to the next
    /// process.
    durable: Durable,
    /// The root revoked the node's key: it is out of the fleet for good,
    /// whether its process runs on or not.
    expelled: bool,
}

/// An operator action that waits for a paused agent to resume.
#[derive(Debug)]
enum Deferred {
    Leave,
    Retag(NodeMeta),
}

/// Sees the bytes of each message handed to an agent ([`RunOptions::tap`]).
pub type Tap = Box<dyn FnMut(&[u8])>;

/// Options of one run.
pub struct RunOptions {
    /// Root seed.
    pub seed: u64,
    /// Where to write the full trace, if anywhere.
    pub trace: Option<Box<dyn std::io::Write>>,
    /// Stop at the first violation (the default); otherwise collect them all.
    pub stop_on_violation: bool,
    /// Record a fingerprint of every step ([`crate::fingerprint`]), for the
    /// determinism check.
    pub fingerprint: bool,
    /// Gather what a report draws ([`crate::timeline`]).
    pub timeline: bool,
    /// Keep the last events of these agents ([`crate::trace::Watch`]),
    /// to explain a violation they are involved in.
    pub watch: Vec<u32>,
    /// Sees the bytes of every message handed to an agent, as the agent
    /// gets them: real traffic for the fuzzing seed corpora
    /// (`fuzzing/`). It observes only, so a run is the same with or
    /// without it.
    pub tap: Option<Tap>,
}

impl RunOptions {
    /// Hash-only trace, stop at the first violation.
    pub fn seeded(seed: u64) -> RunOptions {
        RunOptions {
            seed,
            trace: None,
            stop_on_violation: true,
            fingerprint: false,
            timeline: false,
            watch: Vec::new(),
            tap: None,
        }
    }
}

/// One simulation run in progress.
pub struct World {
    config: Config,
    seeds: Seeds,
    fleet: Fleet,
    now: u64,
    end: u64,
    queue: EventQueue<What>,
    nodes: Vec<Node>,
    seed_ids: Vec<NodeId>,
    network: Network,
    schedule: Schedule,
    convergence: Convergence,
    detection: Detection,
    false_death: FalseDeath,
    spread: Spread,
    spread_bound: Option<u64>,
    operators: Operators,
    config_checks: ConfigChecks,
    /// Picks which agent an operator hands a publication to.
    operator_rng: ChaCha8Rng,
    /// The scenario writes config or trust, or attacks: check agents'
    /// config state whenever it changes.
    watch_config: bool,
    /// An agent just moved to a release: see whether it was the last one
    /// missing it.
    release_moved: bool,
    trace: Trace,
    /// Each step's fingerprint, when the run records them.
    steps: Vec<Step>,
    /// [`RunOptions::tap`].
    tap: Option<Tap>,
    traffic: Traffic,
    violations: Vec<Violation>,
    /// How the last emergency stop spreads.
    stop_spread: stop::StopSpread,
    /// Staged rollouts' checker.
    rollouts: RolloutCheck,
    stop_on_violation: bool,
    events_processed: u64,
    leases: Vec<SimLease>,
    /// Whether clocks are good enough for "one lease holder at a time".
    clocks_exclusive: bool,
    /// The largest clock drift given to any agent, in ppm.
    lease_drift_ppm: u64,
    /// The scenario's `lease_held_within_s`, in nanoseconds.
    lease_held_within: Option<u64>,
    remedy: Remediation,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl World {
    /// Builds the run of `scenario` with `options`.
    pub fn new(scenario: &Scenario, options: RunOptions) -> World {
        let seeds = Seeds::new(options.seed);
        let agents = scenario.fleet.agents as usize;
        let schedule = fault::resolve(&scenario.fleet, scenario.link, &scenario.faults, &seeds);
        let overrides = link_overrides(scenario);
        let lossy = scenario.link.loss > 0.0 || overrides.iter().any(|rule| rule.model.loss > 0.0);
        let network = Network::new(scenario.link, overrides, seeds.rng("network", 0));
        let config = scenario.config.clone();
        let bounds = Bounds::derive(&config, agents, scenario);
        let nodes = (0..agents)
            .map(|index| Node {
                meta: NodeMeta {
                    tags: scenario.fleet.tags[index].clone(),
                    addrs: Vec::new(),
                },
                ..Node::default()
            })
            .collect();
        let fleet = Fleet::new(&seeds, &scenario.fleet.tags, scenario.has_emergency_stop());
        let operators = Operators::new(&fleet, &seeds);
        let watch_config = scenario
            .faults
            .iter()
            .any(|fault| fault.kind().touches_config());
        let leases = SimLease::resolve(scenario, |index| fleet.identity(index).keypair.public());
        let trace = match options.trace {
            Some(writer) => Trace::writing(writer),
            None => Trace::hashing(),
        };
        let trace = if options.fingerprint {
            trace.fingerprinting()
        } else {
            trace
        };
        let trace = if options.watch.is_empty() {
            trace
        } else {
            trace.with_watch(Watch::new(&options.watch))
        };
        let trace = if options.timeline {
            trace.with_timeline(Timeline::new(nanos(scenario.duration), agents))
        } else {
            trace
        };
        let mut world = World {
            seeds,
            now: 0,
            end: nanos(scenario.duration),
            queue: EventQueue::default(),
            nodes,
            seed_ids: (0..scenario.fleet.seeds)
                .map(|index| fleet.node_id(index))
                .collect(),
            fleet,
            network,
            convergence: Convergence::new(agents, bounds.converge),
            detection: Detection::new(bounds.detect),
            false_death: FalseDeath::new(bounds.quiet_window, lossy),
            spread: Spread::default(),
            spread_bound: scenario.expect.spread_within.map(nanos),
            operators,
            config_checks: ConfigChecks::new(agents, bounds.publication),
            operator_rng: seeds.rng("operator-picks", 0),
            watch_config,
            release_moved: false,
            trace,
            steps: Vec::new(),
            tap: options.tap,
            traffic: Traffic::default(),
            violations: Vec::new(),
            stop_spread: stop::StopSpread::default(),
            rollouts: RolloutCheck::default(),
            stop_on_violation: options.stop_on_violation,
            events_processed: 0,
            leases,
            clocks_exclusive: true,
            lease_drift_ppm: 0,
            lease_held_within: scenario.expect.lease_held_within.map(nanos),
            remedy: Remediation::new(scenario),
            config,
            schedule,
        };
        for index in 0..world.schedule.len() {
            let at = nanos(world.schedule[index].0);
            world.push(at, What::Act(index));
        }
        world
    }

    /// The resolved fault schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Runs to the end (or the first violation) and reports.
    pub fn run(mut self) -> Outcome {
        let started = std::time::Instant::now();
        while let Some((time, what)) = self.queue.pop() {
            if time > self.end {
                break;
            }
            debug_assert!(time >= self.now, "time went backwards");
            self.now = time;
            self.events_processed += 1;
            let (kind, agent) = step_code(&what);
            self.step(what);
            if !self.leases.is_empty() {
                self.check_leases();
            }
            if let Some(mut fold) = self.trace.end_step() {
                fold.position(self.network.draws());
                fold.position(self.operator_rng.get_word_pos());
                if let Some(agent) = self
                    .nodes
                    .get(agent as usize)
                    .and_then(|n| n.agent.as_ref())
                {
                    fold.position(agent.draws());
                }
                self.steps.push(Step {
                    at: self.now,
                    what: kind,
                    agent,
                    digest: fold.value(),
                });
            }
            if self.stop_on_violation && !self.violations.is_empty() {
                break;
            }
        }
        let wall = started.elapsed();
        self.finish(wall)
    }

    fn push(&mut self, time: u64, what: What) {
        self.queue.push(time, what);
    }

    fn step(&mut self, what: What) {
        match what {
            What::Deliver { from, to, bytes } => self.deliver(from, to, bytes),
            What::Wake { node, generation } => self.wake(node, generation),
            What::Act(index) => {
                let action = self.schedule[index].1.clone();
                self.act(action);
            }
            What::CheckConvergence => {
                if let Some(violation) = self.convergence.check(self.now) {
                    self.violations.push(violation);
                }
            }
            What::CheckDetection(member) => {
                if let Some(violation) = self.detection.check(self.now, member) {
                    self.violations.push(violation);
                }
            }
            What::CheckSpread(member, incarnation) => {
                if let Some(bound) = self.spread_bound
                    && let Some(violation) = self.spread.check(self.now, member, incarnation, bound)
                {
                    self.violations.push(violation);
                }
            }
            What::StopAfterLeave(index) => self.stop(index, false),
            What::CheckPublications => self.check_publications(),
            What::CheckDone {
                node,
                generation,
                id,
                check,
            } => self.check_done(node, generation, id, &check),
            What::ActionDone(handle) => self.action_done(handle),
            What::CheckFixed(failure) => self.check_fixed(failure),
        }
    }

    // --- agents ------------------------------------------------------------------

    /// Runs `input` on agent `index` at the current time, then drains it.
    fn with_agent(&mut self, index: u32, input: impl FnOnce(&mut Agent, fleetmesh_node::Instant)) {
        let node = &mut self.nodes[index as usize];
        let Some(mut agent) = node.agent.take() else {
            return;
        };
        let before = self.watch_config.then(|| config_state(&agent));
        input(&mut agent, node.clock.local(self.now));
        self.drain(index, &mut agent);
        if let Some(digest) = self.stop_spread.following()
            && agent.replicas().ledger().get(&digest).is_some()
        {
            let nodes = &self.nodes;
            let running = || nodes.iter().filter(|node| node.agent.is_some()).count() + 1;
            self.stop_spread.holds(index, self.now, running);
        }
        if let Some(before) = before
            && config_state(&agent) != before
        {
            let replicas = agent.replicas();
            let state = AgentConfig {
                trust_version: replicas.trust().head().doc.version,
                held: replicas.config().applied().collect(),
                running: agent
                    .applied_releases()
                    .values()
                    .filter(|applied| !applied.void)
                    .map(|applied| &applied.digest)
                    .collect(),
                quarantined: replicas.config().quarantined().collect(),
            };
            if let Some(violation) =
                self.config_checks
                    .store_changed(self.now, index, &state, self.operators.truth())
            {
                self.violations.push(violation);
            }
        }
        self.nodes[index as usize].agent = Some(agent);
        if std::mem::take(&mut self.release_moved) {
            self.note_reach();
            self.note_rollouts_reach();
        }
    }

    /// Acts on everything agent `index` has to say, in the order the core
    /// hands it out: what it made durable before what it sends.
    fn drain(&mut self, index: u32, agent: &mut Agent) {
        loop {
            match agent.poll_output() {
                // A simulated agent keeps no replica files: a restarted one
                // catches up from its peers.
                Output::Journal(_) => {}
                Output::Persist(persist) => self.nodes[index as usize].durable.apply(persist),
                Output::Transmit(transmit) => self.send(index, transmit.to, transmit.bytes),
                Output::Event(event) => self.observe(index, agent, event),
                Output::Task(task) => {
                    if matches!(task, Task::Action { .. }) {
                        let node = &self.nodes[index as usize];
                        let local_millis = node.clock.local(self.now).0 / 1_000_000;
                        let ledger = agent.replicas().ledger();
                        let violation =
                            stop::started(index, ledger, &node.meta, local_millis, self.now);
                        self.violations.extend(violation);
                    }
                    self.take_task(index, task)
                }
                Output::Timeout(deadline) => {
                    self.schedule_wake(index, deadline);
                    return;
                }
                Output::Idle => return,
            }
        }
    }

    /// Schedules agent `index`'s next timeout at its local `deadline`,
    /// unless it is already due to wake earlier.
    fn schedule_wake(&mut self, index: u32, deadline: fleetmesh_node::Instant) {
        let node = &mut self.nodes[index as usize];
        let at = node.clock.true_time_of(deadline, self.now);
        if node.wake_at.is_none_or(|scheduled| at < scheduled) {
            node.wake_at = Some(at);
            let generation = node.generation;
            self.push(
                at,
                What::Wake {
                    node: index,
                    generation,
                },
            );
        }
    }

    fn send(&mut self, from: u32, to: NodeId, bytes: Vec<u8>) {
        let Some(to) = self.fleet.node_index(to) else {
            self.dropped(from, u32::MAX, DropReason::Unroutable);
            return;
        };
        match self.network.route(from, to) {
            Verdict::Drop(reason) => self.dropped(from, to, reason),
            Verdict::Deliver(delay, duplicate) => {
                if let Some(second) = duplicate {
                    self.push(
                        self.now + second,
                        What::Deliver {
                            from,
                            to,
                            bytes: bytes.clone(),
                        },
                    );
                }
                self.push(self.now + delay, What::Deliver { from, to, bytes });
            }
        }
    }

    fn dropped(&mut self, from: u32, to: u32, reason: DropReason) {
        self.traffic.count_drop(reason);
        self.trace.record(
            self.now,
            TraceEvent::Drop {
                from,
                to,
                reason: reason as u8,
            },
        );
    }

    fn deliver(&mut self, from: u32, to: u32, bytes: Vec<u8>) {
        let node = &mut self.nodes[to as usize];
        if node.agent.is_none() {
            self.dropped(from, to, DropReason::Down);
            return;
        }
        if node.paused > 0 {
            if node.inbox.len() >= PAUSED_INBOX_MAX {
                self.dropped(from, to, DropReason::Overflow);
            } else {
                node.inbox.push_back((from, bytes));
            }
            return;
        }
        self.hand_over(from, to, &bytes);
    }

    /// Gives a message to a running agent: counted, traced, handled.
    fn hand_over(&mut self, from: u32, to: u32, bytes: &[u8]) {
        self.traffic.delivered += 1;
        let size = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.trace.record(
            self.now,
            TraceEvent::Deliver {
                from,
                to,
                bytes: size,
            },
        );
        if let Some(tap) = &mut self.tap {
            tap(bytes);
        }
        let sender = self.fleet.node_id(from);
        self.with_agent(to, |agent, now| agent.handle_message(now, sender, bytes));
    }

    fn wake(&mut self, index: u32, generation: u32) {
        let node = &mut self.nodes[index as usize];
        if node.generation != generation || node.wake_at != Some(self.now) {
            return;
        }
        node.wake_at = None;
        if node.paused > 0 {
            return;
        }
        node.woken = match node.woken {
            (at, count) if at == self.now => (at, count.saturating_add(1)),
            _ => (self.now, 1),
        };
        if node.woken.1 > WAKES_PER_INSTANT_MAX {
            // Left unwoken: the next input gives it another chance.
            if node.woken.1 == WAKES_PER_INSTANT_MAX + 1 {
                self.violations.push(Violation {
                    invariant: "agent time moves on",
                    kind: Kind::Liveness,
                    at: self.now,
                    details: format!(
                        "agent {index} asked to be woken {WAKES_PER_INSTANT_MAX} times at one instant: a deadline that never moves"
                    ),
                    agents: vec![index],
                });
            }
            return;
        }
        self.with_agent(index, |agent, now| agent.handle_timeout(now));
    }

    /// Feeds one agent event to the trace and the checkers.
    fn observe(&mut self, index: u32, agent: &Agent, event: Event) {
        match event {
            Event::MemberChanged {
                id,
                previous,
                current,
            } => {
                let state = current.state as u8;
                let member = self.trace_member(index, id, current.incarnation, state);
                if member != u32::MAX {
                    self.view_changed(index, member, previous, current);
                }
            }
            Event::MemberReaped { id } => {
                self.trace_member(index, id, 0, REAPED);
            }
            Event::Refuted { .. } => self.traffic.refutations += 1,
            Event::ReleaseApplied {
                doc,
                version,
                digest,
            } => {
                self.trace.record(
                    self.now,
                    TraceEvent::Release {
                        agent: index,
                        version: u32::try_from(version).unwrap_or(u32::MAX),
                    },
                );
                let node = &self.nodes[index as usize];
                let local_millis = node.clock.local(self.now).0 / 1_000_000;
                let violations = self.rollouts.applied(
                    self.now,
                    index,
                    digest,
                    agent.replicas().ledger(),
                    (&node.meta, local_millis),
                );
                self.violations.extend(violations);
                let trust_version = agent.replicas().trust().head().doc.version;
                if let Some(violation) = self.config_checks.release_applied(
                    self.now,
                    index,
                    trust_version,
                    (&doc, version, digest),
                    self.operators.truth(),
                ) {
                    self.violations.push(violation);
                }
                self.release_moved = true;
            }
            Event::SafeMode { entered } => {
                if entered {
                    self.traffic.safe_mode_entered += 1;
                }
            }
            Event::LeaseAcquired { .. } | Event::LeaseLost { .. } => {
                self.lease_event(index, agent, &event)
            }
            // The agent counts it (`policies_refused`), which reports read.
            Event::PolicyRefused { .. } => {}
            Event::ReleaseReverted {
                doc, version, ran, ..
            } => {
                if ran {
                    self.rollouts.reverted(self.now, index, (&doc, version));
                }
                self.release_moved = true;
            }
            Event::RolloutAttested {
                doc,
                version,
                wave,
                passed,
                ..
            } => self
                .rollouts
                .attested(self.now, index, (&doc, version), wave, passed),
        }
    }

    /// Traces a change of `agent`'s view of `id`; returns the member's
    /// index, or `u32::MAX` for an id that names no simulated agent.
    fn trace_member(&mut self, agent: u32, id: NodeId, incarnation: u32, state: u8) -> u32 {
        let member = self.fleet.node_index(id).unwrap_or(u32::MAX);
        let event = TraceEvent::Member {
            agent,
            member,
            incarnation,
            state,
        };
        self.trace.record(self.now, event);
        member
    }

    fn view_changed(
        &mut self,
        agent: u32,
        member: u32,
        previous: Option<Liveness>,
        current: Liveness,
    ) {
        let was_up = previous.is_some_and(|liveness| liveness.state.is_up());
        let is_up = current.state.is_up();
        let running = self.is_running(member);
        if was_up != is_up && self.convergence.is_tracked(agent) {
            self.convergence.adjust(self.now, agent, is_up != running);
            if self.detection.is_pending(member) {
                self.detection.view_changed(self.now, member, !is_up);
            }
        }
        // An expelled agent hears from nobody and may declare anyone dead:
        // only the views of agents in the fleet count.
        if current.state == MemberState::Dead
            && running
            && self.is_running(agent)
            && let Some(violation) =
                self.false_death
                    .declared(self.now, agent, member, current.incarnation)
        {
            self.violations.push(violation);
        }
        self.spread
            .learned(self.now, member, current.incarnation, agent);
    }

    fn is_running(&self, index: u32) -> bool {
        self.convergence.is_tracked(index)
    }

    fn sees_up(&self, agent: u32, member: u32) -> bool {
        self.nodes[agent as usize]
            .agent
            .as_ref()
            .and_then(|agent| agent.member(self.fleet.node_id(member)))
            .is_some_and(|view| view.state().is_up())
    }

    fn running_agents(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.nodes.len() as u32).filter(|&index| self.convergence.is_tracked(index))
    }
}

/// A step's kind (an index into [`crate::fingerprint::STEP_KINDS`]) and
/// the agent it concerns, or `u32::MAX`.
fn step_code(what: &What) -> (u8, u32) {
    match what {
        What::Deliver { to, .. } => (0, *to),
        What::Wake { node, .. } => (1, *node),
        What::Act(_) => (2, u32::MAX),
        What::CheckConvergence => (3, u32::MAX),
        What::CheckDetection(member) => (4, *member),
        What::CheckSpread(member, _) => (5, *member),
        What::CheckPublications => (6, u32::MAX),
        What::StopAfterLeave(node) => (7, *node),
        What::CheckDone { node, .. } => (8, *node),
        What::ActionDone(_) => (9, u32::MAX),
        What::CheckFixed(_) => (10, u32::MAX),
    }
}

/// The scenario's per-link overrides, resolved to node masks.
pub(crate) fn link_overrides(scenario: &Scenario) -> Vec<LinkOverride> {
    scenario
        .links
        .iter()
        .map(|rule| LinkOverride {
            from: mask(scenario, &rule.from),
            to: mask(scenario, &rule.to),
            model: rule.model,
        })
        .collect()
}

fn mask(scenario: &Scenario, nodes: &Nodes) -> Vec<bool> {
    let mut mask = vec![false; scenario.fleet.agents as usize];
    match &nodes.ids {
        Some(ids) => ids.iter().for_each(|&id| mask[id as usize] = true),
        None => {
            for (index, tags) in scenario.fleet.tags.iter().enumerate() {
                mask[index] = nodes
                    .select
                    .iter()
                    .all(|(key, value)| tags.get(key) == Some(value));
            }
        }
    }
    mask
}

/// What the config checkers look at to tell that an agent's config state
/// changed: its trust head and the root digest of its config changes.
fn config_state(agent: &Agent) -> (u64, fleetmesh_node::crdt::Digest) {
    (
        agent.replicas().trust().head().doc.version,
        agent.replicas().root(StateKind::Config),
    )
}
