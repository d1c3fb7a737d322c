//! Keyed max-registers: the shared core of the lease and health tables.
//!
//! Each key holds the one entry of highest rank seen for it. A rank ends in
//! a tiebreak on the entry's version digest, so two distinct entries never
//! rank equal and the register is a join-semilattice: merging in any order,
//! with duplicates, ends on the same entry.

use std::collections::BTreeMap;

use crate::keys::Digest;
use crate::replica::Merge;

/// One register's content.
#[derive(Clone, Debug)]
pub(crate) struct Held<R, E> {
    /// Orders entries under one key; the highest is kept.
    pub rank: R,
    /// The entry's content digest, as anti-entropy compares it.
    pub version: Digest,
    /// The entry.
    pub entry: E,
}

/// Registers by key digest.
#[derive(Clone, Debug)]
pub(crate) struct Registers<R, E> {
    held: BTreeMap<Digest, Held<R, E>>,
}

impl<R, E> Default for Registers<R, E> {
    fn default() -> Self {
        Registers {
            held: BTreeMap::new(),
        }
    }
}

impl<R: Ord, E> Registers<R, E> {
    /// Keeps `offered` under `key` when it ranks above what is held.
    pub(crate) fn offer(&mut self, key: Digest, offered: Held<R, E>) -> Merge {
        let replaced = match self.held.get(&key) {
            Some(current) if current.rank >= offered.rank => return Merge::Unchanged,
            current => current.map(|current| current.version),
        };
        let version = offered.version;
        self.held.insert(key, offered);
        Merge::Changed {
            key,
            version,
            replaced,
        }
    }

    /// The entry under `key`.
    pub(crate) fn get(&self, key: &Digest) -> Option<&E> {
        self.held.get(key).map(|held| &held.entry)
    }

    /// Every (key, version).
    pub(crate) fn versions(&self) -> Vec<(Digest, Digest)> {
        self.held
            .iter()
            .map(|(key, held)| (*key, held.version))
            .collect()
    }

    /// Entries in key order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Digest, &E)> {
        self.held.iter().map(|(key, held)| (key, &held.entry))
    }

    /// How many keys are held.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &Digest) {
        self.held.remove(key);
    }

    /// Forgets the highest key: the deterministic victim when over a bound.
    pub(crate) fn pop_last(&mut self) -> Option<(Digest, E)> {
        self.held.pop_last().map(|(key, held)| (key, held.entry))
    }

    /// Keeps the entries `keep` accepts; returns the keys dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) -> Vec<Digest> {
        let mut dropped = Vec::new();
        self.held.retain(|key, held| {
            let kept = keep(&held.entry);
            if !kept {
                dropped.push(*key);
            }
            kept
        });
        dropped
    }
}
