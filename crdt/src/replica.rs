//! What every replicated collection offers the mesh.
//!
//! The agent carries each collection the same way: new entries ride the
//! piggyback queue, and anti-entropy compares per-collection digests of
//! `(key, version)` pairs, then ships only the entries that differ. A
//! collection therefore only has to say which entries it holds, hand out an
//! entry, and merge one in after verifying it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{Digest, PublicKey, SignatureCheck, Verifier};
use crate::trust::TrustChain;

/// What a merge may consult: the fleet's trust, the admitted nodes, a
/// signature verifier and the replica's current HLC time (for expiries).
/// Nothing else, so a merge is a function of the replica's state and the
/// entry.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The fleet's trust chain as this replica resolves it.
    pub trust: &'a TrustChain,
    /// Whether a node key holds a valid, unrevoked certificate.
    pub admitted: &'a dyn Fn(&PublicKey) -> bool,
    /// Checks signatures.
    pub verifier: &'a dyn Verifier,
    /// HLC milliseconds now.
    pub now_millis: u64,
}

/// What merging an entry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The entry is new or supersedes what was held under its key.
    Changed {
        /// The entry's key.
        key: Digest,
        /// The version now held under the key.
        version: Digest,
        /// The version it replaced, if any.
        replaced: Option<Digest>,
    },
    /// Nothing changed: the entry was known or older than what is held.
    Unchanged,
    /// The entry is valid but waits for something (a missing parent change,
    /// a newer trust document); it is held in a bounded queue.
    Pending,
}

/// A replicated collection the agent disseminates.
pub trait Replica {
    /// One entry, as it travels.
    type Entry: Clone + Serialize + DeserializeOwned;

    /// Every entry held, as (key, version digest); a version digest changes
    /// whenever the entry under the key does.
    fn versions(&self) -> Vec<(Digest, Digest)>;

    /// The entry held under `key`.
    fn entry(&self, key: &Digest) -> Option<Self::Entry>;

    /// Verifies and merges `entry`. Merging is commutative, associative and
    /// idempotent over valid entries; an invalid entry is refused and
    /// changes nothing.
    fn merge(&mut self, entry: Self::Entry, ctx: &Ctx<'_>) -> Result<Merge, Rejected>;

    /// Merges many entries; collections whose application is cheaper in
    /// batches (automerge documents) override this.
    fn merge_batch(
        &mut self,
        entries: Vec<Self::Entry>,
        ctx: &Ctx<'_>,
    ) -> Vec<Result<Merge, Rejected>> {
        entries
            .into_iter()
            .map(|entry| self.merge(entry, ctx))
            .collect()
    }

    /// Re-checks held entries after the trust chain changed: entries whose
    /// signer is now revoked are dropped (and entries queued for a newer
    /// trust version may now merge). The agent recomputes its digests of the
    /// collection afterwards.
    fn trust_changed(&mut self, ctx: &Ctx<'_>);
}

/// Why an entry was refused. Every refusal is counted by the agent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// A signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The signer lacks the role, is revoked, or is not who may write this
    /// entry.
    #[error("signer not authorized: {0}")]
    Unauthorized(String),
    /// Over a size bound or internally inconsistent.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A bounded queue is full.
    #[error("queue full: {0}")]
    QueueFull(&'static str),
    /// The signer is quarantined after equivocating.
    #[error("signer quarantined")]
    Quarantined,
}

/// A collection whose entries are valid when their shape, their signers'
/// authority and their signatures check out, independently of what the
/// collection holds. Validity being stateless is what lets `trust_changed`
/// re-run exactly the predicate `merge` ran.
pub(crate) trait Verified: Replica {
    /// Checks everything but the signatures and returns the signatures the
    /// entry needs.
    fn admit(entry: &Self::Entry, ctx: &Ctx<'_>) -> Result<Vec<SignatureCheck>, Rejected>;

    /// Merges an entry that passed [`Verified::admit`] and whose signatures
    /// verified.
    fn apply(&mut self, entry: Self::Entry) -> Merge;
}

/// Admits, verifies and applies one entry: nothing reaches `apply` before
/// its signatures verified.
pub(crate) fn merge_one<R: Verified>(
    replica: &mut R,
    entry: R::Entry,
    ctx: &Ctx<'_>,
) -> Result<Merge, Rejected> {
    let checks = R::admit(&entry, ctx)?;
    if !ctx.verifier.verify_all(&checks) {
        return Err(Rejected::BadSignature);
    }
    Ok(replica.apply(entry))
}

/// Refuses a text field that is empty (when `non_empty`) or longer than
/// `max_bytes`.
pub(crate) fn check_text(
    field: &str,
    text: &str,
    non_empty: bool,
    max_bytes: usize,
) -> Result<(), Rejected> {
    if (non_empty && text.is_empty()) || text.len() > max_bytes {
        let least = usize::from(non_empty);
        return Err(Rejected::Malformed(format!(
            "{field} must be {least}..={max_bytes} bytes"
        )));
    }
    Ok(())
}

/// Refuses a signer that is revoked or not admitted; `role` names the signer
/// in the refusal.
pub(crate) fn check_admitted(key: &PublicKey, role: &str, ctx: &Ctx<'_>) -> Result<(), Rejected> {
    if ctx.trust.is_revoked(key) || !(ctx.admitted)(key) {
        return Err(Rejected::Unauthorized(format!(
            "{role} {key:?} is revoked or not admitted"
        )));
    }
    Ok(())
}
