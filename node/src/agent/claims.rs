//! Claims about members, whatever message carried them: learning them (or
//! parking them until the member's certificate arrives), refuting claims
//! about this agent, declaring the dead and reaping the long gone.

use super::{Agent, Timer};
use crate::event::Event;
use crate::members::Change;
use crate::time::Instant;
use crate::wire::Update;
use fleetmesh_crdt::{Incarnation, Liveness, MemberState, NodeId, NodeMeta};
use std::sync::Arc;

/// Where a claim came from; decides how it is applied and whether it is
/// re-gossiped.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Piggybacked or gossiped: re-gossip what is news.
    Gossip,
    /// Anti-entropy: a peer's view, not a fresh observation, so deaths are
    /// held as suspicions (memberlist does the same) and the first exchange
    /// of a joiner is not re-announced.
    Sync { bootstrap: bool },
    /// This agent's own observation.
    Local,
}

/// One claim about one member, whatever message carried it.
pub(super) struct Claim<'a> {
    pub(super) id: NodeId,
    pub(super) liveness: Liveness,
    pub(super) meta: Option<(Incarnation, &'a Arc<NodeMeta>)>,
    pub(super) from: NodeId,
}

/// A claim about a member whose certificate has not arrived yet, held
/// until it does (or another claim about the member replaces it).
pub(super) struct Parked {
    pub(super) liveness: Liveness,
    pub(super) meta: Option<(Incarnation, Arc<NodeMeta>)>,
    pub(super) from: NodeId,
    pub(super) source: Source,
}

impl Agent {
    pub(super) fn apply_updates(&mut self, now: Instant, updates: &[Update]) {
        for update in updates {
            let claim = Claim {
                id: update.id,
                liveness: Liveness {
                    incarnation: update.incarnation,
                    state: update.state,
                },
                meta: update.meta.as_ref().map(|meta| (update.incarnation, meta)),
                from: update.from,
            };
            self.learn(now, claim, Source::Gossip);
        }
    }

    /// Applies one claim: the single place where the member table changes
    /// because of what someone said.
    pub(super) fn learn(&mut self, now: Instant, mut claim: Claim<'_>, source: Source) {
        if claim.id == self.id {
            self.answer_claim_about_self(&claim);
            return;
        }
        let known = self.members.get(claim.id);
        if !self.replicas.certs().admits(claim.id, self.now_millis(now)) {
            self.stats.unadmitted_claims += 1;
            if known.is_none()
                && claim.liveness.state.is_up()
                && !self.replicas.is_revoked_id(claim.id)
            {
                self.park(claim, source);
            }
            return;
        }
        if known.is_none() && (!claim.liveness.state.is_up() || claim.meta.is_none()) {
            // A stranger enters the table only with its own metadata, from
            // its announcement or an anti-entropy record, and only while up:
            // news of the death of a stranger, or of a member already reaped,
            // is dropped so that reaped members stay forgotten.
            self.stats.claims_ignored += 1;
            return;
        }
        if claim.liveness.state == MemberState::Dead && matches!(source, Source::Sync { .. }) {
            claim.liveness.state = MemberState::Suspect;
        }
        if let Some(member) = known
            && claim.liveness.state == MemberState::Suspect
            && member.liveness == claim.liveness
        {
            if matches!(source, Source::Sync { .. }) {
                // A peer's table names no accuser: relaying it is not an
                // independent observation and must not shorten the timeout.
                return;
            }
            let confirmations = self.config.suspicion_confirmations.get();
            if self.suspicions.confirm(
                claim.id,
                claim.liveness.incarnation,
                claim.from,
                confirmations,
            ) && source == Source::Gossip
            {
                self.queue_broadcast(self.update_for(claim.id, claim.from));
            }
            return;
        }
        let Some(change) = self.members.merge(claim.id, claim.liveness, claim.meta) else {
            return;
        };
        self.on_change(now, claim.id, change, claim.from);
        let bootstrap = matches!(source, Source::Sync { bootstrap: true });
        if !bootstrap && (change.liveness_changed() || change.meta_changed) {
            self.queue_broadcast(self.update_for(claim.id, claim.from));
        }
    }

    pub(super) fn on_change(&mut self, now: Instant, id: NodeId, change: Change, from: NodeId) {
        if !change.liveness_changed() {
            return;
        }
        let current = change.current;
        match current.state {
            MemberState::Alive => self.suspicions.clear(id),
            MemberState::Suspect => {
                let members = self.members.up_count();
                let timeout_min = self.config.suspicion_timeout_min(members);
                let timeout_max = timeout_min.mul_f64(self.config.suspicion_max_mult);
                self.suspicions
                    .start(now, id, current.incarnation, from, timeout_min, timeout_max);
                // Holding a suspicion now: exchange sooner (see sync_period).
                let sooner = now + self.sync_period();
                self.pull_timer(Timer::Sync, sooner);
            }
            MemberState::Dead | MemberState::Left => {
                self.suspicions.clear(id);
                self.downed
                    .push_back((now + self.config.reap_after, id, current.incarnation));
            }
        }
        self.push_event(Event::MemberChanged {
            id,
            previous: change.previous,
            current,
        });
    }

    fn answer_claim_about_self(&mut self, claim: &Claim<'_>) {
        if self.left {
            return;
        }
        let stale_meta = claim.meta.is_some_and(|(incarnation, meta)| {
            incarnation == self.incarnation && **meta != *self.meta
        });
        let accused = claim.liveness.state != MemberState::Alive;
        let refute = claim.liveness.incarnation > self.incarnation
            || (claim.liveness.incarnation == self.incarnation && (accused || stale_meta));
        if !refute {
            return;
        }
        if accused {
            // Lifeguard: being suspected is evidence of our own slowness.
            self.health.worsen();
        }
        self.stats.refutations += 1;
        let incarnation = claim.liveness.incarnation.max(self.incarnation) + 1;
        self.announce_alive(incarnation);
        self.push_event(Event::Refuted { incarnation });
        if accused && claim.from != self.id {
            // The accuser hears the refutation first-hand rather than
            // waiting for gossip to reach it.
            self.send_gossip(claim.from);
        }
    }

    pub(super) fn announce_alive(&mut self, incarnation: Incarnation) {
        self.incarnation = incarnation;
        let liveness = Liveness {
            incarnation,
            state: MemberState::Alive,
        };
        let meta = self.meta.clone();
        self.members
            .merge(self.id, liveness, Some((incarnation, &meta)));
        self.queue_broadcast(self.update_for(self.id, self.id));
    }

    pub(super) fn declare_dead(&mut self, now: Instant, id: NodeId, incarnation: Incarnation) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        if member.liveness
            != (Liveness {
                incarnation,
                state: MemberState::Suspect,
            })
        {
            return;
        }
        self.stats.declared_dead += 1;
        let liveness = Liveness {
            incarnation,
            state: MemberState::Dead,
        };
        self.learn(
            now,
            Claim {
                id,
                liveness,
                meta: None,
                from: self.id,
            },
            Source::Local,
        );
    }

    pub(super) fn reap(&mut self, now: Instant) {
        while let Some(&(deadline, id, incarnation)) = self.downed.front() {
            if deadline > now {
                return;
            }
            self.downed.pop_front();
            let still_down = self.members.get(id).is_some_and(|member| {
                !member.state().is_up() && member.incarnation() == incarnation
            });
            if still_down && self.members.remove(id) {
                self.stats.reaped += 1;
                self.push_event(Event::MemberReaped { id });
            }
        }
    }

    /// The update that tells others what this agent believes of `id`.
    pub(super) fn update_for(&self, id: NodeId, from: NodeId) -> Update {
        let member = self
            .members
            .get(id)
            .expect("updates are built for known members");
        let meta = (member.state() == MemberState::Alive
            && member.meta_incarnation == Some(member.incarnation()))
        .then(|| self.members.meta(id).cloned())
        .flatten();
        let from = if member.state() == MemberState::Alive || member.state() == MemberState::Left {
            id
        } else {
            from
        };
        Update {
            id,
            incarnation: member.incarnation(),
            state: member.state(),
            from,
            meta,
        }
    }

    /// Holds a claim about a member we cannot admit yet and asks for its
    /// certificate.
    fn park(&mut self, claim: Claim<'_>, source: Source) {
        let parked = Parked {
            liveness: claim.liveness,
            meta: claim
                .meta
                .map(|(incarnation, meta)| (incarnation, Arc::clone(meta))),
            from: claim.from,
            source,
        };
        if !self.admission.park(claim.id, parked) {
            self.stats.claims_ignored += 1;
        }
    }
}
