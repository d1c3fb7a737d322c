//! The world's side of the fault schedule: each resolved action applied
//! to the network, the agents and the operators, and what it acts on for
//! the watch.

use super::{Deferred, LEAVE_GOSSIP_NANOS, What, World};
use crate::clock::Clock;
use crate::event::TraceEvent;
use crate::scenario::schedule::Action;
use crate::trace::Reach;
use fleetmesh_node::NodeMeta;

impl World {
    pub(super) fn act(&mut self, action: Action) {
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
            Action::EmergencyStop(order, via) => self.emergency_stop(&order, &via),
        }
        self.convergence.refresh(self.now);
    }

    /// Applies an operator action to agent `index`, or defers it until the
    /// agent resumes if it is paused.
    pub(super) fn operate(&mut self, index: u32, operation: Deferred, deferred: bool) {
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
        Action::Equivocate(..) | Action::Approve(..) | Action::EmergencyStop(..) => return None,
    })
}
