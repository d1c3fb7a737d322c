//! The seed run and the seed corpora: what every target starts from.

use std::collections::BTreeSet;

use fleetmesh_fuzzing::corpus::{self, kind_of};
use fleetmesh_fuzzing::fixture::{fixture, kinds};
use fleetmesh_fuzzing::{TARGETS, smoke};
use fleetmesh_node::Kind;
use fleetmesh_node::wire;

#[test]
fn the_seed_run_passes_and_carries_every_kind_of_message_and_entry() {
    let fixture = fixture();
    assert!(
        fixture.passed,
        "the seed fleet scenario fails: run `fleetmesh sim run fuzzing/seed-fleet.toml`"
    );
    let messages: BTreeSet<&str> = fixture
        .messages
        .iter()
        .filter_map(|bytes| wire::decode(bytes).ok())
        .map(|message| kind_of(&message))
        .collect();
    // Nack and PingReq need a failing probe, which a healthy run rarely
    // has; every other kind must be there.
    for kind in [
        "ping",
        "ack",
        "gossip",
        "sync-root",
        "sync-buckets",
        "sync-records",
        "hello",
        "lease",
        "state-roots",
        "state-buckets",
        "state-versions",
        "state-want",
        "state-entries",
        "state-push",
    ] {
        assert!(messages.contains(kind), "no {kind} message in {messages:?}");
    }
    assert_eq!(kinds(&fixture.entries), Kind::ALL.into_iter().collect());
    assert_eq!(kinds(&fixture.state), Kind::SAVED.into_iter().collect());
    assert!(
        fixture.trust.head().doc.version > 1,
        "the revocation is in the trust chain"
    );
}

#[test]
fn every_target_has_seeds() {
    for target in &TARGETS {
        assert!(
            !corpus::seeds(target.name).is_empty(),
            "{} has no seeds",
            target.name
        );
    }
}

#[test]
fn every_target_runs_its_seeds_without_a_panic() {
    for target in &TARGETS {
        for (index, seed) in corpus::seeds(target.name).iter().enumerate() {
            if let Err(message) = smoke::replay(target, seed) {
                panic!("{} panicked on seed {index}: {message}", target.name);
            }
        }
    }
}
