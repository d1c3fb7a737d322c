//! The member table: one agent's view of the whole fleet.
//!
//! Every agent holds a record for every member, so at 10,000 members this
//! table dominates an agent's memory, and a simulated 10,000-agent fleet
//! holds 10^8 records. It is stored as parallel dense vectors (ids and
//! 16-byte slots) plus a `hashbrown::HashTable` of 4-byte positions keyed by
//! the (uniformly distributed) id: about 30 bytes per record, against ~80
//! for a `BTreeMap<NodeId, MemberRecord>`. Metadata is interned, since most
//! members share a handful of tag sets.
//!
//! The table also maintains, incrementally, one digest per anti-entropy
//! bucket: the XOR of a blake3-derived hash of every record in the bucket.
//! XOR makes the digest independent of insertion order and updatable in
//! O(1) when a record changes.

use crate::encoding::encoded_len;
use crate::limits::{SYNC_BUCKETS, SYNC_RECORD_BYTES_MAX, SYNC_RECORDS_BYTES_MAX};
use crate::wire::{SyncRecord, bucket_of};
use fleetmesh_crdt::{
    Incarnation, Liveness, MemberRecord, MemberState, MetaVersion, NodeId, NodeMeta,
};
use hashbrown::HashTable;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One anti-entropy message's worth of records.
pub struct SyncBatch {
    /// The buckets whose records the batch holds (a subset of those asked).
    pub covered: u64,
    /// False when some asked-for records were left out.
    pub complete: bool,
    /// Distinct metadata the records refer to.
    pub metas: Vec<Arc<NodeMeta>>,
    /// The records.
    pub records: Vec<SyncRecord>,
}

/// A copy of one member's entry, as callers see it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Member {
    /// The member.
    pub id: NodeId,
    /// Its liveness as this agent believes it.
    pub liveness: Liveness,
    /// Incarnation of the metadata held, if any.
    pub meta_incarnation: Option<Incarnation>,
}

impl Member {
    /// The believed state.
    pub fn state(&self) -> MemberState {
        self.liveness.state
    }

    /// The believed incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.liveness.incarnation
    }
}

/// What [`MemberTable::merge`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Change {
    /// Liveness before the merge; `None` for a member new to the table.
    pub previous: Option<Liveness>,
    /// Liveness after the merge.
    pub current: Liveness,
    /// The metadata grew.
    pub meta_changed: bool,
}

impl Change {
    /// True when the liveness half changed (new member included).
    pub fn liveness_changed(&self) -> bool {
        self.previous != Some(self.current)
    }
}

const NO_META: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    liveness: Liveness,
    meta_incarnation: Incarnation,
    meta: u32,
}

struct MetaEntry {
    meta: Arc<NodeMeta>,
    hash: u64,
    encoded_len: usize,
    references: u32,
}

/// Reference-counted interning of metadata: members with equal tags share one
/// copy.
#[derive(Default)]
struct MetaTable {
    entries: Vec<Option<MetaEntry>>,
    free: Vec<u32>,
    index: HashTable<u32>,
}

impl MetaTable {
    fn intern(&mut self, meta: &Arc<NodeMeta>) -> u32 {
        let hash = meta_hash(meta);
        let entries = &self.entries;
        let found = self.index.find(hash, |&at| {
            entries[at as usize]
                .as_ref()
                .is_some_and(|entry| entry.meta == *meta)
        });
        if let Some(&at) = found {
            let entry = self.entries[at as usize]
                .as_mut()
                .expect("indexed entry exists");
            entry.references += 1;
            return at;
        }
        let entry = Some(MetaEntry {
            meta: Arc::clone(meta),
            hash,
            encoded_len: encoded_len(meta),
            references: 1,
        });
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at as usize] = entry;
                at
            }
            None => {
                self.entries.push(entry);
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 metas")
            }
        };
        let entries = &self.entries;
        self.index.insert_unique(hash, at, |&other| {
            entries[other as usize]
                .as_ref()
                .map_or(0, |entry| entry.hash)
        });
        at
    }

    fn release(&mut self, at: u32) {
        if at == NO_META {
            return;
        }
        let entry = self.entries[at as usize]
            .as_mut()
            .expect("released entry exists");
        entry.references -= 1;
        if entry.references > 0 {
            return;
        }
        let hash = entry.hash;
        if let Ok(found) = self.index.find_entry(hash, |&other| other == at) {
            found.remove();
        }
        self.entries[at as usize] = None;
        self.free.push(at);
    }

    fn get(&self, at: u32) -> Option<&MetaEntry> {
        if at == NO_META {
            return None;
        }
        self.entries[at as usize].as_ref()
    }

    fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }
}

fn meta_hash(meta: &NodeMeta) -> u64 {
    let mut hasher = blake3::Hasher::new();
    for (key, value) in &meta.tags {
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update(&(value.len() as u64).to_le_bytes());
        hasher.update(value.as_bytes());
    }
    hasher.update(&[0xFF]);
    for addr in &meta.addrs {
        hasher.update(&(addr.len() as u64).to_le_bytes());
        hasher.update(addr.as_bytes());
    }
    first_u64(hasher.finalize())
}

fn first_u64(hash: blake3::Hash) -> u64 {
    let bytes: [u8; 8] = hash.as_bytes()[..8]
        .try_into()
        .expect("blake3 has 32 bytes");
    u64::from_le_bytes(bytes)
}

/// One agent's table of members, with anti-entropy digests.
pub struct MemberTable {
    ids: Vec<NodeId>,
    slots: Vec<Slot>,
    index: HashTable<u32>,
    metas: MetaTable,
    digests: [u64; SYNC_BUCKETS],
    bucket_sizes: [u32; SYNC_BUCKETS],
    up: usize,
}

impl Default for MemberTable {
    fn default() -> Self {
        MemberTable {
            ids: Vec::new(),
            slots: Vec::new(),
            index: HashTable::new(),
            metas: MetaTable::default(),
            digests: [0; SYNC_BUCKETS],
            bucket_sizes: [0; SYNC_BUCKETS],
            up: 0,
        }
    }
}

impl MemberTable {
    /// Members in the table, in any state.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the table holds no member.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Members believed alive or suspect.
    pub fn up_count(&self) -> usize {
        self.up
    }

    /// Distinct metadata values held (interned).
    pub fn distinct_metas(&self) -> usize {
        self.metas.len()
    }

    fn position(&self, id: NodeId) -> Option<usize> {
        let ids = &self.ids;
        self.index
            .find(id.0, |&at| ids[at as usize] == id)
            .map(|&at| at as usize)
    }

    /// The entry of `id`, if known.
    pub fn get(&self, id: NodeId) -> Option<Member> {
        self.position(id).map(|at| self.member_at(at))
    }

    /// The entry at position `at` (0..len); positions change on removal.
    pub fn member_at(&self, at: usize) -> Member {
        let slot = self.slots[at];
        Member {
            id: self.ids[at],
            liveness: slot.liveness,
            meta_incarnation: (slot.meta != NO_META).then_some(slot.meta_incarnation),
        }
    }

    /// The metadata held for `id`.
    pub fn meta(&self, id: NodeId) -> Option<&Arc<NodeMeta>> {
        let at = self.position(id)?;
        self.metas.get(self.slots[at].meta).map(|entry| &entry.meta)
    }

    /// The full record of `id`, as anti-entropy sends it.
    pub fn record(&self, id: NodeId) -> Option<MemberRecord> {
        self.position(id).map(|at| self.record_at(at))
    }

    fn record_at(&self, at: usize) -> MemberRecord {
        let slot = self.slots[at];
        MemberRecord {
            id: self.ids[at],
            liveness: slot.liveness,
            meta: self.metas.get(slot.meta).map(|entry| MetaVersion {
                incarnation: slot.meta_incarnation,
                meta: Arc::clone(&entry.meta),
            }),
        }
    }

    /// Joins a claim into the table: the least upper bound of what is held and
    /// `liveness`/`meta`, exactly as [`MemberRecord::merge`] defines it.
    /// Returns `None` when nothing changed.
    pub fn merge(
        &mut self,
        id: NodeId,
        liveness: Liveness,
        meta: Option<(Incarnation, &Arc<NodeMeta>)>,
    ) -> Option<Change> {
        let Some(at) = self.position(id) else {
            self.insert(id, liveness, meta);
            return Some(Change {
                previous: None,
                current: liveness,
                meta_changed: meta.is_some(),
            });
        };
        let slot = self.slots[at];
        let liveness_grows = liveness > slot.liveness;
        let meta_grows = match (meta, self.metas.get(slot.meta)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((incarnation, meta)), Some(held)) => {
                (incarnation, &**meta) > (slot.meta_incarnation, &*held.meta)
            }
        };
        if !liveness_grows && !meta_grows {
            return None;
        }
        self.unhash(at);
        let slot = &mut self.slots[at];
        let previous = slot.liveness;
        if liveness_grows {
            self.up -= usize::from(previous.state.is_up());
            self.up += usize::from(liveness.state.is_up());
            slot.liveness = liveness;
        }
        if meta_grows {
            let (incarnation, meta) = meta.expect("meta grows only when given");
            let old = slot.meta;
            slot.meta = self.metas.intern(meta);
            slot.meta_incarnation = incarnation;
            self.metas.release(old);
        }
        let current = self.slots[at].liveness;
        self.rehash(at);
        Some(Change {
            previous: Some(previous),
            current,
            meta_changed: meta_grows,
        })
    }

    fn insert(
        &mut self,
        id: NodeId,
        liveness: Liveness,
        meta: Option<(Incarnation, &Arc<NodeMeta>)>,
    ) {
        let (meta_incarnation, meta) = match meta {
            Some((incarnation, meta)) => (incarnation, self.metas.intern(meta)),
            None => (0, NO_META),
        };
        let at = u32::try_from(self.ids.len()).expect("fewer than 2^32 members");
        self.ids.push(id);
        self.slots.push(Slot {
            liveness,
            meta_incarnation,
            meta,
        });
        let ids = &self.ids;
        self.index
            .insert_unique(id.0, at, |&other| ids[other as usize].0);
        self.up += usize::from(liveness.state.is_up());
        self.bucket_sizes[bucket_of(id)] += 1;
        self.rehash(at as usize);
    }

    /// Returns growth slack to the allocator once the table has stopped
    /// growing: vectors double, and at 10,000 members the unused half of
    /// each is 120 KB per agent. Cheap to call often; acts only when more
    /// than a quarter of the capacity is unused.
    pub fn shrink_slack(&mut self) {
        let len = self.ids.len();
        if self.ids.capacity() > len + len / 4 + 64 {
            self.ids.shrink_to(len + len / 8);
            self.slots.shrink_to(len + len / 8);
        }
        let ids = &self.ids;
        self.index.shrink_to(len, |&at| ids[at as usize].0);
    }

    /// Forgets `id` (reaping). Returns whether it was present.
    pub fn remove(&mut self, id: NodeId) -> bool {
        let Some(at) = self.position(id) else {
            return false;
        };
        self.unhash(at);
        let slot = self.slots[at];
        self.up -= usize::from(slot.liveness.state.is_up());
        self.bucket_sizes[bucket_of(id)] -= 1;
        self.metas.release(slot.meta);
        let ids = &self.ids;
        if let Ok(entry) = self
            .index
            .find_entry(id.0, |&other| ids[other as usize] == id)
        {
            entry.remove();
        }
        let last = self.ids.len() - 1;
        self.ids.swap_remove(at);
        self.slots.swap_remove(at);
        if at != last {
            // The former last entry moved into the hole: repoint its index.
            let moved = self.ids[at];
            let ids = &self.ids;
            if let Some(position) = self
                .index
                .find_mut(moved.0, |&other| other as usize == last && ids[at] == moved)
            {
                *position = at as u32;
            }
        }
        true
    }

    fn record_hash(&self, at: usize) -> u64 {
        let slot = self.slots[at];
        let mut bytes = [0u8; 8 + 4 + 1 + 1 + 4 + 8];
        bytes[..8].copy_from_slice(&self.ids[at].0.to_le_bytes());
        bytes[8..12].copy_from_slice(&slot.liveness.incarnation.to_le_bytes());
        bytes[12] = slot.liveness.state as u8;
        if let Some(entry) = self.metas.get(slot.meta) {
            bytes[13] = 1;
            bytes[14..18].copy_from_slice(&slot.meta_incarnation.to_le_bytes());
            bytes[18..26].copy_from_slice(&entry.hash.to_le_bytes());
        }
        first_u64(blake3::hash(&bytes))
    }

    fn unhash(&mut self, at: usize) {
        self.digests[bucket_of(self.ids[at])] ^= self.record_hash(at);
    }

    fn rehash(&mut self, at: usize) {
        self.digests[bucket_of(self.ids[at])] ^= self.record_hash(at);
    }

    /// Per-bucket digests, for anti-entropy.
    pub fn digests(&self) -> &[u64; SYNC_BUCKETS] {
        &self.digests
    }

    /// Digest of the whole table.
    pub fn root(&self) -> u64 {
        self.digests.iter().fold(0, |root, digest| root ^ digest)
    }

    /// Buckets (as a bitmap) whose digests differ from `theirs`.
    pub fn differing_buckets(&self, theirs: &[u64]) -> u64 {
        self.digests
            .iter()
            .zip(theirs)
            .enumerate()
            .filter(|(_, (ours, theirs))| ours != theirs)
            .fold(0, |bitmap, (bucket, _)| bitmap | (1 << bucket))
    }

    /// The records of as many whole buckets of `bitmap` as fit in one
    /// message (`limit` records and [`SYNC_RECORDS_BYTES_MAX`] bytes), lowest
    /// bucket first and at least one, with the metadata table they refer to.
    ///
    /// Whole buckets, and the bitmap of the ones covered, are what let a
    /// large difference be repaired in successive exchanges: the buckets of
    /// one batch compare equal afterwards, so the next batch moves on. (Only
    /// a single bucket larger than a batch, past ~65,000 members at the
    /// default limit, is cut short; it is then repaired over time.)
    pub fn records_in(&self, bitmap: u64, limit: usize) -> SyncBatch {
        let mut covered = 0u64;
        let mut count = 0usize;
        for bucket in (0..SYNC_BUCKETS).filter(|&bucket| bitmap & (1 << bucket) != 0) {
            let size = self.bucket_sizes[bucket] as usize;
            if covered != 0 && count + size > limit {
                break;
            }
            covered |= 1 << bucket;
            count += size;
        }
        let mut batch = SyncBatch {
            covered,
            complete: covered == bitmap,
            metas: Vec::new(),
            records: Vec::new(),
        };
        let mut positions: BTreeMap<u32, u32> = BTreeMap::new();
        let mut bytes = 0;
        for at in 0..self.len() {
            if covered & (1 << bucket_of(self.ids[at])) == 0 {
                continue;
            }
            let slot = self.slots[at];
            let entry = self.metas.get(slot.meta);
            let new_meta = entry.filter(|_| !positions.contains_key(&slot.meta));
            let cost = SYNC_RECORD_BYTES_MAX + new_meta.map_or(0, |entry| entry.encoded_len);
            if batch.records.len() == limit || bytes + cost > SYNC_RECORDS_BYTES_MAX {
                batch.complete = false;
                break;
            }
            bytes += cost;
            let meta = entry.map(|entry| {
                let position = *positions.entry(slot.meta).or_insert_with(|| {
                    batch.metas.push(Arc::clone(&entry.meta));
                    u32::try_from(batch.metas.len() - 1).expect("fewer than 2^32 metas")
                });
                (slot.meta_incarnation, position)
            });
            batch.records.push(SyncRecord {
                id: self.ids[at],
                liveness: slot.liveness,
                meta,
            });
        }
        batch
    }

    /// Recomputes every derived field (index, bucket digests and sizes, up
    /// count) from the entries and panics on the first that drifted. It
    /// costs a hash per member: the agent's `check_invariants` runs it
    /// under debug assertions only.
    pub fn check_invariants(&self) {
        let mut digests = [0u64; SYNC_BUCKETS];
        let mut up = 0;
        for at in 0..self.len() {
            digests[bucket_of(self.ids[at])] ^= self.record_hash(at);
            up += usize::from(self.slots[at].liveness.state.is_up());
            assert_eq!(
                self.position(self.ids[at]),
                Some(at),
                "member table: index of {} is stale",
                self.ids[at]
            );
        }
        assert!(
            digests == self.digests,
            "member table: bucket digests drifted from the entries"
        );
        assert_eq!(
            up, self.up,
            "member table: up count drifted from the entries"
        );
        assert_eq!(
            self.index.len(),
            self.len(),
            "member table: index and entries differ in size"
        );
        let mut sizes = [0u32; SYNC_BUCKETS];
        self.ids.iter().for_each(|&id| sizes[bucket_of(id)] += 1);
        assert!(
            sizes == self.bucket_sizes,
            "member table: bucket sizes drifted from the entries"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Merge(MemberRecord),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let state = prop_oneof![
            Just(MemberState::Alive),
            Just(MemberState::Suspect),
            Just(MemberState::Dead),
            Just(MemberState::Left),
        ];
        let meta = prop::option::of((0u32..3, "[ab]").prop_map(|(incarnation, zone)| {
            let mut meta = NodeMeta::default();
            meta.tags.insert("zone".into(), zone);
            MetaVersion {
                incarnation,
                meta: Arc::new(meta),
            }
        }));
        let merge = (0u64..6, 0u32..3, state, meta).prop_map(|(id, incarnation, state, meta)| {
            Op::Merge(MemberRecord {
                id: NodeId(id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                liveness: Liveness { incarnation, state },
                meta,
            })
        });
        prop_oneof![4 => merge, 1 => (0u64..6).prop_map(|id| Op::Remove(id.wrapping_mul(0x9E37_79B9_7F4A_7C15)))]
    }

    proptest! {
        /// The compact table and the plain CRDT merge are two code paths for
        /// one definition; they must agree after any sequence of operations.
        #[test]
        fn table_matches_the_record_lattice(ops in prop::collection::vec(op(), 0..60)) {
            let mut table = MemberTable::default();
            let mut model: BTreeMap<NodeId, MemberRecord> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Merge(record) => {
                        let meta = record.meta.as_ref().map(|v| (v.incarnation, &v.meta));
                        let change = table.merge(record.id, record.liveness, meta);
                        let before = model.get(&record.id).cloned();
                        let entry = model.entry(record.id).or_insert_with(|| record.clone());
                        entry.merge(&record);
                        prop_assert_eq!(change.is_some(), before.as_ref() != Some(entry));
                    }
                    Op::Remove(id) => {
                        prop_assert_eq!(table.remove(NodeId(id)), model.remove(&NodeId(id)).is_some());
                    }
                }
                table.check_invariants();
            }
            for (id, record) in &model {
                prop_assert_eq!(table.record(*id), Some(record.clone()));
            }
            prop_assert_eq!(table.len(), model.len());
        }

        #[test]
        fn equal_contents_give_equal_digests(ops in prop::collection::vec(op(), 0..40)) {
            let mut forward = MemberTable::default();
            let mut backward = MemberTable::default();
            let records: Vec<MemberRecord> = ops.into_iter().filter_map(|op| match op {
                Op::Merge(record) => Some(record),
                Op::Remove(_) => None,
            }).collect();
            for record in &records {
                forward.merge(record.id, record.liveness, record.meta.as_ref().map(|v| (v.incarnation, &v.meta)));
            }
            for record in records.iter().rev() {
                backward.merge(record.id, record.liveness, record.meta.as_ref().map(|v| (v.incarnation, &v.meta)));
            }
            prop_assert_eq!(forward.digests(), backward.digests());
            prop_assert_eq!(forward.differing_buckets(backward.digests()), 0);
        }
    }

    #[test]
    fn shares_metadata_between_members() {
        let mut table = MemberTable::default();
        let mut meta = NodeMeta::default();
        meta.tags.insert("zone".into(), "a".into());
        let meta = Arc::new(meta);
        for id in 0..100u64 {
            let alive = Liveness {
                incarnation: 0,
                state: MemberState::Alive,
            };
            table.merge(NodeId(id << 40), alive, Some((0, &meta)));
        }
        assert_eq!(table.distinct_metas(), 1);
        assert_eq!(table.up_count(), 100);
        for id in 0..100u64 {
            table.remove(NodeId(id << 40));
        }
        assert_eq!(table.distinct_metas(), 0);
        table.check_invariants();
    }

    #[test]
    #[should_panic(expected = "up count drifted")]
    fn check_invariants_fires_on_a_drifted_up_count() {
        let mut table = MemberTable::default();
        let alive = Liveness {
            incarnation: 0,
            state: MemberState::Alive,
        };
        table.merge(NodeId(1), alive, None);
        table.check_invariants();
        table.up += 1;
        table.check_invariants();
    }
}
