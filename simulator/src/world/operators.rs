//! The operators' actions in a run: config, policy and trust
//! publications handed to a running agent, equivocations, attack attempts
//! and health reports, and the checks that publications reach everyone.

use super::{Node, What, World};
use crate::checkers::config::Awaited;
use crate::clock::wall_millis;
use crate::scenario::operators::{OperatorKey, Publication, TrustChange};
use crate::scenario::schedule::StopOrder;
use fleetmesh_node::Entry as StateEntry;
use fleetmesh_node::crdt::HealthState;
use rand::RngExt;

impl World {
    /// An operator's emergency stop (or resume), handed to one running
    /// agent of `via`, signed on the operators' clock now.
    pub(super) fn emergency_stop(&mut self, order: &StopOrder, via: &[u32]) {
        let Some(index) = self.pick_running(via) else {
            self.traffic.publications_lost += 1;
            return;
        };
        let entry =
            self.operators
                .stop(order.selector.clone(), order.lasting, wall_millis(self.now));
        if let (Some(_), StateEntry::Ledger(signed)) = (order.lasting, &entry) {
            self.stop_spread.issued(signed.digest(), self.now);
        }
        self.hand(index, vec![entry]);
    }

    /// One running agent of `via`, drawn at random; `None` when none runs.
    pub(super) fn pick_running(&mut self, via: &[u32]) -> Option<u32> {
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
    pub(super) fn hand(&mut self, index: u32, entries: Vec<StateEntry>) {
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
    pub(super) fn publish_config(&mut self, publication: &Publication, via: &[u32]) -> bool {
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
        let legit = entries.iter().find_map(|entry| match entry {
            StateEntry::Release(release) if Some(release.release.version) == released => {
                Some(release.release.clone())
            }
            _ => None,
        });
        self.hand(index, entries);
        if let Some(release) = &legit
            && let Some(plan) = &release.rollout
        {
            // A staged release reaches only the waves whose gates pass:
            // the rollout checker follows it instead of the spread check.
            let hosts: Vec<_> = (0..self.fleet.len())
                .map(|index| self.fleet.identity(index).cert.body)
                .collect();
            self.rollouts.published(
                self.now,
                release.digest(),
                (&release.doc, release.version),
                plan,
                hosts.iter().map(|body| (body.node_key, &body.tags)),
            );
            return true;
        }
        if legit.is_some()
            && let Some(version) = released
        {
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

    pub(super) fn change_trust(&mut self, change: TrustChange, via: &[u32]) {
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

    pub(super) fn equivocate(&mut self, author: OperatorKey, doc: &str, via: &[u32]) {
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
    pub(super) fn attack(
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
    pub(super) fn report_health(&mut self, index: u32, check: u8, healthy: bool) {
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

    pub(super) fn note_reach(&mut self) {
        let running: Vec<u32> = self.running_agents().collect();
        let nodes = &self.nodes;
        self.config_checks.note_reach(self.now, |awaited| {
            running.iter().all(|&index| has(nodes, index, awaited))
        });
    }

    /// Notes the staged releases every running agent now runs.
    pub(super) fn note_rollouts_reach(&mut self) {
        let running: Vec<u32> = self.running_agents().collect();
        let reached: Vec<_> = self
            .rollouts
            .incomplete()
            .filter(|(digest, doc)| {
                running.iter().all(|&index| {
                    self.nodes[index as usize]
                        .agent
                        .as_ref()
                        .is_some_and(|agent| {
                            agent
                                .applied_release(doc)
                                .is_some_and(|applied| applied.content_digest() == **digest)
                        })
                })
            })
            .map(|(digest, _)| *digest)
            .collect();
        for digest in reached {
            self.rollouts.reached_all(self.now, digest);
        }
    }

    pub(super) fn check_publications(&mut self) {
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
}

/// Whether agent `index` runs and holds `awaited`.
pub(super) fn has(nodes: &[Node], index: u32, awaited: &Awaited) -> bool {
    nodes[index as usize]
        .agent
        .as_ref()
        .is_some_and(|agent| awaited.is_held_by(agent))
}
