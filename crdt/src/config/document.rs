//! One config document: its automerge state, the verified changes it is
//! made of, and the verified changes still waiting for their parents.
//!
//! Invariant: every change in the automerge document is in `applied`, and
//! only changes whose parents (and whose author's previous change) are
//! applied are handed to automerge, so automerge's own queue of
//! not-yet-ready changes stays empty.
//!
//! The document is built by applying its changes in one canonical order,
//! a function of the set alone ([`canonical`]): parents and the
//! author's previous change first, the lowest hash first among the
//! changes ready. automerge converges whatever the order for the changes
//! it writes itself, but not for every change an author can craft (a
//! fuzzed pair of concurrent changes inserting into the root map read
//! differently applied in the two orders), and replicas must agree on
//! what a document says. A change that extends the canonical order (the
//! usual case: it follows everything held) is applied onto the document;
//! one that sorts before a held change (a concurrent change with a lower
//! hash) rebuilds the document.
//!
//! Every automerge call here runs behind [`guarded`]: a change that makes
//! automerge panic or fail is taken out again by rebuilding the document
//! from the changes applied before it, and handed back to the store as
//! [`Unappliable`], with the evidence against its author when it also
//! fails on its own causal history.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Automerge, ChangeHash};

use super::change::{Equivocation, MalformedChange, Parsed, SignedChange};
use super::guard::guarded;
use super::limits;
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

/// A verified change automerge would not take: applying it panicked or
/// failed.
pub(crate) struct Unappliable {
    /// The change.
    pub parsed: Parsed,
    /// What automerge said.
    pub reason: String,
    /// When it also fails applied onto exactly its own causal history (and
    /// that history fits the evidence's bound): the proof against its
    /// author. Its bytes, not this replica's state, are then at fault, and
    /// every replica can check that for itself. Without it the change is
    /// only refused here ([`Document::refused`]).
    pub evidence: Option<MalformedChange>,
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
    /// Changes that apply on their own history but not onto this
    /// document (an automerge fault, not a proven bad change): refused if
    /// offered again, at most [`limits::REFUSED_MAX`], lowest hashes kept.
    refused: BTreeSet<Digest>,
    /// The applied changes in canonical order ([`canonical`]),
    /// as automerge took them: what [`Document::reload`] replays.
    order: Vec<Digest>,
    /// Per applied change, what must be applied before it: its parents
    /// and its author's previous change (the canonical order's edges).
    before: BTreeMap<Digest, Vec<Digest>>,
}

impl Document {
    /// An empty document.
    pub(super) fn new() -> Document {
        Document {
            automerge: Automerge::new(),
            applied: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
            seqs: BTreeMap::new(),
            dependents: BTreeMap::new(),
            refused: BTreeSet::new(),
            order: Vec::new(),
            before: BTreeMap::new(),
        }
    }

    /// Whether the change was refused for failing on this document.
    pub(super) fn refused(&self, hash: &Digest) -> bool {
        self.refused.contains(hash)
    }

    /// Whether the change is applied or pending.
    pub(super) fn holds(&self, hash: &Digest) -> bool {
        self.applied.contains_key(hash) || self.pending.contains_key(hash)
    }

    /// Whether the change is applied.
    pub(super) fn is_applied(&self, hash: &Digest) -> bool {
        self.applied.contains_key(hash)
    }

    /// Whether the change waits in the queue.
    pub(super) fn is_pending(&self, hash: &Digest) -> bool {
        self.pending.contains_key(hash)
    }

    /// Whether the document holds no change at all.
    pub(super) fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.pending.is_empty()
    }

    /// Queues a verified change; [`Document::drain`] applies it once ready.
    pub(super) fn insert(&mut self, parsed: Parsed) -> Insert {
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
        match self.pending.get(hash) {
            Some(parsed) => Some(parsed.clone()),
            None => self.applied_parsed(hash),
        }
    }

    /// Applies every pending change among `candidates`, and everything they
    /// unblock, whose parents and predecessor are applied: one automerge
    /// batch for all of them. Returns the changes automerge would not take;
    /// they are no longer held.
    pub(super) fn drain(
        &mut self,
        candidates: impl IntoIterator<Item = Digest>,
    ) -> Vec<Unappliable> {
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
        self.apply(order)
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

    fn apply(&mut self, batch: Vec<Digest>) -> Vec<Unappliable> {
        let mut batch: BTreeSet<Digest> = batch.into_iter().collect();
        let mut failed = Vec::new();
        loop {
            // Changes whose parent or predecessor failed wait again.
            while let Some(waiting) = batch.iter().copied().find(|hash| {
                self.pending
                    .get(hash)
                    .is_none_or(|parsed| !self.ready(parsed, &batch))
            }) {
                batch.remove(&waiting);
            }
            let Err((hash, reason)) = self.try_apply(&batch) else {
                return failed;
            };
            // A verified change automerge refuses or panics on can only
            // come from a misbehaving authorized key (or an automerge
            // fault). The change at which the canonical order fails goes,
            // whether it came in this batch or before: which change that
            // is depends on the set of changes alone, so replicas holding
            // the same set take out the same one.
            if !batch.remove(&hash) {
                // try_apply names only changes it tried: the batch's or
                // applied ones. Taking one out makes progress; anything
                // else would loop.
                debug_assert!(self.is_applied(&hash), "{hash:?} neither applied nor new");
                if !self.is_applied(&hash) {
                    return failed;
                }
                self.take_out(hash);
                self.reload();
                continue;
            }
            if let Some(parsed) = self.remove_pending(&hash) {
                let evidence = MalformedChange::gather(&parsed, |hash| self.applied_parsed(hash))
                    .filter(|evidence| evidence.convicts(&parsed).is_ok());
                if evidence.is_none() {
                    self.refuse(hash);
                }
                failed.push(Unappliable {
                    parsed,
                    reason,
                    evidence,
                });
            }
        }
    }

    /// Applies the pending changes `batch` (each ready once those before it
    /// are in) so that the document holds the applied changes and the
    /// batch in canonical order, one change at a time: onto the document
    /// when the batch sorts after every applied change, else on a fresh
    /// document that then replaces it. When automerge will not take one,
    /// returns it and what automerge said, with the document as it was.
    fn try_apply(&mut self, batch: &BTreeSet<Digest>) -> Result<(), (Digest, String)> {
        if batch.is_empty() {
            return Ok(());
        }
        let edges: BTreeMap<Digest, Vec<Digest>> = batch
            .iter()
            .filter_map(|hash| Some((*hash, self.predecessors(self.pending.get(hash)?))))
            .collect();
        // The new canonical order, when the batch does not simply follow
        // the applied changes in it.
        let mut rebuilt = None;
        let suffix = if self.follows_everything(&edges) {
            canonical(&edges)
        } else {
            let mut all = self.before.clone();
            all.extend(edges);
            let order = canonical(&all);
            match order.strip_prefix(self.order.as_slice()) {
                Some(suffix) => suffix.to_vec(),
                None => {
                    rebuilt = Some(order);
                    Vec::new()
                }
            }
        };
        let parsed = |hashes: &[Digest]| -> Vec<(Digest, automerge::Change)> {
            hashes
                .iter()
                .filter_map(|hash| self.held(hash))
                .map(|parsed| (parsed.hash, parsed.change))
                .collect()
        };
        match &rebuilt {
            None => {
                let changes = parsed(&suffix);
                if let Err(failure) = apply_each(&mut self.automerge, changes) {
                    // The document may be half-applied.
                    self.reload();
                    return Err(failure);
                }
            }
            Some(order) => {
                let changes = parsed(order);
                let mut fresh = Automerge::new();
                apply_each(&mut fresh, changes)?;
                self.automerge = fresh;
            }
        }
        for hash in batch {
            self.mark_applied(hash);
        }
        match rebuilt {
            Some(order) => self.order = order,
            None => self.order.extend(suffix),
        }
        Ok(())
    }

    /// Whether every change of a batch (`edges`: each one's predecessors)
    /// has every applied change as an ancestor: each change the batch
    /// starts from names all of the document's heads. The canonical order
    /// then places the whole batch after the applied changes, without
    /// sorting them again (the usual case: a change written on top of
    /// what its author held).
    fn follows_everything(&self, edges: &BTreeMap<Digest, Vec<Digest>>) -> bool {
        let heads = self.heads();
        edges.values().all(|predecessors| {
            predecessors
                .iter()
                .any(|predecessor| edges.contains_key(predecessor))
                || heads.iter().all(|head| predecessors.contains(head))
        })
    }

    /// What must be applied before `parsed`: its parents and its author's
    /// previous change.
    fn predecessors(&self, parsed: &Parsed) -> Vec<Digest> {
        let mut predecessors: Vec<Digest> = parsed.deps().collect();
        if parsed.seq() > 1
            && let Some(previous) = self.seqs.get(&(parsed.envelope.author, parsed.seq() - 1))
        {
            predecessors.push(*previous);
        }
        predecessors
    }

    /// Remembers a change that failed on this document, within the bound.
    fn refuse(&mut self, hash: Digest) {
        self.refused.insert(hash);
        if self.refused.len() > limits::REFUSED_MAX {
            self.refused.pop_last();
        }
    }

    /// An applied change, parsed.
    fn applied_parsed(&self, hash: &Digest) -> Option<Parsed> {
        Parsed::new(self.applied.get(hash)?.clone()).ok()
    }

    /// Moves a pending change to the applied ones (the caller records
    /// its place in `order`).
    fn mark_applied(&mut self, hash: &Digest) {
        if let Some(parsed) = self.remove_pending(hash) {
            self.seqs
                .insert((parsed.envelope.author, parsed.seq()), parsed.hash);
            self.before.insert(*hash, self.predecessors(&parsed));
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

    /// Rebuilds the automerge document from the applied changes, one at a
    /// time in canonical order (taking changes out keeps the rest in it).
    /// They applied before, so they go in again; should one not (an
    /// automerge fault), it is taken out, with every applied change that
    /// depends on it, and the rest is tried again. Each round takes a
    /// change out, so this ends, with a document automerge can read.
    fn reload(&mut self) {
        loop {
            let changes: Vec<(Digest, automerge::Change)> = self
                .order
                .iter()
                .filter_map(|hash| self.held(hash))
                .map(|parsed| (parsed.hash, parsed.change))
                .collect();
            self.automerge = Automerge::new();
            match apply_each(&mut self.automerge, changes) {
                Ok(()) => return,
                Err((hash, _)) => self.take_out(hash),
            }
        }
    }

    /// Takes an applied change out of the document's record, with every
    /// applied change after it that depends on it (by a parent or as its
    /// author's next change), and refuses them all.
    fn take_out(&mut self, first: Digest) {
        let mut gone = BTreeSet::from([first]);
        let mut kept = Vec::with_capacity(self.order.len());
        for hash in std::mem::take(&mut self.order) {
            let depends = hash == first
                || self.held(&hash).is_none_or(|parsed| {
                    let predecessor = (parsed.envelope.author, parsed.seq().wrapping_sub(1));
                    parsed.deps().any(|dep| gone.contains(&dep))
                        || self
                            .seqs
                            .get(&predecessor)
                            .is_some_and(|hash| gone.contains(hash))
                });
            if depends {
                gone.insert(hash);
            } else {
                kept.push(hash);
            }
        }
        self.order = kept;
        for hash in gone {
            self.before.remove(&hash);
            if let Some(envelope) = self.applied.remove(&hash)
                && let Ok(parsed) = Parsed::new(envelope)
            {
                self.seqs.remove(&(parsed.envelope.author, parsed.seq()));
            }
            self.refuse(hash);
        }
    }

    /// Rebuilds the document from the held changes `keep` accepts; the rest
    /// are forgotten, and changes that depended on them wait again. Returns
    /// what automerge would not take on the way (see [`Document::drain`]).
    pub(super) fn rebuild(&mut self, keep: impl Fn(&SignedChange) -> bool) -> Vec<Unappliable> {
        let mut held: Vec<Parsed> = std::mem::take(&mut self.pending).into_values().collect();
        held.extend(
            std::mem::take(&mut self.applied)
                .into_values()
                .filter_map(|envelope| Parsed::new(envelope).ok()),
        );
        let refused = std::mem::take(&mut self.refused);
        *self = Document::new();
        self.refused = refused;
        let mut candidates = Vec::new();
        for parsed in held.into_iter().filter(|parsed| keep(&parsed.envelope)) {
            candidates.push(parsed.hash);
            self.insert(parsed);
        }
        self.drain(candidates)
    }

    /// Every held change's envelope, applied or pending.
    pub(super) fn envelopes(&self) -> impl Iterator<Item = &SignedChange> {
        self.applied
            .values()
            .chain(self.pending.values().map(|parsed| &parsed.envelope))
    }

    /// The changes waiting for a parent or their author's previous change.
    pub(super) fn pending_envelopes(&self) -> impl Iterator<Item = &SignedChange> {
        self.pending.values().map(|parsed| &parsed.envelope)
    }

    /// The applied changes' hashes.
    pub(super) fn applied_keys(&self) -> impl Iterator<Item = &Digest> {
        self.applied.keys()
    }

    /// An applied change's envelope.
    pub(super) fn entry(&self, hash: &Digest) -> Option<&SignedChange> {
        self.applied.get(hash)
    }

    /// The pending change with the highest hash, if any: what a full queue
    /// drops first, the same on every replica.
    pub(super) fn last_pending(&self) -> Option<Digest> {
        self.pending.keys().next_back().copied()
    }

    /// Drops a pending change to respect the queue's bounds.
    pub(super) fn drop_pending(&mut self, hash: &Digest) {
        self.remove_pending(hash);
    }

    /// How many changes wait.
    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// How many bytes of changes wait.
    pub(super) fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// The current heads.
    pub(super) fn heads(&self) -> Vec<Digest> {
        self.automerge
            .get_heads()
            .into_iter()
            .map(|hash| Digest(hash.0))
            .collect()
    }

    /// Whether every one of `heads` is applied.
    pub(super) fn has_all(&self, heads: &[Digest]) -> bool {
        heads.iter().all(|head| self.applied.contains_key(head))
    }

    /// The content at `heads`, which must all be applied.
    pub(super) fn value_at(&self, heads: &[Digest]) -> Option<Value> {
        if !self.has_all(heads) {
            return None;
        }
        let heads: Vec<ChangeHash> = heads.iter().map(|head| ChangeHash(head.0)).collect();
        // Reading is automerge's code on content an author chose; a panic
        // leaves the document as it was (reads change nothing).
        guarded(|| Value::Map(read_root(&self.automerge, &heads))).ok()
    }

    /// The live automerge document, for authoring on a fork of it.
    pub(super) fn automerge(&self) -> &Automerge {
        &self.automerge
    }
}

/// Applies `changes` to `automerge` one call each, in their order, behind
/// the guard; when one will not go in, it and what automerge said. One
/// call per change, never a batch: automerge takes a batch by another
/// path, and for changes an author crafted the two paths can build
/// different documents from the same changes in the same order, so every
/// replica must take the same path.
fn apply_each(
    automerge: &mut Automerge,
    changes: Vec<(Digest, automerge::Change)>,
) -> Result<(), (Digest, String)> {
    for (hash, change) in changes {
        match guarded(|| automerge.apply_changes([change])) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err((hash, error.to_string())),
            Err(panicked) => return Err((hash, panicked.to_string())),
        }
    }
    Ok(())
}

/// The canonical order of a set of changes (`edges`: each change and what
/// must be applied before it; predecessors outside the set are taken as
/// in): Kahn's topological sort, taking the lowest hash among the changes
/// ready at each step. A function of the set alone, so every replica
/// holding the same changes builds its document in the same order.
fn canonical(edges: &BTreeMap<Digest, Vec<Digest>>) -> Vec<Digest> {
    let mut waiting: BTreeMap<Digest, usize> = BTreeMap::new();
    let mut after: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for (hash, predecessors) in edges {
        let held: Vec<&Digest> = predecessors
            .iter()
            .filter(|predecessor| edges.contains_key(predecessor))
            .collect();
        waiting.insert(*hash, held.len());
        for predecessor in held {
            after.entry(*predecessor).or_default().push(*hash);
        }
    }
    let mut ready: BTreeSet<Digest> = waiting
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(hash, _)| *hash)
        .collect();
    let mut order = Vec::with_capacity(edges.len());
    while let Some(hash) = ready.pop_first() {
        order.push(hash);
        for next in after.get(&hash).into_iter().flatten() {
            if let Some(count) = waiting.get_mut(next) {
                *count -= 1;
                if *count == 0 {
                    ready.insert(*next);
                }
            }
        }
    }
    order
}
