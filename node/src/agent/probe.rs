//! SWIM probing with the Lifeguard refinements: one probe per period (direct,
//! then through helpers), relays for other members' indirect probes, and what
//! a probe that ends unanswered means.

use super::claims::{Claim, Source};
use super::{Agent, LAST_PROBES_MAX};
use crate::time::Instant;
use crate::wire::{Message, Update};
use fleetmesh_crdt::{Liveness, MemberState, NodeId};

pub(super) struct Probe {
    pub(super) seq: u32,
    pub(super) target: NodeId,
    pub(super) direct_deadline: Instant,
    pub(super) acked: bool,
    /// The direct phase is over and helpers were asked (if any could be).
    pub(super) indirect: bool,
    pub(super) helpers: u8,
    pub(super) nacks: u8,
}

pub(super) struct Relay {
    pub(super) origin: NodeId,
    pub(super) origin_seq: u32,
    pub(super) deadline: Instant,
}

impl Agent {
    pub(super) fn start_probe(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let Some(target) = self.next_probe_target() else {
            return;
        };
        let seq = self.allocate_seq();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            seq,
            target,
            direct_deadline: now + self.health.scale(self.config.probe_timeout),
            acked: false,
            indirect: false,
            helpers: 0,
            nacks: 0,
        });
        // Buddy system: a suspected member hears of it from its prober first.
        let first = self
            .members
            .get(target)
            .filter(|member| member.state() == MemberState::Suspect)
            .map(|_| self.update_for(target, self.id));
        let updates = self.piggyback(first);
        self.send(
            target,
            &Message::Ping {
                seq,
                target,
                updates,
            },
        );
    }

    /// Probes a member whose suspicion ran out, carrying the suspicion. A
    /// live member refutes on receipt, and its ack carries the refutation
    /// first (its newest update); that ack clears the suspicion before it
    /// turns into a death.
    pub(super) fn last_probe(&mut self, target: NodeId) {
        self.stats.last_probes += 1;
        let seq = self.allocate_seq();
        if self.last_probes.len() >= LAST_PROBES_MAX {
            self.last_probes.pop_first();
        }
        self.last_probes.insert(seq);
        let claim = self.update_for(target, self.id);
        let updates = self.piggyback(Some(claim));
        self.send(
            target,
            &Message::Ping {
                seq,
                target,
                updates,
            },
        );
    }

    fn next_probe_target(&mut self) -> Option<NodeId> {
        for _ in 0..self.members.len() {
            let position = self.cursor.next(self.members.len(), &mut self.rng)?;
            let member = self.members.member_at(position);
            if member.id != self.id && member.state().is_up() {
                return Some(member.id);
            }
        }
        None
    }

    pub(super) fn expire_direct_probe(&mut self, now: Instant) {
        let Some(probe) = &self.probe else {
            return;
        };
        if probe.acked || probe.indirect || probe.direct_deadline > now {
            return;
        }
        let (seq, target) = (probe.seq, probe.target);
        let helpers =
            self.random_up_members(usize::from(self.config.indirect_probes.get()), &[target]);
        for &helper in &helpers {
            let updates = self.piggyback(None);
            self.send(
                helper,
                &Message::PingReq {
                    seq,
                    target,
                    updates,
                },
            );
        }
        self.stats.indirect_probes += helpers.len() as u64;
        if let Some(probe) = &mut self.probe {
            probe.indirect = true;
            probe.helpers = u8::try_from(helpers.len()).unwrap_or(u8::MAX);
        }
    }

    pub(super) fn finish_probe(&mut self, now: Instant) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        if probe.acked {
            self.health.improve();
            return;
        }
        self.stats.probes_failed += 1;
        if probe.nacks < probe.helpers {
            // Helpers that did not even nack point at our own connectivity.
            self.health.worsen();
        }
        let Some(member) = self.members.get(probe.target) else {
            return;
        };
        match member.state() {
            MemberState::Alive => {
                self.stats.suspicions_raised += 1;
                let liveness = Liveness {
                    incarnation: member.incarnation(),
                    state: MemberState::Suspect,
                };
                self.learn(
                    now,
                    Claim {
                        id: probe.target,
                        liveness,
                        meta: None,
                        from: self.id,
                    },
                    Source::Local,
                );
            }
            MemberState::Suspect => {
                // Our own failed probe of a member others suspect is an
                // independent confirmation: count it, and tell the others so
                // they can count it too (Lifeguard).
                let confirmations = self.config.suspicion_confirmations.get();
                if self.suspicions.confirm(
                    probe.target,
                    member.incarnation(),
                    self.id,
                    confirmations,
                ) {
                    self.queue_broadcast(self.update_for(probe.target, self.id));
                }
            }
            MemberState::Dead | MemberState::Left => {}
        }
    }

    pub(super) fn on_ping(
        &mut self,
        now: Instant,
        from: NodeId,
        seq: u32,
        target: NodeId,
        updates: &[Update],
    ) {
        self.apply_updates(now, updates);
        if target != self.id {
            self.stats.unexpected_messages += 1;
            return;
        }
        // A prober that suspects us (the buddy system, or a last probe) gets
        // our current incarnation first in the ack, even when its claim is
        // stale and we refuted long ago: that ack is what saves us.
        let accused = updates
            .iter()
            .any(|update| update.id == self.id && update.state != MemberState::Alive);
        let first = accused.then(|| self.update_for(self.id, self.id));
        let updates = self.piggyback(first);
        self.send(from, &Message::Ack { seq, updates });
    }

    pub(super) fn on_ack(&mut self, now: Instant, seq: u32, updates: &[Update]) {
        self.apply_updates(now, updates);
        if let Some(probe) = &mut self.probe
            && probe.seq == seq
        {
            probe.acked = true;
            return;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            let updates = self.piggyback(None);
            let ack = Message::Ack {
                seq: relay.origin_seq,
                updates,
            };
            self.send(relay.origin, &ack);
            return;
        }
        if self.last_probes.remove(&seq) {
            return;
        }
        self.stats.unexpected_messages += 1;
    }

    pub(super) fn on_ping_req(
        &mut self,
        now: Instant,
        from: NodeId,
        seq: u32,
        target: NodeId,
        updates: &[Update],
    ) {
        self.apply_updates(now, updates);
        if self.relays.len() >= self.config.relayed_probes_max || target == self.id {
            self.stats.relays_refused += 1;
            return;
        }
        let own_seq = self.allocate_seq();
        // Nack before the asker's probe period ends, or it never counts.
        let window = self
            .config
            .probe_interval
            .saturating_sub(self.config.probe_timeout);
        let deadline = now + window.mul_f64(0.8);
        self.relays.insert(
            own_seq,
            Relay {
                origin: from,
                origin_seq: seq,
                deadline,
            },
        );
        let updates = self.piggyback(None);
        self.send(
            target,
            &Message::Ping {
                seq: own_seq,
                target,
                updates,
            },
        );
    }

    pub(super) fn on_nack(&mut self, seq: u32) {
        match &mut self.probe {
            Some(probe) if probe.seq == seq => probe.nacks = probe.nacks.saturating_add(1),
            _ => self.stats.unexpected_messages += 1,
        }
    }

    pub(super) fn expire_relays(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, relay)| relay.deadline <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in expired {
            let relay = self.relays.remove(&seq).expect("listed just above");
            self.send(
                relay.origin,
                &Message::Nack {
                    seq: relay.origin_seq,
                },
            );
        }
    }
}
