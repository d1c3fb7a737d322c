//! The bounded queue of entries waiting to be pushed to peers.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_crdt::Digest;

use super::Kind;

/// Most entries queued; when full, new entries wait for anti-entropy.
pub(super) const PUSH_QUEUE_MAX: usize = 4_096;

/// Most entries looked at for one push message.
const CANDIDATES_MAX: usize = 64;

/// Entries to push, least-sent first (like the membership broadcast queue,
/// fresh news goes out before news most peers already have).
#[derive(Clone, Debug, Default)]
pub(super) struct PushQueue {
    sent: BTreeMap<(Kind, Digest), u32>,
    order: BTreeSet<(u32, Kind, Digest)>,
}

impl PushQueue {
    /// Queues an entry (again, if it changed); false if the queue is full.
    pub(super) fn push(&mut self, kind: Kind, key: Digest) -> bool {
        if !self.sent.contains_key(&(kind, key)) && self.sent.len() >= PUSH_QUEUE_MAX {
            return false;
        }
        if let Some(count) = self.sent.insert((kind, key), 0) {
            self.order.remove(&(count, kind, key));
        }
        self.order.insert((0, kind, key));
        true
    }

    /// The entries to consider for the next push, least-sent first.
    pub(super) fn candidates(&self) -> Vec<(Kind, Digest)> {
        self.order
            .iter()
            .take(CANDIDATES_MAX)
            .map(|&(_, kind, key)| (kind, key))
            .collect()
    }

    /// Records one more transmission of an entry; it leaves the queue after
    /// `limit` of them.
    pub(super) fn sent(&mut self, kind: Kind, key: Digest, limit: u32) {
        let Some(count) = self.sent.get_mut(&(kind, key)) else {
            return;
        };
        self.order.remove(&(*count, kind, key));
        *count += 1;
        if *count >= limit {
            self.sent.remove(&(kind, key));
        } else {
            self.order.insert((*count, kind, key));
        }
    }

    /// Drops an entry that no longer exists.
    pub(super) fn forget(&mut self, kind: Kind, key: Digest) {
        if let Some(count) = self.sent.remove(&(kind, key)) {
            self.order.remove(&(count, kind, key));
        }
    }

    /// Entries queued.
    pub(super) fn len(&self) -> usize {
        self.sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_after_their_limit_and_fresh_ones_go_first() {
        let (a, b) = (Digest([1; 32]), Digest([2; 32]));
        let mut queue = PushQueue::default();
        assert!(queue.push(Kind::Cert, a));
        queue.sent(Kind::Cert, a, 2);
        assert!(queue.push(Kind::Cert, b));
        assert_eq!(queue.candidates()[0], (Kind::Cert, b));
        queue.sent(Kind::Cert, a, 2);
        assert_eq!(queue.candidates(), vec![(Kind::Cert, b)]);
        for n in 0..PUSH_QUEUE_MAX as u32 {
            let mut key = [0; 32];
            key[..4].copy_from_slice(&n.to_le_bytes());
            key[31] = 9;
            queue.push(Kind::Trust, Digest(key));
        }
        assert_eq!(queue.len(), PUSH_QUEUE_MAX);
        assert!(!queue.push(Kind::Trust, Digest([7; 32])));
    }
}
