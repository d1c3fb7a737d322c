//! Admission and the replicated state: hellos that carry certificates,
//! introductions, state messages, missing certificates, and what a merge
//! changes for the rest of the agent.

use super::Agent;
use super::claims::{Claim, Parked};
use crate::members::Member;
use crate::state::StateMessage;
use crate::state::{Entry, Kind, Merged, cert_key};
use crate::time::Instant;
use crate::wire::Message;
use fleetmesh_crdt::{Liveness, MemberState, NodeCert, NodeId, RecordKind, is_stop_record};
use std::collections::BTreeMap;

/// Most peers remembered as recently introduced to (see
/// [`Admission::introduce`]).
const INTRODUCTIONS_MAX: usize = 1024;
/// Most claims parked waiting for their member's certificate: a joiner's
/// first exchange names the whole fleet before it holds any certificate.
const PARKED_MAX: usize = 65_536;

/// The waiting room of admission: peers this agent introduced itself to,
/// and claims about members whose certificates it does not hold yet, with
/// the certificates still to ask for. Bounded both ways.
#[derive(Default)]
pub(super) struct Admission {
    /// Peers introduced to, until when they are not introduced to again.
    introduced: BTreeMap<NodeId, Instant>,
    parked: BTreeMap<NodeId, Parked>,
    /// Members parked since the certificates were last asked for.
    missing: Vec<NodeId>,
}

impl Admission {
    /// Whether to introduce this agent to `peer` now: not when it was
    /// introduced to before `until` of that introduction, nor past
    /// [`INTRODUCTIONS_MAX`] peers at once. Remembers `peer` until `until`.
    pub(super) fn introduce(&mut self, now: Instant, peer: NodeId, until: Instant) -> bool {
        self.introduced.retain(|_, until| *until > now);
        if self.introduced.contains_key(&peer) || self.introduced.len() >= INTRODUCTIONS_MAX {
            return false;
        }
        self.introduced.insert(peer, until);
        true
    }

    /// Holds `parked` until `id`'s certificate arrives, replacing an older
    /// claim about `id`; false, dropping it, past [`PARKED_MAX`] members.
    pub(super) fn park(&mut self, id: NodeId, parked: Parked) -> bool {
        if self.parked.len() >= PARKED_MAX && !self.parked.contains_key(&id) {
            return false;
        }
        if self.parked.insert(id, parked).is_none() {
            self.missing.push(id);
        }
        true
    }

    /// The claim parked about `id`, now that it is admitted.
    pub(super) fn unpark(&mut self, id: NodeId) -> Option<Parked> {
        self.parked.remove(&id)
    }

    /// Forgets the parked claims that a member is down (the agent does so
    /// when trust changes, before it expels who no longer holds).
    pub(super) fn forget_down(&mut self) {
        self.parked
            .retain(|_, parked| parked.liveness.state.is_up());
    }

    /// The members parked since the last call, whose certificates to ask
    /// for.
    pub(super) fn take_missing(&mut self) -> Vec<NodeId> {
        std::mem::take(&mut self.missing)
    }

    /// Asserts the bounds.
    pub(super) fn check_invariants(&self) {
        assert!(self.parked.len() <= PARKED_MAX, "parked claims over bound");
        assert!(
            self.introduced.len() <= INTRODUCTIONS_MAX,
            "introductions over bound"
        );
        assert!(
            self.missing.len() <= PARKED_MAX,
            "certificates to ask for over bound"
        );
    }
}

impl Agent {
    pub(super) fn send_hello(&mut self, to: NodeId, reply: bool) {
        let cert = Box::new(NodeCert::clone(&self.cert));
        self.send(to, &Message::Hello { cert, reply });
    }

    /// A peer this agent cannot admit yet talked to it: introduce ourselves
    /// and ask for its certificate, at most once a probe interval per peer.
    pub(super) fn introduce(&mut self, now: Instant, peer: NodeId) {
        let until = now + self.config.probe_interval;
        if self.admission.introduce(now, peer, until) {
            self.send_hello(peer, true);
        }
    }

    pub(super) fn on_hello(&mut self, now: Instant, from: NodeId, cert: NodeCert, reply: bool) {
        if cert.node_id() != from {
            self.stats.unadmitted_messages += 1;
            return;
        }
        let now_millis = self.now_millis(now);
        let (result, effects) = self.replicas.merge(Entry::Cert(Box::new(cert)), now_millis);
        if result.is_err() {
            self.stats.unadmitted_messages += 1;
            return;
        }
        self.apply_state_effects(now, effects);
        if reply {
            self.send_hello(from, false);
        }
    }

    pub(super) fn on_state(&mut self, now: Instant, from: NodeId, message: StateMessage) {
        let now_millis = self.now_millis(now);
        let mut answers = Vec::new();
        let effects = self
            .replicas
            .handle(message, from, now_millis, &mut answers);
        for answer in answers {
            self.send(from, &Message::State(answer));
        }
        self.apply_state_effects(now, effects);
    }

    /// Asks the sender of the message just handled for the certificates of
    /// members it told us about that we cannot admit yet.
    pub(super) fn fetch_missing_certs(&mut self, now: Instant, from: NodeId) {
        let missing = self.admission.take_missing();
        if missing.is_empty() {
            return;
        }
        let keys: Vec<_> = missing.into_iter().map(cert_key).collect();
        let now_millis = self.now_millis(now);
        if let Some(want) = self.replicas.want(Kind::Cert, keys, from, now_millis) {
            self.send(from, &Message::State(want));
        }
    }

    pub(super) fn apply_state_effects(&mut self, now: Instant, effects: Merged) {
        if effects.trust_changed || !effects.admitted.is_empty() {
            self.rollouts.forget_waves();
        }
        if effects.config_changed {
            self.rollouts.touch();
        }
        for entry in effects.journal {
            if !self.outbox.journal(entry) {
                self.stats.journal_dropped += 1;
            }
        }
        for id in effects.admitted {
            if let Some(parked) = self.admission.unpark(id) {
                let claim = Claim {
                    id,
                    liveness: parked.liveness,
                    meta: parked
                        .meta
                        .as_ref()
                        .map(|(incarnation, meta)| (*incarnation, meta)),
                    from: parked.from,
                };
                self.learn(now, claim, parked.source);
            }
        }
        if effects.trust_changed {
            self.admission.forget_down();
            self.expel_unadmitted(now);
        }
        if effects.trust_changed {
            self.void_revoked_releases(now);
        }
        if effects.config_changed {
            self.advance_releases(now);
        }
        let mut urgent = Vec::new();
        let mut rollouts_changed = false;
        let me = self.keypair.public();
        for digest in &effects.records {
            if let Some(signed) = self.replicas.ledger().get(digest) {
                self.remedy.index(signed, &mut self.stats.remedy);
                rollouts_changed |= self.rollouts.note(signed, &me);
                if is_urgent(&signed.record.kind) {
                    urgent.push(Entry::Ledger(Box::new(signed.clone())));
                }
            }
        }
        self.rush(urgent);
        self.remedy_dirty |= effects.remedy_changed;
        if rollouts_changed {
            self.advance_releases(now);
            self.rollout_tick(now);
        }
    }

    /// Declares dead every member whose certificate no longer holds (its key
    /// or its issuer was revoked); their messages are already dropped.
    pub(super) fn expel_unadmitted(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        let expelled: Vec<Member> = (0..self.members.len())
            .map(|at| self.members.member_at(at))
            .filter(|member| member.id != self.id && member.state().is_up())
            .filter(|member| !self.replicas.certs().admits(member.id, now_millis))
            .collect();
        for member in expelled {
            let dead = Liveness {
                incarnation: member.incarnation(),
                state: MemberState::Dead,
            };
            if let Some(change) = self.members.merge(member.id, dead, None) {
                self.stats.expelled += 1;
                self.on_change(now, member.id, change, self.id);
            }
        }
    }
}

/// Whether a record is rushed to peers ahead of ordinary gossip: an
/// emergency stop or resume, or a rollout's failed gate, which reverts
/// hosts and halts the rollout everywhere it reaches.
fn is_urgent(kind: &RecordKind) -> bool {
    is_stop_record(kind) || matches!(kind, RecordKind::Attest { passed: false, .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::claims::Source;
    use fleetmesh_crdt::Liveness;

    fn claim(state: MemberState) -> Parked {
        Parked {
            liveness: Liveness {
                incarnation: 1,
                state,
            },
            meta: None,
            from: NodeId(9),
            source: Source::Gossip,
        }
    }

    #[test]
    fn a_peer_is_introduced_to_once_until_its_introduction_lapses() {
        let mut admission = Admission::default();
        assert!(admission.introduce(Instant(0), NodeId(1), Instant(10)));
        assert!(!admission.introduce(Instant(5), NodeId(1), Instant(15)));
        assert!(admission.introduce(Instant(10), NodeId(1), Instant(20)));
        for peer in 2..=INTRODUCTIONS_MAX as u64 {
            assert!(admission.introduce(Instant(10), NodeId(peer), Instant(20)));
        }
        let late = NodeId(INTRODUCTIONS_MAX as u64 + 1);
        assert!(!admission.introduce(Instant(10), late, Instant(20)), "full");
        assert!(
            admission.introduce(Instant(20), late, Instant(30)),
            "lapsed"
        );
        admission.check_invariants();
    }

    #[test]
    fn a_member_parked_once_is_asked_for_once_and_unparked_with_the_newest_claim() {
        let mut admission = Admission::default();
        assert!(admission.park(NodeId(1), claim(MemberState::Suspect)));
        assert!(admission.park(NodeId(1), claim(MemberState::Alive)));
        assert!(admission.park(NodeId(2), claim(MemberState::Dead)));
        assert_eq!(admission.take_missing(), [NodeId(1), NodeId(2)]);
        assert_eq!(admission.take_missing(), []);
        let parked = admission.unpark(NodeId(1)).unwrap();
        assert_eq!(parked.liveness.state, MemberState::Alive);
        assert!(admission.unpark(NodeId(1)).is_none());
        admission.forget_down();
        assert!(
            admission.unpark(NodeId(2)).is_none(),
            "a death is forgotten"
        );
    }

    #[test]
    fn parking_stops_at_the_bound_but_replaces_a_claim_held() {
        let mut admission = Admission::default();
        for id in 0..PARKED_MAX as u64 {
            assert!(admission.park(NodeId(id), claim(MemberState::Alive)));
        }
        let late = NodeId(PARKED_MAX as u64);
        assert!(!admission.park(late, claim(MemberState::Alive)));
        assert!(admission.park(NodeId(0), claim(MemberState::Suspect)));
        assert_eq!(admission.take_missing().len(), PARKED_MAX);
        admission.check_invariants();
    }
}
