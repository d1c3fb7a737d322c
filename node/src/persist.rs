//! State the agent must not lose across a restart, and how it hands it to
//! the driver.
//!
//! The agent never writes anything itself: it queues [`Persist`] outputs,
//! the driver drains them with [`crate::Agent::poll_persist`] and makes each
//! durable *before* it drains [`crate::Agent::poll_transmit`]. That order is
//! what makes "a voter persists its grant before sending it" true. After a
//! restart the driver hands the folded result back with
//! [`crate::Agent::restore`].

use fleetmesh_crdt::VoterRecord;
use std::collections::{BTreeMap, VecDeque};

/// One piece of state to make durable. Each variant is a full snapshot of
/// its part of [`Durable`]: a later one supersedes an earlier one of the
/// same variant, so the queue holds at most one per variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// This agent's lease voter records, every scope it ever granted.
    VoterRecords(BTreeMap<String, VoterRecord>),
}

/// Everything an agent persisted, as the driver keeps it and hands it back
/// on restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The lease voter's last grant per scope.
    pub voter_records: BTreeMap<String, VoterRecord>,
}

impl Durable {
    /// Folds one drained output into the durable state.
    pub fn apply(&mut self, persist: Persist) {
        match persist {
            Persist::VoterRecords(records) => self.voter_records = records,
        }
    }
}

/// The agent's queue of outputs to persist; bounded by construction (one
/// entry per [`Persist`] variant).
#[derive(Debug, Default)]
pub(crate) struct PersistQueue {
    queue: VecDeque<Persist>,
}

impl PersistQueue {
    /// Queues `persist`, replacing a queued snapshot of the same variant.
    pub(crate) fn push(&mut self, persist: Persist) {
        let same =
            |queued: &Persist| std::mem::discriminant(queued) == std::mem::discriminant(&persist);
        match self.queue.iter_mut().find(|queued| same(queued)) {
            Some(queued) => *queued = persist,
            None => self.queue.push_back(persist),
        }
    }

    /// The oldest queued output.
    pub(crate) fn pop(&mut self) -> Option<Persist> {
        self.queue.pop_front()
    }
}
