//! The discrete-event engine: one virtual clock, one event queue ordered by
//! `(time, sequence)`, the simulated network, and every agent of the fleet.
//!
//! The loop pops the earliest event, hands it to the agent or applies the
//! fault, then drains the agent's outputs (str0m's rule: after any input,
//! drain until the next timeout). Every delivery, drop and membership change
//! feeds the trace hash and the invariant checkers.

use crate::checkers::config::{AgentConfig, Awaited, ConfigChecks};
use crate::checkers::convergence::Convergence;
use crate::checkers::detection::Detection;
use crate::checkers::false_death::FalseDeath;
use crate::checkers::spread::Spread;
use crate::checkers::{Kind, Violation};
use crate::clock::{Clock, wall_millis};
use crate::event::{REAPED, TraceEvent};
use crate::fault;
use crate::fingerprint::Step;
use crate::fleet::Fleet;
use crate::network::{DropReason, LinkOverride, Network, Verdict};
use crate::operator::Operators;
use crate::outcome::{Outcome, Traffic};
use crate::queue::EventQueue;
use crate::rng::Seeds;
use crate::scenario::Scenario;
use crate::scenario::fleet::Nodes;
use crate::scenario::operators::{OperatorKey, Publication, TrustChange};
use crate::schedule::{Action, Schedule};
use crate::timeline::Timeline;
use crate::trace::{Reach, Trace, Watch};
use fleetmesh_node::crdt::HealthState;
use fleetmesh_node::state::{Entry as StateEntry, Kind as StateKind, StateStats};
use fleetmesh_node::{
    Agent, Config, Durable, Event, Liveness, MemberState, NodeId, NodeMeta, Stats, TaskId,
};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::Duration;

mod leases;
mod services;
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
        let fleet = Fleet::new(&seeds, &scenario.fleet.tags);
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
        }
    }

    fn drain(&mut self, index: u32, agent: &mut Agent) {
        World::persist(&mut self.nodes[index as usize], agent);
        while let Some(transmit) = agent.poll_transmit() {
            self.send(index, transmit.to, transmit.bytes);
        }
        while let Some(event) = agent.poll_event() {
            self.observe(index, agent, event);
        }
        self.take_tasks(index, agent);
        let node = &mut self.nodes[index as usize];
        if let Some(deadline) = agent.poll_timeout() {
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

    // --- faults ------------------------------------------------------------------

    fn act(&mut self, action: Action) {
        let code = action.code();
        self.trace.record(self.now, TraceEvent::Fault { code });
        if let Some(reach) = reach(&action) {
            self.trace.note_fault(self.now, code, reach);
        }
        if action.disturbs() {
            let check_at = self.convergence.instant_disturbance(self.now);
            self.false_death.instant_disturbance(self.now);
            self.push(check_at, What::CheckConvergence);
        }
        match action {
            Action::Start(index) => self.start(index),
            Action::Restart(indices) => indices.into_iter().for_each(|index| self.start(index)),
            Action::Crash(indices) => indices.into_iter().for_each(|index| self.stop(index, true)),
            Action::Leave(indices) => {
                for index in indices {
                    self.operate(index, Deferred::Leave, false);
                }
            }
            Action::Stop(indices) => {
                for index in indices {
                    // A leave still waiting for a pause to end is followed
                    // by its own stop (StopAfterLeave) once it happens.
                    let waiting = self.nodes[index as usize]
                        .deferred
                        .iter()
                        .any(|operation| matches!(operation, Deferred::Leave));
                    if !waiting {
                        self.stop(index, false);
                    }
                }
            }
            Action::Partition(cut) => {
                if self.network.cut.is_none() {
                    self.convergence.disturbance_started();
                    self.false_death.disturbance_started(self.now);
                }
                self.network.cut = Some(cut);
            }
            Action::Heal => {
                if self.network.cut.take().is_some() {
                    let check_at = self.convergence.disturbance_ended(self.now);
                    self.false_death.disturbance_ended(self.now);
                    self.push(check_at, What::CheckConvergence);
                    if let Some(check_at) = self.config_checks.healed(self.now) {
                        self.push(check_at, What::CheckPublications);
                    }
                }
            }
            Action::Pause(indices) => {
                for index in indices {
                    let node = &mut self.nodes[index as usize];
                    if node.agent.is_some() {
                        node.paused += 1;
                        self.convergence.disturbance_started();
                        self.false_death.disturbance_started(self.now);
                    }
                }
            }
            Action::Resume(indices) => {
                for index in indices {
                    self.resume(index);
                }
            }
            Action::Network(model) => {
                self.network.default = model;
                let lossy = model.loss > 0.0
                    || self
                        .network
                        .overrides
                        .iter()
                        .any(|rule| rule.model.loss > 0.0);
                self.false_death.set_lossy(self.now, lossy);
            }
            Action::Clock(index, offset, drift) => {
                self.clock_changed(index, offset, drift);
                let node = &mut self.nodes[index as usize];
                node.clock = if node.agent.is_none() {
                    // Not running: the next process starts on this clock.
                    Clock::new(offset, drift)
                } else {
                    node.clock.reset(self.now, offset, drift)
                };
            }
            Action::Retag(indices, tags) => {
                for index in indices {
                    let meta = NodeMeta {
                        tags: tags.clone(),
                        addrs: Vec::new(),
                    };
                    self.operate(index, Deferred::Retag(meta), false);
                }
            }
            Action::Publish(publication, via) => {
                self.publish_config(&publication, &via);
            }
            Action::Trust(change, via) => self.change_trust(change, &via),
            Action::Equivocate(author, doc, via) => self.equivocate(author, &doc, &via),
            Action::Attack {
                attacker,
                target,
                attempt,
                attempts,
                config_key,
            } => self.attack(attacker, target, (attempt, attempts), config_key),
            Action::CrashHolder(scope, restart_after) => self.crash_holder(&scope, restart_after),
            Action::Health {
                agent,
                check,
                healthy,
            } => self.report_health(agent, check, healthy),
            Action::Policy(publication, via) => self.publish_policy(&publication, &via),
            Action::Service {
                fault,
                nodes,
                failing,
            } => self.service_turn(fault, &nodes, failing),
            Action::Approve(fault, targets, via) => self.approve(&fault, &targets, &via),
        }
        self.convergence.refresh(self.now);
    }

    /// Applies an operator action to agent `index`, or defers it until the
    /// agent resumes if it is paused.
    fn operate(&mut self, index: u32, operation: Deferred, deferred: bool) {
        let node = &mut self.nodes[index as usize];
        if let Deferred::Retag(meta) = &operation {
            // A restarted process announces the new tags too.
            node.meta = meta.clone();
        }
        if node.agent.is_none() {
            return;
        }
        if node.paused > 0 {
            node.deferred.push(operation);
            return;
        }
        match operation {
            Deferred::Leave => {
                self.with_agent(index, |agent, now| agent.leave(now));
                self.become_not_running(index);
                if deferred {
                    // The scheduled stop passed during the pause: give the
                    // departure its round of gossip, then stop.
                    self.push(self.now + LEAVE_GOSSIP_NANOS, What::StopAfterLeave(index));
                }
            }
            Deferred::Retag(meta) => {
                let mut accepted = false;
                self.with_agent(index, |agent, _| accepted = agent.set_meta(meta).is_ok());
                if accepted {
                    self.track_spread(index);
                }
            }
        }
    }

    fn track_spread(&mut self, member: u32) {
        let Some(agent) = &self.nodes[member as usize].agent else {
            return;
        };
        let incarnation = agent.incarnation();
        let id = self.fleet.node_id(member);
        let waiting = self
            .running_agents()
            .filter(|&other| other != member)
            .filter(|&other| {
                let view = self.nodes[other as usize]
                    .agent
                    .as_ref()
                    .and_then(|agent| agent.member(id));
                view.is_none_or(|view| view.incarnation() < incarnation)
            })
            .collect();
        self.spread
            .announced(self.now, member, incarnation, waiting);
        if let Some(bound) = self.spread_bound {
            self.push(self.now + bound, What::CheckSpread(member, incarnation));
        }
    }

    fn start(&mut self, index: u32) {
        let node = &self.nodes[index as usize];
        if node.agent.is_some() || node.expelled {
            return;
        }
        let node = &mut self.nodes[index as usize];
        node.generation += 1;
        let seed = self.seeds.seed(
            "agent",
            (u64::from(index) << 32) | u64::from(node.generation),
        );
        let now = node.clock.local(self.now);
        let agent = Agent::new(
            self.config.clone(),
            self.fleet.identity(index),
            node.meta.clone(),
            seed,
            now,
            self.fleet.verifier.clone(),
        )
        .expect("scenario loading validated every agent's tags");
        node.agent = Some(Box::new(agent));
        node.paused = 0;
        node.running_since = Some(self.now);
        self.detection.restarted(index);
        // Every running agent that counted this one as gone is now wrong,
        // and one that still saw it up is right again.
        let others: Vec<u32> = self.running_agents().collect();
        for other in others {
            let sees_up = self.sees_up(other, index);
            self.convergence.adjust(self.now, other, !sees_up);
        }
        // The new agent sees only itself: it is wrong about every other
        // running agent.
        let wrong = self.running_agents().count();
        self.convergence
            .track(index, u32::try_from(wrong).unwrap_or(u32::MAX));
        self.restore_durable(index);
        let seeds = self.seed_ids.clone();
        self.with_agent(index, |agent, now| agent.join(now, &seeds));
        self.acquire_leases(index);
    }

    /// Removes agent `index` from the ground truth's running set: every
    /// running agent that sees it up is now wrong, and waits that counted
    /// on this agent's view stop counting it.
    fn become_not_running(&mut self, index: u32) {
        if !self.convergence.is_tracked(index) {
            return;
        }
        self.convergence.untrack(index);
        // Every running agent that sees it up is now wrong, and one that
        // already counted it gone (across a partition, say) is right again.
        let others: Vec<u32> = self.running_agents().collect();
        for &other in &others {
            let sees_up = self.sees_up(other, index);
            self.convergence.adjust(self.now, other, sees_up);
        }
        // The departed agent's own view no longer counts toward pending waits.
        let pending: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&member| self.detection.is_pending(member) && self.sees_up(index, member))
            .collect();
        for member in pending {
            self.detection.view_changed(self.now, member, true);
        }
        self.spread.forget(self.now, index);
    }

    fn stop(&mut self, index: u32, crash: bool) {
        if self.nodes[index as usize].agent.is_none() {
            return;
        }
        let was_running = self.convergence.is_tracked(index);
        self.become_not_running(index);
        if crash && was_running {
            let remaining = self
                .running_agents()
                .filter(|&other| self.sees_up(other, index))
                .count();
            let check_at = self.detection.crashed(
                self.now,
                index,
                u32::try_from(remaining).unwrap_or(u32::MAX),
            );
            self.push(check_at, What::CheckDetection(index));
        }
        self.remedy.forget(index);
        let node = &mut self.nodes[index as usize];
        for _ in 0..node.paused {
            self.convergence.disturbance_ended(self.now);
            self.false_death.disturbance_ended(self.now);
        }
        node.paused = 0;
        node.deferred.clear();
        let agent = node.agent.take().expect("checked above");
        node.retired += agent.stats();
        node.retired_state += &agent.replicas().stats();
        node.generation += 1;
        node.wake_at = None;
        node.inbox.clear();
        if let Some(since) = node.running_since.take() {
            node.running_nanos += self.now - since;
        }
    }

    fn resume(&mut self, index: u32) {
        let node = &mut self.nodes[index as usize];
        if node.paused == 0 {
            return;
        }
        node.paused -= 1;
        let check_at = self.convergence.disturbance_ended(self.now);
        self.false_death.disturbance_ended(self.now);
        self.push(check_at, What::CheckConvergence);
        if self.nodes[index as usize].paused > 0 {
            return;
        }
        self.resume_tasks(index);
        let inbox = std::mem::take(&mut self.nodes[index as usize].inbox);
        for (from, bytes) in inbox {
            self.hand_over(from, index, &bytes);
        }
        self.with_agent(index, |agent, now| agent.handle_timeout(now));
        let deferred = std::mem::take(&mut self.nodes[index as usize].deferred);
        for operation in deferred {
            self.operate(index, operation, true);
        }
    }

    // --- operators ---------------------------------------------------------------

    /// One running agent of `via`, drawn at random; `None` when none runs.
    fn pick_running(&mut self, via: &[u32]) -> Option<u32> {
        let running: Vec<u32> = via
            .iter()
            .copied()
            .filter(|&index| self.is_running(index) && self.nodes[index as usize].paused == 0)
            .collect();
        if running.is_empty() {
            return None;
        }
        Some(running[self.operator_rng.random_range(0..running.len())])
    }

    /// Hands `entries` to agent `index`, as an operator's CLI would.
    fn hand(&mut self, index: u32, entries: Vec<StateEntry>) {
        let mut refused = 0;
        self.with_agent(index, |agent, now| {
            for entry in entries {
                // A refusal is the agent's verdict, and what a scenario
                // about a revoked key shows.
                if agent.publish(now, entry).is_err() {
                    refused += 1;
                }
            }
        });
        self.traffic.publications_refused += refused;
    }

    /// Publishes `publication` through one running agent of `via`;
    /// whether an agent took it.
    fn publish_config(&mut self, publication: &Publication, via: &[u32]) -> bool {
        let Some(index) = self.pick_running(via) else {
            self.traffic.publications_lost += 1;
            return false;
        };
        let now_millis = wall_millis(self.now);
        let Ok(entries) = self.operators.publish(publication, now_millis) else {
            self.traffic.publications_lost += 1;
            return false;
        };
        let released = self
            .operators
            .truth()
            .latest_release
            .get(&publication.doc)
            .copied();
        let legit = entries.iter().any(|entry| match entry {
            StateEntry::Release(release) => Some(release.release.version) == released,
            _ => false,
        });
        self.hand(index, entries);
        if legit && let Some(version) = released {
            let awaited = Awaited::Release {
                doc: publication.doc.clone(),
                version,
            };
            let check_at = self.config_checks.published(self.now, awaited);
            self.push(check_at, What::CheckPublications);
            self.note_reach();
        }
        true
    }

    fn change_trust(&mut self, change: TrustChange, via: &[u32]) {
        let Some(index) = self.pick_running(via) else {
            self.traffic.publications_lost += 1;
            return;
        };
        let entry = self.operators.change_trust(change, wall_millis(self.now));
        self.hand(index, vec![entry]);
        if let TrustChange::RevokeNode(expelled) = change {
            // The truth changes at once: agents that still see the node up
            // are wrong until the revocation reaches them. Its process runs
            // on, ignored, as a compromised host's would.
            self.nodes[expelled as usize].expelled = true;
            self.become_not_running(expelled);
        }
        let version = self.operators.truth().trust_version;
        let check_at = self
            .config_checks
            .published(self.now, Awaited::Trust { version });
        self.push(check_at, What::CheckPublications);
    }

    fn equivocate(&mut self, author: OperatorKey, doc: &str, via: &[u32]) {
        let Some(first_agent) = self.pick_running(via) else {
            self.traffic.publications_lost += 1;
            return;
        };
        let others: Vec<u32> = via
            .iter()
            .copied()
            .filter(|&index| index != first_agent)
            .collect();
        let Some(second_agent) = self.pick_running(&others) else {
            self.traffic.publications_lost += 1;
            return;
        };
        let Some((first, second)) = self
            .operators
            .equivocate(author, doc, wall_millis(self.now))
        else {
            self.traffic.publications_lost += 1;
            return;
        };
        self.hand(first_agent, vec![first]);
        self.hand(second_agent, vec![second]);
        let key = self.operators.key(author);
        let check_at = self
            .config_checks
            .published(self.now, Awaited::Quarantine { key });
        self.push(check_at, What::CheckPublications);
    }

    /// `attacker`, holding `config_key` if any, sends `target` attack
    /// attempt `numbers` (the attempt's number, the fault's attempts).
    fn attack(
        &mut self,
        attacker: u32,
        target: u32,
        numbers: (u32, u32),
        config_key: Option<OperatorKey>,
    ) {
        if attacker == target || !self.is_running(attacker) {
            return;
        }
        let key = self.fleet.node_keypair(attacker);
        let sent = self
            .operators
            .attack(key, config_key, numbers, wall_millis(self.now));
        self.traffic.attacks += 1;
        self.traffic.flood_entries += sent.flood_entries;
        if let Some(key) = sent.convicts {
            // Signed by a trusted key, the change reaches automerge and
            // panics there; its evidence must reach every agent, as an
            // equivocation's does.
            let check_at = self
                .config_checks
                .published(self.now, Awaited::Quarantine { key });
            self.push(check_at, What::CheckPublications);
        }
        let to = self.fleet.node_id(target);
        self.send(attacker, to, sent.bytes);
    }

    /// A running, unpaused agent reports a check; a stopped process reports
    /// nothing.
    fn report_health(&mut self, index: u32, check: u8, healthy: bool) {
        if self.nodes[index as usize].paused > 0 {
            return;
        }
        let state = if healthy {
            HealthState::Healthy
        } else {
            HealthState::Unhealthy
        };
        self.with_agent(index, |agent, now| {
            // Refused only after `leave`, when the agent reports nothing.
            let _ = agent.report_health(now, &format!("check-{check}"), state, "");
        });
    }

    fn note_reach(&mut self) {
        let running: Vec<u32> = self.running_agents().collect();
        let nodes = &self.nodes;
        self.config_checks.note_reach(self.now, |awaited| {
            running.iter().all(|&index| has(nodes, index, awaited))
        });
    }

    fn check_publications(&mut self) {
        if self.network.cut.is_some() {
            // The heal schedules the next check.
            return;
        }
        // An agent that (re)started less than a bound ago may still be
        // catching up: judged at a later check.
        let settled_since = self.now.saturating_sub(self.config_checks.bound());
        let settled: Vec<u32> = self
            .running_agents()
            .filter(|&index| {
                self.nodes[index as usize]
                    .running_since
                    .is_some_and(|since| since <= settled_since)
            })
            .collect();
        let nodes = &self.nodes;
        let violation = self.config_checks.check(self.now, |awaited| {
            settled
                .iter()
                .copied()
                .filter(|&index| !has(nodes, index, awaited))
                .collect()
        });
        if let Some(violation) = violation {
            self.violations.push(violation);
        }
    }

    // --- the end -------------------------------------------------------------------

    fn finish(mut self, wall: Duration) -> Outcome {
        let leases = self.finish_leases();
        let remedy = self.finish_remedy();
        let mut stats = Stats::default();
        let mut state = StateStats::default();
        let mut agent_nanos = 0u64;
        for node in &mut self.nodes {
            if let Some(agent) = &node.agent {
                node.retired += agent.stats();
                node.retired_state += &agent.replicas().stats();
            }
            if let Some(since) = node.running_since {
                node.running_nanos += self.now.min(self.end) - since;
            }
            stats += &node.retired;
            state += &node.retired_state;
            agent_nanos += node.running_nanos;
        }
        let state_bytes = self
            .nodes
            .iter()
            .find_map(|node| node.agent.as_ref())
            .map(|agent| agent.replicas().approx_bytes());
        let trace_error = self.trace.finish().err().map(|error| error.to_string());
        let liveness_failed = self
            .violations
            .iter()
            .any(|violation| violation.kind == Kind::Liveness);
        Outcome {
            agents: self.nodes.len(),
            simulated: Duration::from_nanos(self.now.min(self.end)),
            wall,
            events: self.events_processed,
            agent_seconds: agent_nanos as f64 / 1e9,
            stats,
            state,
            traffic: self.traffic,
            settle_times: self.convergence.settle_times().to_vec(),
            unconverged_at_end: self.convergence.unconverged(),
            converge_bound: Duration::from_nanos(self.convergence.bound()),
            detection_times: self.detection.times().to_vec(),
            detect_bound: Duration::from_nanos(self.detection.bound()),
            spread_times: self.spread.times().to_vec(),
            release_times: self.config_checks.reach_times().to_vec(),
            state_bytes,
            false_dead_incidents: self.false_death.incidents(),
            false_dead_declarations: self.false_death.declarations(),
            leases,
            remedy,
            violations: self.violations,
            liveness_failed,
            trace_hash: self.trace.hash(),
            trace_events: self.trace.events(),
            trace_error,
            steps: std::mem::take(&mut self.steps),
            timeline: self.trace.take_timeline(),
            watched: self.trace.take_watch(),
        }
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

/// Default bounds of the checkers, from the protocol parameters, unless the
/// scenario sets them.
struct Bounds {
    converge: u64,
    detect: u64,
    quiet_window: u64,
    publication: u64,
}

impl Bounds {
    fn derive(config: &Config, agents: usize, scenario: &Scenario) -> Bounds {
        let suspicion_max = config
            .suspicion_timeout_min(agents)
            .mul_f64(config.suspicion_max_mult);
        // Worst case of an unconfirmed suspicion, plus probing and spreading.
        let detect = suspicion_max + config.probe_interval * 4 + config.gossip_interval * 20;
        // A heal is noticed by the next reconnect attempt; refutations then
        // need a detection's worth of time to spread and settle.
        let converge = config.reconnect_interval * 2 + config.sync_interval + detect;
        let quiet_window = suspicion_max + config.probe_interval * 4 + config.gossip_interval * 20;
        // A heal is noticed by the next reconnect; anti-entropy then needs a
        // few exchanges to carry a release across.
        let publication = config.reconnect_interval * 2 + config.sync_interval * 4;
        Bounds {
            publication: nanos(scenario.expect.release_within.unwrap_or(publication)),
            converge: nanos(scenario.expect.converge_within.unwrap_or(converge)),
            detect: nanos(scenario.expect.detect_within.unwrap_or(detect)),
            quiet_window: nanos(quiet_window),
        }
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

/// What a fault action acts on, for the watch; `None` for one that acts
/// on no agent in particular and not on the fleet as a whole (an
/// equivocation, an approval).
fn reach(action: &Action) -> Option<Reach> {
    Some(match action {
        Action::Start(index) | Action::Clock(index, ..) => Reach::Agents(vec![*index]),
        Action::Crash(indices)
        | Action::Restart(indices)
        | Action::Pause(indices)
        | Action::Resume(indices)
        | Action::Leave(indices)
        | Action::Stop(indices)
        | Action::Retag(indices, _)
        | Action::Service { nodes: indices, .. } => Reach::Agents(indices.clone()),
        Action::Attack {
            attacker, target, ..
        } => Reach::Agents(vec![*attacker, *target]),
        Action::Health { agent, .. } => Reach::Agents(vec![*agent]),
        Action::Partition(_)
        | Action::Heal
        | Action::Network(_)
        | Action::Publish(..)
        | Action::Trust(..)
        | Action::CrashHolder(..)
        | Action::Policy(..) => Reach::Fleet,
        Action::Equivocate(..) | Action::Approve(..) => return None,
    })
}

/// Whether agent `index` runs and holds `awaited`.
fn has(nodes: &[Node], index: u32, awaited: &Awaited) -> bool {
    nodes[index as usize]
        .agent
        .as_ref()
        .is_some_and(|agent| awaited.is_held_by(agent))
}

/// What the config checkers look at to tell that an agent's config state
/// changed: its trust head and the root digest of its config changes.
fn config_state(agent: &Agent) -> (u64, fleetmesh_node::crdt::Digest) {
    (
        agent.replicas().trust().head().doc.version,
        agent.replicas().root(StateKind::Config),
    )
}
