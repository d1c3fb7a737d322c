//! Verification budgets: how much signature checking each peer may cost
//! this agent.
//!
//! Every Hello costs a certificate verification and every new signed entry
//! at least one signature verification (about 40 µs each), whoever relayed
//! it. Without a bound, one peer streaming fresh entries, or strangers
//! streaming Hellos under fresh keys, could keep the agent verifying and
//! starve everything else it does. So each admitted peer gets a token
//! bucket of verifications ([`VerifyBudget`]), and all peers not (yet)
//! admitted share one bucket: keys cost nothing to make, so a bucket per
//! stranger would bound nothing.
//!
//! The agent counts what a message actually cost ([`Metered`] counts the
//! checks the verifier ran while the message was handled) and charges the
//! sender afterwards; a message that may verify is dropped unhandled while
//! its sender's bucket is empty. A certificate already held costs nothing;
//! other entries are verified before they are compared with what is held,
//! so gossip's repetitions count too, and the default budgets leave room
//! for them. What is dropped is counted (`Stats::verify_budget_exceeded`)
//! and comes again: anti-entropy offers every entry until it is held.
//!
//! The bucket is the generic cell rate algorithm: one instant per bucket
//! (the "theoretical arrival time"), exact in integers, and a bucket whose
//! instant has passed is full and need not be kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use fleetmesh_crdt::{NodeId, SignatureCheck, Verifier};

use crate::config::VerifyBudget;
use crate::time::Instant;

/// Nanoseconds in one second.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A verifier that counts the checks it runs: what a message cost is the
/// count after it minus the count before.
pub(crate) struct Metered {
    inner: std::sync::Arc<dyn Verifier>,
    checks: AtomicU64,
}

impl Metered {
    /// Counts the checks of `inner`.
    pub(crate) fn new(inner: std::sync::Arc<dyn Verifier>) -> Metered {
        Metered {
            inner,
            checks: AtomicU64::new(0),
        }
    }

    /// Checks run so far.
    pub(crate) fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    fn count(&self, checks: usize) {
        let checks = u64::try_from(checks).unwrap_or(u64::MAX);
        self.checks.fetch_add(checks, Ordering::Relaxed);
    }
}

impl Verifier for Metered {
    fn verify(&self, check: &SignatureCheck) -> bool {
        self.count(1);
        self.inner.verify(check)
    }

    fn verify_all(&self, checks: &[SignatureCheck]) -> bool {
        self.count(checks.len());
        self.inner.verify_all(checks)
    }

    fn verify_each(&self, checks: &[SignatureCheck]) -> Vec<bool> {
        self.count(checks.len());
        self.inner.verify_each(checks)
    }
}

/// One token bucket, as the instant at which it is full again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    full_at: Instant,
}

impl Bucket {
    /// Whether one more verification fits at `now`.
    fn allows(self, now: Instant, budget: VerifyBudget) -> bool {
        let start = self.full_at.max(now);
        start.0.saturating_add(interval(budget)) <= now.0.saturating_add(tolerance(budget))
    }

    /// Takes `checks` verifications at `now`; may run into debt, which
    /// later messages wait out.
    fn charge(&mut self, now: Instant, budget: VerifyBudget, checks: u64) {
        let start = self.full_at.max(now);
        let cost = checks.saturating_mul(interval(budget));
        self.full_at = Instant(start.0.saturating_add(cost));
    }
}

/// Nanoseconds one verification takes to refill.
fn interval(budget: VerifyBudget) -> u64 {
    NANOS_PER_SECOND / u64::from(budget.per_second.get())
}

/// Nanoseconds of refill a full bucket holds.
fn tolerance(budget: VerifyBudget) -> u64 {
    interval(budget).saturating_mul(u64::from(budget.burst.get()))
}

/// The buckets of one agent: one per admitted peer that spent some of its
/// budget recently, and one shared by every peer not admitted.
#[derive(Clone, Debug)]
pub(crate) struct Budgets {
    per_peer: VerifyBudget,
    unadmitted: VerifyBudget,
    /// Buckets not full; bounded by the admitted peers (certificates held)
    /// and emptied of full buckets by [`Budgets::forget_full`].
    peers: BTreeMap<NodeId, Bucket>,
    strangers: Bucket,
}

impl Budgets {
    /// Full buckets of `per_peer` for each admitted peer and one of
    /// `unadmitted` for all the others.
    pub(crate) fn new(per_peer: VerifyBudget, unadmitted: VerifyBudget) -> Budgets {
        Budgets {
            per_peer,
            unadmitted,
            peers: BTreeMap::new(),
            strangers: Bucket::default(),
        }
    }

    /// Whether a message from `peer` (admitted or not) may be verified at
    /// `now`: its bucket holds at least one verification.
    pub(crate) fn allows(&self, now: Instant, peer: NodeId, admitted: bool) -> bool {
        if admitted {
            let bucket = self.peers.get(&peer).copied().unwrap_or_default();
            bucket.allows(now, self.per_peer)
        } else {
            self.strangers.allows(now, self.unadmitted)
        }
    }

    /// Charges `peer` (admitted or not) the `checks` its message cost.
    pub(crate) fn charge(&mut self, now: Instant, peer: NodeId, admitted: bool, checks: u64) {
        if checks == 0 {
            return;
        }
        if admitted {
            let budget = self.per_peer;
            self.peers
                .entry(peer)
                .or_default()
                .charge(now, budget, checks);
        } else {
            self.strangers.charge(now, self.unadmitted, checks);
        }
    }

    /// Drops the buckets that are full again at `now`: an absent bucket
    /// is a full one.
    pub(crate) fn forget_full(&mut self, now: Instant) {
        self.peers.retain(|_, bucket| bucket.full_at > now);
    }

    /// Buckets held: peers that spent part of their budget and have not
    /// refilled it (bounded by the admitted peers).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn budget(per_second: u32, burst: u32) -> VerifyBudget {
        VerifyBudget {
            per_second: NonZeroU32::new(per_second).expect("non-zero"),
            burst: NonZeroU32::new(burst).expect("non-zero"),
        }
    }

    fn id(n: u64) -> NodeId {
        NodeId(n)
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut budgets = Budgets::new(budget(10, 5), budget(1, 1));
        let now = Instant(1_000_000_000);
        // Five single verifications empty the bucket...
        for _ in 0..5 {
            assert!(budgets.allows(now, id(1), true));
            budgets.charge(now, id(1), true, 1);
        }
        assert!(!budgets.allows(now, id(1), true));
        // ...another peer's is untouched...
        assert!(budgets.allows(now, id(2), true));
        // ...and one tenth of a second refills one.
        let later = now + Duration::from_millis(100);
        assert!(budgets.allows(later, id(1), true));
        budgets.charge(later, id(1), true, 1);
        assert!(!budgets.allows(later, id(1), true));
    }

    #[test]
    fn a_costly_message_is_waited_out() {
        let mut budgets = Budgets::new(budget(100, 10), budget(1, 1));
        let now = Instant(0);
        assert!(budgets.allows(now, id(1), true));
        // One message verified 1,000 entries: ten seconds of debt.
        budgets.charge(now, id(1), true, 1_000);
        assert!(!budgets.allows(now + Duration::from_millis(9_900), id(1), true));
        assert!(budgets.allows(now + Duration::from_millis(9_910), id(1), true));
    }

    #[test]
    fn strangers_share_one_bucket() {
        let mut budgets = Budgets::new(budget(1_000, 1_000), budget(2, 2));
        let now = Instant(5_000_000_000);
        budgets.charge(now, id(1), false, 1);
        budgets.charge(now, id(2), false, 1);
        assert!(
            !budgets.allows(now, id(3), false),
            "a fresh key is no fresh bucket"
        );
        assert!(
            budgets.allows(now, id(3), true),
            "admitted peers keep their own"
        );
        assert_eq!(budgets.len(), 0, "strangers hold no per-peer bucket");
        assert!(budgets.allows(now + Duration::from_millis(500), id(4), false));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let mut budgets = Budgets::new(budget(10, 10), budget(1, 1));
        let now = Instant(0);
        budgets.charge(now, id(1), true, 1);
        budgets.charge(now, id(2), true, 5);
        budgets.forget_full(now + Duration::from_millis(200));
        assert_eq!(budgets.len(), 1, "the first refilled, the second not yet");
        budgets.forget_full(now + Duration::from_millis(500));
        assert!((budgets.len() == 0));
        assert!(budgets.allows(now + Duration::from_millis(500), id(2), true));
    }

    #[test]
    fn the_meter_counts_every_check() {
        use fleetmesh_crdt::{Ed25519, Keypair};
        let metered = Metered::new(std::sync::Arc::new(Ed25519));
        let key = Keypair::from_seed([4; 32]);
        let check = SignatureCheck::of(key.public(), "test", &7u32, key.sign("test", &7u32));
        assert!(metered.verify(&check));
        assert!(metered.verify_all(&[check, check]));
        assert_eq!(metered.verify_each(&[check, check]), vec![true, true]);
        assert_eq!(metered.checks(), 5);
    }
}
