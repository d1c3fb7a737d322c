//! Admission and the replicated state: hellos that carry certificates,
//! introductions, state messages, missing certificates, and what a merge
//! changes for the rest of the agent.

use super::claims::Claim;
use super::{Agent, INTRODUCTIONS_MAX};
use crate::members::Member;
use crate::state::StateMessage;
use crate::state::{Entry, Kind, Merged, cert_key};
use crate::time::Instant;
use crate::wire::Message;
use fleetmesh_crdt::{Liveness, MemberState, NodeCert, NodeId};

impl Agent {
    pub(super) fn send_hello(&mut self, to: NodeId, reply: bool) {
        let cert = Box::new(NodeCert::clone(&self.cert));
        self.send(to, &Message::Hello { cert, reply });
    }

    /// A peer this agent cannot admit yet talked to it: introduce ourselves
    /// and ask for its certificate, at most once a probe interval per peer.
    pub(super) fn introduce(&mut self, now: Instant, peer: NodeId) {
        self.introduced.retain(|_, until| *until > now);
        if self.introduced.contains_key(&peer) || self.introduced.len() >= INTRODUCTIONS_MAX {
            return;
        }
        self.introduced
            .insert(peer, now + self.config.probe_interval);
        self.send_hello(peer, true);
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
        if self.missing_certs.is_empty() {
            return;
        }
        let keys: Vec<_> = self.missing_certs.drain(..).map(cert_key).collect();
        let now_millis = self.now_millis(now);
        if let Some(want) = self.replicas.want(Kind::Cert, keys, from, now_millis) {
            self.send(from, &Message::State(want));
        }
    }

    pub(super) fn apply_state_effects(&mut self, now: Instant, effects: Merged) {
        for entry in effects.journal {
            if !self.outbox.journal(entry) {
                self.stats.journal_dropped += 1;
            }
        }
        for id in effects.admitted {
            if let Some(parked) = self.parked.remove(&id) {
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
            self.parked
                .retain(|_, parked| parked.liveness.state.is_up());
            self.expel_unadmitted(now);
        }
        if effects.trust_changed {
            self.void_revoked_releases(now);
        }
        if effects.config_changed {
            self.advance_releases(now);
        }
        for digest in &effects.records {
            if let Some(signed) = self.replicas.ledger().get(digest) {
                self.remedy.index(signed, &mut self.stats.remedy);
            }
        }
        self.remedy_dirty |= effects.remedy_changed;
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
