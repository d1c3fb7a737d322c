//! The quorum lease protocol on bare agents, on the common mesh
//! (`common::mesh`): a virtual clock, links that can be cut, lease
//! messages the test holds or injects, durable state kept per agent from
//! what `poll_output` hands out, and restarts that restore it.

mod common;

use common::mesh::{Mesh, Verdict, outputs};
use common::{id, key};
use fleetmesh_node::crdt::{Grant, GrantBody, GrantRequest, PublicKey};
use fleetmesh_node::wire::{self, Message};
use fleetmesh_node::wire::{LeaseMessage, RefusalReason};
use fleetmesh_node::{Config, Event, Output, Persist};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SCOPE: &str = "singleton:backup";
const TTL: Duration = Duration::from_secs(10);

/// Node `holder`'s request for `SCOPE` at `epoch`, a 10 s ttl, as its
/// attempt number `attempt`.
fn request(holder: u64, epoch: u64, attempt: u64) -> LeaseMessage {
    LeaseMessage::Request {
        attempt,
        request: GrantRequest {
            scope: SCOPE.into(),
            epoch,
            holder: key(holder).public(),
            ttl_millis: 10_000,
        },
    }
}

fn voters(range: std::ops::Range<u64>) -> BTreeSet<PublicKey> {
    range.map(|n| key(n).public()).collect()
}

/// Nodes `0..count`, after five seconds to find each other.
fn mesh(count: u64) -> Mesh {
    let mut mesh = Mesh::new(count);
    mesh.run_for(Duration::from_secs(5));
    mesh
}

/// Lease messages held undelivered, per recipient, as (sender, message).
type Held = BTreeMap<u64, Vec<(u64, LeaseMessage)>>;

impl Mesh {
    /// From now on holds every lease message addressed to `recipients`
    /// undelivered (none: deliver them all again).
    fn capture_leases(&mut self, recipients: &[u64]) {
        let recipients = recipients.to_vec();
        self.capture(move |sent| {
            let lease = matches!(wire::decode(&sent.bytes), Ok(Message::Lease(_)));
            match lease && recipients.contains(&sent.to) {
                true => Verdict::Hold,
                false => Verdict::Deliver,
            }
        });
    }

    /// Takes the lease messages held since the last call.
    fn held_leases(&mut self) -> Held {
        let mut held = Held::new();
        for sent in self.held() {
            if let Ok(Message::Lease(message)) = wire::decode(&sent.bytes) {
                held.entry(sent.to).or_default().push((sent.from, message));
            }
        }
        held
    }

    /// Delivers a lease message as if `from` had sent it to `to` now.
    fn inject_lease(&mut self, from: u64, to: u64, message: &LeaseMessage) {
        let bytes = wire::encode(&Message::Lease(message.clone())).unwrap();
        self.inject(from, to, &bytes);
    }

    /// Makes agent `n` start asking `voters` for `SCOPE`.
    fn acquire(&mut self, n: u64, voters: BTreeSet<PublicKey>) {
        (self.input(n, |agent, now| agent.acquire(now, SCOPE, voters, TTL)))
            .unwrap_or_else(|error| panic!("agent {n} cannot ask for {SCOPE}: {error}"));
    }

    fn holds(&self, n: u64) -> Option<u64> {
        self.agent(n).holds(self.now(), SCOPE)
    }

    /// Every running agent holding `SCOPE`, with its epoch.
    fn holders(&self) -> Vec<(u64, u64)> {
        (self.agents())
            .filter_map(|(n, agent)| Some((n, agent.holds(self.now(), SCOPE)?)))
            .collect()
    }
}

#[test]
fn a_majority_of_grants_makes_a_holder_and_the_lease_spreads() {
    let mut harness = mesh(5);
    harness.acquire(0, voters(0..5));
    harness.run_for(Duration::from_secs(30));
    assert_eq!(harness.holders(), vec![(0, 1)]);
    assert!(harness.node(0).events.contains(&Event::LeaseAcquired {
        scope: SCOPE.into(),
        epoch: 1
    }));
    let stats = harness.agent(0).stats().leases.clone();
    assert_eq!(stats.acquired, 1);
    assert!(stats.renewed >= 5, "{stats:?}");
    for n in 0..5 {
        let lease = harness.agent(n).replicas().leases().get(SCOPE).cloned();
        let lease = lease.unwrap_or_else(|| panic!("agent {n} lacks the lease"));
        assert_eq!(
            (lease.lease.epoch, lease.lease.holder),
            (1, key(0).public())
        );
    }
}

#[test]
fn a_minority_cannot_acquire() {
    let mut harness = mesh(5);
    for n in 2..5 {
        harness.links.isolate(n);
    }
    harness.acquire(0, voters(0..5));
    harness.run_for(Duration::from_secs(60));
    assert_eq!(harness.holders(), vec![]);
    assert_eq!(harness.agent(0).stats().leases.acquired, 0);
}

#[test]
fn a_voter_refuses_a_second_holder_at_the_same_epoch() {
    let mut harness = mesh(3);
    harness.capture_leases(&[1, 2]);
    harness.inject_lease(1, 0, &request(1, 3, 7));
    harness.inject_lease(2, 0, &request(2, 3, 7));
    let answers = harness.held_leases();
    assert!(matches!(
        answers[&1][..],
        [(0, LeaseMessage::Granted { attempt: 7, ref grant })] if grant.body.epoch == 3
    ));
    assert!(matches!(
        answers[&2][..],
        [(0, LeaseMessage::Refused { reason: RefusalReason::HeldByOther, current: Some((3, holder)), .. })]
            if holder == key(1).public()
    ));
    // Nor may anyone ask on another's behalf.
    harness.inject_lease(2, 0, &request(1, 4, 7));
    assert_eq!(harness.held_leases().get(&2), None);
    assert_eq!(harness.agent(0).stats().leases.refused_bad_request, 1);
}

#[test]
fn takeover_comes_only_after_ttl_plus_lock_delay_with_a_higher_epoch() {
    let mut harness = mesh(5);
    harness.acquire(0, voters(0..5));
    harness.run_for(Duration::from_secs(5));
    harness.acquire(1, voters(0..5));
    harness.run_checking(Duration::from_secs(30), |harness| {
        assert!(harness.holders().len() <= 1, "{:?}", harness.holders());
    });
    assert_eq!(harness.holders(), vec![(0, 1)]);
    let crashed = harness.now();
    harness.crash(0);
    let lock_delay = Config::lan().lease_lock_delay;
    // The last renewal was at most a third of a ttl (plus an answer
    // timeout) before the crash.
    let earliest = crashed + (TTL * 2 / 3 - Duration::from_secs(1)) + lock_delay;
    let mut taken_at = None;
    harness.run_checking(TTL * 3, |harness| {
        if taken_at.is_none() && harness.holds(1).is_some() {
            taken_at = Some(harness.now());
        }
    });
    let taken_at = taken_at.expect("candidate 1 took over");
    assert!(taken_at >= earliest, "took over too early");
    // Plus the candidate's stagger: one answer timeout per better-ranked
    // voter, and a jitter of less than one more.
    let stagger = answer_timeout() * 5;
    assert!(taken_at <= crashed + TTL + lock_delay + stagger + Duration::from_secs(2));
    // Higher than the crashed holder's: candidate 1 burnt an epoch on
    // each refused attempt while agent 0 held the scope (renewals are not
    // republished, so its table showed the lease lapsing).
    let holders = harness.holders();
    assert!(
        matches!(holders[..], [(1, epoch)] if epoch > 1),
        "{holders:?}"
    );
}

#[test]
fn a_voter_hands_out_its_record_to_persist_before_its_grant_to_send() {
    let mut harness = mesh(2);
    let message = request(1, 1, 1);
    let bytes = wire::encode(&Message::Lease(message)).unwrap();
    let now = harness.now();
    let voter = harness.agent_mut(0);
    voter.handle_message(now, id(1), &bytes);
    let outputs = outputs(voter);
    // The record comes out to persist before the grant can be sent.
    let [
        Output::Persist(Persist::VoterRecords(records)),
        Output::Transmit(grant),
        ..,
    ] = &outputs[..]
    else {
        panic!("expected the voter's records, then its grant: {outputs:?}");
    };
    assert_eq!(records[SCOPE].epoch, 1);
    assert_eq!(records[SCOPE].holder, key(1).public());
    assert!(matches!(
        wire::decode(&grant.bytes),
        Ok(Message::Lease(LeaseMessage::Granted { .. }))
    ));
    let persists = outputs.iter().filter(|output| output.is_durable());
    assert_eq!(persists.count(), 1, "{outputs:?}");
}

#[test]
fn a_restored_voter_refuses_a_new_epoch_for_a_full_ttl_plus_lock_delay() {
    let mut harness = mesh(3);
    harness.capture_leases(&[1, 2]);
    harness.inject_lease(1, 0, &request(1, 1, 1));
    harness.crash(0);
    harness.run_for(Duration::from_secs(20));
    harness.start(0);
    let restarted = harness.now();
    harness.run_for(Duration::from_secs(5));
    let lock_delay = Config::lan().lease_lock_delay;
    let open_at = restarted + TTL + lock_delay;
    let step = Duration::from_millis(500);
    let mut last = None;
    while harness.now() < open_at + step * 2 {
        harness.inject_lease(2, 0, &request(2, 2, 1));
        last = (harness.held_leases().remove(&2))
            .and_then(|mut answers| answers.pop())
            .map(|(_, answer)| answer);
        let granted = matches!(last, Some(LeaseMessage::Granted { .. }));
        assert_eq!(granted, harness.now() >= open_at, "at {:?}", harness.now());
        if granted {
            break;
        }
        harness.run_for(step);
    }
    assert!(matches!(last, Some(LeaseMessage::Granted { .. })));
}

#[test]
fn a_forged_grant_is_not_counted() {
    let mut harness = mesh(4);
    harness.capture_leases(&[1, 2, 3]);
    harness.acquire(0, voters(1..4));
    let (_, request) = harness.held_leases()[&1][0].clone();
    let LeaseMessage::Request { attempt, request } = request else {
        panic!("a request");
    };
    let grant = |voter: u64, signer: u64| {
        let body = GrantBody {
            scope: request.scope.clone(),
            epoch: request.epoch,
            holder: request.holder,
            ttl_millis: request.ttl_millis,
            voter: key(voter).public(),
            issued: Default::default(),
        };
        LeaseMessage::Granted {
            attempt,
            grant: Box::new(Grant::sign(body, &key(signer))),
        }
    };
    // Signed by the wrong key: two forged grants make no majority.
    harness.inject_lease(1, 0, &grant(1, 9));
    harness.inject_lease(2, 0, &grant(2, 9));
    assert_eq!(harness.holds(0), None);
    assert_eq!(harness.agent(0).stats().leases.grants_rejected, 2);
    // A real one from voter 2 and one from voter 3 do.
    harness.inject_lease(2, 0, &grant(2, 2));
    assert_eq!(harness.holds(0), None);
    harness.inject_lease(3, 0, &grant(3, 3));
    assert_eq!(harness.holds(0), Some(1));
}

#[test]
fn a_released_lease_stops_at_once_and_its_grants_are_given_back() {
    let mut harness = mesh(5);
    harness.acquire(0, voters(0..5));
    harness.run_for(Duration::from_secs(5));
    harness.acquire(1, voters(0..5));
    harness.run_for(Duration::from_secs(5));
    assert_eq!(harness.holders(), vec![(0, 1)]);
    harness.input(0, |agent, now| agent.release_lease(now, SCOPE));
    assert_eq!(harness.holds(0), None);
    assert!(harness.node(0).events.contains(&Event::LeaseLost {
        scope: SCOPE.into(),
        epoch: 1
    }));
    harness.run_checking(TTL * 2, |harness| {
        assert!(harness.holders().len() <= 1, "{:?}", harness.holders());
    });
    let applied: u64 = (harness.agents())
        .map(|(_, agent)| agent.stats().leases.releases_applied)
        .sum();
    assert!(applied >= 3, "{applied} grants given back");
    assert_eq!(harness.holders(), vec![(1, 2)]);
}

/// How long a candidate waits for answers under `Config::lan()`.
fn answer_timeout() -> Duration {
    Config::lan().probe_timeout * 2
}

#[test]
fn a_lost_answer_is_asked_for_again_within_the_attempt() {
    let mut harness = mesh(3);
    // Every answer to the first round of requests is lost.
    harness.capture_leases(&[0]);
    harness.acquire(0, voters(0..3));
    harness.run_for(answer_timeout() / 4);
    let lost = harness.held_leases().remove(&0).unwrap_or_default();
    harness.capture_leases(&[]);
    assert_eq!(lost.len(), 2, "both voters answered: {lost:?}");
    assert_eq!(harness.holds(0), None);
    harness.run_for(answer_timeout() / 2);
    // The same attempt won: the voters granted the resent request again.
    assert_eq!(harness.holds(0), Some(1));
    let stats = harness.agent(0).stats().leases.clone();
    assert_eq!((stats.requests_resent, stats.acquired), (2, 1), "{stats:?}");
}

#[test]
fn a_failed_attempt_gives_back_grants_whose_answers_were_lost() {
    let mut harness = mesh(3);
    harness.capture_leases(&[0]);
    harness.acquire(0, voters(0..3));
    // Both rounds of answers are lost; the attempt times out.
    harness.run_for(answer_timeout() + Duration::from_millis(50));
    let lost = harness.held_leases().remove(&0).unwrap_or_default();
    harness.capture_leases(&[]);
    assert!(
        lost.iter()
            .all(|(_, answer)| matches!(answer, LeaseMessage::Granted { .. })),
        "{lost:?}"
    );
    assert_eq!(lost.len(), 4);
    assert_eq!(harness.holds(0), None);
    harness.input(0, |agent, now| agent.release_lease(now, SCOPE));
    // Voters 1 and 2 were given their grants back although agent 0 never
    // saw them: agent 1 wins long before their promises (a ttl plus the
    // lock-delay) would have run out.
    harness.acquire(1, voters(0..3));
    harness.run_for(answer_timeout() * 5);
    assert!(
        matches!(harness.holders()[..], [(1, epoch)] if epoch > 1),
        "{:?}",
        harness.holders()
    );
    let applied: u64 = [1, 2]
        .iter()
        .map(|n| harness.agent(*n).stats().leases.releases_applied)
        .sum();
    assert_eq!(applied, 2);
}

#[test]
fn a_candidate_whose_own_voter_promised_another_waits_for_the_release() {
    let mut harness = mesh(3);
    // Agent 1's voter grants agent 2 epoch 1, and agent 2 goes silent.
    harness.capture_leases(&[2]);
    harness.inject_lease(2, 1, &request(2, 1, 1));
    assert!(matches!(
        harness.held_leases()[&2][..],
        [(1, LeaseMessage::Granted { .. })]
    ));
    harness.acquire(1, voters(0..3));
    harness.run_for(TTL / 2);
    // It asked no one: its own grant could not count.
    let stats = harness.agent(1).stats().leases.clone();
    assert_eq!((stats.requests_sent, stats.acquired), (0, 0), "{stats:?}");
    // Agent 2 gives the grant back; agent 1 asks and wins at once.
    harness.inject_lease(
        2,
        1,
        &LeaseMessage::Release {
            scope: SCOPE.into(),
            epoch: 1,
        },
    );
    harness.run_for(answer_timeout() * 4);
    assert!(
        matches!(harness.holders()[..], [(1, epoch)] if epoch > 1),
        "{:?}",
        harness.holders()
    );
}
