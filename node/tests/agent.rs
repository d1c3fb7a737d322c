//! Behaviour of the agent core on the common mesh (`common::mesh`): a
//! handful of agents, a virtual clock that jumps to the next thing due, and
//! links the test can cut and slow. No simulator: these tests pin the
//! protocol itself.

mod common;

use common::links::LINK_DELAY;
use common::mesh::{Mesh, outputs, transmits};
use common::{FLEET, Laptop, id, identity, key, verifier};
use fleetmesh_node::crdt::{Keypair, Role, SignedTrust};
use fleetmesh_node::wire::{self, Message, Update};
use fleetmesh_node::{Agent, Config, Instant, MemberState, NodeMeta, Output};
use std::collections::BTreeSet;
use std::time::Duration;

impl Mesh {
    /// What node `observer` believes of node `member`.
    fn state(&self, observer: u64, member: u64) -> Option<MemberState> {
        (self.agent(observer).member(id(member))).map(|member| member.state())
    }

    /// Asserts that each of nodes `0..count` believes each of them alive.
    fn assert_all_alive(&self, count: u64) {
        for observer in 0..count {
            for member in 0..count {
                assert_eq!(
                    self.state(observer, member),
                    Some(MemberState::Alive),
                    "{observer} about {member}"
                );
            }
        }
    }
}

#[test]
fn joiners_learn_the_whole_fleet_and_everyone_learns_them() {
    let mut harness = Mesh::new(8);
    harness.run_for(Duration::from_secs(5));
    harness.assert_all_alive(8);
}

#[test]
fn a_late_joiner_gets_the_full_view_in_its_first_exchange() {
    let mut harness = Mesh::new(20);
    harness.run_for(Duration::from_secs(10));
    harness.add(20);
    // One exchange with the seed: four one-way delays.
    harness.run_for(LINK_DELAY * 5);
    assert_eq!(harness.agent(20).members().up_count(), 21);
}

#[test]
fn a_crashed_member_is_declared_dead_by_all() {
    let mut harness = Mesh::new(10);
    harness.run_for(Duration::from_secs(5));
    harness.pause(7);
    let config = Config::lan();
    let bound = config
        .suspicion_timeout_min(10)
        .mul_f64(config.suspicion_max_mult)
        + Duration::from_secs(5);
    harness.run_for(bound);
    for observer in (0..10).filter(|&observer| observer != 7) {
        assert_eq!(
            harness.state(observer, 7),
            Some(MemberState::Dead),
            "observer {observer}"
        );
    }
}

#[test]
fn a_suspected_member_refutes_and_stays_alive() {
    let mut harness = Mesh::new(6);
    harness.run_for(Duration::from_secs(5));
    // Cut agent 3 off until someone suspects it, then reconnect it at once:
    // it must refute before any suspicion runs out.
    harness.pause(3);
    // A probe round over five peers takes five probe intervals.
    harness.run_until(
        Duration::from_secs(10),
        "10 s of silence must raise a suspicion",
        |harness| {
            (0..6)
                .filter(|&o| o != 3)
                .any(|o| harness.state(o, 3) == Some(MemberState::Suspect))
        },
    );
    harness.resume(3);
    harness.run_for(Duration::from_secs(30));
    for observer in 0..6 {
        assert_eq!(
            harness.state(observer, 3),
            Some(MemberState::Alive),
            "observer {observer}"
        );
    }
    assert!(
        harness.agent(3).incarnation() > 0,
        "refuting takes a new incarnation"
    );
    assert!(harness.agent(3).stats().refutations > 0);
}

#[test]
fn both_sides_of_a_long_partition_merge_again() {
    let mut harness = Mesh::new(6);
    harness.run_for(Duration::from_secs(5));
    // Agents 3..6 fall silent for two minutes: the rest declares them dead,
    // and they, hearing nothing, declare the rest dead.
    for n in 3..6 {
        harness.pause(n);
    }
    harness.run_for(Duration::from_secs(120));
    assert_eq!(harness.state(0, 4), Some(MemberState::Dead));
    for n in 3..6 {
        harness.resume(n);
    }
    harness.run_for(Duration::from_secs(60));
    harness.assert_all_alive(6);
}

/// A member one peer cannot reach directly (its link is cut one way, or
/// slower than the probe timeout) is confirmed through other members'
/// indirect probes, and never even suspected.
#[test]
fn a_member_one_peer_cannot_reach_directly_stays_alive_through_indirect_probes() {
    let slow = Config::lan().probe_timeout * 2;
    for cut in [true, false] {
        let mut harness = Mesh::new(6);
        harness.run_for(Duration::from_secs(5));
        if cut {
            harness.links.cut(0, 3);
        } else {
            harness.links.slow(0, 3, slow);
            harness.links.slow(3, 0, slow);
        }
        harness.run_for(Duration::from_secs(60));
        let prober = harness.agent(0);
        assert!(prober.stats().indirect_probes > 0, "cut {cut}");
        assert_eq!(harness.state(0, 3), Some(MemberState::Alive), "cut {cut}");
        assert_eq!(harness.agent(3).incarnation(), 0, "cut {cut}: refuted");
    }
}

#[test]
fn a_leaving_member_is_marked_left_not_dead() {
    let mut harness = Mesh::new(5);
    harness.run_for(Duration::from_secs(5));
    harness.input(4, |agent, now| agent.leave(now));
    harness.run_for(Duration::from_secs(1));
    harness.pause(4);
    harness.run_for(Duration::from_secs(60));
    for observer in 0..4 {
        assert_eq!(
            harness.state(observer, 4),
            Some(MemberState::Left),
            "observer {observer}"
        );
    }
}

#[test]
fn the_last_other_member_hears_of_a_leave() {
    // With two agents, the leaver's only peer must still get its `Left`:
    // it is the one member the leaver can tell.
    let mut harness = Mesh::new(2);
    harness.run_for(Duration::from_secs(5));
    assert_eq!(harness.state(0, 1), Some(MemberState::Alive));
    harness.input(1, |agent, now| agent.leave(now));
    harness.run_for(Duration::from_millis(100));
    assert_eq!(harness.state(0, 1), Some(MemberState::Left));
}

#[test]
fn garbage_is_counted_and_dropped_without_changing_state() {
    let mut harness = Mesh::new(3);
    harness.run_for(Duration::from_secs(3));
    let now = harness.now();
    let agent = harness.agent_mut(1);
    let before = (
        agent.members().up_count(),
        agent.incarnation(),
        agent.members().root(),
    );
    let mut garbage = vec![wire::PROTOCOL_VERSION];
    for round in 0..10_000u32 {
        garbage.truncate(1);
        garbage.extend(
            round
                .to_le_bytes()
                .iter()
                .cycle()
                .take((round % 97) as usize),
        );
        agent.handle_message(now, id(2), &garbage);
    }
    agent.handle_message(now, id(2), &[]);
    agent.handle_message(
        now,
        id(2),
        &vec![0xFF; fleetmesh_node::limits::MESSAGE_BYTES_MAX + 1],
    );
    let after = (
        agent.members().up_count(),
        agent.incarnation(),
        agent.members().root(),
    );
    assert_eq!(before, after);
    assert!(
        agent.stats().decode_errors >= 9_000,
        "{}",
        agent.stats().decode_errors
    );
}

#[test]
fn claims_about_strangers_do_not_add_members() {
    let mut harness = Mesh::new(2);
    harness.run_for(Duration::from_secs(2));
    let now = harness.now();
    let agent = harness.agent_mut(0);
    let stranger = |state| Update {
        id: id(99),
        incarnation: 5,
        state,
        from: id(1),
        meta: None,
    };
    let gossip = Message::Gossip {
        updates: vec![
            stranger(MemberState::Dead),
            stranger(MemberState::Suspect),
            stranger(MemberState::Alive),
        ],
    };
    agent.handle_message(now, id(1), &wire::encode(&gossip).unwrap());
    assert!(
        agent.member(id(99)).is_none(),
        "only a member's own announcement with metadata adds it"
    );
}

#[test]
fn invalid_metadata_and_changes_after_leaving_are_refused() {
    let mut meta = NodeMeta::default();
    meta.tags.insert("bad key".into(), "x".into());
    let refused = Agent::new(
        Config::lan(),
        identity(1),
        meta.clone(),
        1,
        Instant(0),
        verifier(),
    );
    assert!(matches!(
        refused,
        Err(fleetmesh_node::AgentError::InvalidMeta(_))
    ));
    let mut agent = Agent::new(
        Config::lan(),
        identity(1),
        NodeMeta::default(),
        1,
        Instant(0),
        verifier(),
    )
    .unwrap();
    assert!(agent.set_meta(meta).is_err());
    assert_eq!(
        agent.incarnation(),
        0,
        "a refused change must not announce anything"
    );
    agent.leave(Instant(1));
    assert_eq!(
        agent.set_meta(NodeMeta::default()),
        Err(fleetmesh_node::AgentError::Left)
    );
}

#[test]
fn records_are_only_sent_to_a_peer_that_opened_an_exchange() {
    let mut harness = Mesh::new(3);
    harness.run_for(Duration::from_secs(3));
    let now = harness.now();
    let agent = harness.agent_mut(0);
    let ask = Message::SyncRecords {
        buckets: u64::MAX,
        metas: Vec::new(),
        records: Vec::new(),
        reply: true,
        truncated: false,
    };
    agent.handle_message(now, id(2), &wire::encode(&ask).unwrap());
    assert!(
        transmits(agent).is_empty(),
        "an unsolicited request for records must get no answer"
    );
    assert_eq!(agent.stats().unexpected_messages, 1);
}

#[test]
fn an_accused_member_answers_a_stale_accusation_with_its_current_incarnation() {
    let mut harness = Mesh::new(2);
    harness.run_for(Duration::from_secs(2));
    let now = harness.now();
    let agent = harness.agent_mut(1);
    // Refute once, so that incarnation 0 claims are stale afterwards.
    let accusation = |incarnation| Update {
        id: id(1),
        incarnation,
        state: MemberState::Suspect,
        from: id(0),
        meta: None,
    };
    let gossip = Message::Gossip {
        updates: vec![accusation(0)],
    };
    agent.handle_message(now, id(0), &wire::encode(&gossip).unwrap());
    assert_eq!(agent.incarnation(), 1);
    // Drain everything the refutation queued, as if gossip had spread it.
    for _ in 0..100 {
        agent.handle_timeout(now + Duration::from_secs(60));
        outputs(agent);
    }
    let ping = Message::Ping {
        seq: 9,
        target: id(1),
        updates: vec![accusation(0)],
    };
    agent.handle_message(now, id(0), &wire::encode(&ping).unwrap());
    let ack = (transmits(agent).into_iter())
        .find_map(|transmit| match wire::decode(&transmit.bytes) {
            Ok(Message::Ack { seq: 9, updates }) => Some(updates),
            _ => None,
        })
        .expect("the ping is acked");
    assert!(
        ack.iter().any(|update| update.id == id(1)
            && update.incarnation == 1
            && update.state == MemberState::Alive),
        "the ack must carry the refutation: {ack:?}"
    );
}

#[test]
fn a_difference_larger_than_one_message_is_repaired_in_successive_exchanges() {
    let config = Config {
        sync_records_max: 16,
        ..Config::lan()
    };
    // 200 members over 64 buckets: about three per bucket (the fullest,
    // with these ids, holds 10), so a batch of sixteen records covers only
    // a few buckets, and only batches of whole buckets make the next
    // exchange move on.
    let mut harness = Mesh::with_config(200, config);
    harness.run_for(Duration::from_secs(20));
    harness.add(200);
    // The 201-member table takes dozens of exchanges, one after the other.
    harness.run_for(Duration::from_millis(500));
    assert_eq!(harness.agent(200).members().up_count(), 201);
    assert!(harness.agent(0).stats().sync_truncated > 0);
}

#[test]
fn a_joiner_whose_seed_was_down_joins_later_without_re_announcing_the_fleet() {
    let mut harness = Mesh::new(6);
    harness.run_for(Duration::from_secs(5));
    harness.pause(0);
    harness.add(6);
    harness.run_for(Duration::from_secs(3));
    assert_eq!(
        harness.agent(6).members().len(),
        1,
        "the seed was unreachable"
    );
    harness.resume(0);
    // The reconnect timer retries the seed; that exchange is the bootstrap.
    // Step until it lands, then look at once, before gossip could drain.
    let reconnect = Config::lan().reconnect_interval * 2;
    // Records about members whose certificates the joiner lacks wait one
    // round trip for them.
    harness.run_until(reconnect, "the joiner learns the fleet", |harness| {
        harness.agent(6).members().up_count() == 7
    });
    let joiner = harness.agent(6);
    assert!(
        joiner.queued_broadcasts() <= 1,
        "a bootstrap must not re-gossip the fleet ({} queued)",
        joiner.queued_broadcasts()
    );
}

#[test]
fn a_health_report_reaches_every_agent_and_a_forged_one_reaches_none() {
    use fleetmesh_node::Entry;
    use fleetmesh_node::crdt::{HealthReport, HealthState, Hlc, SignedHealth};
    let mut harness = Mesh::new(12);
    harness.run_for(Duration::from_secs(10));
    harness
        .input(3, |agent, now| {
            agent.report_health(now, "nginx", HealthState::Unhealthy, "exit 1")
        })
        .unwrap();
    // Agent 5 claims a report about agent 3, signed with its own key.
    let forged = SignedHealth::sign(
        HealthReport {
            node: key(3).public(),
            check: "sshd".into(),
            state: HealthState::Unhealthy,
            at: Hlc::default(),
            detail: String::new(),
            cause: None,
        },
        &key(5),
    );
    let refused = harness.input(5, |agent, now| {
        agent.publish(now, Entry::Health(Box::new(forged)))
    });
    assert!(refused.is_err());
    harness.run_for(Duration::from_secs(2));
    for (who, agent) in harness.agents() {
        let health = agent.replicas().health();
        let report = health.get(&key(3).public(), "nginx");
        assert_eq!(
            report.map(|signed| signed.report.state),
            Some(HealthState::Unhealthy),
            "{who} lacks the report"
        );
        assert!(health.get(&key(3).public(), "sshd").is_none());
    }
}

impl Laptop {
    /// A change making document `app` hold `pairs` by `author`, and release
    /// `version` of the result.
    fn write(
        &mut self,
        author: &Keypair,
        pairs: &[(&str, i64)],
        version: u64,
        expires_millis: Option<u64>,
    ) -> Vec<fleetmesh_node::Entry> {
        self.write_doc(author, "app", &content(pairs), version, expires_millis)
    }
}

impl Mesh {
    /// The version of document `app` node `n` runs, and whether it is void.
    fn release_of(&self, n: u64) -> Option<(u64, bool)> {
        self.agent(n)
            .applied_release("app")
            .map(|applied| (applied.version, applied.void))
    }
}

fn content(pairs: &[(&str, i64)]) -> fleetmesh_node::crdt::Value {
    use fleetmesh_node::crdt::Value;
    Value::Map(
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), Value::Int(*value)))
            .collect(),
    )
}

#[test]
fn a_release_reaches_every_agent_which_then_runs_its_content() {
    let (operator, _) = &*FLEET;
    let mut harness = Mesh::new(8);
    harness.run_for(Duration::from_secs(5));
    let mut laptop = Laptop::new();
    harness.publish(2, laptop.write(operator, &[("replicas", 3)], 1, None));
    harness.run_for(Duration::from_secs(3));
    for n in 0..8 {
        assert_eq!(harness.release_of(n), Some((1, false)), "agent {n}");
        let running = harness.agent(n).released_config("app");
        assert_eq!(running, Some(content(&[("replicas", 3)])), "agent {n}");
    }
    // A draft without a release changes nothing agents run.
    let mut draft = laptop.write(operator, &[("replicas", 9)], 2, None);
    draft.pop();
    harness.publish(5, draft);
    harness.run_for(Duration::from_secs(3));
    for n in 0..8 {
        assert_eq!(harness.release_of(n), Some((1, false)));
        let running = harness.agent(n).released_config("app");
        assert_eq!(running, Some(content(&[("replicas", 3)])));
    }
}

#[test]
fn a_restarted_agent_never_goes_back_to_an_older_release() {
    let (operator, _) = &*FLEET;
    let mut laptop = Laptop::new();
    let first = laptop.write(operator, &[("replicas", 3)], 1, None);
    let second = laptop.write(operator, &[("replicas", 4)], 2, None);
    let mut harness = Mesh::new(1);
    harness.publish(0, first.clone());
    harness.publish(0, second);
    let durable = harness.node(0).durable.clone();
    assert!(durable.voter_records.is_empty() && durable.remediations.is_empty());
    assert_eq!(durable.releases["app"].version, 2);
    // A new process with the persisted state is offered only release 1.
    let mut restarted = restarted_agent(harness.now(), &durable);
    for entry in first {
        restarted.publish(harness.now(), entry).unwrap();
    }
    assert_eq!(restarted.applied_release("app").unwrap().version, 2);
    assert_eq!(restarted.stats().releases_applied, 0);
    let persists = outputs(&mut restarted)
        .into_iter()
        .filter(|output| matches!(output, Output::Persist(_)));
    assert_eq!(persists.count(), 0);
}

#[test]
fn an_expired_release_holds_the_agent_in_safe_mode_until_a_newer_one() {
    let (operator, _) = &*FLEET;
    let mut harness = Mesh::new(3);
    harness.run_for(Duration::from_secs(3));
    let expires = harness.now().0 / 1_000_000 + 2_000;
    let mut laptop = Laptop::new();
    harness.publish(
        0,
        laptop.write(operator, &[("replicas", 3)], 1, Some(expires)),
    );
    harness.run_for(Duration::from_secs(1));
    assert!((0..3).all(|n| !harness.agent(n).is_safe_mode(harness.now())));
    harness.run_for(Duration::from_secs(2));
    assert!((0..3).all(|n| harness.agent(n).is_safe_mode(harness.now())));
    harness.publish(1, laptop.write(operator, &[("replicas", 4)], 2, None));
    harness.run_for(Duration::from_secs(2));
    for n in 0..3 {
        let agent = harness.agent(n);
        assert!(!agent.is_safe_mode(harness.now()), "agent {n}");
        assert_eq!(agent.stats().safe_mode_entered, 1);
    }
}

#[test]
fn a_revoked_signers_release_turns_void_and_is_replaced_at_its_version() {
    let (operator, genesis) = &*FLEET;
    let rogue = key(1_000);
    let trust = |version: u64, revoked: &[&Keypair]| {
        let mut doc = genesis.doc.clone();
        doc.version = version;
        if revoked.is_empty() {
            doc.keys
                .insert(rogue.public(), BTreeSet::from([Role::Config]));
        }
        doc.revoked = revoked.iter().map(|key| key.public()).collect();
        SignedTrust::sign(doc, &[operator])
    };
    let mut harness = Mesh::new(4);
    harness.run_for(Duration::from_secs(3));
    let mut laptop = Laptop::new();
    let mut rogue_laptop = Laptop::new();
    harness.publish(0, vec![laptop.trust(trust(2, &[]))]);
    rogue_laptop.trust(trust(2, &[]));
    harness.publish(
        1,
        rogue_laptop.write(&rogue, &[("replicas", 1_000)], 1, None),
    );
    harness.run_for(Duration::from_secs(2));
    for n in 0..4 {
        assert_eq!(harness.release_of(n), Some((1, false)), "agent {n}");
    }
    // The root revokes the key: its release stops counting everywhere.
    harness.publish(2, vec![laptop.trust(trust(3, &[&rogue]))]);
    harness.run_for(Duration::from_secs(2));
    for n in 0..4 {
        let agent = harness.agent(n);
        assert_eq!(harness.release_of(n), Some((1, true)), "agent {n}");
        assert!(agent.is_safe_mode(harness.now()));
        assert_eq!(agent.released_config("app"), None);
        assert_eq!(agent.stats().releases_voided, 1);
    }
    // The other operator's release of the same version replaces it.
    harness.publish(3, laptop.write(operator, &[("replicas", 3)], 1, None));
    harness.run_for(Duration::from_secs(2));
    for n in 0..4 {
        let agent = harness.agent(n);
        assert_eq!(harness.release_of(n), Some((1, false)), "agent {n}");
        assert!(!agent.is_safe_mode(harness.now()));
        assert_eq!(
            agent.released_config("app"),
            Some(content(&[("replicas", 3)]))
        );
    }
}

#[test]
fn an_entry_dated_far_ahead_is_refused_until_the_clock_catches_up() {
    use fleetmesh_node::Entry;
    use fleetmesh_node::crdt::{HealthReport, HealthState, Hlc, SignedHealth};
    use fleetmesh_node::limits::AHEAD_MAX_MILLIS;
    let mut harness = Mesh::new(2);
    harness.run_for(Duration::from_secs(2));
    let now_millis = harness.now().0 / 1_000_000;
    let report = |ahead_millis: u64| {
        let report = HealthReport {
            node: key(1).public(),
            check: "nginx".into(),
            state: HealthState::Healthy,
            at: Hlc {
                millis: now_millis + ahead_millis,
                counter: 0,
            },
            detail: String::new(),
            cause: None,
        };
        Entry::Health(Box::new(SignedHealth::sign(report, &key(1))))
    };
    let now = harness.now();
    let agent = harness.agent_mut(0);
    assert!(
        agent
            .publish(now, report(AHEAD_MAX_MILLIS + 1_000))
            .is_err()
    );
    assert_eq!(agent.replicas().stats().future_dated, 1);
    assert!(agent.publish(now, report(AHEAD_MAX_MILLIS / 2)).is_ok());
    harness.run_for(Duration::from_millis(AHEAD_MAX_MILLIS));
    let now = harness.now();
    let agent = harness.agent_mut(0);
    assert!(agent.publish(now, report(AHEAD_MAX_MILLIS + 1_000)).is_ok());
}

/// A fetch whose request or answer is lost is asked of the next peer that
/// announced the entry, once its deadline passes, and given up when no
/// announcer is left.
#[test]
fn unanswered_fetches_are_asked_of_the_next_announcer() {
    use fleetmesh_node::crdt::Digest;
    use fleetmesh_node::wire::StateMessage;
    use fleetmesh_node::{Kind, Replicas};
    const TIMEOUT_MILLIS: u64 = 500;
    let identity = identity(1);
    let trust = identity
        .verify(&verifier(), 0)
        .expect("the test identity verifies");
    let mut replicas = Replicas::new(trust, identity.cert, verifier(), 0, TIMEOUT_MILLIS);
    let key = Digest([7; 32]);
    let announce = || StateMessage::Push {
        entries: Vec::new(),
        announces: vec![(Kind::Config, key)],
    };
    let want = StateMessage::Want {
        kind: Kind::Config,
        keys: vec![key],
    };
    let mut out = Vec::new();
    replicas.handle(announce(), id(2), 0, &mut out);
    assert_eq!(out, vec![want.clone()], "the first announcer is asked");
    for peer in [3, 4, 3] {
        out.clear();
        replicas.handle(announce(), id(peer), 100, &mut out);
        assert!(out.is_empty(), "one fetch at a time");
    }
    assert!(replicas.retry_fetches(TIMEOUT_MILLIS - 1).is_empty());
    assert_eq!(
        replicas.retry_fetches(TIMEOUT_MILLIS),
        vec![(id(3), want.clone())]
    );
    assert_eq!(
        replicas.retry_fetches(2 * TIMEOUT_MILLIS),
        vec![(id(4), want.clone())]
    );
    assert!(replicas.retry_fetches(3 * TIMEOUT_MILLIS).is_empty());
    // Given up: the next announcement starts a new fetch.
    out.clear();
    replicas.handle(announce(), id(5), 3 * TIMEOUT_MILLIS, &mut out);
    assert_eq!(out, vec![want]);
}

#[test]
fn a_restarted_agent_takes_its_replicas_back_from_its_snapshot() {
    use fleetmesh_node::Durable;
    let (operator, _) = &*FLEET;
    let mut laptop = Laptop::new();
    let mut harness = Mesh::new(3);
    harness.run_for(Duration::from_secs(5));
    harness.publish(1, laptop.write(operator, &[("replicas", 5)], 1, None));
    harness.run_for(Duration::from_secs(3));
    let agent = harness.agent(0);
    let snapshot = agent.save_replicas().unwrap();
    let durable = harness.node(0).durable.clone();
    let roots = agent.saved_roots();
    // A new process, alone: no peer to catch up from.
    let restart = |durable: &Durable| restarted_agent(harness.now(), durable);
    let mut restarted = restart(&durable);
    assert_eq!(restarted.released_config("app"), None);
    let loaded = restarted.load_replicas(harness.now(), &snapshot).unwrap();
    assert!(loaded.merged >= 4, "{loaded:?}");
    assert_eq!(loaded.refused, 0, "{loaded:?}");
    assert_eq!(restarted.saved_roots(), roots);
    assert_eq!(
        restarted.released_config("app"),
        Some(content(&[("replicas", 5)]))
    );
    // Nothing loaded is news to push to the fleet.
    assert_eq!(restarted.replicas().push_len(), 0);

    // A snapshot altered on disk: the content decodes, but what was
    // changed fails its signature and is left out.
    let needle = b"replicas";
    let at = snapshot
        .windows(needle.len())
        .position(|window| window == needle)
        .expect("the config change is in the snapshot");
    let mut altered = snapshot.clone();
    altered[at] ^= 0x20;
    let mut restarted = restart(&durable);
    match restarted.load_replicas(harness.now(), &altered) {
        Ok(loaded) => {
            assert!(loaded.refused >= 1, "{loaded:?}");
            assert_eq!(restarted.released_config("app"), None);
        }
        Err(error) => panic!("a flipped letter still decodes: {error}"),
    }
    // One that does not decode changes nothing.
    let mut restarted = restart(&durable);
    assert!(
        restarted
            .load_replicas(harness.now(), &snapshot[..snapshot.len() / 2])
            .is_err()
    );
    assert_eq!(restarted.released_config("app"), None);
}

#[test]
fn a_lone_agent_restarts_with_what_it_journaled_since_its_snapshot() {
    use fleetmesh_node::Entry;
    let (operator, _) = &*FLEET;
    let mut laptop = Laptop::new();
    let first = laptop.write(operator, &[("replicas", 1)], 1, None);
    let second = laptop.write(operator, &[("replicas", 2)], 2, None);
    let third = laptop.write(operator, &[("replicas", 3)], 3, None);
    let fourth = laptop.write(operator, &[("replicas", 4)], 4, None);
    let mut harness = Mesh::new(1);
    let now = harness.now();
    let journal = |harness: &mut Mesh| std::mem::take(&mut harness.node_mut(0).journal);
    harness.publish(0, first.clone());
    assert_eq!(
        journal(&mut harness),
        first,
        "what merged is handed out to journal"
    );
    // The change of release 4 comes before its parent (release 3's
    // change): it waits, and is journaled as it waits.
    harness.publish(0, vec![fourth[0].clone()]);
    assert_eq!(journal(&mut harness), vec![fourth[0].clone()]);
    // The snapshot empties the journal, as the runtime does.
    let snapshot = harness.agent(0).save_replicas().unwrap();
    let rest = second.iter().chain(&third).chain(&fourth[1..]);
    harness.publish(0, rest.cloned().collect());
    assert_eq!(harness.agent(0).applied_release("app").unwrap().version, 4);
    let since: Vec<Entry> = journal(&mut harness);
    assert_eq!(since.len(), 5, "changes 2 and 3, releases 2 to 4");
    let durable = harness.node(0).durable.clone();
    assert_eq!(durable.releases["app"].version, 4);

    // Killed now, restarted alone: the snapshot and the journal hold
    // release 4 and every change it names, the waiting one included.
    let mut restarted = restarted_agent(now, &durable);
    restarted.load_replicas(now, &snapshot).unwrap();
    let loaded = restarted.load_journal(now, since.clone());
    assert_eq!(loaded.refused, 0, "{loaded:?}");
    assert_eq!(restarted.applied_release("app").unwrap().version, 4);
    assert_eq!(
        restarted.released_config("app"),
        Some(content(&[("replicas", 4)]))
    );
    let journaled = outputs(&mut restarted)
        .into_iter()
        .filter(|output| matches!(output, Output::Journal(_)));
    assert_eq!(
        journaled.count(),
        0,
        "nothing taken back is journaled again"
    );
    assert!(!restarted.is_safe_mode(now));

    // Without the journal the release runs without its changes: what the
    // journal is for.
    let mut snapshot_only = restarted_agent(now, &durable);
    snapshot_only.load_replicas(now, &snapshot).unwrap();
    assert_eq!(snapshot_only.released_config("app"), None);
}

/// Agent 0 as a new process at `now`, handed what it persisted.
fn restarted_agent(now: Instant, durable: &fleetmesh_node::Durable) -> Agent {
    let mut agent = Agent::new(
        Config::lan(),
        identity(0),
        NodeMeta::default(),
        7,
        now,
        verifier(),
    )
    .unwrap();
    agent.restore(now, durable.clone());
    agent
}

/// The inputs of `shared/repro/automerge-panics.md`, which killed every
/// agent they reached: one from an admitted peer on the wire (it panicked
/// automerge's parser before any signature check), one signed by the
/// fleet's config key and published (it panicked automerge's apply).
#[test]
fn config_changes_that_panic_automerge_stop_no_agent_and_every_replica_agrees() {
    use fleetmesh_node::Entry;
    use fleetmesh_node::crdt::config::hostile;
    use fleetmesh_node::crdt::{ConfigEntry, Replica, SignedChange};
    use fleetmesh_node::wire::StateMessage;
    let (operator, _) = &*FLEET;
    let mut harness = Mesh::new(4);
    harness.run_for(Duration::from_secs(3));
    let mut laptop = Laptop::new();
    harness.publish(3, laptop.write(operator, &[("replicas", 3)], 1, None));
    harness.run_for(Duration::from_secs(3));

    let unparsable = hostile::unparsable_change("app", 1, operator.public());
    let entries = vec![Entry::Config(Box::new(ConfigEntry::Change(unparsable)))];
    let bytes = wire::encode(&Message::State(StateMessage::Entries { entries })).unwrap();
    let now = harness.now();
    let agent = harness.agent_mut(0);
    let malformed = agent.replicas().stats().malformed;
    agent.handle_message(now, id(1), &bytes);
    assert_eq!(agent.replicas().stats().malformed, malformed + 1);
    assert!(agent.replicas().config().quarantined().next().is_none());

    let bytes = hostile::apply_panic(&operator.public());
    let bomb = SignedChange::sign("boom", 1, operator, bytes).unwrap();
    let agent = harness.agent_mut(2);
    assert!(
        agent
            .publish(now, Entry::Config(Box::new(ConfigEntry::Change(bomb))))
            .is_err()
    );
    assert!(agent.replicas().stats().automerge_panics >= 1);
    harness.run_for(Duration::from_secs(5));
    let versions = |n: u64| {
        let mut versions = harness.agent(n).replicas().config().versions();
        versions.sort();
        versions
    };
    for n in 0..4 {
        let config = harness.agent(n).replicas().config();
        assert_eq!(
            config.quarantined().copied().collect::<Vec<_>>(),
            vec![operator.public()],
            "agent {n}"
        );
        assert_eq!(versions(n), versions(0), "agent {n}");
        assert_eq!(harness.release_of(n), Some((1, false)), "agent {n}");
    }
}

#[test]
fn a_peer_past_its_verification_budget_is_dropped_until_it_refills() {
    use fleetmesh_node::Entry;
    use fleetmesh_node::VerifyBudget;
    use fleetmesh_node::crdt::{HealthReport, HealthState, Hlc, SignedHealth};
    use fleetmesh_node::wire::StateMessage;
    let config = Config {
        verify_per_peer: VerifyBudget::new(1, 3),
        verify_unadmitted: VerifyBudget::new(1, 2),
        ..Config::lan()
    };
    let now = Instant(1_000_000_000);
    let mut agent =
        Agent::new(config, identity(0), NodeMeta::default(), 0, now, verifier()).expect("valid");
    let send = |agent: &mut Agent, at: Instant, from: u64, message: &Message| {
        let bytes = wire::encode(message).expect("encodes");
        agent.handle_message(at, id(from), &bytes);
    };
    // Three strangers introduce themselves at once: their certificates
    // share one bucket of two checks, whatever keys they hold.
    for n in 1..=3 {
        let cert = Box::new(identity(n).cert);
        send(&mut agent, now, n, &Message::Hello { cert, reply: false });
    }
    let admits = |agent: &Agent, n: u64| agent.replicas().certs().admits(id(n), 1_000);
    assert!(admits(&agent, 1) && admits(&agent, 2) && !admits(&agent, 3));
    assert_eq!(agent.stats().verify_budget_exceeded, 1);

    // Admitted node 1 sends five fresh reports, one a message: its own
    // bucket holds three verifications.
    let report = |check: usize| {
        let report = HealthReport {
            node: key(1).public(),
            check: format!("check-{check}"),
            state: HealthState::Healthy,
            at: Hlc::default(),
            detail: String::new(),
            cause: None,
        };
        let entries = vec![Entry::Health(Box::new(SignedHealth::sign(report, &key(1))))];
        Message::State(StateMessage::Entries { entries })
    };
    for check in 0..5 {
        send(&mut agent, now, 1, &report(check));
    }
    let held = |agent: &Agent| {
        (0..6)
            .filter(|check| {
                let check = format!("check-{check}");
                agent
                    .replicas()
                    .health()
                    .get(&key(1).public(), &check)
                    .is_some()
            })
            .count()
    };
    assert_eq!(held(&agent), 3);
    assert_eq!(agent.stats().verify_budget_exceeded, 3);
    // A peer in debt is still probed and answered: a ping verifies nothing.
    outputs(&mut agent);
    let ping = Message::Ping {
        seq: 9,
        target: id(0),
        updates: Vec::new(),
    };
    send(&mut agent, now, 1, &ping);
    assert!(
        transmits(&mut agent)
            .iter()
            .any(|transmit| transmit.to == id(1)),
        "the ping is acknowledged"
    );
    // A second's refill pays for one more verification.
    let later = now + Duration::from_secs(1);
    send(&mut agent, later, 1, &report(5));
    assert_eq!(held(&agent), 4);
    send(&mut agent, later, 1, &report(4));
    assert_eq!(held(&agent), 4);
    assert_eq!(agent.stats().verify_budget_exceeded, 4);
}

/// The drain order is the core's: whatever inputs queued them, and in
/// whatever order, every entry to journal and every state to persist comes
/// out before the first message to send. Here a voter's grant is queued
/// before the release that a later message brings, and still leaves after
/// it is durable.
#[test]
fn durable_state_comes_out_before_any_transmit_whenever_it_was_queued() {
    use fleetmesh_node::crdt::GrantRequest;
    use fleetmesh_node::wire::LeaseMessage;
    use fleetmesh_node::wire::StateMessage;
    let (operator, _) = &*FLEET;
    let mut harness = Mesh::new(3);
    harness.run_for(Duration::from_secs(3));
    let now = harness.now();
    let request = LeaseMessage::Request {
        attempt: 1,
        request: GrantRequest {
            scope: "singleton:backup".into(),
            epoch: 1,
            holder: key(1).public(),
            ttl_millis: 10_000,
        },
    };
    let entries = Laptop::new().write(operator, &[("replicas", 3)], 1, None);
    let agent = harness.agent_mut(0);
    agent.handle_message(now, id(1), &wire::encode(&Message::Lease(request)).unwrap());
    let state = Message::State(StateMessage::Entries { entries });
    agent.handle_message(now, id(2), &wire::encode(&state).unwrap());
    let outputs = outputs(agent);
    let count = |kind: fn(&Output) -> bool| outputs.iter().filter(|output| kind(output)).count();
    assert_eq!(count(|output| matches!(output, Output::Journal(_))), 2);
    assert_eq!(count(|output| matches!(output, Output::Persist(_))), 2);
    let first_transmit = (outputs.iter())
        .position(|output| matches!(output, Output::Transmit(_)))
        .expect("the grant is sent");
    assert!(
        outputs[first_transmit..]
            .iter()
            .all(|output| !output.is_durable()),
        "{outputs:#?}"
    );
}
