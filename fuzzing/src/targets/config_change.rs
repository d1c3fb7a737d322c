//! `config_change`: the path that crashed (issue 15): automerge change
//! bytes signed by a key holding `config`, merged into documents that
//! already have a history, then read and released.

use fleetmesh_node::crdt::{
    AppliedRelease, ConfigEntry, ConfigStore, Digest, Keypair, Release, ReleaseLog, Replica,
    Signature, SignedChange, SignedRelease,
};

use crate::fixture::{Fixture, ITEM_DOMAIN, fixture};

/// automerge's magic bytes, which start every change chunk.
pub const CHANGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Most changes one input holds; the rest of the input is ignored.
pub const CHANGES_MAX: usize = 8;

/// The document a change goes to when it names no parent the fleet holds:
/// a fresh one, where a first change applies at once.
pub const FRESH_DOC: &str = "fuzz";

/// Takes `data` as automerge change chunks laid end to end (each starts at
/// [`CHANGE_MAGIC`], at most [`CHANGES_MAX`]). Each is signed by the config
/// key its actor id names (by default the `operator` key), as a legitimate
/// but misbehaving key holder could, for the document holding a parent it
/// names (else [`FRESH_DOC`]); a change that does not parse goes unsigned.
/// Two stores holding the fixture fleet's documents take the changes, one
/// in a batch in input order, the other one by one in reverse. Checks that
/// no panic escapes, that both stores end identical (documents, heads,
/// content, changes held, quarantined keys), that every document reads at
/// its heads, and that a release of those heads signed by the config
/// threshold is accepted, applied and reads the same content.
pub fn config_change(data: &[u8]) {
    let fixture = fixture();
    let mut forward = fixture.config_store();
    let changes: Vec<ConfigEntry> = split(data)
        .into_iter()
        .map(|bytes| ConfigEntry::Change(sign(fixture, &forward, bytes)))
        .collect();
    let mut backward = fixture.config_store();
    fixture.with_ctx(&fixture.trust, |ctx| {
        forward.merge_batch(changes.clone(), ctx);
        for change in changes.into_iter().rev() {
            let _ = backward.merge(change, ctx);
        }
    });
    let state = State::of(&forward);
    assert_eq!(
        state,
        State::of(&backward),
        "two orders of one set of changes diverged"
    );
    for (doc, heads, _) in &state.documents {
        release(fixture, &forward, doc, heads);
    }
}

/// The change chunks of an input.
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut starts: Vec<usize> = data
        .windows(CHANGE_MAGIC.len())
        .enumerate()
        .filter(|(_, window)| *window == CHANGE_MAGIC)
        .map(|(at, _)| at)
        .filter(|&at| at > 0)
        .take(CHANGES_MAX - 1)
        .collect();
    starts.insert(0, 0);
    let ends = starts.iter().skip(1).copied().chain([data.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| &data[start..end])
        .filter(|chunk| !chunk.is_empty())
        .collect()
}

/// The envelope of one change chunk.
fn sign(fixture: &Fixture, store: &ConfigStore, bytes: &[u8]) -> SignedChange {
    let doc = doc_of(store, bytes);
    let author = author_of(fixture, bytes);
    let trust_version = fixture.trust.head().doc.version;
    SignedChange::sign(&doc, trust_version, author, bytes.to_vec()).unwrap_or_else(|_| {
        SignedChange {
            doc,
            trust_version,
            author: author.public(),
            change: bytes.to_vec(),
            signature: Signature::from_bytes([0; 64]),
        }
    })
}

/// The config key whose public key comes first in the chunk (the actor
/// id heads a change's header); `operator` when none does.
fn author_of<'a>(fixture: &'a Fixture, bytes: &[u8]) -> &'a Keypair {
    let keys = fixture.config_keys();
    keys.into_iter()
        .filter_map(|key| Some((find(bytes, &key.public().0)?, key)))
        .min_by_key(|(at, _)| *at)
        .map_or(keys[0], |(_, key)| key)
}

/// The document holding a change whose hash the chunk contains (a parent
/// it names); [`FRESH_DOC`] when none does.
fn doc_of(store: &ConfigStore, bytes: &[u8]) -> String {
    store
        .applied()
        .filter(|hash| find(bytes, &hash.0).is_some())
        .find_map(|hash| match store.entry(hash) {
            Some(ConfigEntry::Change(change)) => Some(change.doc),
            _ => None,
        })
        .unwrap_or_else(|| FRESH_DOC.to_owned())
}

fn find(bytes: &[u8], needle: &[u8]) -> Option<usize> {
    bytes
        .windows(needle.len())
        .position(|window| window == needle)
}

/// What two replicas of the same changes must agree on.
#[derive(Debug, PartialEq)]
struct State {
    /// Per document: its id, its heads (sorted) and a digest of its
    /// content at them (floats compared by their bits).
    documents: Vec<(String, Vec<Digest>, Digest)>,
    /// Changes and evidence held.
    versions: Vec<(Digest, Digest)>,
    quarantined: Vec<Digest>,
    pending: usize,
}

impl State {
    fn of(store: &ConfigStore) -> State {
        let documents = store
            .documents()
            .map(|doc| {
                let mut heads = store.heads(doc);
                heads.sort_unstable();
                let value = store
                    .value_at(doc, &heads)
                    .unwrap_or_else(|| panic!("document {doc} does not read at its own heads"));
                (doc.to_owned(), heads, Digest::of(ITEM_DOMAIN, &value))
            })
            .collect();
        let mut versions = store.versions();
        versions.sort_unstable();
        State {
            documents,
            versions,
            quarantined: store
                .quarantined()
                .map(|key| Digest::of(ITEM_DOMAIN, key))
                .collect(),
            pending: store.pending_len(),
        }
    }
}

/// Releases `heads` of `doc` with the config threshold's signatures and
/// applies the release on a fresh install; it must read as the document
/// does.
fn release(fixture: &Fixture, store: &ConfigStore, doc: &str, heads: &[Digest]) {
    let mut signed = SignedRelease::new(Release {
        doc: doc.to_owned(),
        version: 1,
        heads: heads.to_vec(),
        expires_millis: None,
        trust_version: fixture.trust.head().doc.version,
    });
    for key in fixture.config_keys() {
        signed.sign(key);
    }
    let mut log = ReleaseLog::new();
    let merged = fixture.with_ctx(&fixture.trust, |ctx| log.merge(signed.clone(), ctx));
    assert!(
        merged.is_ok(),
        "a threshold-signed release was refused: {merged:?}"
    );
    let next = log.next(doc, None).expect("the release is the one to run");
    assert_eq!(next, &signed, "the log offers another release");
    let applied = AppliedRelease::advance(None, next, fixture.now_millis())
        .expect("a fresh install runs the release");
    assert_eq!(applied.version, 1);
    assert!(store.has_all(doc, &next.release.heads));
    let released = store.value_at(doc, &next.release.heads);
    let current = store.value_at(doc, heads);
    assert_eq!(
        released.map(|value| Digest::of(ITEM_DOMAIN, &value)),
        current.map(|value| Digest::of(ITEM_DOMAIN, &value)),
        "the release reads otherwise than the document at its heads"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_an_input_at_each_change_magic() {
        let a = [&CHANGE_MAGIC[..], b"one"].concat();
        let b = [&CHANGE_MAGIC[..], b"two"].concat();
        let input = [b"lead".as_slice(), &a, &b].concat();
        assert_eq!(split(&input), vec![&b"lead"[..], &a[..], &b[..]]);
        assert_eq!(split(&a), vec![&a[..]]);
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn keeps_at_most_changes_max_chunks() {
        let input = CHANGE_MAGIC.repeat(3 * CHANGES_MAX);
        let chunks = split(&input);
        assert_eq!(chunks.len(), CHANGES_MAX);
        // The last chunk holds the rest of the input.
        assert_eq!(
            chunks.last().map(|chunk| chunk.len()),
            Some(CHANGE_MAGIC.len() * (2 * CHANGES_MAX + 1))
        );
    }
}
