//! Test support shared by the collections' tests: a trust chain, an
//! admitted set and the context built from them.

use std::collections::BTreeSet;

use crate::keys::{Digest, Ed25519, Keypair, PublicKey, domain};
use crate::replica::{Ctx, Replica};
use crate::trust::TrustChain;
use crate::trust::tests::{doc, key, sign};

/// A fleet whose roots are keys 1 and 2 and whose approver is key 100.
pub(crate) struct Fleet {
    /// The trust chain; [`Fleet::revoke`] extends it.
    pub trust: TrustChain,
    /// Node keys with a valid certificate.
    pub admitted: BTreeSet<PublicKey>,
}

impl Fleet {
    /// A fleet admitting `nodes`.
    pub(crate) fn new(nodes: &[&Keypair]) -> Fleet {
        let (a, b) = (key(1), key(2));
        let trust = TrustChain::new(sign(doc(1, &[&a, &b], &[]), &[&a, &b]), &Ed25519).unwrap();
        Fleet {
            trust,
            admitted: nodes.iter().map(|node| node.public()).collect(),
        }
    }

    /// Publishes the next trust version, revoking `revoked`.
    pub(crate) fn revoke(&mut self, revoked: &[PublicKey]) {
        let (a, b) = (key(1), key(2));
        let version = self.trust.head().doc.version + 1;
        let next = sign(doc(version, &[&a, &b], revoked), &[&a, &b]);
        self.trust.insert(next, &Ed25519).unwrap();
    }

    /// Runs `body` with a merge context at HLC time `now_millis`.
    pub(crate) fn with_ctx<T>(&self, now_millis: u64, body: impl FnOnce(&Ctx<'_>) -> T) -> T {
        let admitted = |node: &PublicKey| self.admitted.contains(node);
        let ctx = Ctx {
            trust: &self.trust,
            admitted: &admitted,
            verifier: &Ed25519,
            now_millis,
        };
        body(&ctx)
    }
}

/// One pool entry and whether it is valid.
pub(crate) type Pooled<E> = (E, bool);

/// Delivers `order` (indices into `pool`) to a copy of `empty`.
fn deliver<R: Replica + Clone>(
    fleet: &Fleet,
    empty: &R,
    pool: &[Pooled<R::Entry>],
    order: &[usize],
) -> R {
    let mut replica = empty.clone();
    fleet.with_ctx(0, |ctx| {
        for &index in order {
            let (entry, valid) = &pool[index];
            let merged = replica.merge(entry.clone(), ctx);
            assert_eq!(merged.is_ok(), *valid, "entry {index} validity");
        }
    });
    replica
}

/// `a` joined with everything `b` holds.
fn join<R: Replica + Clone>(fleet: &Fleet, a: &R, b: &R) -> R {
    let mut joined = a.clone();
    fleet.with_ctx(0, |ctx| {
        for (key, _) in b.versions() {
            let entry = b.entry(&key).unwrap();
            joined.merge(entry, ctx).unwrap();
        }
    });
    joined
}

/// Checks the CRDT laws on `pool` delivered in random orders with
/// duplicates: replicas that saw the same entries agree; the join of states
/// is commutative, associative and idempotent; invalid entries are never
/// held. Returns the state every replica converged to, for the caller's own
/// checks of what it must hold.
pub(crate) fn check_crdt_laws<R: Replica + Clone>(
    fleet: &Fleet,
    empty: &R,
    pool: &[Pooled<R::Entry>],
) -> R {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let valid_versions: BTreeSet<Digest> = pool
        .iter()
        .filter(|(_, valid)| *valid)
        .map(|(entry, _)| Digest::of(domain::CONTENT, entry))
        .collect();
    let only_valid = |replica: &R| {
        replica
            .versions()
            .iter()
            .all(|(_, version)| valid_versions.contains(version))
    };
    let count = pool.len();
    let full_order = proptest::collection::vec(0..count, 0..count).prop_flat_map(move |dups| {
        Just((0..count).chain(dups).collect::<Vec<usize>>()).prop_shuffle()
    });
    let subset = proptest::collection::vec(0..count, 0..count);
    let strategy = (
        proptest::collection::vec(full_order, 3),
        [subset.clone(), subset.clone(), subset],
    );
    let reference = deliver(fleet, empty, pool, &(0..count).collect::<Vec<_>>());
    let mut runner = TestRunner::new(Config::with_cases(48));
    runner
        .run(&strategy, |(orders, subsets)| {
            for order in &orders {
                let replica = deliver(fleet, empty, pool, order);
                prop_assert_eq!(replica.versions(), reference.versions());
            }
            let [a, b, c] = subsets.map(|subset| deliver(fleet, empty, pool, &subset));
            for state in [&a, &b, &c] {
                prop_assert!(only_valid(state));
            }
            prop_assert_eq!(
                join(fleet, &a, &b).versions(),
                join(fleet, &b, &a).versions()
            );
            prop_assert_eq!(
                join(fleet, &join(fleet, &a, &b), &c).versions(),
                join(fleet, &a, &join(fleet, &b, &c)).versions()
            );
            prop_assert_eq!(join(fleet, &a, &a).versions(), a.versions());
            Ok(())
        })
        .unwrap();
    assert!(only_valid(&reference));
    reference
}
