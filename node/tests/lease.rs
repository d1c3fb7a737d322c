//! The quorum lease protocol on bare agents: a small harness with a virtual
//! clock, fixed-delay links that can be cut, durable state kept per agent
//! as the driver contract says (persist outputs drained before transmits),
//! and restarts that restore it.

mod common;

use common::{id, identity, key, verifier};
use fleetmesh_node::crdt::{Grant, GrantBody, GrantRequest, PublicKey};
use fleetmesh_node::lease::{LeaseMessage, RefusalReason};
use fleetmesh_node::wire::{self, Message};
use fleetmesh_node::{Agent, Config, Durable, Event, Instant, NodeId, NodeMeta, Persist};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LINK_DELAY: Duration = Duration::from_millis(1);
const STEPS_MAX: usize = 2_000_000;
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

struct Harness {
    now: Instant,
    agents: BTreeMap<u64, Agent>,
    durable: BTreeMap<u64, Durable>,
    in_flight: BTreeMap<(Instant, u64), (u64, u64, Vec<u8>)>,
    sequence: u64,
    /// Agents that neither send nor receive (crashed or cut off).
    isolated: BTreeSet<u64>,
    /// Lease messages addressed to these agents are kept here, undelivered.
    captured: BTreeMap<u64, Vec<(u64, LeaseMessage)>>,
    events: Vec<(u64, Event)>,
}

impl Harness {
    fn new(count: u64) -> Harness {
        let mut harness = Harness {
            now: Instant(1_000_000_000),
            agents: BTreeMap::new(),
            durable: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            sequence: 0,
            isolated: BTreeSet::new(),
            captured: BTreeMap::new(),
            events: Vec::new(),
        };
        for n in 0..count {
            harness.start(n);
        }
        harness.run_for(Duration::from_secs(5));
        harness
    }

    /// Starts (or restarts) agent `n` with what it persisted.
    fn start(&mut self, n: u64) {
        let mut agent = Agent::new(
            Config::lan(),
            identity(n),
            NodeMeta::default(),
            n,
            self.now,
            verifier(),
        )
        .expect("empty metadata is valid");
        agent.restore(self.now, self.durable.get(&n).cloned().unwrap_or_default());
        if n > 0 {
            agent.join(self.now, &[id(0)]);
        }
        self.agents.insert(n, agent);
        self.isolated.remove(&n);
        self.drain(n);
    }

    fn crash(&mut self, n: u64) {
        self.agents.remove(&n);
        self.isolated.insert(n);
    }

    fn agent(&mut self, n: u64) -> &mut Agent {
        self.agents.get_mut(&n).expect("running")
    }

    fn index_of(&self, who: NodeId) -> u64 {
        (0..1000).find(|&n| id(n) == who).expect("a test agent")
    }

    fn drain(&mut self, n: u64) {
        let agent = self.agents.get_mut(&n).unwrap();
        while let Some(persist) = agent.poll_persist() {
            self.durable.entry(n).or_default().apply(persist);
        }
        let mut transmits = Vec::new();
        while let Some(transmit) = agent.poll_transmit() {
            transmits.push(transmit);
        }
        while let Some(event) = agent.poll_event() {
            self.events.push((n, event));
        }
        for transmit in transmits {
            let to = self.index_of(transmit.to);
            if self.isolated.contains(&n) || self.isolated.contains(&to) {
                continue;
            }
            if let Some(captured) = self.captured.get_mut(&to)
                && let Ok(Message::Lease(message)) = wire::decode(&transmit.bytes)
            {
                captured.push((n, message));
                continue;
            }
            self.sequence += 1;
            self.in_flight.insert(
                (self.now + LINK_DELAY, self.sequence),
                (n, to, transmit.bytes),
            );
        }
    }

    /// Delivers a lease message as if `from` had sent it to `to` now.
    fn inject(&mut self, from: u64, to: u64, message: &LeaseMessage) {
        let bytes = wire::encode(&Message::Lease(message.clone())).unwrap();
        let now = self.now;
        self.agent(to).handle_message(now, id(from), &bytes);
        self.drain(to);
    }

    fn run_for(&mut self, duration: Duration) {
        self.run_checking(duration, |_| {});
    }

    /// Advances time by `duration`, calling `check` after every step.
    fn run_checking(&mut self, duration: Duration, mut check: impl FnMut(&Harness)) {
        let end = self.now + duration;
        for _ in 0..STEPS_MAX {
            let next_message = self.in_flight.keys().next().map(|&(at, _)| at);
            let next_timer = self
                .agents
                .iter()
                .filter_map(|(&n, agent)| agent.poll_timeout().map(|at| (at, n)))
                .min();
            let next = [next_message, next_timer.map(|(at, _)| at)]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&next| next <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(next);
            if next_message == Some(next) {
                let (_, (from, to, bytes)) = self.in_flight.pop_first().unwrap();
                if self.isolated.contains(&to) {
                    continue;
                }
                let now = self.now;
                self.agent(to).handle_message(now, id(from), &bytes);
                self.drain(to);
            } else if let Some((_, n)) = next_timer {
                let now = self.now;
                self.agent(n).handle_timeout(now);
                self.drain(n);
            }
            check(self);
        }
        panic!("harness did not reach the end of its run within {STEPS_MAX} steps");
    }

    /// Makes agent `n` start asking `voters` for `SCOPE`.
    fn acquire(&mut self, n: u64, voters: BTreeSet<PublicKey>) {
        let now = self.now;
        self.agent(n).acquire(now, SCOPE, voters, TTL).unwrap();
        self.drain(n);
    }

    fn holds(&self, n: u64) -> Option<u64> {
        self.agents.get(&n)?.holds(self.now, SCOPE)
    }

    fn holders(&self) -> Vec<(u64, u64)> {
        self.agents
            .keys()
            .filter_map(|&n| self.holds(n).map(|epoch| (n, epoch)))
            .collect()
    }
}

#[test]
fn a_majority_of_grants_makes_a_holder_and_the_lease_spreads() {
    let mut harness = Harness::new(5);
    let now = harness.now;
    harness
        .agent(0)
        .acquire(now, SCOPE, voters(0..5), TTL)
        .unwrap();
    harness.drain(0);
    harness.run_for(Duration::from_secs(30));
    assert_eq!(harness.holders(), vec![(0, 1)]);
    assert!(harness.events.contains(&(
        0,
        Event::LeaseAcquired {
            scope: SCOPE.into(),
            epoch: 1
        }
    )));
    let stats = harness.agents[&0].stats().leases.clone();
    assert_eq!(stats.acquired, 1);
    assert!(stats.renewed >= 5, "{stats:?}");
    for n in 0..5 {
        let lease = harness.agents[&n].replicas().leases().get(SCOPE).cloned();
        let lease = lease.unwrap_or_else(|| panic!("agent {n} lacks the lease"));
        assert_eq!(
            (lease.lease.epoch, lease.lease.holder),
            (1, key(0).public())
        );
    }
}

#[test]
fn a_minority_cannot_acquire() {
    let mut harness = Harness::new(5);
    harness.isolated.extend([2, 3, 4]);
    let now = harness.now;
    harness
        .agent(0)
        .acquire(now, SCOPE, voters(0..5), TTL)
        .unwrap();
    harness.drain(0);
    harness.run_for(Duration::from_secs(60));
    assert_eq!(harness.holders(), vec![]);
    assert_eq!(harness.agents[&0].stats().leases.acquired, 0);
}

#[test]
fn a_voter_refuses_a_second_holder_at_the_same_epoch() {
    let mut harness = Harness::new(3);
    harness.captured.insert(1, Vec::new());
    harness.captured.insert(2, Vec::new());
    harness.inject(1, 0, &request(1, 3, 7));
    harness.inject(2, 0, &request(2, 3, 7));
    let answers = &harness.captured;
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
    harness.inject(2, 0, &request(1, 4, 7));
    assert_eq!(harness.captured[&2].len(), 1);
    assert_eq!(harness.agents[&0].stats().leases.refused_bad_request, 1);
}

#[test]
fn takeover_comes_only_after_ttl_plus_lock_delay_with_a_higher_epoch() {
    let mut harness = Harness::new(5);
    let now = harness.now;
    harness
        .agent(0)
        .acquire(now, SCOPE, voters(0..5), TTL)
        .unwrap();
    harness.drain(0);
    harness.run_for(Duration::from_secs(5));
    let now = harness.now;
    harness
        .agent(1)
        .acquire(now, SCOPE, voters(0..5), TTL)
        .unwrap();
    harness.drain(1);
    harness.run_checking(Duration::from_secs(30), |harness| {
        assert!(harness.holders().len() <= 1, "{:?}", harness.holders());
    });
    assert_eq!(harness.holders(), vec![(0, 1)]);
    let crashed = harness.now;
    harness.crash(0);
    let lock_delay = Config::lan().lease_lock_delay;
    // The last renewal was at most a third of a ttl (plus an answer
    // timeout) before the crash.
    let earliest = crashed + (TTL * 2 / 3 - Duration::from_secs(1)) + lock_delay;
    let mut taken_at = None;
    harness.run_checking(TTL * 3, |harness| {
        if taken_at.is_none() && harness.holds(1).is_some() {
            taken_at = Some(harness.now);
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
fn a_grant_is_queued_to_persist_before_its_transmit() {
    let mut harness = Harness::new(2);
    let message = request(1, 1, 1);
    let bytes = wire::encode(&Message::Lease(message)).unwrap();
    let now = harness.now;
    let voter = harness.agent(0);
    voter.handle_message(now, id(1), &bytes);
    // The record is there to persist before the grant can be sent.
    match voter.poll_persist() {
        Some(Persist::VoterRecords(records)) => {
            assert_eq!(records[SCOPE].epoch, 1);
            assert_eq!(records[SCOPE].holder, key(1).public());
        }
        other => panic!("expected the voter's records first, got {other:?}"),
    }
    assert_eq!(voter.poll_persist(), None);
    let transmit = voter.poll_transmit().expect("the grant");
    assert!(matches!(
        wire::decode(&transmit.bytes),
        Ok(Message::Lease(LeaseMessage::Granted { .. }))
    ));
}

#[test]
fn a_restored_voter_refuses_a_new_epoch_for_a_full_ttl_plus_lock_delay() {
    let mut harness = Harness::new(3);
    harness.captured.insert(1, Vec::new());
    harness.captured.insert(2, Vec::new());
    harness.inject(1, 0, &request(1, 1, 1));
    harness.crash(0);
    harness.run_for(Duration::from_secs(20));
    harness.start(0);
    let restarted = harness.now;
    harness.run_for(Duration::from_secs(5));
    let lock_delay = Config::lan().lease_lock_delay;
    let open_at = restarted + TTL + lock_delay;
    let step = Duration::from_millis(500);
    let mut last = None;
    while harness.now < open_at + step * 2 {
        harness.inject(2, 0, &request(2, 2, 1));
        last = harness
            .captured
            .get_mut(&2)
            .and_then(Vec::pop)
            .map(|(_, answer)| answer);
        let granted = matches!(last, Some(LeaseMessage::Granted { .. }));
        assert_eq!(granted, harness.now >= open_at, "at {:?}", harness.now);
        if granted {
            break;
        }
        harness.run_for(step);
    }
    assert!(matches!(last, Some(LeaseMessage::Granted { .. })));
}

#[test]
fn a_forged_grant_is_not_counted() {
    let mut harness = Harness::new(4);
    for voter in 1..4 {
        harness.captured.insert(voter, Vec::new());
    }
    let now = harness.now;
    harness
        .agent(0)
        .acquire(now, SCOPE, voters(1..4), TTL)
        .unwrap();
    harness.drain(0);
    let (_, request) = harness.captured[&1][0].clone();
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
    harness.inject(1, 0, &grant(1, 9));
    harness.inject(2, 0, &grant(2, 9));
    assert_eq!(harness.holds(0), None);
    assert_eq!(harness.agents[&0].stats().leases.grants_rejected, 2);
    // A real one from voter 2 and one from voter 3 do.
    harness.inject(2, 0, &grant(2, 2));
    assert_eq!(harness.holds(0), None);
    harness.inject(3, 0, &grant(3, 3));
    assert_eq!(harness.holds(0), Some(1));
}

#[test]
fn a_released_lease_stops_at_once_and_its_grants_are_given_back() {
    let mut harness = Harness::new(5);
    let now = harness.now;
    harness
        .agent(0)
        .acquire(now, SCOPE, voters(0..5), TTL)
        .unwrap();
    harness.drain(0);
    harness.run_for(Duration::from_secs(5));
    let now = harness.now;
    harness
        .agent(1)
        .acquire(now, SCOPE, voters(0..5), TTL)
        .unwrap();
    harness.drain(1);
    harness.run_for(Duration::from_secs(5));
    assert_eq!(harness.holders(), vec![(0, 1)]);
    let now = harness.now;
    harness.agent(0).release_lease(now, SCOPE);
    harness.drain(0);
    assert_eq!(harness.holds(0), None);
    assert!(harness.events.contains(&(
        0,
        Event::LeaseLost {
            scope: SCOPE.into(),
            epoch: 1
        }
    )));
    harness.run_checking(TTL * 2, |harness| {
        assert!(harness.holders().len() <= 1, "{:?}", harness.holders());
    });
    let applied: u64 = harness
        .agents
        .values()
        .map(|agent| agent.stats().leases.releases_applied)
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
    let mut harness = Harness::new(3);
    // Every answer to the first round of requests is lost.
    harness.captured.insert(0, Vec::new());
    harness.acquire(0, voters(0..3));
    harness.run_for(answer_timeout() / 4);
    let lost = harness.captured.remove(&0).unwrap();
    assert_eq!(lost.len(), 2, "both voters answered: {lost:?}");
    assert_eq!(harness.holds(0), None);
    harness.run_for(answer_timeout() / 2);
    // The same attempt won: the voters granted the resent request again.
    assert_eq!(harness.holds(0), Some(1));
    let stats = harness.agents[&0].stats().leases.clone();
    assert_eq!((stats.requests_resent, stats.acquired), (2, 1), "{stats:?}");
}

#[test]
fn a_failed_attempt_gives_back_grants_whose_answers_were_lost() {
    let mut harness = Harness::new(3);
    harness.captured.insert(0, Vec::new());
    harness.acquire(0, voters(0..3));
    // Both rounds of answers are lost; the attempt times out.
    harness.run_for(answer_timeout() + Duration::from_millis(50));
    let lost = harness.captured.remove(&0).unwrap();
    assert!(
        lost.iter()
            .all(|(_, answer)| matches!(answer, LeaseMessage::Granted { .. })),
        "{lost:?}"
    );
    assert_eq!(lost.len(), 4);
    assert_eq!(harness.holds(0), None);
    let now = harness.now;
    harness.agent(0).release_lease(now, SCOPE);
    harness.drain(0);
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
        .map(|n| harness.agents[n].stats().leases.releases_applied)
        .sum();
    assert_eq!(applied, 2);
}

#[test]
fn a_candidate_whose_own_voter_promised_another_waits_for_the_release() {
    let mut harness = Harness::new(3);
    // Agent 1's voter grants agent 2 epoch 1, and agent 2 goes silent.
    harness.captured.insert(2, Vec::new());
    harness.inject(2, 1, &request(2, 1, 1));
    assert!(matches!(
        harness.captured[&2][..],
        [(1, LeaseMessage::Granted { .. })]
    ));
    harness.acquire(1, voters(0..3));
    harness.run_for(TTL / 2);
    // It asked no one: its own grant could not count.
    let stats = harness.agents[&1].stats().leases.clone();
    assert_eq!((stats.requests_sent, stats.acquired), (0, 0), "{stats:?}");
    // Agent 2 gives the grant back; agent 1 asks and wins at once.
    harness.inject(
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
