//! The end of a run: the outcome it reports, and the checkers' default
//! bounds derived from the protocol parameters.

use super::{World, nanos};
use crate::checkers::Kind;
use crate::outcome::Outcome;
use crate::scenario::Scenario;
use fleetmesh_node::StateStats;
use fleetmesh_node::{Config, Stats};
use std::time::Duration;

impl World {
    pub(super) fn finish(mut self, wall: Duration) -> Outcome {
        let running: Vec<_> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(index, node)| {
                let agent = node.agent.as_ref()?;
                Some((index as u32, agent.applied_releases().clone()))
            })
            .collect();
        let stuck = self.rollouts.finish(self.now.min(self.end), &running);
        self.violations.extend(stuck);
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
            stop_times: self.stop_spread.times().to_vec(),
            rollouts: self.rollouts.outcome(),
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

/// Default bounds of the checkers, from the protocol parameters, unless the
/// scenario sets them.
pub(super) struct Bounds {
    pub(super) converge: u64,
    pub(super) detect: u64,
    pub(super) quiet_window: u64,
    pub(super) publication: u64,
}

impl Bounds {
    pub(super) fn derive(config: &Config, agents: usize, scenario: &Scenario) -> Bounds {
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
