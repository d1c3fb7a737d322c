//! The quorum lease protocol (DESIGN §4; `docs/protocol.md`, "Leases").
//!
//! **Voter side**: every agent answers grant requests with
//! [`fleetmesh_crdt::Voter`] on its local monotonic clock and signs its
//! grants; the agent queues the voter's records to persist before the
//! answer, so a grant is durable before it leaves.
//!
//! **Candidate side**: for each scope the agent wants, it asks every voter
//! for one epoch, counts signed grants from distinct voters, and at a strict
//! majority holds the lease until `asked + ttl - drift_bound` on its own
//! clock, counted from when it *sent* the requests. It publishes the lease
//! (with its grants) to the replicated lease table and renews every third of
//! the ttl. Requests still unanswered halfway to the answer deadline are
//! sent once more. Refusals and lost answers end an attempt and its grants
//! (and those that may have been lost on the way) are given back; the next
//! one starts after the voters' hints plus a stagger: candidates are ranked
//! per scope, and each waits one answer timeout longer than the one ranked
//! above it, so that after a vacancy the best-ranked reachable candidate
//! asks alone instead of splitting the votes with the others.
//!
//! Pure logic: the agent lends it the time, its key, its HLC, its RNG and
//! the lease table ([`Cx`]) and turns what it returns ([`Out`]) into
//! messages, persisted records, published leases and events.

mod candidate;
mod context;
mod invariants;
mod protocol;
mod voter;

pub(crate) use context::Cx;
use context::lock_delay_millis;
pub use protocol::{LeaseMessage, RefusalReason};

use crate::error::LeaseError;
use crate::event::Event;
use crate::limits::{TTL_MAX, WANTED_MAX};
use crate::persist::Persist;
use crate::time::Instant;
use fleetmesh_crdt::{
    Grant, GrantRequest, Hlc, LeaseTable, NodeId, PublicKey, SignedLease, Verifier, Voter,
    VoterRecord, lease_limits,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Longest a candidate waits on a voter's hint before asking again, so a
/// misbehaving voter cannot park it.
const RETRY_HINT_MAX: Duration = Duration::from_secs(2 * 3600);

// Constant relationships the lease logic relies on.
const _: () = {
    // Some ttl exceeds the drift bound of every validated config.
    assert!(crate::config::LEASE_DRIFT_BOUND_MAX.as_nanos() < TTL_MAX.as_nanos());
    // A voter's hint to wait out one whole ttl is never cut short.
    assert!(TTL_MAX.as_nanos() <= RETRY_HINT_MAX.as_nanos());
    // Every scope one agent wants fits in its own voter's records.
    assert!(WANTED_MAX <= lease_limits::SCOPES_MAX);
};

/// What the agent must do on behalf of the lease logic, in order.
pub(crate) enum Out {
    /// Make this durable (before any later `Send`).
    Persist(Persist),
    /// Send a lease message.
    Send(NodeId, LeaseMessage),
    /// Merge an own lease into the replicated table, which spreads it.
    Publish(Box<SignedLease>),
    /// Tell the driver.
    Event(Event),
}

/// Where an answer to this agent's grant request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answered {
    /// This agent voted on its own request, in this process.
    Here,
    /// A peer sent it.
    Remote,
}

/// A lease this agent holds.
#[derive(Clone, Copy, Debug)]
struct Held {
    epoch: u64,
    /// Local time until which it holds: `asked + ttl - drift_bound`.
    until: Instant,
}

/// One round of requests for one epoch.
struct Attempt {
    number: u64,
    epoch: u64,
    asked: Instant,
    asked_hlc: Hlc,
    /// When requests still unanswered are sent again, until they are.
    resend_at: Option<Instant>,
    deadline: Instant,
    grants: BTreeMap<PublicKey, Grant>,
    refused: BTreeSet<PublicKey>,
    /// The longest retry hint among the refusals.
    retry_after: Duration,
}

/// A scope this agent wants to hold.
struct Wanted {
    voters: BTreeSet<PublicKey>,
    ttl: Duration,
    held: Option<Held>,
    attempt: Option<Attempt>,
    /// When to start the next attempt, if none is in flight.
    next_try: Instant,
    /// The highest epoch voters told of (standing grants in refusals), or
    /// this agent gave back.
    seen_epoch: u64,
    /// When this agent last published its lease of the scope to the fleet.
    published: Option<Instant>,
}

impl Wanted {
    /// What `holder` asks a voter for: `epoch` of `scope` for this ttl.
    fn request(&self, scope: &str, epoch: u64, holder: PublicKey) -> GrantRequest {
        GrantRequest {
            scope: scope.to_owned(),
            epoch,
            holder,
            ttl_millis: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn valid(&self, now: Instant) -> Option<Held> {
        self.held.filter(|held| now < held.until)
    }
}

/// Both sides of the lease protocol for one agent.
pub(crate) struct Leases {
    verifier: Arc<dyn Verifier>,
    voter: Voter,
    wanted: BTreeMap<String, Wanted>,
    next_attempt: u64,
}

impl Leases {
    pub(crate) fn new(verifier: Arc<dyn Verifier>) -> Leases {
        Leases {
            verifier,
            voter: Voter::new(),
            wanted: BTreeMap::new(),
            next_attempt: 0,
        }
    }

    /// Restores the voter's persisted records at local time `now_millis`:
    /// no new epoch for a full ttl plus lock-delay from now.
    pub(crate) fn restore(&mut self, records: BTreeMap<String, VoterRecord>, now_millis: u64) {
        self.voter = Voter::restore(records, now_millis);
    }

    /// The epoch of `scope` this agent holds at `now`, if any: only until
    /// `asked + ttl - drift_bound`, and never once the table shows a
    /// higher epoch.
    pub(crate) fn holds(&self, now: Instant, scope: &str, table: &LeaseTable) -> Option<u64> {
        self.held(now, scope, table).map(|(epoch, _)| epoch)
    }

    /// [`Leases::holds`] with the instant the hold ends.
    pub(crate) fn held(
        &self,
        now: Instant,
        scope: &str,
        table: &LeaseTable,
    ) -> Option<(u64, Instant)> {
        let held = self.wanted.get(scope)?.valid(now)?;
        debug_assert!(now < held.until, "lease {scope} reported held past expiry");
        let superseded = table.max_epoch(scope).is_some_and(|max| max > held.epoch);
        (!superseded).then_some((held.epoch, held.until))
    }

    /// When [`Leases::tick`] must next run.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wanted
            .values()
            .flat_map(|wanted| {
                let (attempt, resend) = match &wanted.attempt {
                    Some(attempt) => (attempt.deadline, attempt.resend_at),
                    None => (wanted.next_try, None),
                };
                [Some(attempt), resend, wanted.held.map(|held| held.until)]
            })
            .flatten()
            .min()
    }

    /// Starts wanting `scope` (or changes its voters and ttl).
    pub(crate) fn acquire(
        &mut self,
        cx: &mut Cx<'_>,
        scope: &str,
        voters: BTreeSet<PublicKey>,
        ttl: Duration,
        out: &mut Vec<Out>,
    ) -> Result<(), LeaseError> {
        if scope.is_empty() || scope.len() > lease_limits::SCOPE_MAX {
            return Err(LeaseError::BadScope);
        }
        if voters.is_empty() || voters.len() > lease_limits::VOTERS_MAX {
            return Err(LeaseError::BadVoters);
        }
        if ttl <= cx.config.lease_drift_bound || ttl > TTL_MAX {
            return Err(LeaseError::BadTtl);
        }
        let full = self.wanted.len() >= WANTED_MAX;
        match self.wanted.get_mut(scope) {
            Some(wanted) => {
                wanted.voters = voters;
                wanted.ttl = ttl;
            }
            None if full => return Err(LeaseError::TooManyScopes),
            None => {
                let wanted = Wanted {
                    voters,
                    ttl,
                    held: None,
                    attempt: None,
                    next_try: cx.now,
                    seen_epoch: 0,
                    published: None,
                };
                self.wanted.insert(scope.to_owned(), wanted);
            }
        }
        self.tick(cx, out);
        Ok(())
    }

    /// Stops wanting `scope`: a lease held is lost at once, and its grants
    /// (and those of an attempt in flight) are given back, so the voters
    /// may grant another candidate without waiting out their promises.
    pub(crate) fn release(&mut self, cx: &mut Cx<'_>, scope: &str, out: &mut Vec<Out>) {
        let Some(wanted) = self.wanted.remove(scope) else {
            return;
        };
        let voters: Vec<PublicKey> = wanted.voters.iter().copied().collect();
        let held = wanted.valid(cx.now);
        if let Some(held) = held {
            lost(cx, scope, held.epoch, out);
            self.give_back(cx, scope, held.epoch, &voters, out);
        }
        if let Some(attempt) = wanted.attempt
            && held.is_none_or(|held| held.epoch != attempt.epoch)
        {
            let granted: Vec<PublicKey> = attempt.grants.into_keys().collect();
            self.give_back(cx, scope, attempt.epoch, &granted, out);
        }
    }

    /// Handles a lease message from `from`, authenticated by the transport.
    pub(crate) fn on_message(
        &mut self,
        cx: &mut Cx<'_>,
        from: NodeId,
        message: LeaseMessage,
        out: &mut Vec<Out>,
    ) {
        match message {
            LeaseMessage::Request { attempt, request } => {
                let sender = request.holder;
                if sender.node_id() != from {
                    // Only a candidate asks for itself: no grant on behalf
                    // of another key, and no answer to a forged sender.
                    cx.stats.refused_bad_request += 1;
                    return;
                }
                let answer = self.vote(cx, sender, attempt, request, out);
                out.push(Out::Send(from, answer));
            }
            LeaseMessage::Release { scope, epoch } => {
                let holder = self.voter.records().get(&scope).map(|record| record.holder);
                let lock_delay = lock_delay_millis(cx);
                let released = holder
                    .filter(|holder| holder.node_id() == from)
                    .is_some_and(|holder| {
                        self.voter
                            .release(&scope, epoch, holder, cx.millis(), lock_delay)
                    });
                if released {
                    cx.stats.releases_applied += 1;
                    self.promise_ended(cx, &scope);
                } else {
                    cx.stats.answers_ignored += 1;
                }
            }
            answer => match self.voter_key(&answer, from) {
                Some(voter) => self.on_answer(cx, voter, Answered::Remote, answer, out),
                None => cx.stats.answers_ignored += 1,
            },
        }
    }
}

fn lost(cx: &mut Cx<'_>, scope: &str, epoch: u64, out: &mut Vec<Out>) {
    cx.stats.lost += 1;
    out.push(Out::Event(Event::LeaseLost {
        scope: scope.to_owned(),
        epoch,
    }));
}
