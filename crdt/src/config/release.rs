//! Releases: which state of a config document agents run.
//!
//! A release names a document's heads under a version number and must be
//! signed by the config threshold of the trust version it names, so no
//! single config key can push config to the fleet. Agents walk release
//! versions forward one at a time and persist the one they applied, never
//! accepting a lower version again (rollback protection).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits;
use super::rollout::Rollout;
use crate::keys::{Digest, Keypair, PublicKey, Signature, SignatureCheck, domain};
use crate::replica::{Ctx, Merge, Rejected, Replica};
use crate::trust::Role;

/// What a release states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The document released.
    pub doc: String,
    /// The release number, from 1, increasing per document.
    pub version: u64,
    /// The document heads released, sorted.
    pub heads: Vec<Digest>,
    /// When agents stop running the release (HLC milliseconds), if ever.
    pub expires_millis: Option<u64>,
    /// The trust version whose config threshold signs the release.
    pub trust_version: u64,
    /// The waves the release reaches the fleet in, if it is staged; a
    /// release without reaches every agent at once.
    pub rollout: Option<Rollout>,
}

impl Release {
    /// The release's key and signing digest.
    pub fn digest(&self) -> Digest {
        Digest::of(domain::RELEASE, self)
    }

    /// Whether the release has expired at `now_millis`.
    pub fn is_expired(&self, now_millis: u64) -> bool {
        self.expires_millis
            .is_some_and(|expires| now_millis >= expires)
    }

    fn check_shape(&self) -> Result<(), Rejected> {
        if self.doc.is_empty() || self.doc.len() > limits::DOC_ID_MAX {
            return Err(Rejected::Malformed(format!(
                "document id must be 1..={} bytes",
                limits::DOC_ID_MAX
            )));
        }
        if self.version == 0
            || self.heads.len() > limits::RELEASE_HEADS_MAX
            || !self.heads.windows(2).all(|pair| pair[0] < pair[1])
        {
            return Err(Rejected::Malformed(format!(
                "release versions start at 1; at most {} heads, sorted and distinct",
                limits::RELEASE_HEADS_MAX
            )));
        }
        if let Some(rollout) = &self.rollout {
            rollout
                .check_shape(self.version)
                .map_err(|error| Rejected::Malformed(error.to_string()))?;
        }
        Ok(())
    }
}

/// A release with the signatures of config keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRelease {
    /// What is released.
    pub release: Release,
    /// Config keys' signatures over [`Release::digest`].
    pub signatures: BTreeMap<PublicKey, Signature>,
}

impl SignedRelease {
    /// An unsigned release, to collect signatures on.
    pub fn new(release: Release) -> SignedRelease {
        SignedRelease {
            release,
            signatures: BTreeMap::new(),
        }
    }

    /// Adds `signer`'s signature.
    pub fn sign(&mut self, signer: &Keypair) {
        let signature = signer.sign_digest(&self.release.digest());
        self.signatures.insert(signer.public(), signature);
    }

    /// The digest of the signature set: changes when signatures are added.
    fn version(&self) -> Digest {
        Digest::of(domain::CONTENT, &(self.release.digest(), &self.signatures))
    }

    /// Whether the release's trust version is newer than the replica's.
    fn is_future(&self, ctx: &Ctx<'_>) -> bool {
        self.release.trust_version > ctx.trust.head().doc.version
    }

    /// Keeps only signatures by keys authorized now, and says whether they
    /// reach the threshold.
    fn retain_authorized(&mut self, ctx: &Ctx<'_>) -> bool {
        let version = self.release.trust_version;
        self.signatures
            .retain(|key, _| ctx.trust.authorizes(key, Role::Config, version));
        ctx.trust
            .get(version)
            .is_some_and(|trust| self.signatures.len() >= trust.doc.config_threshold as usize)
    }

    /// Verifies the release and returns it with only its authorized
    /// signatures: every one must verify and they must reach the config
    /// threshold of the release's trust version.
    pub fn verify(&self, ctx: &Ctx<'_>) -> Result<SignedRelease, Rejected> {
        self.release.check_shape()?;
        if self.signatures.len() > limits::RELEASE_SIGNATURES_MAX {
            return Err(Rejected::Malformed(format!(
                "more than {} signatures",
                limits::RELEASE_SIGNATURES_MAX
            )));
        }
        let mut valid = self.clone();
        let enough = valid.retain_authorized(ctx);
        let digest = valid.release.digest();
        let checks: Vec<SignatureCheck> = valid
            .signatures
            .iter()
            .map(|(key, signature)| SignatureCheck {
                key: *key,
                digest,
                signature: *signature,
            })
            .collect();
        if !ctx.verifier.verify_all(&checks) {
            return Err(Rejected::BadSignature);
        }
        if !enough {
            return Err(Rejected::Unauthorized(
                "release lacks the config threshold of its trust version".into(),
            ));
        }
        Ok(valid)
    }
}

/// Why an agent may not move to a release.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The release is of another document.
    #[error("release is for document {0:?}")]
    OtherDocument(String),
    /// Not newer than the release applied: rollback protection.
    #[error("release version {offered} is not newer than the applied {applied}")]
    Rollback {
        /// The version applied.
        applied: u64,
        /// The version offered.
        offered: u64,
    },
    /// Past its expiry.
    #[error("release expired at {0} ms")]
    Expired(u64),
}

/// The release an agent runs for a document: what it persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRelease {
    /// The document.
    pub doc: String,
    /// The release version applied.
    pub version: u64,
    /// The release's digest.
    pub digest: Digest,
    /// When the release expires (HLC milliseconds), if ever: past it the
    /// agent is in safe mode until a newer release arrives.
    pub expires_millis: Option<u64>,
    /// The release stopped counting after it was applied: a key that
    /// signed it was revoked and the others no longer reach the threshold.
    /// Another release of the same version may then replace it, so an agent
    /// that ran a compromised key's release before it heard of the
    /// revocation is not wedged at that version.
    pub void: bool,
    /// The release's rollout failed its gate, and the agent went back to
    /// the predecessor the release names: the digest of the release whose
    /// content it runs instead. The version stays, so rollback protection
    /// still refuses the failed release and everything before it.
    pub reverted_to: Option<Digest>,
}

impl AppliedRelease {
    /// Whether the release has expired at `now_millis`.
    pub fn is_expired(&self, now_millis: u64) -> bool {
        self.expires_millis
            .is_some_and(|expires| now_millis >= expires)
    }

    /// The same release, marked void.
    pub fn voided(&self) -> AppliedRelease {
        AppliedRelease {
            void: true,
            ..self.clone()
        }
    }

    /// The digest of the release whose content runs: the predecessor after
    /// a revert, else the release itself.
    pub fn content_digest(&self) -> Digest {
        self.reverted_to.unwrap_or(self.digest)
    }

    /// The record of going back from this release to `predecessor`, the
    /// version its rollout plan names, because the plan's gate failed. It
    /// keeps the version (nothing up to it is accepted again) and takes the
    /// predecessor's expiry with its content.
    pub fn revert(&self, predecessor: &SignedRelease) -> Result<AppliedRelease, ReleaseError> {
        let body = &predecessor.release;
        if body.doc != self.doc {
            return Err(ReleaseError::OtherDocument(body.doc.clone()));
        }
        if body.version >= self.version {
            return Err(ReleaseError::Rollback {
                applied: self.version,
                offered: body.version,
            });
        }
        Ok(AppliedRelease {
            expires_millis: body.expires_millis,
            reverted_to: Some(body.digest()),
            ..self.clone()
        })
    }

    /// The record of moving from `current` (none on a fresh install) to
    /// `release`; refuses anything not newer than `current` (or, when
    /// `current` is void, older than it or `current` itself), and expired
    /// releases.
    pub fn advance(
        current: Option<&AppliedRelease>,
        release: &SignedRelease,
        now_millis: u64,
    ) -> Result<AppliedRelease, ReleaseError> {
        let body = &release.release;
        if let Some(current) = current {
            if current.doc != body.doc {
                return Err(ReleaseError::OtherDocument(body.doc.clone()));
            }
            let replaces_void =
                current.void && body.version == current.version && body.digest() != current.digest;
            if body.version <= current.version && !replaces_void {
                return Err(ReleaseError::Rollback {
                    applied: current.version,
                    offered: body.version,
                });
            }
        }
        if let Some(expires) = body.expires_millis.filter(|_| body.is_expired(now_millis)) {
            return Err(ReleaseError::Expired(expires));
        }
        Ok(AppliedRelease {
            doc: body.doc.clone(),
            version: body.version,
            digest: body.digest(),
            expires_millis: body.expires_millis,
            void: false,
            reverted_to: None,
        })
    }
}

/// Candidate releases of one document by version, then by digest.
type Versions = BTreeMap<u64, BTreeMap<Digest, SignedRelease>>;

/// The replicated log of valid releases.
#[derive(Default)]
pub struct ReleaseLog {
    docs: BTreeMap<String, Versions>,
    /// Releases under a trust version newer than this replica's head, with
    /// the signers holding `config` now that vouch for each (none: signed
    /// only by keys unknown here; see [`ReleaseLog::wait`]).
    future: BTreeMap<Digest, (SignedRelease, Vec<PublicKey>)>,
}

impl ReleaseLog {
    /// Holds a release under a trust version this replica does not have
    /// yet. Who may release then cannot be judged now, only signatures:
    /// a release waits only with at least one valid signature, at most
    /// [`limits::FUTURE_VERSIONS_AHEAD`] versions ahead. A release signed
    /// by keys holding `config` now (the next trust version usually keeps
    /// some) counts against each of them, at most
    /// [`limits::RELEASE_PENDING_PER_SIGNER_MAX`]; one signed only by keys
    /// unknown here shares a small pool ([`limits::RELEASE_PENDING_UNKNOWN_MAX`]),
    /// so neither one key nor a crowd of fresh keys crowds out the
    /// fleet's operators. A release refused here loses nothing that
    /// another replica holds: anti-entropy offers it again once the trust
    /// chain catches up.
    fn wait(&mut self, entry: SignedRelease, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        entry.release.check_shape()?;
        if entry.signatures.len() > limits::RELEASE_SIGNATURES_MAX {
            return Err(Rejected::Malformed(format!(
                "more than {} signatures",
                limits::RELEASE_SIGNATURES_MAX
            )));
        }
        let key = entry.release.digest();
        if self.future.contains_key(&key) {
            return Ok(Merge::Unchanged);
        }
        let head = ctx.trust.head().doc.version;
        if entry.release.trust_version > head.saturating_add(limits::FUTURE_VERSIONS_AHEAD) {
            return Err(Rejected::QueueFull(
                "releases for a trust version far ahead of this replica's",
            ));
        }
        if self.future.len() >= limits::RELEASE_PENDING_MAX {
            return Err(Rejected::QueueFull("releases"));
        }
        let checks: Vec<SignatureCheck> = entry
            .signatures
            .iter()
            .map(|(signer, signature)| SignatureCheck {
                key: *signer,
                digest: key,
                signature: *signature,
            })
            .collect();
        let verdicts = ctx.verifier.verify_each(&checks);
        let signers: Vec<PublicKey> = checks
            .iter()
            .zip(verdicts)
            .filter(|(_, valid)| *valid)
            .map(|(check, _)| check.key)
            .collect();
        if signers.is_empty() {
            return Err(Rejected::BadSignature);
        }
        let known: Vec<PublicKey> = signers
            .into_iter()
            .filter(|signer| ctx.trust.authorizes(signer, Role::Config, head))
            .collect();
        if known.is_empty() {
            let unknown = self.future.values().filter(|(_, known)| known.is_empty());
            if unknown.count() >= limits::RELEASE_PENDING_UNKNOWN_MAX {
                return Err(Rejected::QueueFull(
                    "releases by keys unknown here queued for a newer trust version",
                ));
            }
        } else {
            let vouched = |signer: &PublicKey| {
                self.future
                    .values()
                    .filter(|(_, vouching)| vouching.contains(signer))
                    .count()
            };
            if known
                .iter()
                .any(|signer| vouched(signer) >= limits::RELEASE_PENDING_PER_SIGNER_MAX)
            {
                return Err(Rejected::QueueFull(
                    "releases one signer may queue for a newer trust version",
                ));
            }
        }
        self.future.insert(key, (entry, known));
        Ok(Merge::Pending)
    }

    /// The releases held back for a newer trust version: in the log only
    /// once it arrives, so a snapshot must keep them.
    pub fn held_back(&self) -> impl Iterator<Item = &SignedRelease> {
        self.future.values().map(|(release, _)| release)
    }

    /// An empty log.
    pub fn new() -> ReleaseLog {
        ReleaseLog::default()
    }

    /// The documents that have releases.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// The release an agent should move to next. With nothing applied, the
    /// newest release (a fresh agent jumps to what the fleet runs); after
    /// version `n`, release `n + 1` only, so agents walk forward through
    /// every release, unless `n + 1` was pruned from a full log, when the
    /// oldest held follows. Among candidates of one version the lowest
    /// digest wins, the same on every replica.
    pub fn next(&self, doc: &str, applied: Option<u64>) -> Option<&SignedRelease> {
        let versions = self.docs.get(doc)?;
        let candidates = match applied {
            None => versions.values().next_back()?,
            Some(applied) => {
                let wanted = applied.checked_add(1)?;
                match versions.get(&wanted) {
                    Some(candidates) => candidates,
                    None => {
                        let (oldest, candidates) = versions.first_key_value()?;
                        let pruned = versions.len() >= limits::RELEASE_VERSIONS_MAX;
                        if !pruned || *oldest < wanted {
                            return None;
                        }
                        candidates
                    }
                }
            }
        };
        candidates.values().next()
    }

    /// The release of `doc` at `version` that agents run: the lowest
    /// digest among its candidates, as [`ReleaseLog::next`] picks.
    pub fn at(&self, doc: &str, version: u64) -> Option<&SignedRelease> {
        self.docs.get(doc)?.get(&version)?.values().next()
    }

    /// The release an agent running `current` should move to next: as
    /// [`ReleaseLog::next`], except that a void release is first replaced
    /// by another of its own version, if the log holds one.
    pub fn next_after(
        &self,
        doc: &str,
        current: Option<&AppliedRelease>,
    ) -> Option<&SignedRelease> {
        match current {
            Some(current) if current.void => self
                .docs
                .get(doc)?
                .get(&current.version)
                .and_then(|candidates| {
                    candidates
                        .iter()
                        .find(|(digest, _)| **digest != current.digest)
                        .map(|(_, release)| release)
                })
                .or_else(|| self.next(doc, Some(current.version))),
            other => self.next(doc, other.map(|applied| applied.version)),
        }
    }

    /// Stores a verified release, bounded; returns the merge outcome.
    fn store(&mut self, valid: SignedRelease) -> Result<Merge, Rejected> {
        let key = valid.release.digest();
        let version = valid.release.version;
        if !self.docs.contains_key(&valid.release.doc) && self.docs.len() >= limits::DOCS_MAX {
            return Err(Rejected::QueueFull("release documents"));
        }
        let versions = self.docs.entry(valid.release.doc.clone()).or_default();
        let candidates = versions.entry(version).or_default();
        if let Some(held) = candidates.get_mut(&key) {
            let before = held.version();
            held.signatures.extend(valid.signatures);
            let after = held.version();
            return Ok(if before == after {
                Merge::Unchanged
            } else {
                Merge::Changed {
                    key,
                    version: after,
                    replaced: Some(before),
                }
            });
        }
        let held_version = valid.version();
        candidates.insert(key, valid);
        // The lowest digests and highest versions stay: the same choice on
        // every replica whatever the arrival order.
        while candidates.len() > limits::RELEASE_CANDIDATES_MAX {
            candidates.pop_last();
        }
        while versions.len() > limits::RELEASE_VERSIONS_MAX {
            versions.pop_first();
        }
        let kept = versions
            .get(&version)
            .is_some_and(|candidates| candidates.contains_key(&key));
        Ok(if kept {
            Merge::Changed {
                key,
                version: held_version,
                replaced: None,
            }
        } else {
            Merge::Unchanged
        })
    }
}

impl Replica for ReleaseLog {
    type Entry = SignedRelease;

    fn versions(&self) -> Vec<(Digest, Digest)> {
        self.docs
            .values()
            .flat_map(BTreeMap::values)
            .flat_map(BTreeMap::iter)
            .map(|(key, release)| (*key, release.version()))
            .collect()
    }

    fn entry(&self, key: &Digest) -> Option<SignedRelease> {
        self.docs
            .values()
            .flat_map(BTreeMap::values)
            .find_map(|candidates| candidates.get(key))
            .cloned()
    }

    fn merge(&mut self, entry: SignedRelease, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        if entry.is_future(ctx) {
            return self.wait(entry, ctx);
        }
        let valid = entry.verify(ctx)?;
        self.store(valid)
    }

    fn trust_changed(&mut self, ctx: &Ctx<'_>) {
        for versions in self.docs.values_mut() {
            for candidates in versions.values_mut() {
                candidates.retain(|_, release| release.retain_authorized(ctx));
            }
            versions.retain(|_, candidates| !candidates.is_empty());
        }
        self.docs.retain(|_, versions| !versions.is_empty());
        for (release, _) in std::mem::take(&mut self.future).into_values() {
            let _ = self.merge(release, ctx);
        }
    }
}
