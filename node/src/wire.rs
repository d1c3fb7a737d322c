//! The wire format, in one module so that it can be swapped.
//!
//! A message is one version byte followed by a `bincode` 2 encoding (standard
//! configuration: little-endian, variable-length integers) of [`Message`].
//! Decoding is bounded: the input may be at most [`MESSAGE_BYTES_MAX`] long,
//! bincode refuses any length prefix that would read past that limit before
//! allocating, trailing bytes are an error, and every decoded value is
//! checked against the protocol's own limits before it is returned.

use fleetmesh_crdt::{Incarnation, Liveness, MemberState, NodeCert, NodeId, NodeMeta};

use crate::encoding::BINCODE;
use crate::limits::{
    MESSAGE_BYTES_MAX, PAIRS_MAX, RECORDS_MAX, STATE_BUCKETS, SYNC_BUCKETS, UPDATES_MAX, WANTS_MAX,
};
// The whole message family, and the measure the core budgets messages
// with, in one namespace for whoever encodes or crafts messages.
pub use crate::encoding::encoded_len;
pub use crate::lease::{LeaseMessage, RefusalReason};
pub use crate::state::StateMessage;
use crate::state::{Entry, Kind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Version of the encoding; a message with another version is dropped.
pub const PROTOCOL_VERSION: u8 = 1;

/// A claim about one member, piggybacked on protocol messages.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Update {
    /// The member the claim is about.
    pub id: NodeId,
    /// The member's incarnation the claim is about.
    pub incarnation: Incarnation,
    /// The claimed state.
    pub state: MemberState,
    /// Who makes the claim; for suspicions this is what makes confirmations
    /// independent (Lifeguard), for `Alive` and `Left` it is the member.
    pub from: NodeId,
    /// The member's metadata at `incarnation`; only the member itself sends
    /// it, with `Alive`.
    pub meta: Option<Arc<NodeMeta>>,
}

/// A member record in an anti-entropy message. Its metadata is an index
/// into the message's table of distinct metadata values: most members share
/// a few tag sets, and decoding one copy per record dominated large
/// exchanges.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The member.
    pub id: NodeId,
    /// The sender's belief about its liveness.
    pub liveness: Liveness,
    /// Incarnation of the metadata and its index in the message's table.
    pub meta: Option<(Incarnation, u32)>,
}

/// Everything agents say to each other.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Message {
    /// SWIM probe. `target` lets the receiver tell a probe meant for a
    /// previous holder of its address from one meant for it.
    Ping {
        /// Sequence number echoed by the ack.
        seq: u32,
        /// The member the sender means to probe.
        target: NodeId,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Answer to a [`Message::Ping`], or a helper forwarding the target's
    /// answer to the member that asked it to probe.
    Ack {
        /// The probe's sequence number, in the asker's numbering.
        seq: u32,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Asks the receiver to probe `target` and forward the ack.
    PingReq {
        /// The asker's sequence number for its probe.
        seq: u32,
        /// The member to probe.
        target: NodeId,
        /// Piggybacked updates.
        updates: Vec<Update>,
    },
    /// Lifeguard's negative ack: the helper is alive but the target did not
    /// answer it in time. Lets the asker tell "target down" from "I am the
    /// one who is not hearing anything".
    Nack {
        /// The asker's sequence number for its probe.
        seq: u32,
    },
    /// A gossip round's push of queued updates.
    Gossip {
        /// The updates.
        updates: Vec<Update>,
    },
    /// Anti-entropy step 1: the initiator's digest of its whole table.
    SyncRoot {
        /// XOR of all bucket digests.
        root: u64,
    },
    /// Anti-entropy step 2: the responder's per-bucket digests, sent only
    /// when the roots differ.
    SyncBuckets {
        /// One digest per bucket, [`SYNC_BUCKETS`] of them.
        digests: Vec<u64>,
    },
    /// Anti-entropy steps 3 and 4: the records of the buckets that differ.
    SyncRecords {
        /// Bitmap of the buckets the records are drawn from.
        buckets: u64,
        /// Distinct metadata values the records refer to.
        metas: Vec<Arc<NodeMeta>>,
        /// The sender's records in those buckets.
        records: Vec<SyncRecord>,
        /// True from the initiator: answer with your records of `buckets`.
        reply: bool,
        /// The sender had more records in `buckets` than one message may
        /// carry; the initiator continues with another exchange at once.
        truncated: bool,
    },
    /// Introduces the sender: the only message accepted from a peer whose
    /// certificate the receiver does not hold yet.
    Hello {
        /// The sender's certificate.
        cert: Box<NodeCert>,
        /// Asks the receiver to introduce itself in turn.
        reply: bool,
    },
    /// Replicated state.
    State(StateMessage),
    /// The lease protocol: grant requests and answers.
    Lease(LeaseMessage),
}

/// Why an incoming message was dropped. Decoding never changes agent state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Empty input.
    #[error("empty message")]
    Empty,
    /// Longer than [`MESSAGE_BYTES_MAX`].
    #[error("message of {0} bytes exceeds the {MESSAGE_BYTES_MAX}-byte limit")]
    TooLarge(usize),
    /// A version byte this agent does not speak.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u8),
    /// Not a valid encoding of a [`Message`].
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Valid encoding followed by extra bytes.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// Decoded, but outside the protocol's limits.
    #[error("message violates protocol limits: {0}")]
    Invalid(&'static str),
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(String);

/// Encodes a message, version byte first. Fails only for a message over
/// [`MESSAGE_BYTES_MAX`], which the agent's own bounds prevent; the agent
/// counts and drops such a message rather than trusting that.
pub fn encode(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let body = bincode::serde::encode_to_vec(message, BINCODE)
        .map_err(|error| EncodeError(error.to_string()))?;
    let mut bytes = Vec::with_capacity(body.len() + 1);
    bytes.push(PROTOCOL_VERSION);
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Encodes one replicated entry on its own, version byte first: a record
/// of the runtime's journal (`Output::Journal`). Fails only for an
/// entry over [`MESSAGE_BYTES_MAX`], which no merged entry can be, since
/// each arrived in a message.
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, EncodeError> {
    let mut bytes = vec![PROTOCOL_VERSION];
    bincode::serde::encode_into_std_write(entry, &mut bytes, BINCODE)
        .map_err(|error| EncodeError(error.to_string()))?;
    Ok(bytes)
}

/// Decodes one entry [`encode_entry`] wrote, bounded like a message. The
/// entry is not trusted: it is verified again as it is merged.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, DecodeError> {
    decode_versioned(bytes)
}

/// Decodes and validates one message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let message = decode_versioned(bytes)?;
    validate(&message)?;
    Ok(message)
}

/// Decodes what [`encode`] or [`encode_entry`] wrote: at most
/// [`MESSAGE_BYTES_MAX`] bytes, this protocol version's byte, then one
/// whole value and nothing after it.
fn decode_versioned<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (value, read): (T, usize) = bincode::serde::decode_from_slice(body, BINCODE)
        .map_err(|error| DecodeError::Malformed(error.to_string()))?;
    if read != body.len() {
        return Err(DecodeError::TrailingBytes(body.len() - read));
    }
    Ok(value)
}

fn validate(message: &Message) -> Result<(), DecodeError> {
    match message {
        Message::Ping { updates, .. }
        | Message::Ack { updates, .. }
        | Message::PingReq { updates, .. }
        | Message::Gossip { updates } => validate_updates(updates),
        Message::Nack { .. } | Message::SyncRoot { .. } | Message::Hello { .. } => Ok(()),
        Message::State(state) => validate_state(state),
        Message::Lease(lease) => {
            if !lease.is_valid() {
                return Err(DecodeError::Invalid("lease scope out of bounds"));
            }
            Ok(())
        }
        Message::SyncBuckets { digests } => {
            if digests.len() != SYNC_BUCKETS {
                return Err(DecodeError::Invalid("wrong number of bucket digests"));
            }
            Ok(())
        }
        Message::SyncRecords { metas, records, .. } => {
            if records.len() > RECORDS_MAX || metas.len() > records.len() {
                return Err(DecodeError::Invalid("too many records or metadata values"));
            }
            if !metas.iter().all(|meta| meta.validate().is_ok()) {
                return Err(DecodeError::Invalid("record metadata over limits"));
            }
            let indices_ok = records
                .iter()
                .filter_map(|record| record.meta)
                .all(|(_, index)| (index as usize) < metas.len());
            if !indices_ok {
                return Err(DecodeError::Invalid("record refers to missing metadata"));
            }
            Ok(())
        }
    }
}

fn validate_state(message: &StateMessage) -> Result<(), DecodeError> {
    let ok = match message {
        StateMessage::Roots { roots } => roots.len() == Kind::ALL.len(),
        StateMessage::Buckets { kinds } => {
            kinds.len() <= Kind::ALL.len()
                && kinds
                    .iter()
                    .all(|(_, digests)| digests.len() == STATE_BUCKETS)
        }
        StateMessage::Versions { pairs, .. } => pairs.len() <= PAIRS_MAX,
        StateMessage::Want { keys, .. } => keys.len() <= WANTS_MAX,
        // Entries are bounded by the message size; each is verified on merge.
        StateMessage::Entries { .. } => true,
        StateMessage::Push { announces, .. } => announces.len() <= WANTS_MAX,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Invalid("state message over its limits"))
    }
}

fn validate_updates(updates: &[Update]) -> Result<(), DecodeError> {
    if updates.len() > UPDATES_MAX {
        return Err(DecodeError::Invalid("too many piggybacked updates"));
    }
    let metas_ok = updates
        .iter()
        .filter_map(|update| update.meta.as_ref())
        .all(|meta| meta.validate().is_ok());
    if !metas_ok {
        return Err(DecodeError::Invalid("update metadata over limits"));
    }
    Ok(())
}

/// The anti-entropy bucket of a member.
pub fn bucket_of(id: NodeId) -> usize {
    (id.0 >> (64 - SYNC_BUCKETS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::encoded_len;
    use crate::limits::UPDATE_BYTES_MAX;
    use fleetmesh_crdt::meta_limits;
    use proptest::prelude::*;

    fn sample() -> Message {
        Message::Ping {
            seq: 9,
            target: NodeId(42),
            updates: vec![Update {
                id: NodeId(42),
                incarnation: 3,
                state: MemberState::Suspect,
                from: NodeId(1),
                meta: None,
            }],
        }
    }

    /// [`UPDATE_BYTES_MAX`] bounds a real update with the largest metadata
    /// the limits allow.
    #[test]
    fn update_bytes_max_bounds_the_widest_update() {
        let tags = (0..meta_limits::TAGS_MAX)
            .map(|at| (format!("{at:02}"), "v".repeat(10)))
            .collect();
        let meta = NodeMeta {
            tags,
            addrs: vec!["a".repeat(16); meta_limits::ADDRS_MAX],
        };
        let widest = Update {
            id: NodeId(u64::MAX),
            incarnation: Incarnation::MAX,
            state: MemberState::Alive,
            from: NodeId(u64::MAX),
            meta: Some(Arc::new(meta)),
        };
        assert!(
            widest
                .meta
                .as_ref()
                .is_some_and(|meta| meta.validate().is_ok())
        );
        let len = encoded_len(&widest);
        assert!(len <= UPDATE_BYTES_MAX, "{len} > {UPDATE_BYTES_MAX}");
        assert!(len + 64 > UPDATE_BYTES_MAX, "the bound is tight: {len}");
    }

    #[test]
    fn round_trips() {
        let message = sample();
        assert_eq!(decode(&encode(&message).unwrap()), Ok(message));
    }

    #[test]
    fn refuses_unknown_version_and_trailing_bytes() {
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(1)));
        bytes[0] = 7;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownVersion(7)));
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
    }

    #[test]
    fn refuses_a_huge_length_prefix_without_allocating_it() {
        // Gossip variant (index 4) claiming 2^60 updates.
        let bytes = [PROTOCOL_VERSION, 4, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed(_))));
    }

    fn lease_sample(scope: &str) -> Message {
        let key = fleetmesh_crdt::Keypair::from_seed([7; 32]);
        Message::Lease(LeaseMessage::Request {
            attempt: 3,
            request: fleetmesh_crdt::GrantRequest {
                scope: scope.into(),
                epoch: 2,
                holder: key.public(),
                ttl_millis: 10_000,
            },
        })
    }

    #[test]
    fn lease_messages_round_trip_and_bound_their_scope() {
        let message = lease_sample("singleton:backup");
        assert_eq!(decode(&encode(&message).unwrap()), Ok(message));
        let long = encode(&lease_sample(&"x".repeat(65))).unwrap();
        assert!(matches!(decode(&long), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn entries_round_trip_alone_and_damage_is_an_error() {
        let key = fleetmesh_crdt::Keypair::from_seed([3; 32]);
        let record = fleetmesh_crdt::SignedRecord::sign(
            fleetmesh_crdt::LedgerRecord {
                key: fleetmesh_crdt::IdempotencyKey {
                    rule: "web-down".into(),
                    target: key.public(),
                    incident: "web@1#0".into(),
                },
                author: key.public(),
                at: fleetmesh_crdt::Hlc {
                    millis: 5,
                    counter: 0,
                },
                kind: fleetmesh_crdt::RecordKind::Started { epoch: 1 },
            },
            &key,
        );
        let entry = Entry::Ledger(Box::new(record));
        let bytes = encode_entry(&entry).unwrap();
        assert_eq!(decode_entry(&bytes), Ok(entry));
        assert!(decode_entry(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_entry(&longer), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(decode_entry(&[]), Err(DecodeError::Empty));
        assert_eq!(decode_entry(&[9]), Err(DecodeError::UnknownVersion(9)));
    }

    #[test]
    fn bucket_uses_top_bits() {
        assert_eq!(bucket_of(NodeId(0)), 0);
        assert_eq!(bucket_of(NodeId(u64::MAX)), SYNC_BUCKETS - 1);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(flip in any::<prop::sample::Index>(), value in any::<u8>()) {
            let mut bytes = encode(&sample()).unwrap();
            let at = flip.index(bytes.len());
            bytes[at] = value;
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_lease_messages_never_panic(flip in any::<prop::sample::Index>(), value in any::<u8>()) {
            let mut bytes = encode(&lease_sample("s")).unwrap();
            let at = flip.index(bytes.len());
            bytes[at] = value;
            let _ = decode(&bytes);
        }
    }
}
