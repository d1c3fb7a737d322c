//! What the agent has for its driver, queued per kind, each queue bounded,
//! and drained in the one order the driver contract needs: durable state
//! (journal entries, then persists) before anything it sends, then events
//! and tasks. The order lives here, not in each driver.

use crate::event::{Event, Transmit};
use crate::output::Output;
use crate::persist::{Persist, PersistQueue};
use crate::remedy::task::Task;
use crate::state::Entry;
use std::collections::VecDeque;

/// Tasks (check runs, actions) a driver may leave undrained; each check has
/// at most one run in flight, so this is only reached by a stalled driver.
const TASKS_MAX: usize = 1024;

/// Entries to journal a driver may leave undrained. One input merges at
/// most a message's entries (a few thousand at
/// [`crate::limits::MESSAGE_BYTES_MAX`]), so only a driver that does not
/// drain [`crate::Agent::poll_output`] reaches it; past it entries are
/// dropped and counted (`journal_dropped`), and the driver saves a whole
/// snapshot instead.
const JOURNAL_MAX: usize = 16_384;

/// The agent's outputs not yet handed to the driver.
pub(super) struct Outbox {
    journal: VecDeque<Entry>,
    persists: PersistQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    tasks: VecDeque<Task>,
    transmits_max: usize,
    events_max: usize,
}

impl Outbox {
    /// An empty outbox holding at most `transmits_max` messages and
    /// `events_max` events.
    pub(super) fn new(transmits_max: usize, events_max: usize) -> Outbox {
        Outbox {
            journal: VecDeque::new(),
            persists: PersistQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            tasks: VecDeque::new(),
            transmits_max,
            events_max,
        }
    }

    /// Whether another message fits; checked before encoding one.
    pub(super) fn has_room_to_send(&self) -> bool {
        self.transmits.len() < self.transmits_max
    }

    /// Queues a message; the caller checked [`Outbox::has_room_to_send`].
    pub(super) fn send(&mut self, transmit: Transmit) {
        debug_assert!(self.has_room_to_send(), "a message past the bound");
        self.transmits.push_back(transmit);
    }

    /// Queues an event, dropping the oldest past the bound; says whether
    /// one was dropped.
    pub(super) fn event(&mut self, event: Event) -> bool {
        let full = self.events.len() >= self.events_max;
        if full {
            self.events.pop_front();
        }
        self.events.push_back(event);
        full
    }

    /// Queues a task; `false` (and nothing queued) past [`TASKS_MAX`].
    pub(super) fn task(&mut self, task: Task) -> bool {
        if self.tasks.len() >= TASKS_MAX {
            return false;
        }
        self.tasks.push_back(task);
        true
    }

    /// Queues an entry to journal; `false` (and nothing queued) past
    /// [`JOURNAL_MAX`].
    pub(super) fn journal(&mut self, entry: Entry) -> bool {
        if self.journal.len() >= JOURNAL_MAX {
            return false;
        }
        self.journal.push_back(entry);
        true
    }

    /// Queues state to make durable, superseding a queued one of the same
    /// part ([`PersistQueue`]).
    pub(super) fn persist(&mut self, persist: Persist) {
        self.persists.push(persist);
    }

    /// The next output in drain order, or `None` once all are drained.
    pub(super) fn next(&mut self) -> Option<Output> {
        if let Some(entry) = self.journal.pop_front() {
            return Some(Output::Journal(entry));
        }
        if let Some(persist) = self.persists.pop() {
            return Some(Output::Persist(persist));
        }
        if let Some(transmit) = self.transmits.pop_front() {
            return Some(Output::Transmit(transmit));
        }
        if let Some(event) = self.events.pop_front() {
            return Some(Output::Event(event));
        }
        self.tasks.pop_front().map(Output::Task)
    }

    /// Checks the bounds hold; called from `Agent::check_invariants`.
    pub(super) fn check_invariants(&self) {
        self.persists.check_invariants();
        assert!(self.journal.len() <= JOURNAL_MAX, "journal over its bound");
        assert!(self.tasks.len() <= TASKS_MAX, "tasks over their bound");
        assert!(
            self.transmits.len() <= self.transmits_max,
            "transmits over their bound"
        );
        assert!(
            self.events.len() <= self.events_max,
            "events over their bound"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::policy::{CheckKind, CheckSpec, Selector};
    use crate::remedy::task::TaskId;
    use fleetmesh_crdt::{AppliedRelease, Digest, NodeId};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    fn transmit(n: u64) -> Transmit {
        Transmit {
            to: NodeId(n),
            bytes: vec![n as u8],
        }
    }

    fn release(doc: &str) -> Persist {
        Persist::Release(AppliedRelease {
            reverted_to: None,
            doc: doc.into(),
            version: 1,
            digest: Digest::default(),
            expires_millis: None,
            void: false,
        })
    }

    #[test]
    fn durable_state_queued_last_comes_out_first() {
        let mut outbox = Outbox::new(8, 8);
        outbox.send(transmit(1));
        assert!(!outbox.event(Event::MemberReaped { id: NodeId(2) }));
        outbox.persist(Persist::VoterRecords(BTreeMap::new()));
        outbox.persist(release("a"));
        let kinds: Vec<&str> = std::iter::from_fn(|| outbox.next())
            .map(|output| match output {
                Output::Persist(Persist::VoterRecords(_)) => "voters",
                Output::Persist(_) => "release",
                Output::Transmit(_) => "transmit",
                Output::Event(_) => "event",
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["voters", "release", "transmit", "event"]);
        outbox.check_invariants();
    }

    #[test]
    fn every_queue_keeps_its_bound() {
        let mut outbox = Outbox::new(2, 2);
        outbox.send(transmit(1));
        outbox.send(transmit(2));
        assert!(!outbox.has_room_to_send());
        for n in 0..3 {
            let dropped = outbox.event(Event::MemberReaped { id: NodeId(n) });
            assert_eq!(dropped, n == 2, "event {n}");
        }
        // The oldest event went; the newest stayed.
        let events: Vec<Output> = std::iter::from_fn(|| outbox.next())
            .filter(|output| matches!(output, Output::Event(_)))
            .collect();
        assert_eq!(
            events,
            [1, 2].map(|n| Output::Event(Event::MemberReaped { id: NodeId(n) }))
        );
        let spec = Arc::new(CheckSpec {
            name: "up".into(),
            kind: CheckKind::Exec {
                command: vec!["true".into()],
            },
            select: Selector::parse("role=web").expect("a valid selector"),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            fall: 1,
            rise: 1,
            grace: Duration::ZERO,
        });
        let check = |id| Task::Check {
            id: TaskId(id),
            check: Arc::clone(&spec),
        };
        for id in 0..TASKS_MAX as u64 {
            assert!(outbox.task(check(id)));
        }
        assert!(!outbox.task(check(u64::MAX)), "a task past the bound");
        outbox.check_invariants();
    }
}
