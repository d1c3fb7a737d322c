//! The replicated state's messages: the anti-entropy exchange and the
//! gossip round's push ([`crate::state`] explains both). Encoded by
//! [`crate::wire`] as one variant of its message.

use super::{Entry, Kind};
use fleetmesh_crdt::Digest;
use serde::{Deserialize, Serialize};

/// The replicated state's messages (see the module comment).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum StateMessage {
    /// Anti-entropy step 1: one root digest per collection, in
    /// [`Kind::ALL`] order.
    Roots {
        /// The roots.
        roots: Vec<Digest>,
    },
    /// Step 2: bucket digests of the collections whose roots differ.
    Buckets {
        /// Per collection, [`crate::limits::STATE_BUCKETS`] digests.
        kinds: Vec<(Kind, Vec<Digest>)>,
    },
    /// Step 3: the initiator's `(key, version)` pairs of differing buckets.
    Versions {
        /// The collection.
        kind: Kind,
        /// Bitmap of the buckets the pairs are drawn from.
        buckets: u64,
        /// The pairs.
        pairs: Vec<(Digest, Digest)>,
    },
    /// Asks for entries by key.
    Want {
        /// The collection.
        kind: Kind,
        /// Their keys.
        keys: Vec<Digest>,
    },
    /// Entries answering a want or filling a difference.
    Entries {
        /// The entries.
        entries: Vec<Entry>,
    },
    /// A gossip round's push: small entries whole, large ones announced.
    Push {
        /// Entries.
        entries: Vec<Entry>,
        /// Keys of entries to fetch if missing.
        announces: Vec<(Kind, Digest)>,
    },
}
