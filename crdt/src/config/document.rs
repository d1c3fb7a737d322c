//! One config document: its automerge state, the verified changes it is
//! made of, and the verified changes still waiting for their parents.
//!
//! Invariant: every change in the automerge document is in `applied`, and
//! only changes whose parents (and whose author's previous change) are
//! applied are handed to automerge, so automerge's own queue of
//! not-yet-ready changes stays empty and the document is a function of the
//! set of verified changes held.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Automerge, ChangeHash};

use super::change::{Equivocation, Parsed, SignedChange};
use super::value::{Value, read_root};
use crate::keys::{Digest, PublicKey};

/// What inserting a verified change did.
pub(crate) enum Insert {
    /// The change was already held.
    Known,
    /// The change waits in the pending queue until [`Document::drain`].
    Queued,
    /// Another held change has the same author and sequence number: the
    /// proof, made of the two.
    Equivocates(Box<Equivocation>),
}

/// A document's state.
pub(crate) struct Document {
    automerge: Automerge,
    /// Applied changes' envelopes, kept to hand out and to rebuild from.
    applied: BTreeMap<Digest, SignedChange>,
    pending: BTreeMap<Digest, Parsed>,
    pending_bytes: usize,
    /// Every held change by (author, sequence number): finds equivocation
    /// and each change's predecessor by the same author.
    seqs: BTreeMap<(PublicKey, u64), Digest>,
    /// Pending changes by the missing parent they wait for.
    dependents: BTreeMap<Digest, BTreeSet<Digest>>,
}

impl Document {
    /// An empty document.
    pub fn new() -> Document {
        Document {
            automerge: Automerge::new(),
            applied: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            seqs: BTreeMap::new(),
            dependents: BTreeMap::new(),
        }
    }

    /// Whether the change is applied or pending.
    pub fn holds(&self, hash: &Digest) -> bool {
        self.applied.contains_key(hash) || self.pending.contains_key(hash)
    }

    /// Whether the change is applied.
    pub fn is_applied(&self, hash: &Digest) -> bool {
        self.applied.contains_key(hash)
    }

    /// Whether the change waits in the queue.
    pub fn is_pending(&self, hash: &Digest) -> bool {
        self.pending.contains_key(hash)
    }

    /// Whether the document holds no change at all.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.pending.is_empty()
    }

    /// Queues a verified change; [`Document::drain`] applies it once ready.
    pub fn insert(&mut self, parsed: Parsed) -> Insert {
        if self.holds(&parsed.hash) {
            return Insert::Known;
        }
        let slot = (parsed.envelope.author, parsed.seq());
        if let Some(other) = self.seqs.get(&slot).and_then(|hash| self.held(hash)) {
            return Insert::Equivocates(Box::new(Equivocation::new(&parsed, &other)));
        }
        self.seqs.insert(slot, parsed.hash);
        for dep in parsed.deps() {
            if !self.applied.contains_key(&dep) {
                self.dependents.entry(dep).or_default().insert(parsed.hash);
            }
        }
        self.pending_bytes += parsed.envelope.change.len();
        self.pending.insert(parsed.hash, parsed);
        Insert::Queued
    }

    /// A held change, parsed.
    fn held(&self, hash: &Digest) -> Option<Parsed> {
        if let Some(parsed) = self.pending.get(hash) {
            return Some(parsed.clone());
        }
        // Applied changes parsed once already; parsing again cannot fail.
        Parsed::new(self.applied.get(hash)?.clone()).ok()
    }

    /// Applies every pending change among `candidates`, and everything they
    /// unblock, whose parents and predecessor are applied: one automerge
    /// batch for all of them.
    pub fn drain(&mut self, candidates: impl IntoIterator<Item = Digest>) {
        let mut work: Vec<Digest> = candidates.into_iter().collect();
        let mut round = BTreeSet::new();
        let mut order = Vec::new();
        while let Some(hash) = work.pop() {
            let Some(parsed) = self.pending.get(&hash) else {
                continue;
            };
            if round.contains(&hash) || !self.ready(parsed, &round) {
                continue;
            }
            round.insert(hash);
            order.push(hash);
            work.extend(self.unblocked_by(parsed));
        }
        self.apply(order);
    }

    /// Pending changes that may become ready once `parsed` is applied.
    fn unblocked_by(&self, parsed: &Parsed) -> Vec<Digest> {
        let successor = (parsed.envelope.author, parsed.seq() + 1);
        self.dependents
            .get(&parsed.hash)
            .into_iter()
            .flatten()
            .chain(self.seqs.get(&successor))
            .copied()
            .collect()
    }

    fn ready(&self, parsed: &Parsed, round: &BTreeSet<Digest>) -> bool {
        let present = |hash: &Digest| self.applied.contains_key(hash) || round.contains(hash);
        // Automerge numbers an actor's changes by count, so the author's
        // previous change must be in before this one, whatever the deps say.
        let predecessor_present = parsed.seq() == 1
            || self
                .seqs
                .get(&(parsed.envelope.author, parsed.seq() - 1))
                .is_some_and(present);
        predecessor_present && parsed.deps().all(|dep| present(&dep))
    }

    fn apply(&mut self, order: Vec<Digest>) {
        if order.is_empty() {
            return;
        }
        let changes: Vec<automerge::Change> = order
            .iter()
            .filter_map(|hash| self.pending.get(hash))
            .map(|parsed| parsed.change.clone())
            .collect();
        if self.automerge.apply_changes(changes).is_ok() {
            for hash in order {
                self.mark_applied(&hash);
            }
            return;
        }
        // A signed change automerge refuses can only come from a
        // misbehaving authorized key; start over from the changes known to
        // apply and try the batch one by one, dropping what fails.
        self.reload();
        for hash in order {
            let Some(parsed) = self.pending.get(&hash) else {
                continue;
            };
            if !self.ready(parsed, &BTreeSet::new()) {
                continue;
            }
            if self
                .automerge
                .apply_changes([parsed.change.clone()])
                .is_ok()
            {
                self.mark_applied(&hash);
            } else {
                self.remove_pending(&hash);
                self.reload();
            }
        }
    }

    fn mark_applied(&mut self, hash: &Digest) {
        if let Some(parsed) = self.remove_pending(hash) {
            self.seqs
                .insert((parsed.envelope.author, parsed.seq()), parsed.hash);
            self.applied.insert(*hash, parsed.envelope);
        }
    }

    /// Removes a pending change from the queue and its indexes.
    fn remove_pending(&mut self, hash: &Digest) -> Option<Parsed> {
        let parsed = self.pending.remove(hash)?;
        self.pending_bytes -= parsed.envelope.change.len();
        self.seqs.remove(&(parsed.envelope.author, parsed.seq()));
        for dep in parsed.deps() {
            if let Some(waiting) = self.dependents.get_mut(&dep) {
                waiting.remove(hash);
                if waiting.is_empty() {
                    self.dependents.remove(&dep);
                }
            }
        }
        self.dependents.remove(hash);
        Some(parsed)
    }

    /// Rebuilds the automerge document from the applied changes.
    fn reload(&mut self) {
        let changes: Vec<automerge::Change> = self
            .applied
            .values()
            .filter_map(|envelope| Parsed::new(envelope.clone()).ok())
            .map(|parsed| parsed.change)
            .collect();
        self.automerge = Automerge::new();
        // These changes applied together before, in some order; automerge
        // orders a batch itself.
        let _ = self.automerge.apply_changes(changes);
    }

    /// Rebuilds the document from the held changes `keep` accepts; the rest
    /// are forgotten, and changes that depended on them wait again.
    pub fn rebuild(&mut self, keep: impl Fn(&SignedChange) -> bool) {
        let mut held: Vec<Parsed> = std::mem::take(&mut self.pending).into_values().collect();
        held.extend(
            std::mem::take(&mut self.applied)
                .into_values()
                .filter_map(|envelope| Parsed::new(envelope).ok()),
        );
        *self = Document::new();
        let mut candidates = Vec::new();
        for parsed in held.into_iter().filter(|parsed| keep(&parsed.envelope)) {
            candidates.push(parsed.hash);
            self.insert(parsed);
        }
        self.drain(candidates);
    }

    /// Every held change's envelope, applied or pending.
    pub fn envelopes(&self) -> impl Iterator<Item = &SignedChange> {
        self.applied
            .values()
            .chain(self.pending.values().map(|parsed| &parsed.envelope))
    }

    /// The applied changes' hashes.
    pub fn applied_keys(&self) -> impl Iterator<Item = &Digest> {
        self.applied.keys()
    }

    /// An applied change's envelope.
    pub fn entry(&self, hash: &Digest) -> Option<&SignedChange> {
        self.applied.get(hash)
    }

    /// The pending change with the highest hash, if any: what a full queue
    /// drops first, the same on every replica.
    pub fn last_pending(&self) -> Option<Digest> {
        self.pending.keys().next_back().copied()
    }

    /// Drops a pending change to respect the queue's bounds.
    pub fn drop_pending(&mut self, hash: &Digest) {
        self.remove_pending(hash);
    }

    /// How many changes wait.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// How many bytes of changes wait.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The current heads.
    pub fn heads(&self) -> Vec<Digest> {
        self.automerge
            .get_heads()
            .into_iter()
            .map(|hash| Digest(hash.0))
            .collect()
    }

    /// Whether every one of `heads` is applied.
    pub fn has_all(&self, heads: &[Digest]) -> bool {
        heads.iter().all(|head| self.applied.contains_key(head))
    }

    /// The content at `heads`, which must all be applied.
    pub fn value_at(&self, heads: &[Digest]) -> Option<Value> {
        if !self.has_all(heads) {
            return None;
        }
        let heads: Vec<ChangeHash> = heads.iter().map(|head| ChangeHash(head.0)).collect();
        Some(Value::Map(read_root(&self.automerge, &heads)))
    }

    /// The live automerge document, for authoring on a fork of it.
    pub fn automerge(&self) -> &Automerge {
        &self.automerge
    }
}
