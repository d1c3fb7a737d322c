//! The bounds of what the core exchanges: message sizes and counts on the
//! wire, the shape of an anti-entropy exchange, and what the lease API
//! accepts. One leaf module, so the codec ([`crate::wire`]), the replicated
//! state's exchange ([`crate::state`]) and the lease table read the same
//! numbers without depending on each other; the relations between them are
//! checked at compile time below.

use fleetmesh_crdt::meta_limits;
use std::time::Duration;

/// Largest message accepted, in bytes (anti-entropy deltas are the largest).
pub const MESSAGE_BYTES_MAX: usize = 1 << 20;

/// Most bytes one [`crate::wire::Update`] encodes to: its fields at their
/// widest and metadata at the bounds of [`meta_limits`], each string's
/// length prefix one byte (every string is shorter than 251 bytes, asserted
/// below).
pub const UPDATE_BYTES_MAX: usize = 9 + 5 + 1 + 9 + 1 // id, incarnation, state, from, Some
    + 1 + 2 * meta_limits::TAGS_MAX + 1 + meta_limits::ADDRS_MAX // counts and lengths
    + meta_limits::TOTAL_BYTES_MAX;

/// Peers an agent sends an emergency stop it just learnt to at once,
/// besides the push queue. With N agents each sending to F, the chance
/// that one is missed by every copy is about e^-F (0.03% for 8); the push
/// queue and anti-entropy carry the rest.
pub const STOP_RUSH_FANOUT: usize = 8;

/// Most updates one message may piggyback.
pub const UPDATES_MAX: usize = 256;

/// Most member records one anti-entropy message may carry.
pub const RECORDS_MAX: usize = 65_536;

/// Number of anti-entropy buckets; members are bucketed by the top bits of
/// their id, and a `u64` bitmap names a set of buckets.
pub const SYNC_BUCKETS: usize = 64;

/// Budget for the records of one anti-entropy message, leaving room for its
/// header and metadata table bookkeeping.
pub const SYNC_RECORDS_BYTES_MAX: usize = MESSAGE_BYTES_MAX - 4096;

/// Most bytes one [`crate::wire::SyncRecord`] encodes to (varint id, incarnations and
/// index at their widest).
pub const SYNC_RECORD_BYTES_MAX: usize = 9 + 5 + 1 + 1 + 5 + 5;

/// Most `(key, version)` pairs one message carries.
pub const PAIRS_MAX: usize = 8_192;

/// Most keys one fetch asks for.
pub const WANTS_MAX: usize = 1_024;

/// Byte budget for the entries of one message (leaves room for framing).
pub const ENTRIES_BYTES_MAX: usize = MESSAGE_BYTES_MAX / 2;

/// Entries larger than this are announced, not pushed whole. Every agent
/// pushes a new entry `retransmit_limit` times (about 12 at N = 1,000):
/// whole, an entry of `s` bytes costs each agent about 12·s sent; announced,
/// 12 announcements of ~40 bytes and one fetch of `s`. Announcing wins for
/// anything much over 40 bytes, and every signed entry is (a health report
/// is ~300 bytes, a quorum lease ~1 KB), at the price of one round trip per
/// hop: worth it for every entry kind the fleet carries.
pub const INLINE_ENTRY_BYTES_MAX: usize = 128;

/// Buckets per collection; a `u64` bitmap names a set of them.
pub const STATE_BUCKETS: usize = 64;

/// How far ahead of a replica's clock an entry's timestamp may be. A
/// later timestamp wins a health register and outlives the ledger's
/// eviction, so a node dating its entries far ahead would make its later
/// honest ones lose, or pin its records in the audit trail: such entries
/// are refused until the clock catches up (anti-entropy offers them again).
pub const AHEAD_MAX_MILLIS: u64 = 60_000;

/// Most scopes one agent asks to hold at once.
pub const WANTED_MAX: usize = 64;
/// Longest ttl a candidate asks for and a voter grants.
pub const TTL_MAX: Duration = Duration::from_secs(3600);

// A `u64` bitmap names a set of buckets, in both exchanges.
const _: () = assert!(SYNC_BUCKETS <= u64::BITS as usize && STATE_BUCKETS <= u64::BITS as usize);
// One message carries a batch of entries and its framing.
const _: () = assert!(ENTRIES_BYTES_MAX < MESSAGE_BYTES_MAX);
// A record always fits the records' budget, which fits a message.
const _: () = assert!(SYNC_RECORD_BYTES_MAX < SYNC_RECORDS_BYTES_MAX);
const _: () = assert!(SYNC_RECORDS_BYTES_MAX < MESSAGE_BYTES_MAX);
// An entry small enough to push whole always fits a push.
const _: () = assert!(INLINE_ENTRY_BYTES_MAX < ENTRIES_BYTES_MAX);
// A string's length prefix is one varint byte below 251.
const _: () = assert!(
    meta_limits::TAG_KEY_BYTES_MAX < 251
        && meta_limits::TAG_VALUE_BYTES_MAX < 251
        && meta_limits::ADDR_BYTES_MAX < 251
);
