//! State the agent must not lose across a restart, and how it hands it to
//! the driver.
//!
//! The agent never writes anything itself: it queues [`Persist`] outputs,
//! the driver receives them from [`crate::Agent::poll_output`] as
//! [`crate::Output::Persist`] and makes each durable *before* it acts on
//! the next output: the core hands out every persist before any transmit.
//! That order is what makes "a voter persists its grant before sending it" true. After a
//! restart the driver hands the folded result back with
//! [`crate::Agent::restore`].
//!
//! The replicated entries the agent merges are the other half of what it
//! must not lose: a release in [`Durable`] is worth nothing without the
//! config changes it names. Those are drained just before these outputs,
//! as [`crate::Output::Journal`], appended to a journal beside the
//! driver's replica snapshot and synced in the same pass.

use fleetmesh_crdt::config::limits as config_limits;
use fleetmesh_crdt::{AppliedRelease, IdempotencyKey, VoterRecord};
use std::collections::{BTreeMap, VecDeque};

/// One piece of state to make durable. Each is a full snapshot of its part
/// of [`Durable`] (the voter records; one document's release): a later one
/// supersedes an earlier one of the same part, so the queue holds at most
/// one per part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// This agent's lease voter records, every scope it ever granted.
    VoterRecords(BTreeMap<String, VoterRecord>),
    /// The release this agent now runs for a document; it must never go
    /// back to an older one, even after a restart (rollback protection).
    Release(AppliedRelease),
    /// The remediations this agent started, with the HLC time of each
    /// (oldest first, at most [`crate::remedy::STARTED_MAX`]): it never
    /// starts one twice, and rate limits hold across restarts.
    Remediations(Vec<(IdempotencyKey, u64)>),
}

impl Persist {
    /// Whether `self` and `other` snapshot the same part of [`Durable`].
    fn same_part(&self, other: &Persist) -> bool {
        match (self, other) {
            (Persist::VoterRecords(_), Persist::VoterRecords(_)) => true,
            (Persist::Release(one), Persist::Release(other)) => one.doc == other.doc,
            (Persist::Remediations(_), Persist::Remediations(_)) => true,
            (Persist::VoterRecords(_) | Persist::Release(_) | Persist::Remediations(_), _) => false,
        }
    }
}

/// Everything an agent persisted, as the driver keeps it and hands it back
/// on restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The lease voter's last grant per scope.
    pub voter_records: BTreeMap<String, VoterRecord>,
    /// The release run per document.
    pub releases: BTreeMap<String, AppliedRelease>,
    /// The remediations started and when, oldest first.
    pub remediations: Vec<(IdempotencyKey, u64)>,
}

impl Durable {
    /// Folds one drained output into the durable state.
    pub fn apply(&mut self, persist: Persist) {
        match persist {
            Persist::VoterRecords(records) => self.voter_records = records,
            Persist::Release(applied) => {
                self.releases.insert(applied.doc.clone(), applied);
            }
            Persist::Remediations(keys) => self.remediations = keys,
        }
    }
}

/// The agent's queue of outputs to persist; bounded by construction at
/// [`PERSIST_QUEUE_MAX`] (one entry per part of [`Durable`]).
#[derive(Debug, Default)]
pub(crate) struct PersistQueue {
    queue: VecDeque<Persist>,
}

impl PersistQueue {
    /// Queues `persist`, replacing a queued snapshot of the same variant.
    pub(crate) fn push(&mut self, persist: Persist) {
        match self
            .queue
            .iter_mut()
            .find(|queued| queued.same_part(&persist))
        {
            Some(queued) => *queued = persist,
            None => self.queue.push_back(persist),
        }
    }

    /// The oldest queued output.
    pub(crate) fn pop(&mut self) -> Option<Persist> {
        self.queue.pop_front()
    }

    /// Panics unless the queue holds at most one snapshot per part of
    /// [`Durable`], and so at most [`PERSIST_QUEUE_MAX`]: for the agent's
    /// `check_invariants`.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.queue.len() <= PERSIST_QUEUE_MAX,
            "persist queue: {} outputs over its bound {PERSIST_QUEUE_MAX}",
            self.queue.len()
        );
        for (at, persist) in self.queue.iter().enumerate() {
            assert!(
                !self
                    .queue
                    .range(at + 1..)
                    .any(|later| later.same_part(persist)),
                "persist queue: two snapshots of one part queued"
            );
        }
    }
}

/// Most outputs the persist queue holds: the voter records, the
/// remediations, and one release per config document.
pub(crate) const PERSIST_QUEUE_MAX: usize = 2 + config_limits::DOCS_MAX;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "two snapshots of one part")]
    fn check_invariants_fires_on_two_snapshots_of_one_part() {
        let mut queue = PersistQueue::default();
        queue.push(Persist::Remediations(Vec::new()));
        queue.push(Persist::VoterRecords(BTreeMap::new()));
        queue.push(Persist::Remediations(Vec::new()));
        assert_eq!(queue.queue.len(), 2, "a later snapshot replaces one queued");
        queue.check_invariants();
        queue
            .queue
            .push_back(Persist::VoterRecords(BTreeMap::new()));
        queue.check_invariants();
    }
}
