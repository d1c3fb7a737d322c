//! The event queue of a simulation: earliest time first, and events due at
//! one instant in the order they were pushed, so that a run never depends
//! on how a heap breaks ties.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

struct Entry<T> {
    time: u64,
    sequence: u64,
    what: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Entry<T>) -> bool {
        (self.time, self.sequence) == (other.time, other.sequence)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Entry<T>) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Entry<T>) -> Ordering {
        (self.time, self.sequence).cmp(&(other.time, other.sequence))
    }
}

/// Events of type `T` ordered by `(time, sequence)`.
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    next_sequence: u64,
}

impl<T> Default for EventQueue<T> {
    fn default() -> EventQueue<T> {
        EventQueue {
            heap: BinaryHeap::new(),
            next_sequence: 0,
        }
    }
}

impl<T> EventQueue<T> {
    /// Queues `what` at `time` (nanoseconds of true time), after every event
    /// already queued at that time.
    pub fn push(&mut self, time: u64, what: T) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(Reverse(Entry {
            time,
            sequence,
            what,
        }));
    }

    /// The earliest event and its time.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.heap
            .pop()
            .map(|Reverse(entry)| (entry.time, entry.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_keep_the_order_of_pushes() {
        let mut queue = EventQueue::default();
        queue.push(5, 'b');
        queue.push(1, 'a');
        queue.push(5, 'c');
        let order: Vec<(u64, char)> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(order, vec![(1, 'a'), (5, 'b'), (5, 'c')]);
    }
}
