//! Config change bytes that broke automerge 0.12, for the simulator's
//! attacker and for tests: the two inputs of
//! `shared/repro/automerge-panics.md` (found by fuzzing the config-change
//! path), and a pair of concurrent changes whose document depends on how
//! automerge took them (found by fleetmesh's `config_change` fuzz
//! target), with their actor rewritten to the key that is to sign them.
//!
//! All have no dependencies and a 32-byte actor at byte 13, and automerge
//! does not check a change's header checksum, so rewriting the actor keeps
//! them what they are.

use super::change::SignedChange;
use crate::keys::{PublicKey, Signature};

/// Parses in no automerge 0.12: an op counter past `u32::MAX` panics
/// while the change is parsed (`types.rs:464`). fleetmesh's shape check
/// refuses it before automerge sees it.
const PARSE_PANIC: &str = "856f4a83489cffab01840100201dd72d68fb519a99fe6a66b8ada89cdfb79f72879afff0bc68b446d8f049d0f701010000000a0108020811061309150a340342075609570a70026a66b8ada89cdfb79f72879afff0bc68b446d8f049d0f7010100000006150f340142025603570370027e04706f7274087265706c696361730202017e2414903f030200903f030200";

/// Parses, but automerge 0.12 panics applying it (`batch.rs:920`: an
/// object missing from the index), whatever the document.
const APPLY_PANIC: &str = "856f4a830b9a10e0018401002000de1b002cfe7e189f3c3adee4b2d42315926c4b42040187a06c2dcf1aeb0aad01010000000a0108020811061309150a340342075609570a70020001040000017f000001044100017f0600020300000200017e0002020100027f016100047e016201630104027f0204017e00017b00141685010202000178000000000000f83f0700";

/// Change bytes, written as `author`, that make automerge 0.12 panic while
/// parsing them. No signature can be made for them: the signed digest
/// names the change hash, which only a parse yields.
pub fn parse_panic(author: &PublicKey) -> Vec<u8> {
    crafted(PARSE_PANIC, author)
}

/// [`parse_panic`] as the config change of document `doc` under trust
/// version `trust_version` that `author` would publish, with a zero
/// signature: the one it could carry, since none can be made.
pub fn unparsable_change(doc: &str, trust_version: u64, author: PublicKey) -> SignedChange {
    SignedChange {
        doc: doc.into(),
        trust_version,
        author,
        change: parse_panic(&author),
        signature: Signature::from_bytes([0; 64]),
    }
}

/// Change bytes, written as `author`, that parse but make automerge 0.12
/// panic when applied; `author` can sign them.
pub fn apply_panic(author: &PublicKey) -> Vec<u8> {
    crafted(APPLY_PANIC, author)
}

/// Two changes with no parents that insert into the root map as if it
/// were a list (ops with `insert` set and list positions as keys). Both
/// apply, but automerge 0.12 builds a different document from them in
/// each order, and again when it takes both in one call: written as
/// `first` and `second`, both may sign them.
const ROOT_INSERTS: [&str; 2] = [
    "856f4a83fbbda20b01a5010020200361e6897cd248d7848cfd464c7e6dd6a237ccc344c1865c297c87cc3b1dfc01010000000a0108030811041306152934024208560a57107002000102000003030000010201000303060007020000067d0007017a066c696d2974730562757273740363707504706f7274077365727669636507776569676874730003057f0100020303047f007a010285012436000314000000000c000440903f7765620102030900",
    "856f4a83fbbda20b01a501002004e2dc9886f40944debacd1bb515dd1cb397c3f53f119e4d85796781a49039e1010a0000000a0108030811041306152934024208560a57107002000102000003030000010201000303060007020000067d0007017a066c696d2974730562757273740363707504706f7274077365727669636707776569676874730003057f0100020303047f007a000285012437000314000000000c000440903f7765620102030900",
];

/// Concurrent change bytes, written as `first` and `second`, that
/// automerge 0.12 applies into different documents depending on the order
/// and batching it takes them in.
pub fn root_inserts(first: &PublicKey, second: &PublicKey) -> [Vec<u8>; 2] {
    [
        crafted(ROOT_INSERTS[0], first),
        crafted(ROOT_INSERTS[1], second),
    ]
}

fn crafted(hex: &str, author: &PublicKey) -> Vec<u8> {
    let mut bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            // The constants above are hex: nothing here sees foreign input.
            let pair = std::str::from_utf8(pair).unwrap_or("00");
            u8::from_str_radix(pair, 16).unwrap_or(0)
        })
        .collect();
    bytes[13..45].copy_from_slice(&author.0);
    bytes
}
