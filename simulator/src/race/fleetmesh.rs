//! fleetmesh in the race: the real [`fleetmesh_node::Agent`] with the
//! scenario's config (the LAN preset unless the scenario says otherwise),
//! admitted by the simulated fleet's certificates as in [`crate::World`].

use super::{Implementation, Outgoing, RaceAgent, ViewChange};
use crate::clock::Clock;
use crate::fleet::Fleet;
use crate::rng::Seeds;
use crate::scenario::Scenario;
use fleetmesh_node::{Agent, Config, Event, Instant, NodeId, NodeMeta, Output};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// fleetmesh's membership, as the race runs it.
pub struct Fleetmesh {
    config: Config,
    fleet: Arc<Fleet>,
    tags: Vec<BTreeMap<String, String>>,
}

/// One fleetmesh agent in the race.
pub struct FleetmeshAgent {
    agent: Agent,
    fleet: Arc<Fleet>,
    /// A perfect clock: the race models no skew, and the agent's local time
    /// is true time shifted to keep it positive, as in the world.
    clock: Clock,
    now: u64,
    /// What the last drain handed out, for the race to take in its order.
    outgoing: VecDeque<Outgoing>,
    changes: VecDeque<ViewChange>,
    deadline: Option<Instant>,
}

impl Implementation for Fleetmesh {
    type Agent = FleetmeshAgent;
    const NAME: &'static str = "fleetmesh";

    fn new(scenario: &Scenario, seeds: &Seeds) -> Fleetmesh {
        Fleetmesh {
            config: scenario.config.clone(),
            fleet: Arc::new(Fleet::new(
                seeds,
                &scenario.fleet.tags,
                scenario.has_emergency_stop(),
            )),
            tags: scenario.fleet.tags.clone(),
        }
    }

    fn parameters(scenario: &Scenario) -> String {
        let config = &scenario.config;
        let agents = scenario.fleet.agents as usize;
        let suspicion_min = config.suspicion_timeout_min(agents);
        let ms = |duration: Duration| duration.as_millis();
        format!(
            "{} preset: probe every {} ms, ack timeout {} ms, {} indirect probes; \
             suspicion {:.1}-{:.1} s (Lifeguard, {} confirmations), local health up to x{}; \
             gossip every {} ms to {}, {} forwards per update; anti-entropy every {} s, \
             reconnect to dead members every {} s",
            scenario.preset,
            ms(config.probe_interval),
            ms(config.probe_timeout),
            config.indirect_probes,
            suspicion_min.as_secs_f64(),
            suspicion_min
                .mul_f64(config.suspicion_max_mult)
                .as_secs_f64(),
            config.suspicion_confirmations,
            u32::from(config.local_health_max) + 1,
            ms(config.gossip_interval),
            config.gossip_fanout,
            config.retransmit_limit(agents),
            config.sync_interval.as_secs(),
            config.reconnect_interval.as_secs(),
        )
    }

    fn start(
        &mut self,
        index: u32,
        seed: u64,
        now: u64,
        join: &[u32],
    ) -> Result<FleetmeshAgent, String> {
        let clock = Clock::default();
        let meta = NodeMeta {
            tags: self.tags.get(index as usize).cloned().unwrap_or_default(),
            addrs: Vec::new(),
        };
        let mut agent = Agent::new(
            self.config.clone(),
            self.fleet.identity(index),
            meta,
            seed,
            clock.local(now),
            self.fleet.verifier.clone(),
        )
        .map_err(|error| error.to_string())?;
        let seeds: Vec<NodeId> = join.iter().map(|&seed| self.fleet.node_id(seed)).collect();
        agent.join(clock.local(now), &seeds);
        let mut started = FleetmeshAgent {
            agent,
            fleet: Arc::clone(&self.fleet),
            clock,
            now,
            outgoing: VecDeque::new(),
            changes: VecDeque::new(),
            deadline: None,
        };
        started.settle();
        Ok(started)
    }
}

impl FleetmeshAgent {
    /// Drains the agent into what the race asks for. The race publishes no
    /// config, policy or lease, so nothing is journaled or persisted that a
    /// restart would need (the race restarts nobody) and no task is ever
    /// handed out.
    fn settle(&mut self) {
        loop {
            match self.agent.poll_output() {
                Output::Journal(_) | Output::Persist(_) | Output::Task(_) => {}
                Output::Transmit(transmit) => self.outgoing.push_back(Outgoing {
                    to: self.fleet.node_index(transmit.to),
                    bytes: transmit.bytes,
                }),
                Output::Event(event) => {
                    if let Some(change) = self.view_change(event) {
                        self.changes.push_back(change);
                    }
                }
                Output::Timeout(at) => {
                    self.deadline = Some(at);
                    return;
                }
                Output::Idle => {
                    self.deadline = None;
                    return;
                }
            }
        }
    }

    /// The change of view an event is, if it is one: a member going up or
    /// down in this agent's eyes.
    fn view_change(&self, event: Event) -> Option<ViewChange> {
        let Event::MemberChanged {
            id,
            previous,
            current,
        } = event
        else {
            return None;
        };
        let was_up = previous.is_some_and(|liveness| liveness.state.is_up());
        let is_up = current.state.is_up();
        if was_up == is_up {
            return None;
        }
        let member = self.fleet.node_index(id)?;
        Some(ViewChange {
            member,
            up: is_up,
            epoch: u64::from(current.incarnation),
        })
    }
}

impl RaceAgent for FleetmeshAgent {
    fn handle_message(&mut self, now: u64, from: u32, bytes: &[u8]) {
        self.now = now;
        let sender = self.fleet.node_id(from);
        self.agent
            .handle_message(self.clock.local(now), sender, bytes);
        self.settle();
    }

    fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        self.agent.handle_timeout(self.clock.local(now));
        self.settle();
    }

    fn poll_timeout(&self) -> Option<u64> {
        let deadline = self.deadline?;
        Some(self.clock.true_time_of(deadline, self.now))
    }

    fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.outgoing.pop_front()
    }

    fn poll_change(&mut self) -> Option<ViewChange> {
        self.changes.pop_front()
    }

    fn identity(&self) -> u64 {
        self.agent.id().0
    }

    fn sees_up(&self, identity: u64) -> bool {
        self.agent
            .member(NodeId(identity))
            .is_some_and(|member| member.state().is_up())
    }

    fn errors(&self) -> u64 {
        let stats = self.agent.stats();
        stats.decode_errors + stats.encode_errors
    }
}
