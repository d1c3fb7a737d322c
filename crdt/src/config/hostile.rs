//! Config change bytes that broke automerge 0.12, for the simulator's
//! attacker and for tests: the two inputs of
//! `shared/repro/automerge-panics.md` (found by fuzzing the config-change
//! path), with their actor rewritten to the key that is to sign them.
//!
//! Both have no dependencies and a 32-byte actor at byte 13, and automerge
//! does not check a change's header checksum, so rewriting the actor keeps
//! them what they are.

use crate::keys::PublicKey;

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

/// Change bytes, written as `author`, that parse but make automerge 0.12
/// panic when applied; `author` can sign them.
pub fn apply_panic(author: &PublicKey) -> Vec<u8> {
    crafted(APPLY_PANIC, author)
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
