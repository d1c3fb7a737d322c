//! The anti-entropy exchange (roots, buckets, versions, wants) and the
//! gossip round's push, as the module comment describes them: what this
//! replica answers a peer and what it offers one. Merging what arrives is
//! `merge.rs`'s job, asking peers for what is missing `fetch.rs`'s.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_crdt::{Digest, NodeId};

use super::digests::bucket_of;
use super::{Digests, Kind, Merged, Replicas, StateMessage};
use crate::encoding::encoded_len;
use crate::limits::{ENTRIES_BYTES_MAX, INLINE_ENTRY_BYTES_MAX, PAIRS_MAX, WANTS_MAX};

impl Replicas {
    fn versions_in(&self, kind: Kind, buckets: u64) -> Vec<(Digest, Digest)> {
        let mut pairs = self.versions(kind);
        pairs.retain(|(key, _)| buckets & (1 << bucket_of(key)) != 0);
        pairs
    }

    /// Step 1: the roots to send to a sync peer.
    pub fn roots(&self) -> StateMessage {
        StateMessage::Roots {
            roots: self.digests.iter().map(Digests::root).collect(),
        }
    }

    /// Handles one state message from admitted peer `from`, appending the
    /// answers to send it to `out`; returns what the merges did.
    pub fn handle(
        &mut self,
        message: StateMessage,
        from: NodeId,
        now_millis: u64,
        out: &mut Vec<StateMessage>,
    ) -> Merged {
        let mut effects = Merged::default();
        match message {
            StateMessage::Roots { roots } => {
                let kinds: Vec<(Kind, Vec<Digest>)> = Kind::ALL
                    .into_iter()
                    .zip(&roots)
                    .filter(|(kind, root)| self.digests[kind.index()].root() != **root)
                    .map(|(kind, _)| (kind, self.digests[kind.index()].buckets().to_vec()))
                    .collect();
                if !kinds.is_empty() {
                    out.push(StateMessage::Buckets { kinds });
                }
            }
            StateMessage::Buckets { kinds } => {
                for (kind, digests) in kinds {
                    let buckets = self.digests[kind.index()].differing(&digests);
                    if buckets == 0 {
                        continue;
                    }
                    let mut pairs = self.versions_in(kind, buckets);
                    pairs.truncate(PAIRS_MAX);
                    out.push(StateMessage::Versions {
                        kind,
                        buckets,
                        pairs,
                    });
                }
            }
            StateMessage::Versions {
                kind,
                buckets,
                pairs,
            } => {
                let theirs: BTreeSet<(Digest, Digest)> = pairs.iter().copied().collect();
                let mine: BTreeSet<(Digest, Digest)> =
                    self.versions_in(kind, buckets).into_iter().collect();
                // Holding another version counts as not holding it: for
                // registers the merge decides which one wins.
                let want: Vec<Digest> = pairs
                    .iter()
                    .filter(|pair| !mine.contains(pair))
                    .map(|(key, _)| *key)
                    .take(WANTS_MAX)
                    .collect();
                let missing: Vec<Digest> = mine
                    .into_iter()
                    .filter(|pair| !theirs.contains(pair))
                    .map(|(key, _)| key)
                    .collect();
                self.send_entries(kind, &missing, out);
                self.fetch(kind, want, from, now_millis, out);
            }
            StateMessage::Want { kind, keys } => self.send_entries(kind, &keys, out),
            StateMessage::Entries { entries } => {
                effects.absorb(self.merge_entries(entries, now_millis));
            }
            StateMessage::Push { entries, announces } => {
                effects.absorb(self.merge_entries(entries, now_millis));
                for (kind, keys) in group(announces) {
                    let keys: Vec<Digest> = keys
                        .into_iter()
                        .filter(|key| self.entry(kind, key).is_none())
                        .collect();
                    self.fetch(kind, keys, from, now_millis, out);
                }
            }
        }
        effects
    }

    fn send_entries(&self, kind: Kind, keys: &[Digest], out: &mut Vec<StateMessage>) {
        let mut entries = Vec::new();
        let mut bytes = 0;
        for key in keys {
            let Some(entry) = self.entry(kind, key) else {
                continue;
            };
            let size = encoded_len(&entry);
            if bytes + size > ENTRIES_BYTES_MAX && !entries.is_empty() {
                out.push(StateMessage::Entries {
                    entries: std::mem::take(&mut entries),
                });
                bytes = 0;
            }
            if size <= ENTRIES_BYTES_MAX {
                bytes += size;
                entries.push(entry);
            }
        }
        if !entries.is_empty() {
            out.push(StateMessage::Entries { entries });
        }
    }

    /// A push for one gossip peer: queued entries, whole or announced, up
    /// to `budget` bytes; `None` when nothing is queued. `limit` is how
    /// many times each entry is pushed in all.
    pub fn next_push(&mut self, budget: usize, limit: u32) -> Option<StateMessage> {
        let mut entries = Vec::new();
        let mut announces = Vec::new();
        let mut used = 0;
        for (kind, key) in self.push.candidates() {
            let Some(entry) = self.entry(kind, &key) else {
                self.push.forget(kind, key);
                continue;
            };
            self.push.sent(kind, key, limit);
            let size = encoded_len(&entry);
            // A register's version is replaced by the next one: announcing
            // it would cost a fetch round trip for a value soon stale.
            let register = matches!(kind, Kind::Lease | Kind::Health);
            if (size <= INLINE_ENTRY_BYTES_MAX || register) && used + size <= budget {
                used += size;
                entries.push(entry);
            } else {
                used += 40;
                announces.push((kind, key));
            }
            if used >= budget {
                break;
            }
        }
        (!entries.is_empty() || !announces.is_empty())
            .then_some(StateMessage::Push { entries, announces })
    }
}

fn group(announces: Vec<(Kind, Digest)>) -> BTreeMap<Kind, Vec<Digest>> {
    let mut grouped: BTreeMap<Kind, Vec<Digest>> = BTreeMap::new();
    for (kind, key) in announces {
        grouped.entry(kind).or_default().push(key);
    }
    grouped
}
