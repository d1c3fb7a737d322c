//! `wire_decode`: what any admitted peer (or anyone reaching the QUIC
//! port, for `Hello`) can make an agent decode.

use fleetmesh_node::wire;

/// Decodes `data` as one wire message ([`wire::decode`]: version byte,
/// bounded bincode, protocol limits). Checks that decoding never panics,
/// and that a message that decodes encodes again and decodes back to
/// itself, so what an agent forwards is what it understood.
pub fn wire_decode(data: &[u8]) {
    let Ok(message) = wire::decode(data) else {
        return;
    };
    let bytes = wire::encode(&message).expect("a decoded message encodes again");
    assert!(
        bytes.len() <= data.len(),
        "re-encoding grew a message from {} to {} bytes",
        data.len(),
        bytes.len()
    );
    let again = wire::decode(&bytes).expect("a re-encoded message decodes");
    assert_eq!(
        again, message,
        "a message changed through encode and decode"
    );
}
