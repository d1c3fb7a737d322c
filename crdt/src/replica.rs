//! What every replicated collection offers the mesh.
//!
//! The agent carries each collection the same way: new entries ride the
//! piggyback queue, and anti-entropy compares per-collection digests of
//! `(key, version)` pairs, then ships only the entries that differ. A
//! collection therefore only has to say which entries it holds, hand out an
//! entry, and merge one in after verifying it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::{Digest, PublicKey, Verifier};
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

    /// Merges many entries; collections whose verification or application
    /// is cheaper in batches override this.
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
