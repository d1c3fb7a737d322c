//! Emergency stops (issue 17 item 5, `docs/remediation.md`): an operator
//! key with the `stop` role signs a pause of all automation, fleet-wide or
//! for the agents whose tags carry a selector, until an expiry; a later
//! resume from a `stop` key lifts it early.
//!
//! Stops travel as ledger records ([`RecordKind::Stop`],
//! [`RecordKind::Resume`]) so they replicate, persist and verify like an
//! approval does; they are kept under a bound of their own
//! ([`stop_limits::STOPS_MAX`]) so a storm of ordinary records never evicts
//! one. Whether a stop holds is a pure function of the records held and
//! the time: an agent that stops hearing from the fleet keeps honouring
//! the stops it holds until they expire.

use std::collections::BTreeMap;

use crate::hlc::Hlc;
use crate::keys::{Digest, Keypair, PublicKey};
use crate::ledger::{IdempotencyKey, Ledger, LedgerRecord, RecordKind, SignedRecord, stop_limits};
use crate::membership::NodeMeta;

/// What a stop or resume record states, read back from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveStop {
    /// The stop record's digest (its id in `remediations`).
    pub digest: Digest,
    /// The `stop` key that signed it.
    pub stopper: PublicKey,
    /// Tags an agent must carry to be stopped; empty: every agent.
    pub selector: BTreeMap<String, String>,
    /// When it was signed, on the operator's clock.
    pub at: Hlc,
    /// When it lapses, in HLC milliseconds.
    pub expires_millis: u64,
    /// Why, for the operators who read `remediations`.
    pub reason: String,
}

impl ActiveStop {
    /// Whether the stop applies to an agent with `meta`.
    pub fn applies_to(&self, meta: &NodeMeta) -> bool {
        meta.matches(&self.selector)
    }
}

/// The stops in force at `now_millis`, oldest first: unexpired, and not
/// lifted by a resume signed after them whose selector is theirs or empty.
pub fn active_stops(ledger: &Ledger, now_millis: u64) -> Vec<ActiveStop> {
    let mut stops = Vec::new();
    let mut resumes: Vec<(Hlc, &BTreeMap<String, String>)> = Vec::new();
    for signed in ledger.stop_records() {
        match &signed.record.kind {
            RecordKind::Stop {
                stopper,
                selector,
                expires_millis,
                reason,
                ..
            } if *expires_millis > now_millis => stops.push(ActiveStop {
                digest: signed.digest(),
                stopper: *stopper,
                selector: selector.clone(),
                at: signed.record.at,
                expires_millis: *expires_millis,
                reason: reason.clone(),
            }),
            RecordKind::Resume { selector, .. } => resumes.push((signed.record.at, selector)),
            _ => {}
        }
    }
    stops.retain(|stop| {
        !resumes.iter().any(|(at, selector)| {
            *at > stop.at && (selector.is_empty() || **selector == stop.selector)
        })
    });
    stops
}

/// Signs a stop: every agent whose tags carry `selector` (every agent when
/// empty) starts no automation from `at` until `at` plus `for_millis`.
pub fn sign_stop(
    stopper: &Keypair,
    selector: BTreeMap<String, String>,
    at: Hlc,
    for_millis: u64,
    reason: String,
    trust_version: u64,
) -> SignedRecord {
    let kind = RecordKind::Stop {
        stopper: stopper.public(),
        selector,
        expires_millis: at.millis.saturating_add(for_millis),
        reason,
        trust_version,
    };
    sign_statement(stopper, at, "stop", kind)
}

/// Signs a resume: lifts the stops signed before `at` whose selector is
/// `selector`, or every stop when it is empty.
pub fn sign_resume(
    stopper: &Keypair,
    selector: BTreeMap<String, String>,
    at: Hlc,
    trust_version: u64,
) -> SignedRecord {
    let kind = RecordKind::Resume {
        stopper: stopper.public(),
        selector,
        trust_version,
    };
    sign_statement(stopper, at, "resume", kind)
}

fn sign_statement(stopper: &Keypair, at: Hlc, what: &str, kind: RecordKind) -> SignedRecord {
    let record = LedgerRecord {
        key: IdempotencyKey {
            rule: stop_limits::STOP_RULE.to_owned(),
            target: stopper.public(),
            incident: format!("{what}@{}.{}", at.millis, at.counter),
        },
        kind,
        author: stopper.public(),
        at,
    };
    SignedRecord::sign(record, stopper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{Rejected, Replica};
    use crate::testing::{Fleet, check_crdt_laws};
    use crate::trust::tests::key;

    fn at(millis: u64) -> Hlc {
        Hlc { millis, counter: 0 }
    }

    fn zone(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("zone".to_owned(), value.to_owned())])
    }

    fn meta(zone: &str) -> NodeMeta {
        NodeMeta {
            tags: BTreeMap::from([("zone".to_owned(), zone.to_owned())]),
            ..NodeMeta::default()
        }
    }

    /// The stop key of the crdt tests' fleet ([`crate::trust::tests::doc`]).
    fn stopper() -> Keypair {
        key(101)
    }

    fn merge(fleet: &Fleet, ledger: &mut Ledger, signed: SignedRecord) -> Result<(), Rejected> {
        fleet.with_ctx(0, |ctx| ledger.merge(signed, ctx).map(|_| ()))
    }

    /// An ordinary record by `target`: a needs-human of incident `i{n}`,
    /// at `millis`.
    fn needs_human(target: &Keypair, n: u64, millis: u64) -> SignedRecord {
        let record = LedgerRecord {
            key: IdempotencyKey {
                rule: "r".into(),
                target: target.public(),
                incident: format!("i{n}"),
            },
            kind: RecordKind::NeedsHuman { reason: "x".into() },
            author: target.public(),
            at: at(millis),
        };
        SignedRecord::sign(record, target)
    }

    #[test]
    fn only_an_unrevoked_stop_key_may_stop_and_its_stop_holds_until_expiry_or_resume() {
        let fleet = Fleet::new(&[&key(20)]);
        let mut ledger = Ledger::new();
        let stopper = stopper();
        let stop = sign_stop(&stopper, zone("a"), at(1_000), 60_000, "bad push".into(), 1);
        // An approver, a node, and an unknown trust version are refused.
        let by_approver = sign_stop(&key(100), BTreeMap::new(), at(1_000), 60_000, "x".into(), 1);
        let by_node = sign_stop(&key(20), BTreeMap::new(), at(1_000), 60_000, "x".into(), 1);
        let later_trust = sign_stop(&stopper, BTreeMap::new(), at(1_000), 60_000, "x".into(), 9);
        for refused in [by_approver, by_node, later_trust] {
            assert!(matches!(
                merge(&fleet, &mut ledger, refused),
                Err(Rejected::Unauthorized(_))
            ));
        }
        let too_long = sign_stop(
            &stopper,
            BTreeMap::new(),
            at(1_000),
            stop_limits::STOP_FOR_MAX_MILLIS + 1,
            "x".into(),
            1,
        );
        assert!(matches!(
            merge(&fleet, &mut ledger, too_long),
            Err(Rejected::Malformed(_))
        ));
        merge(&fleet, &mut ledger, stop).unwrap();
        let active = active_stops(&ledger, 2_000);
        assert_eq!(active.len(), 1);
        assert!(active[0].applies_to(&meta("a")));
        assert!(!active[0].applies_to(&meta("b")));
        assert!(active_stops(&ledger, 61_000).is_empty(), "expired");
        // A resume for another selector lifts nothing; an empty one lifts
        // every stop signed before it, and none signed after.
        merge(
            &fleet,
            &mut ledger,
            sign_resume(&stopper, zone("b"), at(3_000), 1),
        )
        .unwrap();
        assert_eq!(active_stops(&ledger, 4_000).len(), 1);
        merge(
            &fleet,
            &mut ledger,
            sign_resume(&stopper, BTreeMap::new(), at(5_000), 1),
        )
        .unwrap();
        assert!(active_stops(&ledger, 6_000).is_empty());
        let again = sign_stop(
            &stopper,
            BTreeMap::new(),
            at(7_000),
            60_000,
            "again".into(),
            1,
        );
        merge(&fleet, &mut ledger, again).unwrap();
        assert_eq!(active_stops(&ledger, 8_000).len(), 1);
    }

    #[test]
    fn a_revoked_stop_key_stops_nothing() {
        let mut fleet = Fleet::new(&[&key(20)]);
        let mut ledger = Ledger::new();
        let stop = sign_stop(
            &stopper(),
            BTreeMap::new(),
            at(1_000),
            60_000,
            "x".into(),
            1,
        );
        merge(&fleet, &mut ledger, stop.clone()).unwrap();
        fleet.revoke(&[stopper().public()]);
        fleet.with_ctx(0, |ctx| ledger.trust_changed(ctx));
        assert!(active_stops(&ledger, 2_000).is_empty());
        assert!(matches!(
            merge(&fleet, &mut ledger, stop),
            Err(Rejected::Unauthorized(_))
        ));
    }

    #[test]
    fn stops_have_their_own_bound_and_ordinary_records_never_evict_them() {
        let fleet = Fleet::new(&[&key(20)]);
        let mut ledger = Ledger::with_max_records(2);
        let stopper = stopper();
        for n in 0..stop_limits::STOPS_MAX as u64 + 3 {
            let stop = sign_stop(&stopper, BTreeMap::new(), at(n), 60_000, "x".into(), 1);
            merge(&fleet, &mut ledger, stop).unwrap();
        }
        assert_eq!(ledger.stop_records().count(), stop_limits::STOPS_MAX);
        assert_eq!(ledger.stops_evicted(), 3);
        // Ordinary records, all newer, fill their own bound only.
        let target = key(20);
        for n in 0..5 {
            let record = needs_human(&target, n, 10_000 + n);
            merge(&fleet, &mut ledger, record).unwrap();
        }
        assert_eq!(ledger.stop_records().count(), stop_limits::STOPS_MAX);
        assert_eq!(ledger.len(), stop_limits::STOPS_MAX + 2);
        let oldest_stop = ledger.stop_records().next().unwrap().record.at.millis;
        assert_eq!(oldest_stop, 3, "the newest stops are kept");
    }

    #[test]
    fn a_ledger_with_stops_and_a_full_bound_is_still_a_crdt() {
        let fleet = Fleet::new(&[&key(20)]);
        let target = key(20);
        let ordinary = |n: u64| (needs_human(&target, n, n), true);
        let pool = vec![
            ordinary(5),
            (
                sign_stop(&stopper(), zone("a"), at(1), 60_000, "x".into(), 1),
                true,
            ),
            ordinary(6),
            (sign_resume(&stopper(), BTreeMap::new(), at(2), 1), true),
            ordinary(7),
            (
                sign_stop(&key(100), zone("a"), at(3), 60_000, "x".into(), 1),
                false,
            ),
        ];
        let ledger = check_crdt_laws(&fleet, &Ledger::with_max_records(2), &pool);
        assert_eq!(
            ledger.stop_records().count(),
            2,
            "old stops outlive newer records"
        );
        assert_eq!(ledger.len(), 4);
    }
}
