//! The queue of updates waiting to be piggybacked or gossiped.
//!
//! Each update is sent a limited number of times (the retransmit limit,
//! about λ·log N); updates sent least often go first, newest first among
//! equals, so fresh news overtakes old news. A newer claim about a member
//! replaces any queued claim about the same member. The queue is bounded:
//! when full, the update already sent most often is dropped, and the drop
//! is counted; anti-entropy repairs anything gossip lost.

use crate::encoding::encoded_len;
use crate::limits::UPDATES_MAX;
use crate::wire::Update;
use fleetmesh_crdt::NodeId;
use std::cmp::Reverse;
use std::collections::BTreeMap;

struct Queued {
    update: Update,
    encoded_len: usize,
}

/// Order of service: fewest transmissions first, then newest first.
type Priority = (u8, Reverse<u64>);

/// Updates that did not fit, after which a fill stops looking: the budget
/// is as good as used, and scanning a full queue per message would cost
/// O(queue) on every send.
const FILL_MISSES_MAX: usize = 8;

/// Bounded, transmit-limited queue of updates.
pub(crate) struct BroadcastQueue {
    capacity: usize,
    update_bytes_max: usize,
    next_sequence: u64,
    queued: BTreeMap<Priority, Queued>,
    by_member: BTreeMap<NodeId, Priority>,
    dropped: u64,
}

impl BroadcastQueue {
    /// An empty queue holding at most `capacity` updates of at most
    /// `update_bytes_max` encoded bytes (what fits in one datagram).
    pub(crate) fn new(capacity: usize, update_bytes_max: usize) -> BroadcastQueue {
        // `Config::validate` refuses `broadcast_queue_max` 0, so only an
        // unvalidated config reaches this: a full queue must pop one.
        debug_assert!(capacity > 0, "a broadcast queue needs room for one update");
        BroadcastQueue {
            capacity,
            update_bytes_max,
            next_sequence: 0,
            queued: BTreeMap::new(),
            by_member: BTreeMap::new(),
            dropped: 0,
        }
    }

    /// Updates waiting.
    pub(crate) fn len(&self) -> usize {
        self.queued.len()
    }

    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Updates dropped because the queue was full or they were too large.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `update`, replacing any queued claim about the same member.
    pub(crate) fn push(&mut self, update: Update) {
        if let Some(priority) = self.by_member.remove(&update.id) {
            self.queued.remove(&priority);
        }
        let encoded_len = encoded_len(&update);
        if encoded_len > self.update_bytes_max {
            // Only anti-entropy can carry an update no datagram can.
            self.dropped += 1;
            return;
        }
        if self.queued.len() >= self.capacity
            && let Some((_, most_sent)) = self.queued.pop_last()
        {
            self.by_member.remove(&most_sent.update.id);
            self.dropped += 1;
        }
        let priority = (0, Reverse(self.next_sequence));
        self.next_sequence += 1;
        self.by_member.insert(update.id, priority);
        self.queued.insert(
            priority,
            Queued {
                update,
                encoded_len,
            },
        );
    }

    /// Appends to `out` the least-sent updates that fit in `budget_bytes`,
    /// skipping the member `skip` (already in the message), and counts one
    /// transmission for each; updates that reach `limit` are retired.
    pub(crate) fn fill(
        &mut self,
        budget_bytes: usize,
        limit: u8,
        skip: Option<NodeId>,
        out: &mut Vec<Update>,
    ) {
        let mut used = 0;
        let mut taken = Vec::new();
        let mut misses = 0;
        for (&priority, queued) in &self.queued {
            if out.len() + taken.len() >= UPDATES_MAX || misses >= FILL_MISSES_MAX {
                break;
            }
            if Some(queued.update.id) == skip || used + queued.encoded_len > budget_bytes {
                misses += 1;
                continue;
            }
            used += queued.encoded_len;
            taken.push(priority);
        }
        for priority in taken {
            let queued = self.queued.remove(&priority).expect("taken from the queue");
            out.push(queued.update.clone());
            let transmits = priority.0.saturating_add(1);
            if transmits >= limit {
                self.by_member.remove(&queued.update.id);
            } else {
                let requeued = (transmits, priority.1);
                self.by_member.insert(queued.update.id, requeued);
                self.queued.insert(requeued, queued);
            }
        }
    }

    /// Panics unless the queue is within its bound, the member index and
    /// the queue agree entry for entry, and every queued update fits a
    /// datagram. Costs a pass over the queue: for the agent's
    /// `check_invariants`.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.queued.len() <= self.capacity,
            "broadcast queue: {} updates over its bound {}",
            self.queued.len(),
            self.capacity
        );
        assert_eq!(
            self.by_member.len(),
            self.queued.len(),
            "broadcast queue: member index and queue differ in size"
        );
        for (member, priority) in &self.by_member {
            let queued = self.queued.get(priority);
            assert!(
                queued.is_some_and(|queued| queued.update.id == *member),
                "broadcast queue: index of {member} points elsewhere"
            );
        }
        for (&(_, Reverse(sequence)), queued) in &self.queued {
            assert!(
                sequence < self.next_sequence && queued.encoded_len <= self.update_bytes_max,
                "broadcast queue: update of {} has a future sequence or does not fit",
                queued.update.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::MemberState;

    fn update(id: u64, incarnation: u32) -> Update {
        Update {
            id: NodeId(id),
            incarnation,
            state: MemberState::Alive,
            from: NodeId(id),
            meta: None,
        }
    }

    #[test]
    fn newer_claim_replaces_older_and_limit_retires() {
        let mut queue = BroadcastQueue::new(8, 1400);
        queue.push(update(1, 0));
        queue.push(update(1, 1));
        assert_eq!(queue.len(), 1);
        let mut out = Vec::new();
        queue.fill(1400, 2, None, &mut out);
        queue.fill(1400, 2, None, &mut out);
        assert_eq!(out, vec![update(1, 1), update(1, 1)]);
        assert!(queue.is_empty());
    }

    #[test]
    fn least_sent_first_and_bounded() {
        let mut queue = BroadcastQueue::new(2, 1400);
        queue.push(update(1, 0));
        let mut out = Vec::new();
        queue.fill(1400, 5, None, &mut out);
        queue.push(update(2, 0));
        queue.push(update(3, 0));
        assert_eq!(
            queue.dropped(),
            1,
            "the most-sent update is dropped when full"
        );
        out.clear();
        queue.fill(1400, 5, None, &mut out);
        assert_eq!(out, vec![update(3, 0), update(2, 0)]);
        queue.check_invariants();
    }

    #[test]
    #[should_panic(expected = "points elsewhere")]
    fn check_invariants_fires_on_a_stale_member_index() {
        let mut queue = BroadcastQueue::new(8, 1400);
        queue.push(update(1, 0));
        queue.push(update(2, 0));
        queue.check_invariants();
        let two = queue.by_member[&NodeId(2)];
        queue.by_member.insert(NodeId(1), two);
        queue.check_invariants();
    }

    #[test]
    fn respects_the_byte_budget() {
        let mut queue = BroadcastQueue::new(64, 1400);
        for id in 0..64 {
            queue.push(update(id, 0));
        }
        let mut out = Vec::new();
        queue.fill(40, 5, None, &mut out);
        let used: usize = out.iter().map(encoded_len).sum();
        assert!(used <= 40 && !out.is_empty(), "{used}");
    }
}
