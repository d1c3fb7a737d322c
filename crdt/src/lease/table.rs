//! The replicated lease table: one lease per scope, the highest.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::hlc::Hlc;
use crate::keys::{Digest, PublicKey, SignatureCheck, domain};
use crate::register::{Held, Registers};
use crate::replica::{
    Ctx, Merge, Rejected, Replica, Verified, check_admitted, check_text, merge_one,
};

use super::grant::{Grant, Lease, LeaseKind, SignedLease, lease_limits};

/// Higher epoch, then later `granted_at`, then lowest version digest.
type LeaseRank = (u64, Hlc, Reverse<Digest>);

/// The leases of a fleet: a max-register per scope, keyed by the digest of
/// the scope name. A renewal (same epoch, later `granted_at`) replaces the
/// lease it renews, so renewals grow no history.
///
/// Past `max_scopes`, the scopes with the highest key digests are dropped:
/// the table holds the `max_scopes` lowest keys of everything it has seen,
/// each with its highest lease, which is still a join-semilattice (a key
/// dropped once ranks too high forever, since seeing more only adds keys).
/// Scopes come from released config and number far fewer than the bound; it
/// only caps what a misbehaving admitted node can make agents store.
#[derive(Clone, Debug)]
pub struct LeaseTable {
    registers: Registers<LeaseRank, SignedLease>,
    /// The key of each scope held, so that a lookup by scope name (the
    /// lease logic makes several per message) hashes nothing.
    keys: BTreeMap<String, Digest>,
    max_scopes: usize,
}

impl Default for LeaseTable {
    fn default() -> Self {
        LeaseTable::with_max_scopes(lease_limits::SCOPES_MAX)
    }
}

impl LeaseTable {
    /// An empty table holding up to [`lease_limits::SCOPES_MAX`] scopes.
    pub fn new() -> LeaseTable {
        LeaseTable::default()
    }

    /// An empty table holding up to `max_scopes` scopes.
    pub fn with_max_scopes(max_scopes: usize) -> LeaseTable {
        LeaseTable {
            registers: Registers::default(),
            keys: BTreeMap::new(),
            max_scopes,
        }
    }

    /// The key a scope's lease is held under.
    pub fn key(scope: &str) -> Digest {
        Digest::of(domain::CONTENT, scope)
    }

    /// The lease held for `scope`, expired or not.
    pub fn get(&self, scope: &str) -> Option<&SignedLease> {
        self.keys.get(scope).and_then(|key| self.registers.get(key))
    }

    /// The holder of `scope` at HLC time `now_millis`, if its lease has not
    /// expired.
    pub fn holder_at(&self, scope: &str, now_millis: u64) -> Option<PublicKey> {
        self.get(scope)
            .filter(|signed| now_millis < signed.lease.expires_at_millis())
            .map(|signed| signed.lease.holder)
    }

    /// When `scope`'s lease expires, in HLC milliseconds.
    pub fn expires_at_millis(&self, scope: &str) -> Option<u64> {
        self.get(scope)
            .map(|signed| signed.lease.expires_at_millis())
    }

    /// The highest epoch seen for `scope`: the fencing token to beat.
    pub fn max_epoch(&self, scope: &str) -> Option<u64> {
        self.get(scope).map(|signed| signed.lease.epoch)
    }

    /// Drops the leases `keep` refuses; returns how many. For a replica
    /// whose admission rule for leases just tightened (a released policy
    /// now names a scope's voters), so the table is again what admitting
    /// everything seen under the new rule would give, minus leases the
    /// dropped ones displaced (their holders publish again).
    pub fn retain(&mut self, keep: impl FnMut(&SignedLease) -> bool) -> usize {
        let dropped = self.registers.retain(keep).len();
        self.reindex();
        dropped
    }

    fn reindex(&mut self) {
        self.keys = self
            .registers
            .entries()
            .map(|(key, signed)| (signed.lease.scope.clone(), *key))
            .collect();
    }

    /// Every held lease, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &SignedLease> {
        self.registers.entries().map(|(_, signed)| signed)
    }

    /// How many scopes hold a lease.
    pub fn len(&self) -> usize {
        self.registers.len()
    }

    /// Whether no scope holds a lease.
    pub fn is_empty(&self) -> bool {
        self.registers.len() == 0
    }
}

/// Checks a quorum lease's grants and returns their signature checks.
fn admit_grants(
    lease: &Lease,
    voters: &BTreeSet<PublicKey>,
    grants: &[Grant],
    ctx: &Ctx<'_>,
) -> Result<Vec<SignatureCheck>, Rejected> {
    let malformed = |reason: &str| Err(Rejected::Malformed(reason.into()));
    if voters.is_empty() || voters.len() > lease_limits::VOTERS_MAX {
        return malformed("a quorum lease names 1..=64 voters");
    }
    // Checked before anything is hashed: the count bounds the work.
    if grants.len() > voters.len() {
        return malformed("more grants than voters");
    }
    let mut granted = BTreeSet::new();
    for grant in grants {
        let body = &grant.body;
        if body.scope != lease.scope || body.epoch != lease.epoch || body.holder != lease.holder {
            return malformed("a grant is for another scope, epoch or holder");
        }
        // The voter promised exclusion only for its ttl.
        if body.ttl_millis < lease.ttl_millis {
            return malformed("the lease outlasts a grant");
        }
        if !voters.contains(&body.voter) || !granted.insert(body.voter) {
            return malformed("a grant is from a non-voter or a repeated voter");
        }
        check_admitted(&body.voter, "voter", ctx)?;
    }
    if granted.len() * 2 <= voters.len() {
        return malformed("grants are not from a strict majority of voters");
    }
    Ok(grants.iter().map(Grant::check).collect())
}

impl Verified for LeaseTable {
    fn admit(signed: &SignedLease, ctx: &Ctx<'_>) -> Result<Vec<SignatureCheck>, Rejected> {
        let lease = &signed.lease;
        check_text("scope", &lease.scope, true, lease_limits::SCOPE_MAX)?;
        check_admitted(&lease.holder, "holder", ctx)?;
        let mut checks = match &lease.kind {
            LeaseKind::Quorum { voters, grants } => admit_grants(lease, voters, grants, ctx)?,
            LeaseKind::Component => Vec::new(),
        };
        checks.push(signed.check());
        Ok(checks)
    }

    fn apply(&mut self, signed: SignedLease) -> Merge {
        let key = LeaseTable::key(&signed.lease.scope);
        let version = Digest::of(domain::CONTENT, &signed);
        let rank = (
            signed.lease.epoch,
            signed.lease.granted_at,
            Reverse(version),
        );
        let scope = signed.lease.scope.clone();
        let merge = self.registers.offer(
            key,
            Held {
                rank,
                version,
                entry: signed,
            },
        );
        if matches!(merge, Merge::Unchanged) {
            return merge;
        }
        self.keys.insert(scope, key);
        if self.registers.len() > self.max_scopes
            && let Some((last, dropped)) = self.registers.pop_last()
        {
            self.keys.remove(&dropped.lease.scope);
            if last == key {
                return Merge::Unchanged;
            }
        }
        merge
    }
}

impl Replica for LeaseTable {
    type Entry = SignedLease;

    fn versions(&self) -> Vec<(Digest, Digest)> {
        self.registers.versions()
    }

    fn entry(&self, key: &Digest) -> Option<SignedLease> {
        self.registers.get(key).cloned()
    }

    fn merge(&mut self, entry: SignedLease, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        // Most leases offered are the one already held (each renewal
        // reaches an agent from several peers, and every exchange
        // overlaps): it was admitted when it merged, and kept through every
        // trust change since, so the table would not change; spot it
        // before hashing or verifying anything. (If the holder's
        // certificate expired meanwhile, the copy is counted as unchanged
        // rather than refused: the table is the same either way.)
        if self.get(&entry.lease.scope) == Some(&entry) {
            return Ok(Merge::Unchanged);
        }
        merge_one(self, entry, ctx)
    }

    fn trust_changed(&mut self, ctx: &Ctx<'_>) {
        self.retain(|signed| LeaseTable::admit(signed, ctx).is_ok());
    }
}
