//! The replicated set of config documents.
//!
//! The store's state is a function of the entries it has seen and the trust
//! chain: a document is the automerge merge of every verified change whose
//! author is neither revoked nor quarantined and whose history is complete;
//! a key is quarantined while the store holds verified evidence that it
//! equivocated. Whenever that set shrinks (a quarantine, a revocation) the
//! affected documents are rebuilt from what remains, because automerge
//! cannot take a change back out.

use std::collections::BTreeMap;

use automerge::{ActorId, Automerge, ROOT};
use serde::{Deserialize, Serialize};

use super::change::{Equivocation, Parsed, SignedChange, Standing};
use super::document::{Document, Insert};
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
}

/// The replicated config documents.
#[derive(Default)]
pub struct ConfigStore {
    docs: BTreeMap<String, Document>,
    /// The lowest-keyed verified evidence against each quarantined key, so
    /// replicas holding different proofs still converge on one entry.
    evidence: BTreeMap<PublicKey, (Digest, Equivocation)>,
    /// Changes with a correct signature under a trust version newer than
    /// this replica's head; judged when the trust chain catches up.
    future: Future,
}

/// Changes waiting for a newer trust version, with their total size kept
/// as they come and go: the queue's bounds are checked on every admitted
/// change, and summing the sizes each time would make a batch quadratic.
#[derive(Default)]
struct Future {
    changes: BTreeMap<Digest, SignedChange>,
    bytes: usize,
}

impl Future {
    fn insert(&mut self, hash: Digest, change: SignedChange) {
        self.bytes += change.change.len();
        if let Some(old) = self.changes.insert(hash, change) {
            self.bytes -= old.change.len();
        }
    }

    fn retain(&mut self, keep: impl Fn(&SignedChange) -> bool) {
        self.changes.retain(|_, change| keep(change));
        self.bytes = self
            .changes
            .values()
            .map(|change| change.change.len())
            .sum();
    }

    fn pop_last(&mut self) {
        if let Some((_, change)) = self.changes.pop_last() {
            self.bytes -= change.change.len();
        }
    }

    fn take(&mut self) -> Vec<SignedChange> {
        self.bytes = 0;
        std::mem::take(&mut self.changes).into_values().collect()
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

    /// The document's content at `heads`, if every head is applied.
    pub fn value_at(&self, doc: &str, heads: &[Digest]) -> Option<Value> {
        match self.docs.get(doc) {
            Some(document) => document.value_at(heads),
            None if heads.is_empty() => Some(Value::Map(BTreeMap::new())),
            None => None,
        }
    }

    /// The hashes of every change applied, all documents together.
    pub fn applied(&self) -> impl Iterator<Item = &Digest> {
        self.docs.values().flat_map(Document::applied_keys)
    }

    /// How many verified changes wait for parents or a newer trust version.
    pub fn pending_len(&self) -> usize {
        self.docs.values().map(Document::pending_len).sum::<usize>() + self.future.changes.len()
    }

    /// Bytes of the documents' automerge state as saved (compressed
    /// columns), all documents together: what the documents take besides
    /// the signed changes held to hand out.
    pub fn saved_bytes(&self) -> usize {
        self.docs
            .values()
            .map(|document| document.automerge().save().len())
            .sum()
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

    /// The keys of the equivocation evidence held, one per quarantined key.
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
        // receives changes through the verifying merge path.
        let mut fork = self
            .docs
            .get(doc)
            .map_or_else(Automerge::new, |document| document.automerge().fork());
        fork.set_actor(ActorId::from(&author.public().0[..]));
        let current = read_root(&fork, &fork.get_heads());
        let mut tx = fork.transaction();
        write_map(&mut tx, &ROOT, &current, target)
            .map_err(|error| ConfigError::Automerge(error.to_string()))?;
        if tx.commit().0.is_none() {
            return Ok(None);
        }
        let Some(mut change) = fork.get_last_local_change() else {
            return Ok(None);
        };
        let signed = SignedChange::sign(doc, trust_version, author, change.bytes().into_owned())?;
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
        let known = self.future.changes.contains_key(&parsed.hash)
            || self
                .docs
                .get(&parsed.envelope.doc)
                .is_some_and(|document| document.holds(&parsed.hash));
        if known {
            return Ok(None);
        }
        let standing = parsed.standing(ctx)?;
        Ok(Some((parsed, standing)))
    }

    /// Queues a verified change. Returns whether it went into a document's
    /// queue (to be drained).
    fn admit(
        &mut self,
        parsed: Parsed,
        standing: Standing,
        touched: &mut BTreeMap<String, Vec<Digest>>,
    ) -> Result<Merge, Rejected> {
        // Screening happened before the batch's own evidence came to light.
        if self.is_quarantined(&parsed.envelope.author) {
            return Err(Rejected::Quarantined);
        }
        if self.pending_len() >= limits::PENDING_MAX
            || self.pending_bytes() + parsed.envelope.change.len() > limits::PENDING_BYTES_MAX
        {
            // Draining may free room: a large batch is applied in slices.
            self.drain(touched);
            if self.pending_len() >= limits::PENDING_MAX
                || self.pending_bytes() + parsed.envelope.change.len() > limits::PENDING_BYTES_MAX
            {
                return Err(Rejected::QueueFull("config changes"));
            }
        }
        if standing == Standing::Future {
            self.future.insert(parsed.hash, parsed.envelope);
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
                self.quarantine(*evidence);
                Err(Rejected::Quarantined)
            }
        }
    }

    fn drain(&mut self, touched: &mut BTreeMap<String, Vec<Digest>>) {
        for (doc, candidates) in std::mem::take(touched) {
            if let Some(document) = self.docs.get_mut(&doc) {
                document.drain(candidates);
            }
        }
    }

    /// Holds verified evidence and quarantines its author.
    fn quarantine(&mut self, evidence: Equivocation) -> Merge {
        let author = evidence.a.author;
        let Some(key) = evidence_key(&evidence) else {
            return Merge::Unchanged;
        };
        let replaced = match self.evidence.get(&author) {
            Some((held, _)) if *held <= key => return Merge::Unchanged,
            Some((held, _)) => Some(*held),
            None => None,
        };
        self.evidence.insert(author, (key, evidence));
        if replaced.is_none() {
            self.future.retain(|change| change.author != author);
            self.rebuild_where(|change| change.author != author);
        }
        Merge::Changed {
            key,
            version: key,
            replaced,
        }
    }

    /// Rebuilds every document holding a change `keep` refuses.
    fn rebuild_where(&mut self, keep: impl Fn(&SignedChange) -> bool) {
        for document in self.docs.values_mut() {
            if document.envelopes().any(|change| !keep(change)) {
                document.rebuild(&keep);
            }
        }
        self.docs.retain(|_, document| !document.is_empty());
        self.trim_pending();
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

    fn merge_evidence(&mut self, evidence: Equivocation, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        evidence.verify(ctx)?;
        Ok(self.quarantine(evidence))
    }
}

fn evidence_key(evidence: &Equivocation) -> Option<Digest> {
    let a = evidence.a.key()?;
    let b = evidence.b.key()?;
    Some(super::change::evidence_key(&a, &b))
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
            .map(|(_, evidence)| ConfigEntry::Evidence(evidence.clone()))
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
        let mut evidence = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            results.push(Ok(Merge::Unchanged));
            match entry {
                ConfigEntry::Change(change) => match self.screen(change, ctx) {
                    Ok(Some(checked)) => screened.push((index, checked)),
                    Ok(None) => {}
                    Err(error) => results[index] = Err(error),
                },
                ConfigEntry::Evidence(proof) => evidence.push((index, proof)),
            }
        }
        let checks: Vec<_> = screened
            .iter()
            .map(|(_, (parsed, _))| parsed.check())
            .collect();
        let verdicts = ctx.verifier.verify_each(&checks);
        let mut touched = BTreeMap::new();
        let mut queued = Vec::new();
        for ((index, (parsed, standing)), verified) in screened.into_iter().zip(verdicts) {
            if !verified {
                results[index] = Err(Rejected::BadSignature);
                continue;
            }
            let doc = parsed.envelope.doc.clone();
            let hash = parsed.hash;
            results[index] = self.admit(parsed, standing, &mut touched);
            if results[index] == Ok(Merge::Pending) && standing == Standing::Authorized {
                queued.push((index, doc, hash));
            }
        }
        for (index, proof) in evidence {
            results[index] = self.merge_evidence(proof, ctx);
        }
        self.drain(&mut touched);
        for (index, doc, hash) in queued {
            results[index] = match self.docs.get(&doc) {
                Some(document) if document.is_applied(&hash) => Ok(Merge::Changed {
                    key: hash,
                    version: hash,
                    replaced: None,
                }),
                Some(document) if document.is_pending(&hash) => Ok(Merge::Pending),
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
        // Evidence counts only while both changes would still verify.
        self.evidence
            .retain(|_, (_, proof)| authorized(&proof.a) && authorized(&proof.b));
        let quarantined: Vec<PublicKey> = self.evidence.keys().copied().collect();
        self.rebuild_where(|change| authorized(change) && !quarantined.contains(&change.author));
        let future = self.future.take();
        self.merge_batch(future.into_iter().map(ConfigEntry::Change).collect(), ctx);
    }
}
