//! The candidate side: attempts to win, renew and give back the leases
//! this agent wants, from the requests it sends to the grants it counts
//! (the module comment tells the protocol). Apart from the voter side
//! because the two share only the agent's own voter, which a candidate
//! asks like any other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fleetmesh_crdt::{Lease, LeaseKind, NodeId, PublicKey, SignedLease};

use super::context::{Cx, lock_delay_millis, others_lease_left, rank};
use super::{Answered, Attempt, Held, LeaseMessage, Leases, Out, RETRY_HINT_MAX, Wanted, lost};
use crate::event::Event;

impl Leases {
    /// Expires leases, steps down from superseded ones, ends attempts whose
    /// answers are late, and starts due attempts.
    pub(crate) fn tick(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Out>) {
        let scopes: Vec<String> = self.wanted.keys().cloned().collect();
        for scope in scopes {
            self.check_held(cx, &scope, out);
            let Some(wanted) = self.wanted.get_mut(&scope) else {
                continue;
            };
            if wanted
                .attempt
                .as_ref()
                .is_some_and(|attempt| attempt.deadline <= cx.now)
            {
                self.end_attempt(cx, &scope, out);
            } else {
                resend_unanswered(cx, &scope, wanted, out);
            }
            let due = self
                .wanted
                .get(&scope)
                .is_some_and(|wanted| wanted.attempt.is_none() && wanted.next_try <= cx.now);
            if due {
                self.start_attempt(cx, &scope, out);
            }
        }
    }

    /// Drops the held lease of `scope` if it expired or a higher epoch
    /// superseded it, and gives its grants back: this agent acts on it no
    /// more, and voters whose promises a failing renewal kept extending
    /// would otherwise block every candidate, this one included, for a ttl
    /// plus lock-delay more.
    fn check_held(&mut self, cx: &mut Cx<'_>, scope: &str, out: &mut Vec<Out>) {
        let Some(wanted) = self.wanted.get_mut(scope) else {
            return;
        };
        let Some(held) = wanted.held else {
            return;
        };
        let max = cx.table.max_epoch(scope).unwrap_or(0);
        if max > held.epoch {
            wanted.seen_epoch = wanted.seen_epoch.max(max);
        } else if cx.now < held.until {
            return;
        }
        wanted.held = None;
        let voters: Vec<PublicKey> = wanted.voters.iter().copied().collect();
        lost(cx, scope, held.epoch, out);
        self.give_back(cx, scope, held.epoch, &voters, out);
    }

    fn start_attempt(&mut self, cx: &mut Cx<'_>, scope: &str, out: &mut Vec<Out>) {
        let me = cx.keypair.public();
        let Some(wanted) = self.wanted.get_mut(scope) else {
            return;
        };
        if wanted.valid(cx.now).is_none()
            && let Some(wait) = others_lease_left(cx, scope, me)
        {
            // Asking now would only be refused, and grants of voters the
            // holder's renewals missed would race other candidates for
            // epochs: wait until the lease and the lock-delay run out (by
            // the holder's HLC stamp, capped at a ttl against skew).
            let wait = wait.min(wanted.ttl) + cx.config.lease_lock_delay;
            let stagger = cx.stagger(rank(scope, me, &wanted.voters));
            wanted.next_try = cx.now + wait + stagger;
            return;
        }
        if wanted.valid(cx.now).is_none()
            && let Some(record) = self.voter.records().get(scope)
            && record.holder != me
        {
            // This agent's own voter still promises another candidate: its
            // attempt could not count its own grant, which a strict
            // majority of few voters needs, and would only take votes from
            // the one it promised. Wait until that candidate gives the
            // grant back (`Release` brings the next try forward) or the
            // promise runs out.
            let until = record.new_epoch_at_local_millis(lock_delay_millis(cx));
            if until > cx.millis() {
                let wait = Duration::from_millis(until - cx.millis());
                let stagger = cx.stagger(rank(scope, me, &wanted.voters));
                wanted.next_try = cx.now + wait + stagger;
                return;
            }
        }
        let floor = wanted
            .seen_epoch
            .max(cx.table.max_epoch(scope).unwrap_or(0));
        let epoch = match wanted.valid(cx.now) {
            Some(held) => held.epoch,
            None => floor.saturating_add(1),
        };
        self.next_attempt += 1;
        let number = self.next_attempt;
        let request = wanted.request(scope, epoch, me);
        let asked_hlc = cx.stamp();
        wanted.attempt = Some(Attempt {
            number,
            epoch,
            asked: cx.now,
            asked_hlc,
            resend_at: Some(cx.now + cx.answer_timeout() / 2),
            deadline: cx.now + cx.answer_timeout(),
            grants: BTreeMap::new(),
            refused: BTreeSet::new(),
            retry_after: Duration::ZERO,
        });
        let voters: Vec<PublicKey> = wanted.voters.iter().copied().collect();
        for voter in voters.into_iter().filter(|&voter| voter != me) {
            cx.stats.requests_sent += 1;
            let message = LeaseMessage::Request {
                attempt: number,
                request: request.clone(),
            };
            out.push(Out::Send(voter.node_id(), message));
        }
        self.maybe_vote_for_self(cx, scope, out);
    }

    /// A candidate that is one of its own voters grants itself only when
    /// that grant completes a majority: an attempt that fails then leaves
    /// no promise at its own voter blocking every other candidate for a
    /// ttl plus lock-delay. Deciding later than the attempt started is
    /// safe: the voter's promise then starts later than the holder's
    /// validity does.
    fn maybe_vote_for_self(&mut self, cx: &mut Cx<'_>, scope: &str, out: &mut Vec<Out>) {
        let me = cx.keypair.public();
        let Some(wanted) = self.wanted.get(scope) else {
            return;
        };
        let Some(attempt) = &wanted.attempt else {
            return;
        };
        let answered = attempt.grants.contains_key(&me) || attempt.refused.contains(&me);
        if !wanted.voters.contains(&me) || answered || attempt.grants.len() + 1 < wanted.majority()
        {
            return;
        }
        let request = wanted.request(scope, attempt.epoch, me);
        let number = attempt.number;
        let answer = self.vote(cx, me, number, request, out);
        self.on_answer(cx, me, Answered::Here, answer, out);
    }

    /// The voter key of the scope an answer is about, matching `from`.
    pub(super) fn voter_key(&self, answer: &LeaseMessage, from: NodeId) -> Option<PublicKey> {
        let scope = match answer {
            LeaseMessage::Granted { grant, .. } => &grant.body.scope,
            LeaseMessage::Refused { scope, .. } => scope,
            LeaseMessage::Request { .. } | LeaseMessage::Release { .. } => return None,
        };
        self.wanted
            .get(scope)?
            .voters
            .iter()
            .copied()
            .find(|voter| voter.node_id() == from)
    }

    /// Counts an answer from `voter` (authenticated by the transport).
    pub(super) fn on_answer(
        &mut self,
        cx: &mut Cx<'_>,
        voter: PublicKey,
        answered: Answered,
        answer: LeaseMessage,
        out: &mut Vec<Out>,
    ) {
        let me = cx.keypair.public();
        let (number, scope) = match &answer {
            LeaseMessage::Granted { attempt, grant } => (*attempt, grant.body.scope.clone()),
            LeaseMessage::Refused { attempt, scope, .. } => (*attempt, scope.clone()),
            LeaseMessage::Request { .. } | LeaseMessage::Release { .. } => return,
        };
        let Some(wanted) = self.wanted.get_mut(&scope) else {
            cx.stats.answers_ignored += 1;
            return;
        };
        let Some(attempt) = wanted.attempt.as_mut().filter(|attempt| {
            attempt.number == number
                && !attempt.grants.contains_key(&voter)
                && !attempt.refused.contains(&voter)
        }) else {
            cx.stats.answers_ignored += 1;
            // A grant that came too late for its attempt still binds its
            // voter: give it back, unless it may back what is held or
            // asked for now.
            if let LeaseMessage::Granted { grant, .. } = &answer {
                let epoch = grant.body.epoch;
                let in_use = wanted.valid(cx.now).is_some_and(|held| held.epoch == epoch)
                    || wanted.attempt.as_ref().is_some_and(|a| a.epoch == epoch);
                if grant.body.holder == me && grant.body.voter == voter && !in_use {
                    self.give_back(cx, &scope, epoch, &[voter], out);
                }
            }
            return;
        };
        match answer {
            LeaseMessage::Granted { grant, .. } => {
                let body = &grant.body;
                let ttl_millis = u64::try_from(wanted.ttl.as_millis()).unwrap_or(u64::MAX);
                let matches = body.scope == scope
                    && body.epoch == attempt.epoch
                    && body.holder == me
                    && body.voter == voter
                    && body.ttl_millis >= ttl_millis;
                // This agent's own grant was signed a moment ago, by its
                // own key, and never left it: checking it again costs an
                // ed25519 verification per attempt and proves nothing.
                let signed_here = answered == Answered::Here && voter == me;
                if !matches || (!signed_here && !self.verifier.verify(&grant.check())) {
                    cx.stats.grants_rejected += 1;
                    return;
                }
                attempt.grants.insert(voter, *grant);
            }
            LeaseMessage::Refused {
                epoch,
                current,
                retry_after_millis,
                ..
            } => {
                if epoch != attempt.epoch {
                    cx.stats.answers_ignored += 1;
                    return;
                }
                attempt.refused.insert(voter);
                let hint = Duration::from_millis(retry_after_millis).min(RETRY_HINT_MAX);
                attempt.retry_after = attempt.retry_after.max(hint);
                if let Some((standing, _)) = current {
                    wanted.seen_epoch = wanted.seen_epoch.max(standing);
                }
            }
            LeaseMessage::Request { .. } | LeaseMessage::Release { .. } => return,
        }
        // Only grants of the scope's current voters count: `acquire` may
        // have changed them since the attempt started.
        let granted = wanted
            .voters
            .iter()
            .filter(|voter| attempt.grants.contains_key(voter))
            .count();
        let refused = attempt.refused.len();
        if granted >= wanted.majority() {
            self.won(cx, &scope, out);
        } else if refused > wanted.voters.len() - wanted.majority() {
            self.end_attempt(cx, &scope, out);
        } else if voter != me {
            self.maybe_vote_for_self(cx, &scope, out);
        }
    }

    /// Ends an attempt that cannot win (refused, or answers late), gives
    /// back its grants unless they back the lease held, and picks when to
    /// try again: soon while a lease is held (the renewal must land before
    /// it runs out); otherwise after the voters' longest hint, but at most
    /// half a ttl (a competitor's grants may be given back sooner), plus
    /// this candidate's stagger, so that candidates waiting out the same
    /// promise ask one after the other, best-ranked first.
    ///
    /// The grants given back include those of voters that never answered:
    /// a grant lost on its way binds its voter all the same, and with few
    /// voters one such promise (a ttl plus lock-delay) blocks every
    /// candidate. A voter that granted nothing ignores the release.
    fn end_attempt(&mut self, cx: &mut Cx<'_>, scope: &str, out: &mut Vec<Out>) {
        let Some(wanted) = self.wanted.get_mut(scope) else {
            return;
        };
        let Some(attempt) = wanted.attempt.take() else {
            return;
        };
        let held = wanted.valid(cx.now);
        wanted.next_try = if held.is_some() {
            let timeout = cx.answer_timeout();
            cx.now + cx.jitter(timeout)
        } else {
            let stagger = cx.stagger(rank(scope, cx.keypair.public(), &wanted.voters));
            cx.now + attempt.retry_after.min(wanted.ttl / 2) + stagger
        };
        if held.is_none_or(|held| held.epoch != attempt.epoch) {
            let bound: Vec<PublicKey> = wanted
                .voters
                .iter()
                .copied()
                .filter(|voter| !attempt.refused.contains(voter))
                .collect();
            self.give_back(cx, scope, attempt.epoch, &bound, out);
        }
    }

    /// This agent's own voter no longer promises anyone `scope`: if it
    /// waits to ask for the scope, it asks after its stagger instead.
    pub(super) fn promise_ended(&mut self, cx: &mut Cx<'_>, scope: &str) {
        let me = cx.keypair.public();
        let Some(wanted) = self.wanted.get_mut(scope) else {
            return;
        };
        if wanted.attempt.is_some() || wanted.valid(cx.now).is_some() {
            return;
        }
        let soon = cx.now + cx.stagger(rank(scope, me, &wanted.voters));
        wanted.next_try = wanted.next_try.min(soon);
    }

    /// Gives the grants of `epoch` back to `voters`; this agent must not
    /// hold the lease on them any more, and never asks for `epoch` again: a
    /// release overtaken on the way by a later request of the same epoch
    /// would otherwise withdraw the grant that answered it.
    pub(super) fn give_back(
        &mut self,
        cx: &mut Cx<'_>,
        scope: &str,
        epoch: u64,
        voters: &[PublicKey],
        out: &mut Vec<Out>,
    ) {
        let me = cx.keypair.public();
        if let Some(wanted) = self.wanted.get_mut(scope) {
            wanted.seen_epoch = wanted.seen_epoch.max(epoch);
        }
        for &voter in voters {
            cx.stats.releases_sent += 1;
            if voter == me {
                let lock_delay = lock_delay_millis(cx);
                if self
                    .voter
                    .release(scope, epoch, me, cx.millis(), lock_delay)
                {
                    cx.stats.releases_applied += 1;
                }
            } else {
                let message = LeaseMessage::Release {
                    scope: scope.to_owned(),
                    epoch,
                };
                out.push(Out::Send(voter.node_id(), message));
            }
        }
    }

    /// A strict majority granted: hold, publish, schedule the renewal.
    fn won(&mut self, cx: &mut Cx<'_>, scope: &str, out: &mut Vec<Out>) {
        let Some(wanted) = self.wanted.get_mut(scope) else {
            return;
        };
        let Some(attempt) = wanted.attempt.take() else {
            return;
        };
        // Paired with the count in `on_answer`, from the grants themselves:
        // a lease is held only on a strict majority of its voters' grants,
        // and a holder's epoch never goes back.
        let granted_by_voters = attempt
            .grants
            .keys()
            .filter(|voter| wanted.voters.contains(voter))
            .count();
        assert!(
            granted_by_voters >= wanted.majority(),
            "lease {scope} won with {granted_by_voters} of {} voters' grants",
            wanted.voters.len()
        );
        assert!(
            wanted.held.is_none_or(|held| held.epoch <= attempt.epoch),
            "lease {scope}: epoch went back to {}",
            attempt.epoch
        );
        debug_assert!(
            attempt
                .grants
                .iter()
                .all(|(voter, grant)| grant.body.voter == *voter
                    && grant.body.epoch == attempt.epoch
                    && grant.body.holder == cx.keypair.public()),
            "lease {scope}: a grant counted is not for this holder and epoch"
        );
        let renewal = wanted
            .valid(cx.now)
            .is_some_and(|held| held.epoch == attempt.epoch);
        let until = attempt.asked + wanted.ttl.saturating_sub(cx.config.lease_drift_bound);
        assert!(
            until <= attempt.asked + wanted.ttl,
            "lease {scope}: held past the voters' promise"
        );
        wanted.held = Some(Held {
            epoch: attempt.epoch,
            until,
        });
        wanted.next_try = attempt.asked + wanted.ttl / 3;
        let republish = wanted
            .published
            .is_none_or(|at| cx.now >= at + cx.config.lease_publish_interval);
        if renewal {
            cx.stats.renewed += 1;
            if !republish {
                return;
            }
        } else {
            cx.stats.acquired += 1;
            if cx
                .table
                .get(scope)
                .is_some_and(|signed| signed.lease.holder != cx.keypair.public())
            {
                cx.stats.taken_over += 1;
            }
            out.push(Out::Event(Event::LeaseAcquired {
                scope: scope.to_owned(),
                epoch: attempt.epoch,
            }));
        }
        wanted.published = Some(cx.now);
        let lease = Lease {
            scope: scope.to_owned(),
            epoch: attempt.epoch,
            holder: cx.keypair.public(),
            granted_at: attempt.asked_hlc,
            ttl_millis: u64::try_from(wanted.ttl.as_millis()).unwrap_or(u64::MAX),
            kind: LeaseKind::Quorum {
                voters: wanted.voters.clone(),
                grants: attempt.grants.into_values().collect(),
            },
        };
        out.push(Out::Publish(Box::new(SignedLease::sign(lease, cx.keypair))));
    }
}

/// Sends the requests of `wanted`'s attempt once more to the voters that
/// have not answered, when its half-way point has come: one lost request
/// or answer should cost a retransmit, not a round and the voter's promise.
/// A voter that granted already grants the same epoch again (a renewal).
fn resend_unanswered(cx: &mut Cx<'_>, scope: &str, wanted: &mut Wanted, out: &mut Vec<Out>) {
    let me = cx.keypair.public();
    let due = wanted
        .attempt
        .as_ref()
        .filter(|attempt| attempt.resend_at.is_some_and(|at| at <= cx.now));
    let Some(epoch) = due.map(|attempt| attempt.epoch) else {
        return;
    };
    let request = wanted.request(scope, epoch, me);
    let Some(attempt) = wanted.attempt.as_mut() else {
        return;
    };
    attempt.resend_at = None;
    let silent = wanted.voters.iter().filter(|&&voter| {
        voter != me && !attempt.grants.contains_key(&voter) && !attempt.refused.contains(&voter)
    });
    for voter in silent {
        cx.stats.requests_resent += 1;
        let message = LeaseMessage::Request {
            attempt: attempt.number,
            request: request.clone(),
        };
        out.push(Out::Send(voter.node_id(), message));
    }
}
