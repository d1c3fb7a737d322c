//! Config documents and releases.
//!
//! A config document is an automerge document edited by keys holding the
//! `config` role; every change is signed and verified before it is applied,
//! so concurrent edits merge and every replica converges on the same
//! content. What agents actually run is a *release*: a document's heads
//! signed by the config threshold, so no single key can push config to the
//! fleet.

mod change;
mod document;
mod guard;
pub mod hostile;
mod release;
pub mod rollout;
mod shape;
mod store;
mod value;

#[cfg(test)]
mod tests;

pub use change::{Equivocation, MalformedChange, SignedChange};
pub use release::{AppliedRelease, Release, ReleaseError, ReleaseLog, SignedRelease};
pub use store::{ConfigEntry, ConfigError, ConfigStore};
pub use value::Value;

/// Bounds on what the config store and release log hold, so a flood of
/// entries cannot exhaust an agent's memory.
pub mod limits {
    /// Most documents a store holds.
    pub const DOCS_MAX: usize = 64;
    /// Longest document id, in bytes.
    pub const DOC_ID_MAX: usize = 64;
    /// Largest automerge change, in bytes.
    pub const CHANGE_BYTES_MAX: usize = 256 * 1024;
    /// Most changes waiting for parents or a newer trust version.
    pub const PENDING_MAX: usize = 4_096;
    /// Most bytes of changes waiting.
    pub const PENDING_BYTES_MAX: usize = 32 * 1024 * 1024;
    /// Most changes a document remembers refusing because automerge failed
    /// on them there though they apply on their own history (an automerge
    /// fault rather than a bad change).
    pub const REFUSED_MAX: usize = 1_024;
    /// Deepest nesting of maps and lists in a config value: authoring
    /// refuses deeper content, and reading stops there (what lies below
    /// reads as null), so a crafted document cannot overflow a stack.
    pub const VALUE_DEPTH_MAX: usize = 32;
    /// Most bytes of history one piece of malformed-change evidence
    /// carries: with the change itself it fits one message. A malformed
    /// change with a longer history is refused but convicts nobody.
    pub const EVIDENCE_HISTORY_BYTES_MAX: usize = 192 * 1024;
    /// Most candidate releases kept per (document, version).
    pub const RELEASE_CANDIDATES_MAX: usize = 4;
    /// Most release versions kept per document; the oldest go first.
    pub const RELEASE_VERSIONS_MAX: usize = 1_024;
    /// Most heads one release names.
    pub const RELEASE_HEADS_MAX: usize = 1_024;
    /// Most signatures one release carries.
    pub const RELEASE_SIGNATURES_MAX: usize = 64;
    /// Most releases waiting for a newer trust version.
    pub const RELEASE_PENDING_MAX: usize = 256;
    /// Most releases waiting for a newer trust version that carry one
    /// signer's valid signature (see `ReleaseLog`'s future queue).
    pub const RELEASE_PENDING_PER_SIGNER_MAX: usize = 16;
    /// Most releases waiting for a newer trust version signed only by keys
    /// that do not hold `config` now, all together.
    pub const RELEASE_PENDING_UNKNOWN_MAX: usize = 16;
    /// How far ahead of the replica's trust head a change or release may
    /// be and still wait for it; further ones are refused and come back by
    /// anti-entropy once the trust chain catches up.
    pub const FUTURE_VERSIONS_AHEAD: u64 = 4;
    /// Most changes one author holding `config` now may queue for a newer
    /// trust version.
    pub const FUTURE_PER_AUTHOR_MAX: usize = 1_024;
    /// Most bytes of such changes per author.
    pub const FUTURE_AUTHOR_BYTES_MAX: usize = 8 * 1024 * 1024;
    /// Most changes queued for a newer trust version by keys that do not
    /// hold `config` now (a key the next trust version may add), all of
    /// them together...
    pub const FUTURE_UNKNOWN_MAX: usize = 256;
    /// ...holding at most these bytes...
    pub const FUTURE_UNKNOWN_BYTES_MAX: usize = 2 * 1024 * 1024;
    /// ...and per such key.
    pub const FUTURE_UNKNOWN_PER_AUTHOR_MAX: usize = 16;

    // Each per-author or per-signer share fits in the queue it is a share
    // of, and one change of the largest size can wait in every queue.
    const _: () = {
        assert!(RELEASE_PENDING_PER_SIGNER_MAX <= RELEASE_PENDING_MAX);
        assert!(RELEASE_PENDING_UNKNOWN_MAX <= RELEASE_PENDING_MAX);
        assert!(FUTURE_UNKNOWN_PER_AUTHOR_MAX <= FUTURE_UNKNOWN_MAX);
        assert!(CHANGE_BYTES_MAX <= PENDING_BYTES_MAX);
        assert!(CHANGE_BYTES_MAX <= FUTURE_AUTHOR_BYTES_MAX);
        assert!(CHANGE_BYTES_MAX <= FUTURE_UNKNOWN_BYTES_MAX);
    };
}
