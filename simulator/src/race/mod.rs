//! A membership race: fleetmesh's agent and another SWIM implementation
//! ([`foca`](https://docs.rs/foca)) run through the same simulated network,
//! fault schedule and seeds, and are measured the same way.
//!
//! The full [`crate::World`] drives fleetmesh-only features (admission,
//! replicated state, leases, remediation) and its checkers read fleetmesh's
//! types, so the race has its own compact loop over the parts both
//! implementations share: the scenario format and its resolved fault
//! schedule ([`crate::scenario::schedule`]), the link model and partitions
//! ([`crate::network`]), the named seed streams ([`crate::rng`]) and the
//! event queue ([`crate::queue`]). Both implementations sit behind
//! [`RaceAgent`], so every message, timer and fault reaches them through one
//! code path, and every figure is computed by the same code for both.
//!
//! Only membership faults are supported: starts, crashes, partitions and
//! heals, pauses and network changes. [`Race::new`] refuses a scenario
//! with any other fault rather than ignore it.

pub mod fleetmesh;
pub mod foca;

use crate::network::{Cut, LinkModel, Network, Verdict};
use crate::queue::EventQueue;
use crate::rng::Seeds;
use crate::scenario::Scenario;
use crate::scenario::fault;
use crate::scenario::schedule::Action;
use crate::world::{PAUSED_INBOX_MAX, WAKES_PER_INSTANT_MAX, link_overrides};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// How often, after a heal, the race looks whether every running agent
/// sees every other one up: the resolution of the heal figure.
const HEAL_POLL_NANOS: u64 = 100_000_000;

/// One agent's change of view: it now sees `member` up, or no longer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewChange {
    /// The member, by node index.
    pub member: u32,
    /// Whether the agent now counts it up (alive or suspect).
    pub up: bool,
    /// What the view is about: fleetmesh's incarnation, foca's identity
    /// generation. A false death is counted once per (member, epoch).
    pub epoch: u64,
}

/// A message an agent wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipient's node index; `None` when the address names no node
    /// (the message is dropped).
    pub to: Option<u32>,
    /// The encoded message.
    pub bytes: Vec<u8>,
}

/// A membership agent the race can drive: sans-IO, poll-style, on the
/// simulator's true time in nanoseconds. After any input the race drains
/// [`RaceAgent::poll_transmit`], then [`RaceAgent::poll_change`], then reads
/// [`RaceAgent::poll_timeout`].
pub trait RaceAgent {
    /// A message from node `from` arrived at `now`.
    fn handle_message(&mut self, now: u64, from: u32, bytes: &[u8]);
    /// Time passed: run whatever is due at `now`.
    fn handle_timeout(&mut self, now: u64);
    /// When [`RaceAgent::handle_timeout`] must next be called.
    fn poll_timeout(&self) -> Option<u64>;
    /// The next message to send.
    fn poll_transmit(&mut self) -> Option<Outgoing>;
    /// The next change of this agent's view.
    fn poll_change(&mut self) -> Option<ViewChange>;
    /// The name peers must know this agent by now. fleetmesh's never changes
    /// (its node id); foca's changes when it rejoins under a new identity
    /// after learning it was declared down.
    fn identity(&self) -> u64;
    /// Whether this agent sees the member named `identity` up.
    fn sees_up(&self, identity: u64) -> bool;
    /// Inputs this agent refused as malformed or failed to handle.
    fn errors(&self) -> u64;
}

/// One implementation in the race: builds its agents.
pub trait Implementation: Sized {
    /// Its agents.
    type Agent: RaceAgent;
    /// Its name in reports.
    const NAME: &'static str;
    /// The implementation for one run of `scenario` seeded by `seeds`.
    fn new(scenario: &Scenario, seeds: &Seeds) -> Self;
    /// The protocol parameters its agents run `scenario` with, in a line.
    fn parameters(scenario: &Scenario) -> String;
    /// Starts agent `index` at `now`, seeded with `seed`, joining through
    /// the agents `join` names.
    fn start(
        &mut self,
        index: u32,
        seed: u64,
        now: u64,
        join: &[u32],
    ) -> Result<Self::Agent, String>;
}

/// Why a race could not run.
#[derive(Debug, thiserror::Error)]
pub enum RaceError {
    /// The scenario has a fault the race does not model.
    #[error("the membership race does not model {0} faults")]
    Unsupported(&'static str),
    /// An implementation refused to start an agent.
    #[error("agent {index} did not start: {reason}")]
    Start {
        /// The agent.
        index: u32,
        /// What the implementation said.
        reason: String,
    },
}

/// Options of one race run.
#[derive(Clone, Copy, Debug)]
pub struct RaceOptions {
    /// Root seed.
    pub seed: u64,
    /// Traffic is counted from this time on, so that the figures describe
    /// the running fleet rather than its formation.
    pub traffic_from: Duration,
}

/// What one implementation did in one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RaceOutcome {
    /// Agents in the fleet.
    pub agents: u32,
    /// Simulated time.
    pub simulated: Duration,
    /// Wall time of the run.
    pub wall: Duration,
    /// Seconds agents ran, summed over agents.
    pub agent_seconds: f64,
    /// Per crash: time until every running agent that saw the member up
    /// declared it down.
    pub detection_times: Vec<Duration>,
    /// Crashes some running agent still saw up at the end.
    pub undetected: usize,
    /// Distinct (member, epoch) pairs declared down while the member ran.
    pub false_dead_incidents: usize,
    /// Views of a running member going down, every declarer counted.
    pub false_dead_declarations: u64,
    /// Messages handed to the network from `traffic_from` on.
    pub messages: u64,
    /// Bytes handed to the network from `traffic_from` on.
    pub bytes: u64,
    /// Agent-seconds from `traffic_from` on: divides the two above.
    pub traffic_agent_seconds: f64,
    /// After the last heal: time until every running agent saw every other
    /// one up, for good (to the end of the run); `None` if that never held
    /// at the end, or nothing healed.
    pub heal_converged: Option<Duration>,
    /// Whether the run healed a partition.
    pub healed: bool,
    /// Inputs the agents refused or failed to handle.
    pub errors: u64,
    /// Times an agent asked to be woken at one instant more than
    /// `WAKES_PER_INSTANT_MAX` times and was left unwoken.
    pub stalls: u64,
}

#[derive(Debug)]
enum What {
    Deliver { from: u32, to: u32, bytes: Vec<u8> },
    Wake { node: u32, generation: u32 },
    Act(usize),
    PollHeal,
}

struct Slot<A> {
    agent: Option<A>,
    /// Pause depth: overlapping pauses nest.
    paused: u32,
    inbox: VecDeque<(u32, Vec<u8>)>,
    wake_at: Option<u64>,
    /// The instant of the last wake-up, and how many came at it.
    woken: (u64, u32),
    /// Bumped by a crash, so wake-ups of the old process are ignored.
    generation: u32,
    running_since: Option<u64>,
    errors_retired: u64,
}

impl<A> Default for Slot<A> {
    fn default() -> Slot<A> {
        Slot {
            agent: None,
            paused: 0,
            inbox: VecDeque::new(),
            wake_at: None,
            woken: (0, 0),
            generation: 0,
            running_since: None,
            errors_retired: 0,
        }
    }
}

/// A crash whose detection is awaited.
struct Pending {
    crashed_at: u64,
    /// Running agents that still see the member up.
    waiting: BTreeSet<u32>,
}

/// One race run of implementation `I`.
pub struct Race<I: Implementation> {
    implementation: I,
    seeds: Seeds,
    join: Vec<u32>,
    now: u64,
    end: u64,
    traffic_from: u64,
    queue: EventQueue<What>,
    slots: Vec<Slot<I::Agent>>,
    /// `sees[agent][member]`: the agent's view, from its view changes.
    sees: Vec<Vec<bool>>,
    network: Network,
    schedule: Vec<(Duration, Fault)>,
    pending: BTreeMap<u32, Pending>,
    healed_at: Option<u64>,
    converged_since: Option<u64>,
    false_dead: BTreeSet<(u32, u64)>,
    outcome: RaceOutcome,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The faults the race models: the membership subset of [`Action`].
#[derive(Clone, Debug)]
enum Fault {
    Start(u32),
    Crash(Vec<u32>),
    Partition(Cut),
    Heal,
    Pause(Vec<u32>),
    Resume(Vec<u32>),
    Network(LinkModel),
}

/// The race's version of `action`, or the name of a fault it does not model.
fn fault(action: Action) -> Result<Fault, &'static str> {
    match action {
        Action::Start(index) => Ok(Fault::Start(index)),
        Action::Crash(indices) => Ok(Fault::Crash(indices)),
        Action::Partition(cut) => Ok(Fault::Partition(cut)),
        Action::Heal => Ok(Fault::Heal),
        Action::Pause(indices) => Ok(Fault::Pause(indices)),
        Action::Resume(indices) => Ok(Fault::Resume(indices)),
        Action::Network(model) => Ok(Fault::Network(model)),
        Action::Restart(_) => Err("restart"),
        Action::Clock(..) => Err("clock"),
        Action::Leave(_) | Action::Stop(_) => Err("leave"),
        Action::Retag(..) => Err("retag"),
        Action::Publish(..) => Err("config"),
        Action::Trust(..) => Err("trust"),
        Action::Equivocate(..) => Err("equivocate"),
        Action::Attack { .. } => Err("attack"),
        Action::Health { .. } => Err("health-flaps"),
        Action::CrashHolder(..) => Err("crash-holder"),
        Action::Policy(..) => Err("policy"),
        Action::Service { .. } => Err("service"),
        Action::Approve(..) => Err("approve"),
        Action::EmergencyStop(..) => Err("emergency-stop"),
    }
}

/// Runs `scenario` with implementation `I` to the end.
pub fn run<I: Implementation>(
    scenario: &Scenario,
    options: RaceOptions,
) -> Result<RaceOutcome, RaceError> {
    Race::<I>::new(scenario, options)?.run()
}

impl<I: Implementation> Race<I> {
    /// Builds the run of `scenario`; refuses faults the race does not model.
    pub fn new(scenario: &Scenario, options: RaceOptions) -> Result<Race<I>, RaceError> {
        let seeds = Seeds::new(options.seed);
        let agents = scenario.fleet.agents;
        let schedule = fault::resolve(&scenario.fleet, scenario.link, &scenario.faults, &seeds)
            .into_iter()
            .map(|(at, action)| fault(action).map(|fault| (at, fault)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RaceError::Unsupported)?;
        let network = Network::new(
            scenario.link,
            link_overrides(scenario),
            seeds.rng("network", 0),
        );
        let size = agents as usize;
        let mut race = Race {
            implementation: I::new(scenario, &seeds),
            seeds,
            join: (0..scenario.fleet.seeds).collect(),
            now: 0,
            end: nanos(scenario.duration),
            traffic_from: nanos(options.traffic_from),
            queue: EventQueue::default(),
            slots: (0..size).map(|_| Slot::default()).collect(),
            sees: vec![vec![false; size]; size],
            network,
            schedule,
            pending: BTreeMap::new(),
            healed_at: None,
            converged_since: None,
            false_dead: BTreeSet::new(),
            outcome: RaceOutcome {
                agents,
                ..RaceOutcome::default()
            },
        };
        for index in 0..race.schedule.len() {
            let at = nanos(race.schedule[index].0);
            race.queue.push(at, What::Act(index));
        }
        Ok(race)
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> Result<RaceOutcome, RaceError> {
        let started = std::time::Instant::now();
        while let Some((time, what)) = self.queue.pop() {
            if time > self.end {
                break;
            }
            self.now = time;
            match what {
                What::Deliver { from, to, bytes } => self.deliver(from, to, bytes),
                What::Wake { node, generation } => self.wake(node, generation),
                What::Act(index) => {
                    let fault = self.schedule[index].1.clone();
                    self.act(fault)?;
                }
                What::PollHeal => self.poll_heal(),
            }
        }
        self.now = self.end;
        Ok(self.finish(started.elapsed()))
    }

    // --- agents ------------------------------------------------------------------

    /// Runs `input` on agent `index` at the current time, then drains it.
    fn with_agent(&mut self, index: u32, input: impl FnOnce(&mut I::Agent, u64)) {
        let Some(mut agent) = self.slots[index as usize].agent.take() else {
            return;
        };
        input(&mut agent, self.now);
        while let Some(outgoing) = agent.poll_transmit() {
            self.send(index, outgoing);
        }
        while let Some(change) = agent.poll_change() {
            self.observe(index, change);
        }
        let slot = &mut self.slots[index as usize];
        if let Some(deadline) = agent.poll_timeout() {
            let at = deadline.max(self.now);
            if slot.wake_at.is_none_or(|scheduled| at < scheduled) {
                slot.wake_at = Some(at);
                let generation = slot.generation;
                self.queue.push(
                    at,
                    What::Wake {
                        node: index,
                        generation,
                    },
                );
            }
        }
        slot.agent = Some(agent);
    }

    fn send(&mut self, from: u32, outgoing: Outgoing) {
        if self.now >= self.traffic_from {
            self.outcome.messages += 1;
            self.outcome.bytes += outgoing.bytes.len() as u64;
        }
        let Some(to) = outgoing.to.filter(|&to| (to as usize) < self.slots.len()) else {
            return;
        };
        if let Verdict::Deliver(delay, duplicate) = self.network.route(from, to) {
            if let Some(second) = duplicate {
                let bytes = outgoing.bytes.clone();
                self.queue
                    .push(self.now + second, What::Deliver { from, to, bytes });
            }
            let bytes = outgoing.bytes;
            self.queue
                .push(self.now + delay, What::Deliver { from, to, bytes });
        }
    }

    fn deliver(&mut self, from: u32, to: u32, bytes: Vec<u8>) {
        let slot = &mut self.slots[to as usize];
        if slot.agent.is_none() {
            return;
        }
        if slot.paused > 0 {
            // A paused process's receive buffer: what overflows is lost.
            if slot.inbox.len() < PAUSED_INBOX_MAX {
                slot.inbox.push_back((from, bytes));
            }
            return;
        }
        self.with_agent(to, |agent, now| agent.handle_message(now, from, &bytes));
    }

    fn wake(&mut self, index: u32, generation: u32) {
        let now = self.now;
        let slot = &mut self.slots[index as usize];
        if slot.generation != generation || slot.wake_at != Some(now) {
            return;
        }
        slot.wake_at = None;
        if slot.paused > 0 {
            return;
        }
        slot.woken = match slot.woken {
            (at, count) if at == now => (at, count.saturating_add(1)),
            _ => (now, 1),
        };
        if slot.woken.1 > WAKES_PER_INSTANT_MAX {
            // Left unwoken: the next input gives it another chance.
            if slot.woken.1 == WAKES_PER_INSTANT_MAX + 1 {
                self.outcome.stalls += 1;
            }
            return;
        }
        self.with_agent(index, |agent, now| agent.handle_timeout(now));
    }

    fn is_running(&self, index: u32) -> bool {
        self.slots[index as usize].agent.is_some()
    }

    fn running(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.slots.len() as u32).filter(|&index| self.is_running(index))
    }

    /// Feeds one view change to the figures.
    fn observe(&mut self, agent: u32, change: ViewChange) {
        if change.member == agent {
            return;
        }
        let Some(view) = self.sees[agent as usize].get_mut(change.member as usize) else {
            return;
        };
        *view = change.up;
        if change.up {
            return;
        }
        if self.is_running(change.member) {
            self.outcome.false_dead_declarations += 1;
            self.false_dead.insert((change.member, change.epoch));
        }
        self.no_longer_waiting(change.member, agent);
    }

    /// `agent` no longer sees the crashed `member` up, or stopped running.
    fn no_longer_waiting(&mut self, member: u32, agent: u32) {
        let Some(pending) = self.pending.get_mut(&member) else {
            return;
        };
        pending.waiting.remove(&agent);
        if pending.waiting.is_empty() {
            let waited = self.now - pending.crashed_at;
            self.outcome
                .detection_times
                .push(Duration::from_nanos(waited));
            self.pending.remove(&member);
        }
    }

    // --- faults ------------------------------------------------------------------

    fn act(&mut self, fault: Fault) -> Result<(), RaceError> {
        match fault {
            Fault::Start(index) => self.start(index)?,
            Fault::Crash(indices) => indices.into_iter().for_each(|index| self.crash(index)),
            Fault::Partition(cut) => {
                self.network.cut = Some(cut);
                self.healed_at = None;
                self.converged_since = None;
            }
            Fault::Heal => {
                if self.network.cut.take().is_some() {
                    self.healed_at = Some(self.now);
                    self.converged_since = None;
                    self.outcome.healed = true;
                    self.queue.push(self.now, What::PollHeal);
                }
            }
            Fault::Pause(indices) => {
                for index in indices {
                    let slot = &mut self.slots[index as usize];
                    if slot.agent.is_some() {
                        slot.paused += 1;
                    }
                }
            }
            Fault::Resume(indices) => indices.into_iter().for_each(|index| self.resume(index)),
            Fault::Network(model) => self.network.default = model,
        }
        Ok(())
    }

    fn start(&mut self, index: u32) -> Result<(), RaceError> {
        if self.is_running(index) {
            return Ok(());
        }
        let slot = &mut self.slots[index as usize];
        slot.generation += 1;
        let seed = self.seeds.seed(
            "agent",
            (u64::from(index) << 32) | u64::from(slot.generation),
        );
        let join: Vec<u32> = self
            .join
            .iter()
            .copied()
            .filter(|&seed| seed != index)
            .collect();
        let agent = self
            .implementation
            .start(index, seed, self.now, &join)
            .map_err(|reason| RaceError::Start { index, reason })?;
        let slot = &mut self.slots[index as usize];
        slot.agent = Some(agent);
        slot.paused = 0;
        slot.running_since = Some(self.now);
        // Starting drains the agent's first outputs (its join messages).
        self.with_agent(index, |_, _| {});
        Ok(())
    }

    fn crash(&mut self, index: u32) {
        let now = self.now;
        let slot = &mut self.slots[index as usize];
        let Some(agent) = slot.agent.take() else {
            return;
        };
        slot.errors_retired += agent.errors();
        slot.generation += 1;
        slot.wake_at = None;
        slot.inbox.clear();
        slot.paused = 0;
        if let Some(since) = slot.running_since.take() {
            self.outcome.agent_seconds += (now - since) as f64 / 1e9;
            self.outcome.traffic_agent_seconds +=
                now.saturating_sub(since.max(self.traffic_from)) as f64 / 1e9;
        }
        // The crashed agent's own view no longer counts toward any wait.
        let waits: Vec<u32> = self.pending.keys().copied().collect();
        for member in waits {
            self.no_longer_waiting(member, index);
        }
        let waiting: BTreeSet<u32> = self
            .running()
            .filter(|&other| self.sees[other as usize][index as usize])
            .collect();
        // A crash nobody saw (the agent had not joined yet) has nothing to
        // detect.
        if !waiting.is_empty() {
            let pending = Pending {
                crashed_at: now,
                waiting,
            };
            self.pending.insert(index, pending);
        }
    }

    fn resume(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if slot.paused == 0 {
            return;
        }
        slot.paused -= 1;
        if slot.paused > 0 {
            return;
        }
        let inbox = std::mem::take(&mut slot.inbox);
        for (from, bytes) in inbox {
            self.with_agent(index, |agent, now| agent.handle_message(now, from, &bytes));
        }
        self.with_agent(index, |agent, now| agent.handle_timeout(now));
    }

    /// Whether every running agent sees every other running agent up, under
    /// the name that agent has now.
    fn all_see_all(&self) -> bool {
        let names: Vec<(u32, u64)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let agent = slot.agent.as_ref()?;
                Some((index as u32, agent.identity()))
            })
            .collect();
        names.iter().all(|&(index, _)| {
            let Some(agent) = &self.slots[index as usize].agent else {
                return true;
            };
            names
                .iter()
                .all(|&(other, name)| other == index || agent.sees_up(name))
        })
    }

    fn poll_heal(&mut self) {
        if self.healed_at.is_none() {
            // A partition came back before the fleet converged.
            return;
        }
        if self.all_see_all() {
            self.converged_since.get_or_insert(self.now);
        } else {
            self.converged_since = None;
        }
        self.queue.push(self.now + HEAL_POLL_NANOS, What::PollHeal);
    }

    // --- the end -------------------------------------------------------------------

    fn finish(mut self, wall: Duration) -> RaceOutcome {
        let end = self.end;
        for slot in &mut self.slots {
            if let Some(agent) = &slot.agent {
                slot.errors_retired += agent.errors();
            }
            if let Some(since) = slot.running_since.take() {
                self.outcome.agent_seconds += (end - since) as f64 / 1e9;
                self.outcome.traffic_agent_seconds +=
                    end.saturating_sub(since.max(self.traffic_from)) as f64 / 1e9;
            }
            self.outcome.errors += slot.errors_retired;
        }
        self.outcome.simulated = Duration::from_nanos(end);
        self.outcome.wall = wall;
        self.outcome.undetected = self.pending.len();
        self.outcome.false_dead_incidents = self.false_dead.len();
        self.outcome.heal_converged = self
            .healed_at
            .zip(self.converged_since)
            .map(|(healed, converged)| Duration::from_nanos(converged - healed));
        self.outcome
    }
}
