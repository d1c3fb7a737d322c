use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::hlc::Hlc;
use crate::keys::{Keypair, PublicKey};
use crate::replica::{Rejected, Replica};
use crate::testing::{Fleet, Pooled, check_crdt_laws};
use crate::trust::tests::key;

fn voters() -> Vec<Keypair> {
    (10..15).map(key).collect()
}

fn at(millis: u64) -> Hlc {
    Hlc { millis, counter: 0 }
}

fn grant(voter: &Keypair, scope: &str, epoch: u64, holder: &Keypair, ttl_millis: u64) -> Grant {
    let body = GrantBody {
        scope: scope.into(),
        epoch,
        holder: holder.public(),
        ttl_millis,
        voter: voter.public(),
        issued: at(0),
    };
    Grant::sign(body, voter)
}

/// A quorum lease over `voter_set`, with grants from `granting`.
fn quorum(
    scope: &str,
    epoch: u64,
    holder: &Keypair,
    granted_at: u64,
    voter_set: &[Keypair],
    granting: &[&Keypair],
) -> SignedLease {
    let lease = Lease {
        scope: scope.into(),
        epoch,
        holder: holder.public(),
        granted_at: at(granted_at),
        ttl_millis: 1_000,
        kind: LeaseKind::Quorum {
            voters: voter_set.iter().map(Keypair::public).collect(),
            grants: granting
                .iter()
                .map(|voter| grant(voter, scope, epoch, holder, 1_000))
                .collect(),
        },
    };
    SignedLease::sign(lease, holder)
}

fn component(scope: &str, epoch: u64, holder: &Keypair, granted_at: u64) -> SignedLease {
    let lease = Lease {
        scope: scope.into(),
        epoch,
        holder: holder.public(),
        granted_at: at(granted_at),
        ttl_millis: 500,
        kind: LeaseKind::Component,
    };
    SignedLease::sign(lease, holder)
}

struct World {
    fleet: Fleet,
    voters: Vec<Keypair>,
    first: Keypair,
    second: Keypair,
    outsider: Keypair,
}

fn world() -> World {
    let voters = voters();
    let (first, second, outsider) = (key(20), key(21), key(30));
    let mut admitted: Vec<&Keypair> = voters.iter().collect();
    admitted.extend([&first, &second]);
    World {
        fleet: Fleet::new(&admitted),
        voters,
        first,
        second,
        outsider,
    }
}

/// Valid leases for two scopes (epochs, renewals, ties) and invalid ones
/// that would win if they were let in.
fn pool(world: &World) -> Vec<Pooled<SignedLease>> {
    let (v, first, second) = (&world.voters, &world.first, &world.second);
    let majority_a = [&v[0], &v[1], &v[2]];
    let majority_b = [&v[2], &v[3], &v[4]];
    let mut forged = quorum("s1", 9, first, 100, v, &majority_a);
    forged.signature = component("s1", 9, second, 100).signature;
    let mut with_outsider: Vec<Keypair> = v[..4].to_vec();
    with_outsider.push(world.outsider.clone());
    let mut wrong_epoch = quorum("s1", 9, first, 100, v, &majority_a);
    if let LeaseKind::Quorum { grants, .. } = &mut wrong_epoch.lease.kind {
        grants[0] = grant(&v[0], "s1", 8, first, 1_000);
    }
    let wrong_epoch = SignedLease::sign(wrong_epoch.lease, first);
    vec![
        (quorum("s1", 1, first, 100, v, &majority_a), true),
        (quorum("s1", 1, first, 200, v, &majority_a), true),
        (quorum("s1", 1, first, 300, v, &majority_b), true),
        (quorum("s1", 2, second, 150, v, &majority_b), true),
        (component("s2", 1, first, 100), true),
        (component("s2", 1, second, 100), true),
        (component("s2", 3, second, 50), true),
        (
            quorum("s3", 4, second, 10, v, &v.iter().collect::<Vec<_>>()),
            true,
        ),
        // No strict majority.
        (quorum("s1", 9, first, 100, v, &majority_a[..2]), false),
        // A repeated voter makes up the majority.
        (
            quorum("s1", 9, first, 100, v, &[&v[0], &v[0], &v[1]]),
            false,
        ),
        (forged, false),
        (
            quorum(
                "s1",
                9,
                first,
                100,
                &with_outsider,
                &[&v[0], &v[1], &world.outsider],
            ),
            false,
        ),
        (component("s1", 9, &world.outsider, 100), false),
        (wrong_epoch, false),
        (component(&"x".repeat(65), 9, first, 100), false),
    ]
}

#[test]
fn lease_table_is_a_crdt_where_the_highest_epoch_wins() {
    let world = world();
    let pool = pool(&world);
    let table = check_crdt_laws(&world.fleet, &LeaseTable::new(), &pool);
    assert_eq!(table.len(), 3);
    assert_eq!(table.max_epoch("s1"), Some(2));
    assert_eq!(table.get("s1").unwrap().lease.holder, world.second.public());
    assert_eq!(table.max_epoch("s2"), Some(3));
    assert_eq!(table.max_epoch("s3"), Some(4));
    assert_eq!(table.holder_at("s1", 1_149), Some(world.second.public()));
    assert_eq!(table.holder_at("s1", 1_150), None);
    assert_eq!(table.expires_at_millis("s2"), Some(550));
}

#[test]
fn scope_bound_evicts_deterministically() {
    let world = world();
    let pool = pool(&world);
    let table = check_crdt_laws(&world.fleet, &LeaseTable::with_max_scopes(2), &pool);
    assert_eq!(table.len(), 2);
    // Lookups by scope name see exactly the scopes kept: the evicted one
    // answers nothing, though its lease was merged once.
    let kept: Vec<_> = table
        .iter()
        .map(|signed| signed.lease.scope.clone())
        .collect();
    assert_eq!(kept.len(), 2);
    for scope in ["s1", "s2", "s3"] {
        assert_eq!(
            table.get(scope).is_some(),
            kept.iter().any(|held| held == scope),
            "{scope}"
        );
    }
}

#[test]
fn renewals_replace_and_never_grow_the_table() {
    let world = world();
    let majority = [&world.voters[0], &world.voters[1], &world.voters[2]];
    let mut table = LeaseTable::new();
    world.fleet.with_ctx(0, |ctx| {
        for granted_at in [100, 300, 200, 500, 400] {
            let renewal = quorum("s1", 7, &world.first, granted_at, &world.voters, &majority);
            table.merge(renewal, ctx).unwrap();
            assert_eq!(table.len(), 1);
            assert_eq!(table.versions().len(), 1);
        }
    });
    assert_eq!(table.get("s1").unwrap().lease.granted_at, at(500));
}

#[test]
fn revoking_a_holder_or_a_granting_voter_drops_the_lease() {
    let mut world = world();
    let v = &world.voters;
    let leases = [
        quorum("s1", 1, &world.first, 100, v, &[&v[0], &v[1], &v[2]]),
        quorum("s2", 1, &world.first, 100, v, &[&v[2], &v[3], &v[4]]),
        component("s3", 1, &world.second, 100),
    ];
    let mut table = LeaseTable::new();
    world.fleet.with_ctx(0, |ctx| {
        for result in table.merge_batch(leases.to_vec(), ctx) {
            result.unwrap();
        }
    });
    world
        .fleet
        .revoke(&[world.voters[0].public(), world.second.public()]);
    world.fleet.with_ctx(0, |ctx| {
        table.trust_changed(ctx);
        assert!(matches!(
            table.merge(leases[0].clone(), ctx),
            Err(Rejected::Unauthorized(_))
        ));
    });
    assert_eq!(
        table
            .iter()
            .map(|signed| signed.lease.scope.as_str())
            .collect::<Vec<_>>(),
        ["s2"]
    );
    assert!(table.get("s1").is_none() && table.get("s3").is_none());
    assert_eq!(table.max_epoch("s2"), Some(1));
}

fn request(scope: &str, epoch: u64, holder: &Keypair, ttl_millis: u64) -> GrantRequest {
    GrantRequest {
        scope: scope.into(),
        epoch,
        holder: holder.public(),
        ttl_millis,
    }
}

#[test]
fn voter_refusals_name_the_standing_grant() {
    let (first, second) = (key(20), key(21));
    let mut voter = Voter::new();
    let granted = voter
        .decide(request("s", 3, &first, 100), 1_000, 50)
        .unwrap();
    assert!(!granted.renewal);
    let current = Current {
        epoch: 3,
        holder: first.public(),
        new_epoch_at_local_millis: 1_150,
    };
    assert_eq!(
        voter.decide(request("s", 3, &second, 100), 1_010, 50),
        Err(Refusal::HeldByOther { current })
    );
    assert_eq!(
        voter.decide(request("s", 2, &second, 100), 1_010, 50),
        Err(Refusal::StaleEpoch {
            requested: 2,
            current
        })
    );
    assert_eq!(
        voter.decide(request("s", 4, &second, 100), 1_149, 50),
        Err(Refusal::TooEarly { current })
    );
    // A shorter renewal keeps the promise already made.
    let renewed = voter
        .decide(request("s", 3, &first, 10), 1_050, 50)
        .unwrap();
    assert!(renewed.renewal);
    assert_eq!(renewed.record.new_epoch_at_local_millis(50), 1_150);
    assert!(
        voter
            .decide(request("s", 4, &second, 100), 1_150, 50)
            .is_ok()
    );
    assert_eq!(
        voter.decide(request("", 1, &first, 1), 0, 0),
        Err(Refusal::BadScope)
    );
}

#[test]
fn a_restored_voter_waits_a_full_ttl_from_its_restart() {
    let (first, second) = (key(20), key(21));
    let mut voter = Voter::new();
    voter
        .decide(request("s", 1, &first, 100), 1_000, 50)
        .unwrap();
    // The clock jumped back across the restart: the saved reading is moot.
    let mut restored = Voter::restore(voter.records().clone(), 10);
    assert!(matches!(
        restored.decide(request("s", 2, &second, 100), 159, 50),
        Err(Refusal::TooEarly { .. })
    ));
    assert!(
        restored
            .decide(request("s", 2, &second, 100), 160, 50)
            .is_ok()
    );
}

#[test]
fn a_released_grant_frees_the_voter_but_keeps_the_epoch() {
    let (first, second) = (key(20), key(21));
    let mut voter = Voter::new();
    voter
        .decide(request("s", 3, &first, 100), 1_000, 50)
        .unwrap();
    // Only the holder's own grant of that epoch can be released.
    assert!(!voter.release("s", 3, second.public(), 1_010, 50));
    assert!(!voter.release("s", 2, first.public(), 1_010, 50));
    assert!(matches!(
        voter.decide(request("s", 4, &second, 100), 1_010, 50),
        Err(Refusal::TooEarly { .. })
    ));
    assert!(voter.release("s", 3, first.public(), 1_010, 50));
    assert!(matches!(
        voter.decide(request("s", 3, &second, 100), 1_010, 50),
        Err(Refusal::HeldByOther { .. })
    ));
    assert!(
        voter
            .decide(request("s", 4, &second, 100), 1_010, 50)
            .is_ok()
    );
}

#[test]
fn voter_refuses_scopes_past_its_bound() {
    let holder = key(20);
    let records = (0..lease_limits::SCOPES_MAX).map(|n| {
        let record = VoterRecord {
            epoch: 1,
            holder: holder.public(),
            ttl_millis: 1,
            granted_local_millis: 0,
        };
        (format!("s{n}"), record)
    });
    let mut voter = Voter::restore(records, 0);
    assert_eq!(
        voter.decide(request("new", 1, &holder, 1), 0, 0),
        Err(Refusal::TooManyScopes)
    );
    assert!(voter.decide(request("s1", 2, &holder, 1), 1, 0).is_ok());
}

/// One step of a voter's life: a request or a restart, after local time
/// advanced.
#[derive(Clone, Debug)]
enum Step {
    Ask {
        candidate: usize,
        epoch: u64,
        ttl_millis: u64,
    },
    Restart,
}

fn step() -> impl Strategy<Value = (u64, Step)> {
    let ask =
        (0usize..3, 0u64..6, 1u64..200).prop_map(|(candidate, epoch, ttl_millis)| Step::Ask {
            candidate,
            epoch,
            ttl_millis,
        });
    (0u64..120, prop_oneof![8 => ask, 1 => Just(Step::Restart)])
}

const LOCK_DELAY_MILLIS: u64 = 30;

proptest! {
    /// Whatever the interleaving, a voter grants one holder per epoch, never
    /// goes back an epoch, and opens a new epoch only after every earlier
    /// promise plus the lock-delay has run out on its clock.
    #[test]
    fn a_voter_grants_one_holder_per_epoch_and_waits_out_promises(
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let candidates: Vec<PublicKey> = (20..23).map(|n| key(n).public()).collect();
        let mut voter = Voter::new();
        let mut now = 0u64;
        let mut holders: BTreeMap<u64, PublicKey> = BTreeMap::new();
        let mut promised_until = 0u64;
        for (advance, step) in steps {
            now += advance;
            let Step::Ask { candidate, epoch, ttl_millis } = step else {
                voter = Voter::restore(voter.records().clone(), now);
                promised_until = promised_until.max(
                    voter.records().values().map(|r| r.granted_local_millis + r.ttl_millis).max().unwrap_or(0),
                );
                continue;
            };
            let holder = candidates[candidate];
            let request = GrantRequest { scope: "s".into(), epoch, holder, ttl_millis };
            let Ok(decision) = voter.decide(request, now, LOCK_DELAY_MILLIS) else {
                continue;
            };
            prop_assert_eq!(*holders.entry(epoch).or_insert(holder), holder);
            prop_assert!(holders.keys().all(|&granted| granted <= epoch));
            if !decision.renewal {
                prop_assert!(holders.len() == 1 || now >= promised_until + LOCK_DELAY_MILLIS);
            }
            promised_until = promised_until.max(now + ttl_millis);
        }
    }

    /// Five voters with their own clocks and restarts, two candidates racing
    /// for epochs: no epoch ever has two holders with a strict majority.
    #[test]
    fn two_candidates_never_both_hold_a_majority_for_one_epoch(
        steps in proptest::collection::vec((0usize..5, 0usize..2, 1u64..5, 0u64..80, 0u8..20), 1..200),
    ) {
        let candidates = [key(20).public(), key(21).public()];
        let mut voters: Vec<Voter> = (0..5).map(|_| Voter::new()).collect();
        let mut clocks = [0u64; 5];
        let mut granted: BTreeMap<(u64, PublicKey), BTreeSet<usize>> = BTreeMap::new();
        for (voter, candidate, epoch, advance, restart) in steps {
            clocks[voter] += advance;
            if restart == 0 {
                voters[voter] = Voter::restore(voters[voter].records().clone(), clocks[voter]);
            }
            let request = GrantRequest { scope: "s".into(), epoch, holder: candidates[candidate], ttl_millis: 50 };
            if voters[voter].decide(request, clocks[voter], LOCK_DELAY_MILLIS).is_ok() {
                granted.entry((epoch, candidates[candidate])).or_default().insert(voter);
            }
        }
        for epoch in 1..5 {
            let majorities = candidates
                .iter()
                .filter(|holder| granted.get(&(epoch, **holder)).is_some_and(|voters| voters.len() >= 3))
                .count();
            prop_assert!(majorities <= 1);
        }
    }
}
