//! SWIM probing with the Lifeguard refinements: one probe per period (direct,
//! then through helpers), relays for other members' indirect probes, and what
//! a probe that ends unanswered means.

use super::Agent;
use super::claims::{Claim, Source};
use crate::probe::ProbeCursor;
use crate::time::Instant;
use crate::wire::{Message, Update};
use fleetmesh_crdt::{Liveness, MemberState, NodeId};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Last probes whose acks are remembered (the oldest is forgotten first).
const LAST_PROBES_MAX: usize = 1024;

/// What this agent's probing has in flight: its own probe of the period,
/// the last probes of suspects it sent, and the probes it relays for other
/// members, all told apart by the sequence number of their ping.
#[derive(Default)]
pub(super) struct Prober {
    /// Walks the member table in a shuffled round-robin (SWIM's order).
    cursor: ProbeCursor,
    probe: Option<Probe>,
    /// Sequence numbers of last probes awaiting their ack.
    last_probes: BTreeSet<u32>,
    relays: BTreeMap<u32, Relay>,
    next_seq: u32,
}

/// Whose ack came in.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Acked {
    /// This agent's own probe of the period.
    Probe,
    /// A probe relayed for another member: pass the ack on.
    Relay(Relay),
    /// A last probe of a suspect.
    LastProbe,
    /// Nothing in flight: late, or never asked for.
    Unknown,
}

impl Prober {
    /// A fresh sequence number for a ping.
    pub(super) fn allocate_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    /// The position in a table of `len` members to probe next.
    pub(super) fn next_position(&mut self, len: usize, rng: &mut ChaCha8Rng) -> Option<usize> {
        self.cursor.next(len, rng)
    }

    /// Starts the period's probe of `target`, replacing any left over;
    /// returns the ping's sequence number.
    pub(super) fn start(&mut self, target: NodeId, direct_deadline: Instant) -> u32 {
        let seq = self.allocate_seq();
        self.probe = Some(Probe {
            seq,
            target,
            direct_deadline,
            acked: false,
            indirect: false,
            helpers: 0,
            nacks: 0,
        });
        seq
    }

    /// The period's probe, if one is in flight.
    pub(super) fn probe(&self) -> Option<&Probe> {
        self.probe.as_ref()
    }

    /// Marks the period's probe indirect, sent through `helpers` helpers.
    pub(super) fn go_indirect(&mut self, helpers: usize) {
        if let Some(probe) = &mut self.probe {
            probe.indirect = true;
            probe.helpers = u8::try_from(helpers).unwrap_or(u8::MAX);
        }
    }

    /// Ends the period's probe, handing it back to judge.
    pub(super) fn finish(&mut self) -> Option<Probe> {
        self.probe.take()
    }

    /// A sequence number for a last probe, remembered until its ack comes
    /// (the oldest is forgotten past [`LAST_PROBES_MAX`]).
    pub(super) fn last_probe(&mut self) -> u32 {
        let seq = self.allocate_seq();
        if self.last_probes.len() >= LAST_PROBES_MAX {
            self.last_probes.pop_first();
        }
        self.last_probes.insert(seq);
        seq
    }

    /// Relays a probe for `relay.origin` when fewer than `max` are in
    /// flight: the sequence number of the ping to send.
    pub(super) fn relay(&mut self, relay: Relay, max: usize) -> Option<u32> {
        if self.relays.len() >= max {
            return None;
        }
        let seq = self.allocate_seq();
        self.relays.insert(seq, relay);
        Some(seq)
    }

    /// Takes in the ack of ping `seq`.
    pub(super) fn ack(&mut self, seq: u32) -> Acked {
        if let Some(probe) = &mut self.probe
            && probe.seq == seq
        {
            probe.acked = true;
            return Acked::Probe;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            return Acked::Relay(relay);
        }
        if self.last_probes.remove(&seq) {
            return Acked::LastProbe;
        }
        Acked::Unknown
    }

    /// Takes in a helper's nack of the period's probe `seq`: whether it was
    /// that probe's.
    pub(super) fn nack(&mut self, seq: u32) -> bool {
        match &mut self.probe {
            Some(probe) if probe.seq == seq => {
                probe.nacks = probe.nacks.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// Removes and returns the relays whose deadline passed at `now`: their
    /// origins get a nack.
    pub(super) fn expire_relays(&mut self, now: Instant) -> Vec<Relay> {
        let expired: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, relay)| relay.deadline <= now)
            .map(|(&seq, _)| seq)
            .collect();
        expired
            .into_iter()
            .filter_map(|seq| self.relays.remove(&seq))
            .collect()
    }

    /// Drops everything in flight (the agent left).
    pub(super) fn stop(&mut self) {
        self.probe = None;
        self.relays.clear();
        self.last_probes.clear();
    }

    /// Whether nothing of this agent's own is in flight.
    pub(super) fn is_stopped(&self) -> bool {
        self.probe.is_none()
    }

    /// When probing must next wake: the end of the direct phase of the
    /// period's probe, or a relay's deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let direct = self
            .probe
            .as_ref()
            .filter(|probe| !probe.acked && !probe.indirect)
            .map(|probe| probe.direct_deadline);
        let relay = self.relays.values().map(|relay| relay.deadline).min();
        direct.into_iter().chain(relay).min()
    }

    /// Asserts the bounds; `relays_max` is the configured one.
    pub(super) fn check_invariants(&self, relays_max: usize) {
        assert!(
            self.last_probes.len() <= LAST_PROBES_MAX,
            "last probes over bound"
        );
        assert!(self.relays.len() <= relays_max, "relayed probes over bound");
    }
}

/// This agent's probe of the period.
#[derive(Debug)]
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

/// A probe this agent relays for another member.
#[derive(Debug, PartialEq, Eq)]
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
        let direct_deadline = now + self.health.scale(self.config.probe_timeout);
        let seq = self.prober.start(target, direct_deadline);
        self.stats.probes += 1;
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
        let seq = self.prober.last_probe();
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
            let position = self
                .prober
                .next_position(self.members.len(), &mut self.rng)?;
            let member = self.members.member_at(position);
            if member.id != self.id && member.state().is_up() {
                return Some(member.id);
            }
        }
        None
    }

    pub(super) fn expire_direct_probe(&mut self, now: Instant) {
        let Some(probe) = self.prober.probe() else {
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
        self.prober.go_indirect(helpers.len());
    }

    pub(super) fn finish_probe(&mut self, now: Instant) {
        let Some(probe) = self.prober.finish() else {
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
        match self.prober.ack(seq) {
            Acked::Probe | Acked::LastProbe => {}
            Acked::Relay(relay) => {
                let updates = self.piggyback(None);
                let ack = Message::Ack {
                    seq: relay.origin_seq,
                    updates,
                };
                self.send(relay.origin, &ack);
            }
            Acked::Unknown => self.stats.unexpected_messages += 1,
        }
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
        // Nack before the asker's probe period ends, or it never counts.
        let window = self
            .config
            .probe_interval
            .saturating_sub(self.config.probe_timeout);
        let relay = Relay {
            origin: from,
            origin_seq: seq,
            deadline: now + window.mul_f64(0.8),
        };
        let relayed = (target != self.id)
            .then(|| self.prober.relay(relay, self.config.relayed_probes_max))
            .flatten();
        let Some(own_seq) = relayed else {
            self.stats.relays_refused += 1;
            return;
        };
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
        if !self.prober.nack(seq) {
            self.stats.unexpected_messages += 1;
        }
    }

    pub(super) fn expire_relays(&mut self, now: Instant) {
        for relay in self.prober.expire_relays(now) {
            self.send(
                relay.origin,
                &Message::Nack {
                    seq: relay.origin_seq,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(origin: u64, deadline: u64) -> Relay {
        Relay {
            origin: NodeId(origin),
            origin_seq: 7,
            deadline: Instant(deadline),
        }
    }

    #[test]
    fn an_ack_is_matched_to_what_is_in_flight_by_its_sequence_number() {
        let mut prober = Prober::default();
        let probe = prober.start(NodeId(1), Instant(100));
        let last = prober.last_probe();
        let relayed = prober.relay(relay(2, 50), 4).unwrap();
        assert_eq!(
            [probe, last, relayed].iter().collect::<BTreeSet<_>>().len(),
            3,
            "sequence numbers are distinct"
        );
        assert_eq!(prober.ack(relayed), Acked::Relay(relay(2, 50)));
        assert_eq!(prober.ack(relayed), Acked::Unknown, "passed on once");
        assert_eq!(prober.ack(last), Acked::LastProbe);
        assert_eq!(prober.ack(last), Acked::Unknown);
        assert_eq!(prober.ack(probe), Acked::Probe);
        assert!(prober.finish().is_some_and(|probe| probe.acked));
        assert!(prober.is_stopped());
    }

    #[test]
    fn relays_are_bounded_and_expire_to_their_origins() {
        let mut prober = Prober::default();
        assert!(prober.relay(relay(1, 10), 2).is_some());
        assert!(prober.relay(relay(2, 20), 2).is_some());
        assert_eq!(prober.relay(relay(3, 5), 2), None, "over the bound");
        prober.check_invariants(2);
        assert_eq!(prober.next_deadline(), Some(Instant(10)));
        assert_eq!(prober.expire_relays(Instant(10)), [relay(1, 10)]);
        assert_eq!(prober.expire_relays(Instant(15)), []);
        assert_eq!(prober.next_deadline(), Some(Instant(20)));
    }

    #[test]
    fn last_probes_forget_the_oldest_past_the_bound() {
        let mut prober = Prober::default();
        let first = prober.last_probe();
        for _ in 0..LAST_PROBES_MAX {
            prober.last_probe();
        }
        prober.check_invariants(0);
        assert_eq!(prober.ack(first), Acked::Unknown, "forgotten");
    }

    #[test]
    fn the_direct_deadline_counts_until_the_probe_is_acked_or_indirect() {
        let mut prober = Prober::default();
        let seq = prober.start(NodeId(1), Instant(100));
        assert_eq!(prober.next_deadline(), Some(Instant(100)));
        prober.go_indirect(3);
        assert_eq!(prober.next_deadline(), None);
        assert!(prober.nack(seq));
        assert!(!prober.nack(seq + 100), "another probe's nack");
        let probe = prober.finish().unwrap();
        assert_eq!((probe.helpers, probe.nacks, probe.acked), (3, 1, false));
    }
}
