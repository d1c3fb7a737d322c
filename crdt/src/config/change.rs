//! Signed config changes and proof of equivocation.
//!
//! A change is a raw automerge change whose actor id is its author's public
//! key, wrapped in an envelope the author signs. Binding the actor id to the
//! key means one key cannot write under another's actor, so two different
//! changes with one (actor, sequence number) are proof that the key holder
//! forked its own history: equivocation. A signed change that automerge
//! cannot apply onto its own history is proof too: honest tools only sign
//! changes automerge made ([`MalformedChange`]).

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Automerge, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use super::guard::guarded;
use super::value::read_root;
use super::{limits, shape};
use crate::keys::{Digest, Keypair, PublicKey, Signature, SignatureCheck, domain};
use crate::replica::{Ctx, Rejected};
use crate::trust::Role;

/// A config change as it travels: the automerge change bytes with the
/// author's signature binding them to a document and a trust version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChange {
    /// The document id, 1..=[`limits::DOC_ID_MAX`] bytes.
    pub doc: String,
    /// The trust version under which the author holds `config`.
    pub trust_version: u64,
    /// The author; also the change's automerge actor id.
    pub author: PublicKey,
    /// The raw automerge change, at most [`limits::CHANGE_BYTES_MAX`] bytes.
    pub change: Vec<u8>,
    /// The author's signature over [`SignedChange::signing_digest`].
    pub signature: Signature,
}

impl SignedChange {
    /// Wraps and signs automerge change bytes made with `author`'s key as
    /// actor.
    pub fn sign(
        doc: &str,
        trust_version: u64,
        author: &Keypair,
        change: Vec<u8>,
    ) -> Result<SignedChange, Rejected> {
        let hash = Digest(parse_bytes(&change)?.hash().0);
        let signature = author.sign_digest(&signing_digest(doc, &hash, trust_version));
        Ok(SignedChange {
            doc: doc.to_owned(),
            trust_version,
            author: author.public(),
            change,
            signature,
        })
    }

    /// The entry key: the automerge change hash, or `None` when the bytes do
    /// not parse.
    pub fn key(&self) -> Option<Digest> {
        parse_bytes(&self.change)
            .ok()
            .map(|change| Digest(change.hash().0))
    }

    /// The digest the author signs: the document, the change hash and the
    /// trust version.
    pub fn signing_digest(&self, hash: &Digest) -> Digest {
        signing_digest(&self.doc, hash, self.trust_version)
    }

    /// Fully verifies the change against the current trust: shape, actor,
    /// authorization and signature. Returns the change hash.
    pub fn verify(&self, ctx: &Ctx<'_>) -> Result<Digest, Rejected> {
        let parsed = Parsed::new(self.clone())?;
        parsed.verify(ctx)?;
        Ok(parsed.hash)
    }
}

fn signing_digest(doc: &str, hash: &Digest, trust_version: u64) -> Digest {
    Digest::of(domain::CHANGE, &(doc, hash, trust_version))
}

fn parse_bytes(bytes: &[u8]) -> Result<Change, Rejected> {
    if bytes.len() > limits::CHANGE_BYTES_MAX {
        return Err(Rejected::Malformed(format!(
            "change over {} bytes",
            limits::CHANGE_BYTES_MAX
        )));
    }
    shape::check(bytes)
        .map_err(|why| Rejected::Malformed(format!("change refused before parsing: {why}")))?;
    match guarded(|| Change::from_bytes(bytes.to_vec())) {
        Ok(Ok(change)) => Ok(change),
        Ok(Err(error)) => Err(Rejected::Malformed(format!(
            "change does not parse: {error}"
        ))),
        Err(panicked) => Err(Rejected::Malformed(format!(
            "change does not parse: {panicked}"
        ))),
    }
}

/// Whether a change's trust version is one this replica can judge yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The author holds `config` under the stated version.
    Authorized,
    /// The stated version is newer than the replica's trust head.
    Future,
}

/// A change whose envelope is well formed, with its parsed automerge change.
/// Its signature and authorization may not be checked yet.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub envelope: SignedChange,
    pub change: Change,
    pub hash: Digest,
}

impl Parsed {
    /// Checks everything about `envelope` that needs no trust: sizes, that
    /// the bytes parse, that the actor is the author.
    pub(crate) fn new(envelope: SignedChange) -> Result<Parsed, Rejected> {
        if envelope.doc.is_empty() || envelope.doc.len() > limits::DOC_ID_MAX {
            return Err(Rejected::Malformed(format!(
                "document id must be 1..={} bytes",
                limits::DOC_ID_MAX
            )));
        }
        let change = parse_bytes(&envelope.change)?;
        if change.actor_id().to_bytes() != envelope.author.0 {
            return Err(Rejected::Unauthorized(
                "change actor is not the envelope's author".into(),
            ));
        }
        // Automerge refuses a second actor claiming an author name and
        // numbers an actor's changes from 1; either slip would make a batch
        // fail at apply time instead of here.
        if change.author().is_some() || change.seq() == 0 {
            return Err(Rejected::Malformed(
                "change carries an author name or sequence number 0".into(),
            ));
        }
        let hash = Digest(change.hash().0);
        Ok(Parsed {
            envelope,
            change,
            hash,
        })
    }

    /// Whether the author may write under the stated trust version.
    pub(crate) fn standing(&self, ctx: &Ctx<'_>) -> Result<Standing, Rejected> {
        let version = self.envelope.trust_version;
        if version > ctx.trust.head().doc.version {
            return Ok(Standing::Future);
        }
        if ctx
            .trust
            .authorizes(&self.envelope.author, Role::Config, version)
        {
            Ok(Standing::Authorized)
        } else {
            Err(Rejected::Unauthorized(format!(
                "{:?} lacks config at trust version {version} or is revoked",
                self.envelope.author
            )))
        }
    }

    /// Checks authorization under the current trust and the signature.
    pub(crate) fn verify(&self, ctx: &Ctx<'_>) -> Result<(), Rejected> {
        if self.standing(ctx)? == Standing::Future {
            return Err(Rejected::Unauthorized(format!(
                "trust version {} is newer than this replica's",
                self.envelope.trust_version
            )));
        }
        if !ctx.verifier.verify(&self.check()) {
            return Err(Rejected::BadSignature);
        }
        Ok(())
    }

    /// The signature check for the envelope.
    pub(crate) fn check(&self) -> SignatureCheck {
        SignatureCheck {
            key: self.envelope.author,
            digest: self.envelope.signing_digest(&self.hash),
            signature: self.envelope.signature,
        }
    }

    /// The author's automerge sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.change.seq()
    }

    /// The hashes of the changes this one depends on.
    pub(crate) fn deps(&self) -> impl Iterator<Item = Digest> + '_ {
        self.change.deps().iter().map(|hash| Digest(hash.0))
    }
}

/// Self-verifying proof that a key equivocated: two verified changes with
/// one author, document and sequence number but different hashes. `a` has
/// the lower hash, so one pair has one encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    /// The change with the lower hash.
    pub a: SignedChange,
    /// The change with the higher hash.
    pub b: SignedChange,
}

impl Equivocation {
    /// The evidence made of two conflicting changes, in canonical order.
    pub(crate) fn new(one: &Parsed, other: &Parsed) -> Equivocation {
        let (a, b) = if one.hash < other.hash {
            (one, other)
        } else {
            (other, one)
        };
        Equivocation {
            a: a.envelope.clone(),
            b: b.envelope.clone(),
        }
    }

    /// Verifies the evidence; returns its key and the equivocating author.
    pub fn verify(&self, ctx: &Ctx<'_>) -> Result<(Digest, PublicKey), Rejected> {
        let a = Parsed::new(self.a.clone())?;
        let b = Parsed::new(self.b.clone())?;
        if a.envelope.doc != b.envelope.doc
            || a.envelope.author != b.envelope.author
            || a.seq() != b.seq()
            || a.hash >= b.hash
        {
            return Err(Rejected::Malformed(
                "evidence is not two ordered changes with one author, document and sequence number"
                    .into(),
            ));
        }
        a.verify(ctx)?;
        b.verify(ctx)?;
        Ok((evidence_key(&a.hash, &b.hash), a.envelope.author))
    }
}

/// The entry key of evidence about changes `a` < `b`.
pub(crate) fn evidence_key(a: &Digest, b: &Digest) -> Digest {
    Digest::of(domain::CONTENT, &(a, b))
}

/// Self-verifying proof that a key signed a change automerge cannot apply:
/// the signed change and its whole causal history. The history is bound
/// to the change by hashes (each change names its parents' hashes), so
/// anyone can rebuild exactly the document the change was written
/// against, apply it there, and see it fail, without holding any of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedChange {
    /// The change, as its author signed it.
    pub change: SignedChange,
    /// Every ancestor of the change as raw automerge bytes, in hash order,
    /// at most [`limits::EVIDENCE_HISTORY_BYTES_MAX`] bytes together.
    pub history: Vec<Vec<u8>>,
}

impl MalformedChange {
    /// The evidence against `parsed` given the ancestors a document holds
    /// (`ancestor` hands out an applied change by hash); `None` when a
    /// parent is missing or the history is over its bound.
    pub(crate) fn gather(
        parsed: &Parsed,
        ancestor: impl Fn(&Digest) -> Option<Parsed>,
    ) -> Option<MalformedChange> {
        let mut history = BTreeMap::new();
        let mut bytes = 0;
        let mut work: Vec<Digest> = parsed.deps().collect();
        while let Some(hash) = work.pop() {
            if history.contains_key(&hash) {
                continue;
            }
            let parent = ancestor(&hash)?;
            bytes += parent.envelope.change.len();
            if bytes > limits::EVIDENCE_HISTORY_BYTES_MAX {
                return None;
            }
            work.extend(parent.deps());
            history.insert(hash, parent.envelope.change);
        }
        Some(MalformedChange {
            change: parsed.envelope.clone(),
            history: history.into_values().collect(),
        })
    }

    /// Verifies the evidence: the change is signed by a key holding
    /// `config`, the history is exactly its ancestors, the history applies
    /// and the change does not. Returns its key and the author.
    pub fn verify(&self, ctx: &Ctx<'_>) -> Result<(Digest, PublicKey), Rejected> {
        let parsed = Parsed::new(self.change.clone())?;
        parsed.verify(ctx)?;
        self.convicts(&parsed)?;
        Ok((malformed_key(&parsed.hash), parsed.envelope.author))
    }

    /// Checks what needs no trust: the history is exactly the change's
    /// ancestors and applies, and the change (`parsed`) does not.
    pub(crate) fn convicts(&self, parsed: &Parsed) -> Result<(), Rejected> {
        let history = self.ancestors(parsed)?;
        if applies_on(parsed, &history)? {
            return Err(Rejected::Malformed(
                "the change applies on its history: not evidence".into(),
            ));
        }
        Ok(())
    }

    /// The history parsed, checked to be exactly the change's ancestors.
    fn ancestors(&self, parsed: &Parsed) -> Result<Vec<Change>, Rejected> {
        let bytes: usize = self.history.iter().map(Vec::len).sum();
        if bytes > limits::EVIDENCE_HISTORY_BYTES_MAX {
            return Err(Rejected::Malformed(
                "evidence history over its bound".into(),
            ));
        }
        let mut by_hash = BTreeMap::new();
        for raw in &self.history {
            let change = parse_bytes(raw)?;
            by_hash.insert(Digest(change.hash().0), change);
        }
        let mut reached = BTreeSet::new();
        let mut work: Vec<Digest> = parsed.deps().collect();
        while let Some(hash) = work.pop() {
            if !reached.insert(hash) {
                continue;
            }
            let change = by_hash
                .get(&hash)
                .ok_or_else(|| Rejected::Malformed("evidence history lacks an ancestor".into()))?;
            work.extend(change.deps().iter().map(|dep| Digest(dep.0)));
        }
        if reached.len() != by_hash.len() {
            return Err(Rejected::Malformed(
                "evidence history holds a change that is no ancestor".into(),
            ));
        }
        Ok(by_hash.into_values().collect())
    }
}

/// Whether `parsed` applies, and reads back, on a fresh document holding
/// exactly `history`: a function of the bytes alone, so every replica
/// reaches the same verdict. A history that does not apply itself is an
/// error: the fault is then not (only) the change's.
fn applies_on(parsed: &Parsed, history: &[Change]) -> Result<bool, Rejected> {
    let mut document = Automerge::new();
    let history = history.to_vec();
    match guarded(|| document.apply_changes(history)) {
        Ok(Ok(())) => {}
        Ok(Err(_)) | Err(_) => {
            return Err(Rejected::Malformed(
                "the change's history does not apply".into(),
            ));
        }
    }
    let change = parsed.change.clone();
    let hash = ChangeHash(parsed.hash.0);
    let applied = guarded(|| {
        document.apply_changes([change])?;
        read_root(&document, &[hash]);
        Ok::<(), automerge::AutomergeError>(())
    });
    Ok(matches!(applied, Ok(Ok(()))))
}

/// The entry key of the evidence that the change `hash` is malformed.
pub(crate) fn malformed_key(hash: &Digest) -> Digest {
    Digest::of(domain::CONTENT, &("malformed config change", hash))
}
