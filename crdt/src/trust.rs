//! The trust document: who may do what in a fleet.
//!
//! A fleet is named by the digest of its first trust document (the
//! *genesis*), which every agent is given when it is installed. Each later
//! version is valid only when signed by the root threshold of the version
//! before it *and* by the root threshold it declares itself (as in The
//! Update Framework: the old roots authorize the change, the new roots prove
//! they exist and agree), so root keys rotate without ever trusting a key
//! the previous roots did not vouch for.
//!
//! Replicas hold the set of well-formed, correctly signed documents they
//! have seen; the *chain* is a pure function of that set: from the genesis,
//! each version's successor is the valid candidate with the lowest digest.
//! Two valid candidates for one version exist only if a root threshold
//! signed both, which is key misuse; picking deterministically keeps every
//! replica on the same chain even then.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::keys::{Digest, Keypair, PublicKey, Signature, SignatureCheck, Verifier, domain};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Sign the next trust document.
    Root,
    /// Author config changes and sign releases.
    Config,
    /// Sign node certificates.
    Admit,
    /// Approve risky remediations.
    Approve,
    /// Pause all automation at once (an emergency stop). One signature is
    /// enough by design: stopping is safe, resuming a release is not
    /// cheaper than it was.
    Stop,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 5] = [
        Role::Root,
        Role::Config,
        Role::Admit,
        Role::Approve,
        Role::Stop,
    ];

    /// The role's name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Config => "config",
            Role::Admit => "admit",
            Role::Approve => "approve",
            Role::Stop => "stop",
        }
    }

    /// Parses a role name.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == text)
    }
}

/// Bounds on a trust document, so one cannot exhaust an agent's memory.
pub mod trust_limits {
    /// Longest fleet name, in bytes.
    pub const FLEET_NAME_MAX: usize = 64;
    /// Most operator keys in one document.
    pub const KEYS_MAX: usize = 256;
    /// Most revoked keys (operators and nodes) in one document.
    pub const REVOKED_MAX: usize = 65_536;
    /// Most signatures carried by one document.
    pub const SIGNATURES_MAX: usize = 64;
    /// Most candidate documents kept for one version.
    pub const CANDIDATES_PER_VERSION: usize = 4;
}

/// One version of a fleet's trust document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustDoc {
    /// The fleet's human name.
    pub fleet: String,
    /// 1 for the genesis, then exactly one more per update.
    pub version: u64,
    /// Operator keys and their roles.
    pub keys: BTreeMap<PublicKey, BTreeSet<Role>>,
    /// Root signatures the next version needs (and this one needs from its
    /// own roots).
    pub root_threshold: u32,
    /// `config` signatures a release needs.
    pub config_threshold: u32,
    /// Keys no longer trusted for anything, operators' and nodes' alike.
    /// Revocation is for compromise: every statement such a key signed,
    /// before or after, stops counting. A key that merely retires is
    /// dropped from `keys` instead and what it signed stays valid.
    pub revoked: BTreeSet<PublicKey>,
}

impl TrustDoc {
    /// Version 1 of fleet `fleet` with operator `keys`: one root and one
    /// config signature suffice, and nothing is revoked. For fleets whose
    /// operators start small (tests, benchmarks); `fleet init` sets the
    /// thresholds it is given.
    pub fn genesis(fleet: &str, keys: BTreeMap<PublicKey, BTreeSet<Role>>) -> TrustDoc {
        TrustDoc {
            fleet: fleet.to_owned(),
            version: 1,
            keys,
            root_threshold: 1,
            config_threshold: 1,
            revoked: BTreeSet::new(),
        }
    }

    /// The keys holding `role`.
    pub fn holders(&self, role: Role) -> impl Iterator<Item = &PublicKey> {
        self.keys
            .iter()
            .filter(move |(_, roles)| roles.contains(&role))
            .map(|(key, _)| key)
    }

    /// Whether `key` holds `role` in this version.
    pub fn has_role(&self, key: &PublicKey, role: Role) -> bool {
        self.keys
            .get(key)
            .is_some_and(|roles| roles.contains(&role))
    }

    /// Checks the document's own consistency.
    pub fn validate(&self) -> Result<(), TrustError> {
        use trust_limits::*;
        let bad = |reason: String| Err(TrustError::Malformed(reason));
        if self.fleet.is_empty() || self.fleet.len() > FLEET_NAME_MAX {
            return bad(format!("fleet name must be 1..={FLEET_NAME_MAX} bytes"));
        }
        if self.version == 0 {
            return bad("versions start at 1".into());
        }
        if self.keys.len() > KEYS_MAX || self.revoked.len() > REVOKED_MAX {
            return bad(format!(
                "at most {KEYS_MAX} keys and {REVOKED_MAX} revocations"
            ));
        }
        if let Some(key) = self.keys.keys().find(|key| self.revoked.contains(key)) {
            return bad(format!("key {key:?} is both trusted and revoked"));
        }
        for (role, threshold) in [
            (Role::Root, self.root_threshold),
            (Role::Config, self.config_threshold),
        ] {
            let holders = self.holders(role).count();
            if threshold == 0 || threshold as usize > holders {
                return bad(format!(
                    "{} threshold {threshold} needs 1..={holders} (the number of {} keys)",
                    role.name(),
                    role.name()
                ));
            }
        }
        Ok(())
    }

    /// The digest signers sign.
    pub fn signing_digest(&self) -> Digest {
        Digest::of(domain::TRUST, self)
    }
}

/// A trust document with its root signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTrust {
    /// The document.
    pub doc: TrustDoc,
    /// Signatures by root keys over [`TrustDoc::signing_digest`].
    pub signatures: BTreeMap<PublicKey, Signature>,
}

impl SignedTrust {
    /// `doc` signed by each of `signers` (the root keys at hand; whether
    /// they are enough is for the verifier to say).
    pub fn sign(doc: TrustDoc, signers: &[&Keypair]) -> SignedTrust {
        let digest = doc.signing_digest();
        let signatures = signers
            .iter()
            .map(|signer| (signer.public(), signer.sign_digest(&digest)))
            .collect();
        SignedTrust { doc, signatures }
    }

    /// The content address of this document (its signing digest: the
    /// signatures are evidence about it, not part of it).
    pub fn digest(&self) -> Digest {
        self.doc.signing_digest()
    }

    /// Counts valid signatures by `doc`'s holders of `role`, all checked in
    /// one batch; an invalid signature fails the whole document rather than
    /// being skipped, so garbage never rides along with a valid quorum.
    fn signed_by_threshold(
        &self,
        authority: &TrustDoc,
        threshold: u32,
        verifier: &dyn Verifier,
    ) -> bool {
        let digest = self.digest();
        let checks: Vec<SignatureCheck> = self
            .signatures
            .iter()
            .filter(|(key, _)| authority.has_role(key, Role::Root))
            .map(|(key, signature)| SignatureCheck {
                key: *key,
                digest,
                signature: *signature,
            })
            .collect();
        checks.len() >= threshold as usize && verifier.verify_all(&checks)
    }

    fn check_shape(&self) -> Result<(), TrustError> {
        self.doc.validate()?;
        if self.signatures.len() > trust_limits::SIGNATURES_MAX {
            return Err(TrustError::Malformed(format!(
                "more than {} signatures",
                trust_limits::SIGNATURES_MAX
            )));
        }
        Ok(())
    }

    /// Verifies a genesis document: version 1, signed by its own root
    /// threshold.
    pub fn verify_genesis(&self, verifier: &dyn Verifier) -> Result<(), TrustError> {
        self.check_shape()?;
        if self.doc.version != 1 {
            return Err(TrustError::Malformed("a genesis is version 1".into()));
        }
        if !self.signed_by_threshold(&self.doc, self.doc.root_threshold, verifier) {
            return Err(TrustError::Unauthorized);
        }
        Ok(())
    }

    /// Verifies this document as the successor of `previous`.
    pub fn verify_successor(
        &self,
        previous: &TrustDoc,
        verifier: &dyn Verifier,
    ) -> Result<(), TrustError> {
        self.check_shape()?;
        if self.doc.version != previous.version + 1 {
            return Err(TrustError::NotNext {
                have: previous.version,
                got: self.doc.version,
            });
        }
        if self.doc.fleet != previous.fleet {
            return Err(TrustError::Malformed("a fleet cannot be renamed".into()));
        }
        if !self.signed_by_threshold(previous, previous.root_threshold, verifier)
            || !self.signed_by_threshold(&self.doc, self.doc.root_threshold, verifier)
        {
            return Err(TrustError::Unauthorized);
        }
        Ok(())
    }
}

/// Why a trust document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The document is inconsistent or over a bound.
    #[error("malformed trust document: {0}")]
    Malformed(String),
    /// Not signed by the root threshold it needs.
    #[error("trust document lacks the root signatures it needs")]
    Unauthorized,
    /// Not the version after one this replica holds.
    #[error("trust document version {got} does not follow version {have}")]
    NotNext {
        /// The version it would have to follow.
        have: u64,
        /// Its version.
        got: u64,
    },
    /// A different fleet's genesis.
    #[error("trust document belongs to another fleet")]
    OtherFleet,
}

/// What inserting a trust document did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustInsert {
    /// Already held.
    Known,
    /// Held as a candidate; the chain did not change.
    Stored,
    /// The chain changed (usually: a new head).
    ChainChanged,
}

/// A replica's trust documents and the chain they resolve to.
#[derive(Clone, Debug)]
pub struct TrustChain {
    fleet: Digest,
    candidates: BTreeMap<u64, BTreeMap<Digest, SignedTrust>>,
    chain: Vec<Digest>,
}

impl TrustChain {
    /// A replica that trusts `genesis`.
    pub fn new(genesis: SignedTrust, verifier: &dyn Verifier) -> Result<TrustChain, TrustError> {
        genesis.verify_genesis(verifier)?;
        let fleet = genesis.digest();
        let mut candidates = BTreeMap::new();
        candidates.insert(1, BTreeMap::from([(fleet, genesis)]));
        Ok(TrustChain {
            fleet,
            candidates,
            chain: vec![fleet],
        })
    }

    /// The fleet's id: the genesis digest.
    pub fn fleet_id(&self) -> Digest {
        self.fleet
    }

    /// The newest document of the chain.
    pub fn head(&self) -> &SignedTrust {
        let version = self.chain.len() as u64;
        self.get(version).unwrap_or_else(|| self.genesis())
    }

    fn genesis(&self) -> &SignedTrust {
        &self.candidates[&1][&self.fleet]
    }

    /// The chain's document of `version`.
    pub fn get(&self, version: u64) -> Option<&SignedTrust> {
        let index = usize::try_from(version.checked_sub(1)?).ok()?;
        let digest = self.chain.get(index)?;
        self.candidates.get(&version)?.get(digest)
    }

    /// The chain, genesis first.
    pub fn chain(&self) -> impl Iterator<Item = &SignedTrust> {
        (1..=self.chain.len() as u64).filter_map(|version| self.get(version))
    }

    /// An order-independent digest of the chain, for anti-entropy.
    pub fn digest(&self) -> Digest {
        let mut digest = Digest::default();
        for link in &self.chain {
            digest.xor(link);
        }
        digest
    }

    /// Whether `key` is revoked by the head.
    pub fn is_revoked(&self, key: &PublicKey) -> bool {
        self.head().doc.revoked.contains(key)
    }

    /// Whether `key` held `role` in the chain's version `version` and is not
    /// revoked now.
    pub fn authorizes(&self, key: &PublicKey, role: Role, version: u64) -> bool {
        !self.is_revoked(key)
            && self
                .get(version)
                .is_some_and(|trust| trust.doc.has_role(key, role))
    }

    /// Adds a document; the chain is re-resolved if it could change.
    pub fn insert(
        &mut self,
        doc: SignedTrust,
        verifier: &dyn Verifier,
    ) -> Result<TrustInsert, TrustError> {
        let version = doc.doc.version;
        let digest = doc.digest();
        if self
            .candidates
            .get(&version)
            .is_some_and(|held| held.contains_key(&digest))
        {
            return Ok(TrustInsert::Known);
        }
        if version <= 1 {
            return Err(TrustError::OtherFleet);
        }
        // Valid after some held predecessor, or refused: only documents a
        // root threshold signed take space.
        let mut last_error = TrustError::NotNext {
            have: self.chain.len() as u64,
            got: version,
        };
        let follows_held = self
            .candidates
            .get(&(version - 1))
            .into_iter()
            .flat_map(|held| held.values())
            .any(
                |previous| match doc.verify_successor(&previous.doc, verifier) {
                    Ok(()) => true,
                    Err(error) => {
                        last_error = error;
                        false
                    }
                },
            );
        if !follows_held {
            return Err(last_error);
        }
        let held = self.candidates.entry(version).or_default();
        held.insert(digest, doc);
        while held.len() > trust_limits::CANDIDATES_PER_VERSION {
            held.pop_last();
        }
        let before = self.chain.clone();
        self.resolve(verifier);
        Ok(if self.chain == before {
            TrustInsert::Stored
        } else {
            TrustInsert::ChainChanged
        })
    }

    fn resolve(&mut self, verifier: &dyn Verifier) {
        self.chain.truncate(1);
        loop {
            let version = self.chain.len() as u64;
            let Some(previous) = self.get(version).map(|trust| trust.doc.clone()) else {
                return;
            };
            // Candidates are ordered by digest: the first valid one wins.
            let next = self.candidates.get(&(version + 1)).and_then(|held| {
                held.iter()
                    .find(|(_, doc)| doc.verify_successor(&previous, verifier).is_ok())
                    .map(|(digest, _)| *digest)
            });
            match next {
                Some(digest) => self.chain.push(digest),
                None => return,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::{Ed25519, Keypair};

    pub(crate) fn key(n: u8) -> Keypair {
        Keypair::from_seed([n; 32])
    }

    /// A document naming `roots` as root keys (threshold 2 when there are at
    /// least two), key 100 as the single config, admit and approve key, and
    /// key 101 as the stop key unless it is revoked.
    pub(crate) fn doc(version: u64, roots: &[&Keypair], revoked: &[PublicKey]) -> TrustDoc {
        let mut keys = BTreeMap::new();
        for root in roots {
            keys.insert(root.public(), BTreeSet::from([Role::Root]));
        }
        keys.insert(
            key(100).public(),
            BTreeSet::from([Role::Config, Role::Admit, Role::Approve]),
        );
        if !revoked.contains(&key(101).public()) {
            keys.insert(key(101).public(), BTreeSet::from([Role::Stop]));
        }
        TrustDoc {
            fleet: "test".into(),
            version,
            keys,
            root_threshold: roots.len().min(2) as u32,
            config_threshold: 1,
            revoked: revoked.iter().copied().collect(),
        }
    }

    pub(crate) fn sign(doc: TrustDoc, signers: &[&Keypair]) -> SignedTrust {
        SignedTrust::sign(doc, signers)
    }

    #[test]
    fn genesis_needs_its_root_threshold() {
        let (a, b) = (key(1), key(2));
        let genesis = doc(1, &[&a, &b], &[]);
        assert!(TrustChain::new(sign(genesis.clone(), &[&a]), &Ed25519).is_err());
        assert!(TrustChain::new(sign(genesis, &[&a, &b]), &Ed25519).is_ok());
    }

    #[test]
    fn rotation_needs_old_and_new_roots_and_versions_step_by_one() {
        let (a, b, c) = (key(1), key(2), key(3));
        let mut chain = TrustChain::new(sign(doc(1, &[&a, &b], &[]), &[&a, &b]), &Ed25519).unwrap();
        // b is replaced by c: a+b authorize, a+c accept.
        let rotated = doc(2, &[&a, &c], &[]);
        assert_eq!(
            chain.insert(sign(rotated.clone(), &[&a, &b]), &Ed25519),
            Err(TrustError::Unauthorized)
        );
        assert_eq!(
            chain.insert(sign(rotated.clone(), &[&a, &c]), &Ed25519),
            Err(TrustError::Unauthorized)
        );
        assert_eq!(
            chain.insert(sign(rotated, &[&a, &b, &c]), &Ed25519),
            Ok(TrustInsert::ChainChanged)
        );
        assert_eq!(chain.head().doc.version, 2);
        // Version 3 must now be authorized by a and c; b no longer counts.
        let next = doc(3, &[&a, &c], &[key(9).public()]);
        assert_eq!(
            chain.insert(sign(next.clone(), &[&a, &b]), &Ed25519),
            Err(TrustError::Unauthorized)
        );
        assert!(chain.insert(sign(next, &[&a, &c]), &Ed25519).is_ok());
        assert!(chain.is_revoked(&key(9).public()));
        // Skipping a version is refused.
        assert!(matches!(
            chain.insert(sign(doc(5, &[&a, &c], &[]), &[&a, &c]), &Ed25519),
            Err(TrustError::NotNext { .. })
        ));
    }

    #[test]
    fn chain_is_the_same_whatever_order_documents_arrive_in() {
        let (a, b) = (key(1), key(2));
        let genesis = sign(doc(1, &[&a, &b], &[]), &[&a, &b]);
        let v2 = sign(doc(2, &[&a, &b], &[key(7).public()]), &[&a, &b]);
        let v2_fork = sign(doc(2, &[&a, &b], &[key(8).public()]), &[&a, &b]);
        let v3 = sign(doc(3, &[&a, &b], &[key(7).public()]), &[&a, &b]);
        let v3_fork = sign(doc(3, &[&a, &b], &[key(8).public()]), &[&a, &b]);
        let docs = [v2, v2_fork, v3, v3_fork];
        let mut heads = BTreeSet::new();
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            let mut chain = TrustChain::new(genesis.clone(), &Ed25519).unwrap();
            // Documents whose predecessor is missing are refused now and
            // offered again by anti-entropy later: two passes model that.
            for _ in 0..2 {
                for &index in &order {
                    let _ = chain.insert(docs[index].clone(), &Ed25519);
                }
            }
            heads.insert(chain.chain().map(SignedTrust::digest).collect::<Vec<_>>());
        }
        assert_eq!(heads.len(), 1);
    }

    #[test]
    fn malformed_documents_are_refused() {
        let a = key(1);
        let mut bad = doc(1, &[&a], &[]);
        bad.config_threshold = 5;
        assert!(matches!(
            TrustChain::new(sign(bad, &[&a]), &Ed25519),
            Err(TrustError::Malformed(_))
        ));
        let mut both = doc(1, &[&a], &[]);
        both.revoked.insert(a.public());
        assert!(matches!(
            TrustChain::new(sign(both, &[&a]), &Ed25519),
            Err(TrustError::Malformed(_))
        ));
    }
}
