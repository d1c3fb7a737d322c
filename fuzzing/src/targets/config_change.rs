//! `config_change`: the path that crashed (issue 15): automerge change
//! bytes signed by a key holding `config`, merged into documents that
//! already have a history, then read and released.

use std::sync::OnceLock;

use fleetmesh_node::crdt::{
    AppliedRelease, ConfigEntry, ConfigStore, Ctx, Digest, Keypair, PublicKey, Release, ReleaseLog,
    Replica, Signature, SignedChange, SignedRelease,
};

use crate::fixture::{Fixture, ITEM_DOMAIN, fixture};

/// automerge's magic bytes, which start every change chunk.
pub const CHANGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Most changes one input holds; the rest of the input is ignored.
pub const CHANGES_MAX: usize = 8;

/// The document a change goes to when it names no parent the fleet holds:
/// a fresh one, where a first change applies at once.
pub const FRESH_DOC: &str = "fuzz";

/// The fixture fleet's documents a target's store starts with: the small
/// one `operator-2` wrote. Two stores are built for every input, and
/// automerge takes a millisecond to apply a change making nested objects
/// (the policy) or to inflate a deflated one (the generated document):
/// 50 times as long. Changes to the other documents go to [`FRESH_DOC`],
/// where a first change applies.
pub const BASE_DOCS: [&str; 1] = ["team-b"];

/// Takes `data` as automerge change chunks laid end to end (each starts at
/// [`CHANGE_MAGIC`], at most [`CHANGES_MAX`]). Each is signed by the config
/// key its actor id names (by default the `operator` key), as a legitimate
/// but misbehaving key holder could, for the document holding a parent it
/// names (else [`FRESH_DOC`]); a change that does not parse goes unsigned.
/// Two stores holding [`BASE_DOCS`] take the changes, one in a batch in
/// input order, the other one by one in reverse, then offer each other the
/// evidence they hold, as anti-entropy would: a key that signed two
/// unappliable changes is convicted by whichever came first, and replicas
/// keep the lowest-keyed proof once they have seen both (docs/security.md,
/// "Equivocation and malformed-change evidence"). Checks that no panic
/// escapes, that both stores end identical (documents, heads, changes
/// held, pending, quarantined keys, and the content of every document the
/// changes touched), that those documents read at their heads, and that a
/// release of their heads signed by the config threshold is accepted,
/// applied and reads the same content.
///
/// When the first store ends as it started (every change refused or
/// known: most mutations do not parse), the second is not built: refusals
/// depend on the change alone, so it would end as it started too.
pub fn config_change(data: &[u8]) {
    let fixture = fixture();
    let base = base();
    let mut forward = base_store();
    let changes: Vec<ConfigEntry> = split(data)
        .into_iter()
        .map(|bytes| ConfigEntry::Change(sign(fixture, &forward, bytes)))
        .collect();
    fixture.with_ctx(&fixture.trust, |ctx| {
        forward.merge_batch(changes.clone(), ctx)
    });
    if State::of(&forward, base) == *base {
        return;
    }
    let mut backward = base_store();
    fixture.with_ctx(&fixture.trust, |ctx| {
        for change in changes.into_iter().rev() {
            let _ = backward.merge(change, ctx);
        }
        offer_evidence(&forward, &mut backward, ctx);
        offer_evidence(&backward, &mut forward, ctx);
    });
    let state = State::of(&forward, base);
    assert_eq!(
        state,
        State::of(&backward, base),
        "two orders of one set of changes diverged"
    );
    for (doc, heads, _) in &state.documents {
        if base.heads_of(doc) != Some(heads) {
            release(fixture, &forward, doc, heads);
        }
    }
}

/// Merges into `to` every proof `from` holds (anti-entropy offers evidence
/// like any other entry).
fn offer_evidence(from: &ConfigStore, to: &mut ConfigStore, ctx: &Ctx<'_>) {
    for key in from.evidence_keys() {
        if let Some(entry) = from.entry(key) {
            let _ = to.merge(entry, ctx);
        }
    }
}

/// A store holding the fixture fleet's [`BASE_DOCS`].
pub fn base_store() -> ConfigStore {
    let fixture = fixture();
    let changes: Vec<ConfigEntry> = fixture
        .config_changes()
        .into_iter()
        .filter(|entry| match entry {
            ConfigEntry::Change(change) => BASE_DOCS.contains(&change.doc.as_str()),
            ConfigEntry::Evidence(_) | ConfigEntry::Malformed(_) => false,
        })
        .collect();
    let mut store = ConfigStore::new();
    fixture.with_ctx(&fixture.trust, |ctx| store.merge_batch(changes, ctx));
    store
}

/// The state of [`base_store`].
fn base() -> &'static State {
    static BASE: OnceLock<State> = OnceLock::new();
    BASE.get_or_init(|| {
        let store = base_store();
        let untouched = State {
            documents: Vec::new(),
            versions: Vec::new(),
            quarantined: Vec::new(),
            pending: 0,
        };
        State::of(&store, &untouched)
    })
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
    /// Per document: its id, its heads (sorted) and, if they differ from
    /// the base store's, a digest of its content at them (floats compared
    /// by their bits).
    documents: Vec<(String, Vec<Digest>, Option<Digest>)>,
    /// Changes and evidence held.
    versions: Vec<(Digest, Digest)>,
    quarantined: Vec<PublicKey>,
    pending: usize,
}

impl State {
    /// `store`'s state; only documents whose heads differ from `base`'s
    /// are read (reading a document costs as much as building it).
    fn of(store: &ConfigStore, base: &State) -> State {
        let documents = store
            .documents()
            .map(|doc| {
                let mut heads = store.heads(doc);
                heads.sort_unstable();
                let content = (base.heads_of(doc) != Some(&heads)).then(|| {
                    let value = store
                        .value_at(doc, &heads)
                        .unwrap_or_else(|| panic!("document {doc} does not read at its own heads"));
                    Digest::of(ITEM_DOMAIN, &value)
                });
                (doc.to_owned(), heads, content)
            })
            .collect();
        let mut versions = store.versions();
        versions.sort_unstable();
        State {
            documents,
            versions,
            quarantined: store.quarantined().copied().collect(),
            pending: store.pending_len(),
        }
    }

    fn heads_of(&self, doc: &str) -> Option<&Vec<Digest>> {
        self.documents
            .iter()
            .find(|(held, _, _)| held == doc)
            .map(|(_, heads, _)| heads)
    }
}

/// Releases `heads` of `doc` with the config threshold's signatures and
/// applies the release on a fresh install; it must read as the document
/// does.
fn release(fixture: &Fixture, store: &ConfigStore, doc: &str, heads: &[Digest]) {
    let mut signed = SignedRelease::new(Release {
        rollout: None,
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
