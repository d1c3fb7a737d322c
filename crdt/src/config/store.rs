//! The replicated set of config documents.
//!
//! The store's state is a function of the entries it has seen and the trust
//! chain: a document is the automerge merge of every verified change whose
//! author is neither revoked nor quarantined and whose history is complete;
//! a key is quarantined while the store holds verified evidence that it
//! equivocated. Whenever that set shrinks (a quarantine, a revocation) the
//! affected documents are rebuilt from what remains, because automerge
//! cannot take a change back out.
//!
//! A key is quarantined on two kinds of evidence: it signed two changes
//! with one sequence number (equivocation), or it signed a change that
//! automerge cannot apply onto that change's own history (a malformed
//! change: honest tools only sign what automerge made). Both are checked
//! by every replica before it quarantines, so one replica's word convicts
//! nobody.

use std::cell::Cell;
use std::collections::BTreeMap;

use automerge::{ActorId, Automerge, ROOT};
use serde::{Deserialize, Serialize};

use super::change::{Equivocation, MalformedChange, Parsed, SignedChange, Standing, malformed_key};
use super::document::{Document, Insert, Unappliable};
use super::guard::{self, guarded};
use super::limits;
use super::value::{Value, read_root, write_map};
use crate::keys::{Digest, Keypair, PublicKey};
use crate::replica::{Ctx, Merge, Rejected, Replica};
use crate::trust::Role;

/// One entry of the config store as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigEntry {
    /// A signed change to a document.
    Change(SignedChange),
    /// Proof that a key equivocated, so every replica quarantines it.
    Evidence(Equivocation),
    /// A change its author signed that automerge cannot apply onto its own
    /// history, with that history: proof the key misbehaves, so every
    /// replica quarantines it.
    Malformed(MalformedChange),
}

/// Verified evidence against a key.
#[derive(Clone, Debug)]
enum Proof {
    Equivocation(Equivocation),
    Malformed(MalformedChange),
}

impl Proof {
    /// The key the proof is held under; `None` when a change in it does not
    /// parse (verified proofs always parse).
    fn key(&self) -> Option<Digest> {
        match self {
            Proof::Equivocation(evidence) => {
                let a = evidence.a.key()?;
                let b = evidence.b.key()?;
                Some(super::change::evidence_key(&a, &b))
            }
            Proof::Malformed(evidence) => Some(malformed_key(&evidence.change.key()?)),
        }
    }

    /// The convicted key.
    fn author(&self) -> PublicKey {
        match self {
            Proof::Equivocation(evidence) => evidence.a.author,
            Proof::Malformed(evidence) => evidence.change.author,
        }
    }

    /// The signed changes the proof rests on: it counts while they would
    /// verify.
    fn changes(&self) -> Vec<&SignedChange> {
        match self {
            Proof::Equivocation(evidence) => vec![&evidence.a, &evidence.b],
            Proof::Malformed(evidence) => vec![&evidence.change],
        }
    }

    fn entry(&self) -> ConfigEntry {
        match self {
            Proof::Equivocation(evidence) => ConfigEntry::Evidence(evidence.clone()),
            Proof::Malformed(evidence) => ConfigEntry::Malformed(evidence.clone()),
        }
    }
}

/// Why authoring a change failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A document's content is a map at the top.
    #[error("config content must be a map")]
    NotAMap,
    /// The change would be refused by the store.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// Automerge refused the edit.
    #[error("automerge: {0}")]
    Automerge(String),
    /// The content nests maps and lists deeper than
    /// [`limits::VALUE_DEPTH_MAX`].
    #[error(
        "config content nests {depth} levels deep; at most {} are allowed",
        limits::VALUE_DEPTH_MAX
    )]
    TooDeep {
        /// How deep the content nests.
        depth: usize,
    },
}

/// The replicated config documents.
#[derive(Default)]
pub struct ConfigStore {
    docs: BTreeMap<String, Document>,
    /// The lowest-keyed verified evidence against each quarantined key, so
    /// replicas holding different proofs still converge on one entry.
    evidence: BTreeMap<PublicKey, (Digest, Proof)>,
    /// Changes with a correct signature under a trust version newer than
    /// this replica's head; judged when the trust chain catches up.
    future: Future,
    /// Panics automerge raised in this store's calls and the guard caught.
    panics: Cell<u64>,
}

/// Changes waiting for a newer trust version. Their authors' authority
/// cannot be judged yet, only their signatures, so anyone holding a key can
/// queue here: each author gets a quota, and authors this replica does not
/// know as config keys now share a small pool of their own, so neither one
/// key nor a crowd of fresh keys crowds out the fleet's operators. A change
/// refused here loses nothing: anti-entropy offers it again once the trust
/// chain catches up. Sizes are kept as changes come and go: the bounds are
/// checked on every admitted change, and summing each time would make a
/// batch quadratic.
#[derive(Default)]
struct Future {
    changes: BTreeMap<Digest, (SignedChange, Known)>,
    bytes: usize,
    /// Changes and bytes held per author.
    authors: BTreeMap<PublicKey, (usize, usize)>,
    /// Changes and bytes held by authors unknown when they arrived.
    unknown: (usize, usize),
}

/// Whether a waiting change's author held `config` in the replica's trust
/// head when the change arrived.
type Known = bool;

impl Future {
    /// Whether `change`, by an author `known` or not, may wait here.
    fn admits(&self, change: &SignedChange, known: Known, head: u64) -> Result<(), Rejected> {
        if change.trust_version > head.saturating_add(limits::FUTURE_VERSIONS_AHEAD) {
            return Err(Rejected::QueueFull(
                "config changes for a trust version far ahead of this replica's",
            ));
        }
        let (count, bytes) = self
            .authors
            .get(&change.author)
            .copied()
            .unwrap_or_default();
        let bytes = bytes + change.change.len();
        if known {
            if count >= limits::FUTURE_PER_AUTHOR_MAX || bytes > limits::FUTURE_AUTHOR_BYTES_MAX {
                return Err(Rejected::QueueFull(
                    "config changes one author may queue for a newer trust version",
                ));
            }
        } else if count >= limits::FUTURE_UNKNOWN_PER_AUTHOR_MAX
            || self.unknown.0 >= limits::FUTURE_UNKNOWN_MAX
            || self.unknown.1 + change.change.len() > limits::FUTURE_UNKNOWN_BYTES_MAX
        {
            return Err(Rejected::QueueFull(
                "config changes by keys unknown here queued for a newer trust version",
            ));
        }
        Ok(())
    }

    fn insert(&mut self, hash: Digest, change: SignedChange, known: Known) {
        if self.changes.contains_key(&hash) {
            return;
        }
        let held = self.authors.entry(change.author).or_default();
        held.0 += 1;
        held.1 += change.change.len();
        self.bytes += change.change.len();
        if !known {
            self.unknown.0 += 1;
            self.unknown.1 += change.change.len();
        }
        self.changes.insert(hash, (change, known));
    }

    fn remove(&mut self, hash: &Digest) {
        let Some((change, known)) = self.changes.remove(hash) else {
            return;
        };
        self.bytes -= change.change.len();
        if !known {
            self.unknown.0 -= 1;
            self.unknown.1 -= change.change.len();
        }
        if let Some(held) = self.authors.get_mut(&change.author) {
            held.0 -= 1;
            held.1 -= change.change.len();
            if held.0 == 0 {
                self.authors.remove(&change.author);
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(&SignedChange) -> bool) {
        let dropped: Vec<Digest> = self
            .changes
            .iter()
            .filter(|(_, (change, _))| !keep(change))
            .map(|(hash, _)| *hash)
            .collect();
        for hash in dropped {
            self.remove(&hash);
        }
    }

    fn pop_last(&mut self) {
        if let Some(hash) = self.changes.keys().next_back().copied() {
            self.remove(&hash);
        }
    }

    fn take(&mut self) -> Vec<SignedChange> {
        let changes = std::mem::take(&mut self.changes);
        *self = Future::default();
        changes.into_values().map(|(change, _)| change).collect()
    }
}

impl ConfigStore {
    /// An empty store.
    pub fn new() -> ConfigStore {
        ConfigStore::default()
    }

    /// The ids of the documents held.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// A document's current heads (empty for an unknown document): what a
    /// release names.
    pub fn heads(&self, doc: &str) -> Vec<Digest> {
        self.docs.get(doc).map(Document::heads).unwrap_or_default()
    }

    /// Whether every change in `heads` is applied to `doc`, so its content
    /// at those heads can be read.
    pub fn has_all(&self, doc: &str, heads: &[Digest]) -> bool {
        match self.docs.get(doc) {
            Some(document) => document.has_all(heads),
            None => heads.is_empty(),
        }
    }

    /// The document's content at `heads`, if every head is applied (and
    /// automerge can read it: a read that panics gives `None` and is
    /// counted in [`ConfigStore::panics_caught`]).
    pub fn value_at(&self, doc: &str, heads: &[Digest]) -> Option<Value> {
        match self.docs.get(doc) {
            Some(document) => self.counting(|| document.value_at(heads)),
            None if heads.is_empty() => Some(Value::Map(BTreeMap::new())),
            None => None,
        }
    }

    /// The hashes of every change applied, all documents together.
    pub fn applied(&self) -> impl Iterator<Item = &Digest> {
        self.docs.values().flat_map(Document::applied_keys)
    }

    /// The verified changes held back, waiting for a parent or a newer
    /// trust version: in no document yet, but accepted, so a snapshot must
    /// keep them (merged again, they wait again).
    pub fn held_back(&self) -> impl Iterator<Item = &SignedChange> {
        self.docs
            .values()
            .flat_map(Document::pending_envelopes)
            .chain(self.future.changes.values().map(|(change, _)| change))
    }

    /// How many verified changes wait for parents or a newer trust version.
    pub fn pending_len(&self) -> usize {
        self.docs.values().map(Document::pending_len).sum::<usize>() + self.future.changes.len()
    }

    /// Bytes of the documents' automerge state as saved (compressed
    /// columns), all documents together: what the documents take besides
    /// the signed changes held to hand out.
    pub fn saved_bytes(&self) -> usize {
        self.counting(|| {
            self.docs
                .values()
                .filter_map(|document| guarded(|| document.automerge().save().len()).ok())
                .sum()
        })
    }

    /// How many times automerge panicked inside this store's calls (on a
    /// malformed change, say) and the panic was caught: each such change
    /// was refused and the document rebuilt without it.
    pub fn panics_caught(&self) -> u64 {
        self.panics.get()
    }

    /// Runs `call` and adds the panics the guard caught during it.
    fn counting<T>(&self, call: impl FnOnce() -> T) -> T {
        counting(&self.panics, call)
    }

    /// Bytes of the changes that wait for parents or a newer trust version.
    pub fn pending_bytes(&self) -> usize {
        self.docs
            .values()
            .map(Document::pending_bytes)
            .sum::<usize>()
            + self.future.bytes
    }

    /// The keys quarantined for equivocating.
    pub fn quarantined(&self) -> impl Iterator<Item = &PublicKey> {
        self.evidence.keys()
    }

    /// The keys of the evidence held, one per quarantined key.
    pub fn evidence_keys(&self) -> impl Iterator<Item = &Digest> {
        self.evidence.values().map(|(key, _)| key)
    }

    fn is_quarantined(&self, key: &PublicKey) -> bool {
        self.evidence.contains_key(key)
    }

    /// Makes one change by `author` turning document `doc` into `content`,
    /// merges it here and returns it for dissemination; `None` when the
    /// document already holds `content`.
    pub fn author(
        &mut self,
        doc: &str,
        author: &Keypair,
        trust_version: u64,
        content: &Value,
        ctx: &Ctx<'_>,
    ) -> Result<Option<SignedChange>, ConfigError> {
        let Value::Map(target) = content else {
            return Err(ConfigError::NotAMap);
        };
        let depth = content.depth();
        if depth > limits::VALUE_DEPTH_MAX {
            return Err(ConfigError::TooDeep { depth });
        }
        if !ctx
            .trust
            .authorizes(&author.public(), Role::Config, trust_version)
        {
            return Err(Rejected::Unauthorized(format!(
                "{:?} lacks config at trust version {trust_version}",
                author.public()
            ))
            .into());
        }
        if self.is_quarantined(&author.public()) {
            return Err(Rejected::Quarantined.into());
        }
        // The edit is made on a fork so the live document only ever
        // receives changes through the verifying merge path; the fork is
        // thrown away whatever happens in it, so a panic there leaves
        // nothing to repair.
        let base = self.docs.get(doc).map(Document::automerge);
        let made = self.counting(|| {
            guarded(|| -> Result<Option<Vec<u8>>, automerge::AutomergeError> {
                let mut fork = base.map_or_else(Automerge::new, Automerge::fork);
                fork.set_actor(ActorId::from(&author.public().0[..]));
                let current = read_root(&fork, &fork.get_heads());
                let mut tx = fork.transaction();
                write_map(&mut tx, &ROOT, &current, target)?;
                if tx.commit().0.is_none() {
                    return Ok(None);
                }
                Ok(fork
                    .get_last_local_change()
                    .map(|mut change| change.bytes().into_owned()))
            })
        });
        let bytes = match made {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(error)) => return Err(ConfigError::Automerge(error.to_string())),
            Err(panicked) => return Err(ConfigError::Automerge(panicked.to_string())),
        };
        let signed = SignedChange::sign(doc, trust_version, author, bytes)?;
        self.merge(ConfigEntry::Change(signed.clone()), ctx)?;
        Ok(Some(signed))
    }

    /// Checks what needs no signature: shape, quarantine, authorization.
    /// `None` when the change is already held.
    fn screen(
        &self,
        envelope: SignedChange,
        ctx: &Ctx<'_>,
    ) -> Result<Option<(Parsed, Standing)>, Rejected> {
        if self.is_quarantined(&envelope.author) {
            return Err(Rejected::Quarantined);
        }
        let parsed = Parsed::new(envelope)?;
        let document = self.docs.get(&parsed.envelope.doc);
        if document.is_some_and(|document| document.refused(&parsed.hash)) {
            return Err(Rejected::Malformed(
                "automerge could not apply this change here before".into(),
            ));
        }
        let known = self.future.changes.contains_key(&parsed.hash)
            || document.is_some_and(|document| document.holds(&parsed.hash));
        if known {
            return Ok(None);
        }
        let standing = parsed.standing(ctx)?;
        Ok(Some((parsed, standing)))
    }

    /// Queues a verified change. Returns whether it went into a document's
    /// queue (to be drained); changes a drain on the way refused land in
    /// `refused`.
    fn admit(
        &mut self,
        parsed: Parsed,
        standing: Standing,
        ctx: &Ctx<'_>,
        touched: &mut BTreeMap<String, Vec<Digest>>,
        refused: &mut BTreeMap<Digest, Rejected>,
    ) -> Result<Merge, Rejected> {
        // Screening happened before the batch's own evidence came to light.
        if self.is_quarantined(&parsed.envelope.author) {
            return Err(Rejected::Quarantined);
        }
        if self.pending_len() >= limits::PENDING_MAX
            || self.pending_bytes() + parsed.envelope.change.len() > limits::PENDING_BYTES_MAX
        {
            // Draining may free room: a large batch is applied in slices.
            refused.extend(self.drain(touched));
            if self.pending_len() >= limits::PENDING_MAX
                || self.pending_bytes() + parsed.envelope.change.len() > limits::PENDING_BYTES_MAX
            {
                return Err(Rejected::QueueFull("config changes"));
            }
        }
        if standing == Standing::Future {
            let head = ctx.trust.head().doc.version;
            let known = ctx
                .trust
                .authorizes(&parsed.envelope.author, Role::Config, head);
            self.future.admits(&parsed.envelope, known, head)?;
            self.future.insert(parsed.hash, parsed.envelope, known);
            return Ok(Merge::Pending);
        }
        if !self.docs.contains_key(&parsed.envelope.doc) && self.docs.len() >= limits::DOCS_MAX {
            return Err(Rejected::QueueFull("config documents"));
        }
        let doc = parsed.envelope.doc.clone();
        let hash = parsed.hash;
        let document = self.docs.entry(doc.clone()).or_insert_with(Document::new);
        match document.insert(parsed) {
            Insert::Known => Ok(Merge::Unchanged),
            Insert::Queued => {
                touched.entry(doc).or_default().push(hash);
                Ok(Merge::Pending)
            }
            Insert::Equivocates(evidence) => {
                let (_, failed) = self.quarantine(Proof::Equivocation(*evidence));
                refused.extend(self.settle(failed));
                Err(Rejected::Quarantined)
            }
        }
    }

    /// Applies what became ready in the touched documents. Returns why
    /// each change automerge would not take was refused.
    fn drain(&mut self, touched: &mut BTreeMap<String, Vec<Digest>>) -> BTreeMap<Digest, Rejected> {
        let mut failed = Vec::new();
        for (doc, candidates) in std::mem::take(touched) {
            if let Some(document) = self.docs.get_mut(&doc) {
                failed.extend(counting(&self.panics, || document.drain(candidates)));
            }
        }
        self.settle(failed)
    }

    /// Deals with changes automerge would not take (they are out of their
    /// documents already): a change the evidence convicts quarantines its
    /// author, which rebuilds documents and may turn up more. Each round
    /// quarantines a key or refuses a change, so this ends. Returns why
    /// each was refused.
    fn settle(&mut self, mut failed: Vec<Unappliable>) -> BTreeMap<Digest, Rejected> {
        let mut refused = BTreeMap::new();
        while let Some(unappliable) = failed.pop() {
            let why = match unappliable.evidence {
                Some(evidence) => {
                    let (_, more) = self.quarantine(Proof::Malformed(evidence));
                    failed.extend(more);
                    Rejected::Quarantined
                }
                None => Rejected::Malformed(format!(
                    "automerge cannot apply it here: {}",
                    unappliable.reason
                )),
            };
            refused.insert(unappliable.parsed.hash, why);
        }
        refused
    }

    /// Holds verified evidence and quarantines its author. Returns what
    /// the rebuilt documents would not take back.
    fn quarantine(&mut self, proof: Proof) -> (Merge, Vec<Unappliable>) {
        let author = proof.author();
        let Some(key) = proof.key() else {
            return (Merge::Unchanged, Vec::new());
        };
        let replaced = match self.evidence.get(&author) {
            Some((held, _)) if *held <= key => return (Merge::Unchanged, Vec::new()),
            Some((held, _)) => Some(*held),
            None => None,
        };
        self.evidence.insert(author, (key, proof));
        let mut failed = Vec::new();
        if replaced.is_none() {
            self.future.retain(|change| change.author != author);
            failed = self.rebuild_where(|change| change.author != author);
        }
        let merge = Merge::Changed {
            key,
            version: key,
            replaced,
        };
        (merge, failed)
    }

    /// Rebuilds every document holding a change `keep` refuses. Returns
    /// what the rebuilt documents would not take back.
    fn rebuild_where(&mut self, keep: impl Fn(&SignedChange) -> bool) -> Vec<Unappliable> {
        let mut failed = Vec::new();
        for document in self.docs.values_mut() {
            if document.envelopes().any(|change| !keep(change)) {
                failed.extend(counting(&self.panics, || document.rebuild(&keep)));
            }
        }
        self.docs.retain(|_, document| !document.is_empty());
        self.trim_pending();
        failed
    }

    /// Drops the highest-hashed pending changes until the queue is within
    /// its bounds again (a rebuild can send applied changes back to it).
    fn trim_pending(&mut self) {
        while self.pending_len() > limits::PENDING_MAX
            || self.pending_bytes() > limits::PENDING_BYTES_MAX
        {
            let last = self
                .docs
                .iter()
                .filter_map(|(doc, document)| Some((document.last_pending()?, doc.clone())))
                .max();
            match last {
                Some((hash, doc)) => {
                    if let Some(document) = self.docs.get_mut(&doc) {
                        document.drop_pending(&hash);
                    }
                }
                None => {
                    self.future.pop_last();
                }
            }
        }
        self.docs.retain(|_, document| !document.is_empty());
    }

    /// Verifies evidence from elsewhere and quarantines the key it
    /// convicts. Evidence no better (lower-keyed) than the proof held
    /// against that key changes nothing and is not checked again.
    fn merge_proof(&mut self, proof: Proof, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        let key = proof
            .key()
            .ok_or_else(|| Rejected::Malformed("evidence change does not parse".into()))?;
        if self
            .evidence
            .get(&proof.author())
            .is_some_and(|(held, _)| *held <= key)
        {
            return Ok(Merge::Unchanged);
        }
        match &proof {
            Proof::Equivocation(evidence) => evidence.verify(ctx).map(|_| ())?,
            Proof::Malformed(evidence) => self.counting(|| evidence.verify(ctx)).map(|_| ())?,
        }
        let (merge, failed) = self.quarantine(proof);
        self.settle(failed);
        Ok(merge)
    }
}

/// Runs `call` and adds the panics the guard caught during it to `panics`
/// (a free function, so a caller can hold a document mutably meanwhile).
fn counting<T>(panics: &Cell<u64>, call: impl FnOnce() -> T) -> T {
    let before = guard::caught();
    let result = call();
    panics.set(panics.get() + (guard::caught() - before));
    result
}

impl Replica for ConfigStore {
    type Entry = ConfigEntry;

    fn versions(&self) -> Vec<(Digest, Digest)> {
        let changes = self
            .docs
            .values()
            .flat_map(Document::applied_keys)
            .map(|key| (*key, *key));
        let evidence = self.evidence.values().map(|(key, _)| (*key, *key));
        changes.chain(evidence).collect()
    }

    fn entry(&self, key: &Digest) -> Option<ConfigEntry> {
        if let Some(change) = self.docs.values().find_map(|document| document.entry(key)) {
            return Some(ConfigEntry::Change(change.clone()));
        }
        self.evidence
            .values()
            .find(|(held, _)| held == key)
            .map(|(_, proof)| proof.entry())
    }

    fn merge(&mut self, entry: ConfigEntry, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        self.merge_batch(vec![entry], ctx)
            .pop()
            .unwrap_or(Ok(Merge::Unchanged))
    }

    /// Checks each entry's signature (a bad one refuses that entry only)
    /// and applies each document's newly ready changes in one automerge
    /// batch: applying one change at a time slows as a document's history
    /// grows, one batched apply does not.
    fn merge_batch(
        &mut self,
        entries: Vec<ConfigEntry>,
        ctx: &Ctx<'_>,
    ) -> Vec<Result<Merge, Rejected>> {
        let mut results = Vec::with_capacity(entries.len());
        let mut screened = Vec::new();
        let mut proofs = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            results.push(Ok(Merge::Unchanged));
            match entry {
                ConfigEntry::Change(change) => match self.counting(|| self.screen(change, ctx)) {
                    Ok(Some(checked)) => screened.push((index, checked)),
                    Ok(None) => {}
                    Err(error) => results[index] = Err(error),
                },
                ConfigEntry::Evidence(evidence) => {
                    proofs.push((index, Proof::Equivocation(evidence)));
                }
                ConfigEntry::Malformed(evidence) => {
                    proofs.push((index, Proof::Malformed(evidence)));
                }
            }
        }
        let checks: Vec<_> = screened
            .iter()
            .map(|(_, (parsed, _))| parsed.check())
            .collect();
        let verdicts = ctx.verifier.verify_each(&checks);
        let mut touched = BTreeMap::new();
        let mut refused = BTreeMap::new();
        let mut queued = Vec::new();
        for ((index, (parsed, standing)), verified) in screened.into_iter().zip(verdicts) {
            if !verified {
                results[index] = Err(Rejected::BadSignature);
                continue;
            }
            let doc = parsed.envelope.doc.clone();
            let hash = parsed.hash;
            results[index] = self.admit(parsed, standing, ctx, &mut touched, &mut refused);
            if results[index] == Ok(Merge::Pending) && standing == Standing::Authorized {
                queued.push((index, doc, hash));
            }
        }
        for (index, proof) in proofs {
            results[index] = self.merge_proof(proof, ctx);
        }
        refused.extend(self.drain(&mut touched));
        for (index, doc, hash) in queued {
            results[index] = match (self.docs.get(&doc), refused.remove(&hash)) {
                (_, Some(why)) => Err(why),
                (Some(document), None) if document.is_applied(&hash) => Ok(Merge::Changed {
                    key: hash,
                    version: hash,
                    replaced: None,
                }),
                (Some(document), None) if document.is_pending(&hash) => Ok(Merge::Pending),
                // Its author was convicted by evidence this batch brought.
                _ => Err(Rejected::Quarantined),
            };
        }
        results
    }

    fn trust_changed(&mut self, ctx: &Ctx<'_>) {
        let authorized = |change: &SignedChange| {
            ctx.trust
                .authorizes(&change.author, Role::Config, change.trust_version)
        };
        // Evidence counts only while the changes it rests on would still
        // verify.
        self.evidence
            .retain(|_, (_, proof)| proof.changes().into_iter().all(authorized));
        let quarantined: Vec<PublicKey> = self.evidence.keys().copied().collect();
        let failed = self
            .rebuild_where(|change| authorized(change) && !quarantined.contains(&change.author));
        self.settle(failed);
        let future = self.future.take();
        self.merge_batch(future.into_iter().map(ConfigEntry::Change).collect(), ctx);
    }
}
