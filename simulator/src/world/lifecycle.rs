//! Agents' processes: starts and restarts, crashes and stops, pauses
//! ending, and the ground truth of who runs that the checkers judge
//! against.

use super::{What, World};
use fleetmesh_node::Agent;

impl World {
    pub(super) fn track_spread(&mut self, member: u32) {
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

    pub(super) fn start(&mut self, index: u32) {
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
    pub(super) fn become_not_running(&mut self, index: u32) {
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

    pub(super) fn stop(&mut self, index: u32, crash: bool) {
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

    pub(super) fn resume(&mut self, index: u32) {
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
}
