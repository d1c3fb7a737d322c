//! The bincode configuration of everything the core encodes (messages,
//! journal records), and the encoded size of a value. A leaf, so the
//! modules that budget bytes (the replicated state, the member table, the
//! broadcast queue) measure what the codec ([`crate::wire`]) will write
//! without depending on it.

use crate::limits::MESSAGE_BYTES_MAX;
use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::Serialize;

/// The limit bincode enforces on a body (a message less its version byte).
const BODY_BYTES_MAX: usize = MESSAGE_BYTES_MAX - 1;

/// Standard bincode 2 (little-endian, variable-length integers), refusing
/// any length prefix that would read past [`BODY_BYTES_MAX`] before it
/// allocates.
pub(crate) const BINCODE: Configuration<LittleEndian, Varint, Limit<BODY_BYTES_MAX>> =
    bincode::config::standard().with_limit::<BODY_BYTES_MAX>();

/// Encoded size of `value` in a message body, for filling messages up to
/// their budget; `usize::MAX` for a value that could not be encoded (over
/// the limit), which no budget admits.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    bincode::serde::encode_to_vec(value, BINCODE).map_or(usize::MAX, |bytes| bytes.len())
}
