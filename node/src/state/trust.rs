//! The trust chain as a replicated collection.

use fleetmesh_crdt::keys::domain;
use fleetmesh_crdt::{
    Digest, Merge, Rejected, SignedTrust, TrustChain, TrustError, TrustInsert, Verifier,
};

fn version_key(version: u64) -> Digest {
    Digest::of(domain::CONTENT, &("trust", version))
}

/// Merges a trust document into `chain`. Kept apart from [`Replica`]
/// because every other collection's merge reads the chain.
///
/// [`Replica`]: fleetmesh_crdt::Replica
pub(super) fn merge_trust(
    chain: &mut TrustChain,
    doc: SignedTrust,
    verifier: &dyn Verifier,
) -> Result<Merge, Rejected> {
    let key = version_key(doc.doc.version);
    let version = doc.digest();
    match chain.insert(doc, verifier) {
        Ok(TrustInsert::ChainChanged) => Ok(Merge::Changed {
            key,
            version,
            replaced: None,
        }),
        Ok(TrustInsert::Known | TrustInsert::Stored) => Ok(Merge::Unchanged),
        // A document whose predecessor has not arrived yet is offered again
        // by anti-entropy once it has.
        Err(TrustError::NotNext { .. }) => Ok(Merge::Pending),
        Err(TrustError::Unauthorized) => Err(Rejected::Unauthorized("trust document".into())),
        Err(error) => Err(Rejected::Malformed(error.to_string())),
    }
}

/// The chain's (key, version) pairs.
pub(super) fn trust_versions(chain: &TrustChain) -> Vec<(Digest, Digest)> {
    chain
        .chain()
        .map(|doc| (version_key(doc.doc.version), doc.digest()))
        .collect()
}

/// The chain's document under `key`.
pub(super) fn trust_entry(chain: &TrustChain, key: &Digest) -> Option<SignedTrust> {
    chain
        .chain()
        .find(|doc| version_key(doc.doc.version) == *key)
        .cloned()
}
