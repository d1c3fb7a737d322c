//! The one stream a driver drains after every input
//! ([`crate::Agent::poll_output`]), in the order that keeps the agent's
//! promises.
//!
//! The order is the core's, not each driver's: everything to make durable
//! comes out before anything to send, because "a voter persists its grant
//! before sending it" and "a release is never on disk without the changes
//! it names" are only true if the driver cannot send first. str0m's
//! `poll_output` is the model.

use crate::event::{Event, Transmit};
use crate::persist::Persist;
use crate::remedy::task::Task;
use crate::state::Entry;
use crate::time::Instant;

/// The next thing the driver must do, in drain order: every
/// [`Output::Journal`], then every [`Output::Persist`], then transmits,
/// events and tasks, and last the timeout, which also says the drain is
/// over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A replicated entry to append to the driver's journal: one that
    /// merged here (from a peer, an operator or this agent itself) or waits
    /// for a parent, in a collection [`crate::Agent::save_replicas`] saves.
    /// The journal and the last snapshot together hold everything the
    /// agent accepted; a restart takes the journal back with
    /// [`crate::Agent::load_journal`]. A driver may append a run of them
    /// with one sync.
    Journal(Entry),
    /// State to make durable (written and synced) before anything that
    /// follows: a voter's grant, the release the agent moved to, the
    /// remediations it started. A driver may gather a run of them (and
    /// the journal entries before them) into one sync, as long as the sync
    /// completes before it acts on the first output that is not durable
    /// state. A restart hands them back with [`crate::Agent::restore`].
    Persist(Persist),
    /// A message to deliver.
    Transmit(Transmit),
    /// Something the driver or an operator may want to know.
    Event(Event),
    /// A check or action to start off the core's thread; report how it
    /// ended with [`crate::Agent::handle_task_result`].
    Task(Task),
    /// Nothing more to drain: call [`crate::Agent::handle_timeout`] once
    /// this instant has passed (calling it early is harmless), or sooner
    /// with any other input.
    Timeout(Instant),
    /// Nothing more to drain and no timer set (an agent that left and has
    /// said so): only an input wakes it.
    Idle,
}

impl Output {
    /// Whether this output is durable state, which must be on disk before
    /// the driver acts on any output that is not.
    pub fn is_durable(&self) -> bool {
        match self {
            Output::Journal(_) | Output::Persist(_) => true,
            Output::Transmit(_)
            | Output::Event(_)
            | Output::Task(_)
            | Output::Timeout(_)
            | Output::Idle => false,
        }
    }
}
