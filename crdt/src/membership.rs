//! Membership records: what one agent believes about another.
//!
//! A record is the product of two max-lattices:
//! - [`Liveness`]: `(incarnation, state)` ordered lexicographically, so a
//!   higher incarnation always wins and, within one incarnation,
//!   `Alive < Suspect < Dead < Left`. Only the member itself raises its
//!   incarnation (to refute a suspicion), which is what makes SWIM's
//!   refutation work.
//! - [`MetaVersion`]: the member's tags and addresses at the incarnation the
//!   member announced them. Suspicions and deaths are asserted by third
//!   parties and carry no metadata, so metadata is versioned on its own.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Short name of an agent, unique in a fleet.
///
/// It is 64 bits, not the 32-byte public key, because every agent keeps a
/// record for every member: at 10,000 members the difference is 240 KB per
/// agent, and 2.4 GB for a simulated fleet of that size. The real runtime
/// derives it from the agent's public key (the first 8 bytes of its blake3
/// hash), so ids are uniformly distributed; code may rely on that (bucketing
/// for anti-entropy uses the top bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Version of a member's own claims about itself; only the member raises it.
pub type Incarnation = u32;

/// Where a member stands in the failure detector.
///
/// The declaration order is the merge order within one incarnation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum MemberState {
    /// Answering probes, as far as anyone knows.
    Alive,
    /// Some agent failed to reach it; it has until the suspicion timeout to
    /// refute by announcing a higher incarnation.
    Suspect,
    /// Declared failed. Refutable only by a higher incarnation.
    Dead,
    /// Left the fleet on purpose (graceful leave). Terminal for the
    /// incarnation; a rejoin uses a higher one.
    Left,
}

impl MemberState {
    /// True for the states whose members count as part of the fleet's view.
    pub fn is_up(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }
}

/// The liveness half of a record: a max-lattice on `(incarnation, state)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Liveness {
    /// The member's incarnation this claim is about.
    pub incarnation: Incarnation,
    /// The claimed state at that incarnation.
    pub state: MemberState,
}

/// Limits on [`NodeMeta`], enforced on everything decoded from the network.
pub mod meta_limits {
    /// Most tags one node may carry.
    pub const TAGS_MAX: usize = 32;
    /// Longest tag key, in bytes.
    pub const TAG_KEY_BYTES_MAX: usize = 64;
    /// Longest tag value, in bytes.
    pub const TAG_VALUE_BYTES_MAX: usize = 128;
    /// Most addresses one node may advertise.
    pub const ADDRS_MAX: usize = 8;
    /// Longest advertised address, in bytes.
    pub const ADDR_BYTES_MAX: usize = 128;
    /// Most bytes of keys, values and addresses together: keeps an update
    /// carrying the metadata well inside one datagram.
    pub const TOTAL_BYTES_MAX: usize = 512;

    // One tag of the longest key and value, or one longest address, is
    // allowed by the total.
    const _: () = assert!(TAG_KEY_BYTES_MAX + TAG_VALUE_BYTES_MAX <= TOTAL_BYTES_MAX);
    const _: () = assert!(ADDR_BYTES_MAX <= TOTAL_BYTES_MAX);
}

/// Why a [`NodeMeta`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// More tags than [`meta_limits::TAGS_MAX`].
    #[error("{0} tags, at most {max} are allowed", max = meta_limits::TAGS_MAX)]
    TooManyTags(usize),
    /// A tag key that is empty, too long or holds characters other than
    /// ASCII letters, digits, `-`, `_`, `.` and `/`.
    #[error("tag key {0:?} must be 1-{max} bytes of [A-Za-z0-9._/-]", max = meta_limits::TAG_KEY_BYTES_MAX)]
    BadTagKey(String),
    /// A tag value longer than [`meta_limits::TAG_VALUE_BYTES_MAX`].
    #[error("value of tag {0:?} is longer than {max} bytes", max = meta_limits::TAG_VALUE_BYTES_MAX)]
    TagValueTooLong(String),
    /// More addresses than [`meta_limits::ADDRS_MAX`], or one too long.
    #[error("at most {n} addresses of at most {bytes} bytes each", n = meta_limits::ADDRS_MAX, bytes = meta_limits::ADDR_BYTES_MAX)]
    BadAddrs,
    /// Keys, values and addresses add up to more than
    /// [`meta_limits::TOTAL_BYTES_MAX`] bytes.
    #[error("tags and addresses take {0} bytes, at most {max} are allowed", max = meta_limits::TOTAL_BYTES_MAX)]
    TooLarge(usize),
}

/// What a member says about itself: selector tags (`zone=a`, `role=web`) and
/// the transport addresses it can be reached at.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Key/value tags used by selectors.
    pub tags: BTreeMap<String, String>,
    /// Transport addresses, as the runtime writes them; opaque to the core.
    pub addrs: Vec<String>,
}

impl NodeMeta {
    /// Checks the limits in [`meta_limits`]; the codec calls this on every
    /// decoded record so an oversized meta never enters a table.
    pub fn validate(&self) -> Result<(), MetaError> {
        use meta_limits::*;
        if self.tags.len() > TAGS_MAX {
            return Err(MetaError::TooManyTags(self.tags.len()));
        }
        for (key, value) in &self.tags {
            let key_ok = !key.is_empty()
                && key.len() <= TAG_KEY_BYTES_MAX
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
            if !key_ok {
                return Err(MetaError::BadTagKey(key.clone()));
            }
            if value.len() > TAG_VALUE_BYTES_MAX {
                return Err(MetaError::TagValueTooLong(key.clone()));
            }
        }
        if self.addrs.len() > ADDRS_MAX || self.addrs.iter().any(|a| a.len() > ADDR_BYTES_MAX) {
            return Err(MetaError::BadAddrs);
        }
        let total = self
            .tags
            .iter()
            .map(|(key, value)| key.len() + value.len())
            .sum::<usize>()
            + self.addrs.iter().map(String::len).sum::<usize>();
        if total > TOTAL_BYTES_MAX {
            return Err(MetaError::TooLarge(total));
        }
        Ok(())
    }

    /// True when every `key=value` pair of `selector` is among the tags.
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(key, value)| self.tags.get(key) == Some(value))
    }
}

/// Metadata as announced by the member at one incarnation: a max-lattice on
/// `(incarnation, meta)`. Two different metas at one incarnation only arise
/// from a misbehaving or restarted-and-not-yet-refuted member; ordering by
/// content makes the choice deterministic on every replica.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct MetaVersion {
    /// The incarnation at which the member announced this metadata.
    pub incarnation: Incarnation,
    /// The metadata itself, shared: many records and messages hold the
    /// same value, and copying tag maps dominated big simulations.
    pub meta: Arc<NodeMeta>,
}

/// One agent's full belief about one member; what anti-entropy exchanges.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member this record is about.
    pub id: NodeId,
    /// Liveness claim (max-lattice).
    pub liveness: Liveness,
    /// Self-announced metadata, absent when only third-party claims are known.
    pub meta: Option<MetaVersion>,
}

/// What a merge changed, so callers can react (rebroadcast, emit events).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Merged {
    /// The liveness half grew.
    pub liveness: bool,
    /// The metadata half grew.
    pub meta: bool,
}

impl Merged {
    /// True when anything changed.
    pub fn any(self) -> bool {
        self.liveness || self.meta
    }
}

impl MemberRecord {
    /// Joins `other` into `self`: the least upper bound of both records.
    ///
    /// Records about different members are not mergeable; the caller keys
    /// records by id, and a mismatch is a logic error caught in debug builds.
    pub fn merge(&mut self, other: &MemberRecord) -> Merged {
        debug_assert_eq!(self.id, other.id, "merging records of different members");
        let mut merged = Merged::default();
        if other.liveness > self.liveness {
            self.liveness = other.liveness;
            merged.liveness = true;
        }
        if other.meta > self.meta {
            self.meta.clone_from(&other.meta);
            merged.meta = true;
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = MemberState> {
        prop_oneof![
            Just(MemberState::Alive),
            Just(MemberState::Suspect),
            Just(MemberState::Dead),
            Just(MemberState::Left),
        ]
    }

    fn record() -> impl Strategy<Value = MemberRecord> {
        let meta = prop::option::of((0u32..4, prop::collection::btree_map("[a-c]", "[x-z]", 0..3)))
            .prop_map(|meta| {
                meta.map(|(incarnation, tags)| MetaVersion {
                    incarnation,
                    meta: Arc::new(NodeMeta {
                        tags,
                        addrs: Vec::new(),
                    }),
                })
            });
        (0u32..4, state(), meta).prop_map(|(incarnation, state, meta)| MemberRecord {
            id: NodeId(7),
            liveness: Liveness { incarnation, state },
            meta,
        })
    }

    fn merged(mut a: MemberRecord, b: &MemberRecord) -> MemberRecord {
        a.merge(b);
        a
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in record(), b in record()) {
            prop_assert_eq!(merged(a.clone(), &b), merged(b, &a));
        }

        #[test]
        fn merge_is_associative(a in record(), b in record(), c in record()) {
            let left = merged(merged(a.clone(), &b), &c);
            let right = merged(a, &merged(b, &c));
            prop_assert_eq!(left, right);
        }

        #[test]
        fn merge_is_idempotent(a in record(), b in record()) {
            let once = merged(a, &b);
            prop_assert_eq!(merged(once.clone(), &b), once.clone());
            prop_assert_eq!(merged(once.clone(), &once), once);
        }

        #[test]
        fn any_delivery_order_converges(
            updates in prop::collection::vec(record(), 1..12),
            order in prop::collection::vec(any::<prop::sample::Index>(), 1..30),
        ) {
            // Replica one sees updates in order; replica two sees an arbitrary
            // sequence with duplicates, then everything once more (what
            // anti-entropy guarantees eventually).
            let mut one = updates[0].clone();
            for update in &updates { one.merge(update); }
            let mut two = updates[updates.len() - 1].clone();
            for index in &order { two.merge(&updates[index.index(updates.len())]); }
            for update in updates.iter().rev() { two.merge(update); }
            prop_assert_eq!(one, two);
        }

        #[test]
        fn merge_reports_change_exactly_when_value_grows(a in record(), b in record()) {
            let mut target = a.clone();
            let changed = target.merge(&b);
            prop_assert_eq!(changed.any(), target != a);
        }
    }

    #[test]
    fn higher_incarnation_refutes_suspicion() {
        let mut record = MemberRecord {
            id: NodeId(1),
            liveness: Liveness {
                incarnation: 3,
                state: MemberState::Dead,
            },
            meta: None,
        };
        let refutation = MemberRecord {
            id: NodeId(1),
            liveness: Liveness {
                incarnation: 4,
                state: MemberState::Alive,
            },
            meta: None,
        };
        assert!(record.merge(&refutation).liveness);
        assert_eq!(record.liveness.state, MemberState::Alive);
    }

    #[test]
    fn meta_validation_names_the_problem() {
        let mut meta = NodeMeta::default();
        meta.tags.insert("zone".into(), "a".into());
        assert_eq!(meta.validate(), Ok(()));
        meta.tags.insert("bad key".into(), "x".into());
        let error = meta.validate().unwrap_err();
        assert!(error.to_string().contains("bad key"), "{error}");
    }
}
