//! `entries_verify`: entries of every kind from an admitted peer, merged
//! into an agent that holds the fleet's state.

use fleetmesh_node::wire::{self, Message, PROTOCOL_VERSION, StateMessage};
use fleetmesh_node::{Agent, crdt::Digest};
use fleetmesh_node::{Kind, StateStats};

use crate::fixture::{PEER, fixture};

/// The bytes that make a wire message of the entries that follow: the
/// version, then the variant indices of `Message::State` and
/// `StateMessage::Entries` (one varint byte each).
pub const ENTRIES_PREFIX: [u8; 3] = [PROTOCOL_VERSION, 9, 4];

/// Takes `data` as the entry list of a `State::Entries` message (a
/// bincode `Vec<Entry>`: trust documents, certificates, leases, health
/// reports, ledger records, config changes and evidence, releases), and
/// hands the message from an admitted peer to an agent holding the
/// fixture fleet's trust, certificates, config and releases, leases and
/// ledger, so that entries signed in the seed run verify and merge.
/// Checks that nothing panics, that every entry is counted once (merged,
/// known, pending or refused), and that merging is idempotent: the same
/// message again changes no collection.
pub fn entries_verify(data: &[u8]) {
    let mut bytes = ENTRIES_PREFIX.to_vec();
    bytes.extend_from_slice(data);
    let Ok(Message::State(StateMessage::Entries { entries })) = wire::decode(&bytes) else {
        return;
    };
    let fixture = fixture();
    let mut agent = fixture.agent_with_state();
    let peer = fixture.fleet.node_id(PEER);
    let before = agent.replicas().stats().clone();
    agent.handle_message(fixture.now, peer, &bytes);
    let after = agent.replicas().stats().clone();
    assert_eq!(
        counted(&after) - counted(&before),
        entries.len() as u64,
        "{} entries handed over but the counters moved from {before:?} to {after:?}",
        entries.len()
    );
    let roots = roots(&agent);
    agent.handle_message(fixture.now, peer, &bytes);
    assert_eq!(
        roots,
        self::roots(&agent),
        "merging the same entries again changed state"
    );
}

/// Entries counted by their fate.
fn counted(stats: &StateStats) -> u64 {
    stats.merged
        + stats.redundant
        + stats.pending
        + stats.bad_signatures
        + stats.unauthorized
        + stats.malformed
        + stats.future_dated
}

fn roots(agent: &Agent) -> Vec<Digest> {
    Kind::ALL
        .iter()
        .map(|&kind| agent.replicas().root(kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_how_an_entries_message_starts() {
        let empty = Message::State(StateMessage::Entries {
            entries: Vec::new(),
        });
        let bytes = wire::encode(&empty).expect("encodes");
        assert_eq!(bytes, [&ENTRIES_PREFIX[..], &[0]].concat());
    }
}
