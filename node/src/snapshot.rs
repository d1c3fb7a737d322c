//! The encoding of a replica snapshot: the replicated entries an agent
//! saves to its own disk ([`crate::Agent::save_replicas`]) and takes back
//! after a restart ([`crate::Agent::load_replicas`]), so that it starts
//! with the fleet's configs, releases, leases and ledger even where no
//! peer is reachable yet.
//!
//! One version byte, then a `bincode` 2 encoding (the wire's
//! configuration) of the entries. Decoding is bounded like the wire's:
//! at most [`SNAPSHOT_BYTES_MAX`], no length prefix past it, no trailing
//! bytes. The snapshot is not trusted: every entry is verified again as it
//! is merged. Whether the file holding it is whole is the driver's to
//! check (the runtime frames it with a length and a checksum).

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

use crate::state::Entry;

/// Version of the snapshot encoding.
pub const SNAPSHOT_VERSION: u8 = 1;

/// Longest snapshot decoded: far above what the replicated collections
/// hold at their bounds, and a cap on what a damaged file can make the
/// agent allocate.
pub const SNAPSHOT_BYTES_MAX: usize = 256 << 20;

const BINCODE: Configuration<LittleEndian, Varint, Limit<SNAPSHOT_BYTES_MAX>> =
    bincode::config::standard().with_limit::<SNAPSHOT_BYTES_MAX>();

/// Why a snapshot could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// No bytes at all.
    #[error("the snapshot is empty")]
    Empty,
    /// Longer than [`SNAPSHOT_BYTES_MAX`].
    #[error("the snapshot is {0} bytes, over the limit of {SNAPSHOT_BYTES_MAX}")]
    TooLarge(usize),
    /// Written by a fleetmesh with another snapshot encoding.
    #[error("snapshot version {0} is not {SNAPSHOT_VERSION}, the one this fleetmesh reads")]
    UnknownVersion(u8),
    /// The body does not decode.
    #[error("the snapshot does not decode: {0}")]
    Malformed(String),
    /// Bytes left after the entries.
    #[error("{0} bytes follow the snapshot's entries")]
    TrailingBytes(usize),
    /// The entries do not encode (over the size limit).
    #[error("the snapshot does not encode: {0}")]
    Encode(String),
}

/// Encodes `entries` as a snapshot.
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, SnapshotError> {
    let mut bytes = vec![SNAPSHOT_VERSION];
    bincode::serde::encode_into_std_write(entries, &mut bytes, BINCODE)
        .map_err(|error| SnapshotError::Encode(error.to_string()))?;
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(SnapshotError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes a snapshot [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, SnapshotError> {
    if bytes.len() > SNAPSHOT_BYTES_MAX {
        return Err(SnapshotError::TooLarge(bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnknownVersion(version));
    }
    let (entries, read): (Vec<Entry>, usize) = bincode::serde::decode_from_slice(body, BINCODE)
        .map_err(|error| SnapshotError::Malformed(error.to_string()))?;
    if read != body.len() {
        return Err(SnapshotError::TrailingBytes(body.len() - read));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let empty = encode(&[]).unwrap();
        assert_eq!(decode(&empty), Ok(Vec::new()));
        assert_eq!(decode(&[]), Err(SnapshotError::Empty));
        assert_eq!(decode(&[9, 0]), Err(SnapshotError::UnknownVersion(9)));
        assert_eq!(
            decode(&[SNAPSHOT_VERSION, 0, 7]),
            Err(SnapshotError::TrailingBytes(1))
        );
        // A length prefix claiming more entries than there are bytes.
        assert!(matches!(
            decode(&[SNAPSHOT_VERSION, 0xfc, 0xff, 0xff, 0xff, 0xff]),
            Err(SnapshotError::Malformed(_))
        ));
    }
}
