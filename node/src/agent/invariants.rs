//! What must hold of an agent between inputs, asserted where it lives
//! (TigerBeetle's style): a violation is a bug in the core, never a peer's
//! doing (foreign input is counted and dropped, not asserted), and
//! carrying on with broken state would be worse than stopping.

use super::{
    Agent, INTRODUCTIONS_MAX, LAST_PROBES_MAX, PARKED_MAX, SYNCS_ANSWERED_MAX, SYNCS_IN_FLIGHT_MAX,
    TIMERS, Timer,
};
use fleetmesh_crdt::MemberState;

/// Fleets up to this size are walked after every input.
const WALK_ALWAYS_MEMBERS: usize = 128;
/// In larger fleets, the walk runs after one input in this many.
const WALK_EVERY: u64 = 256;

impl Agent {
    /// Asserts the agent's invariants; panics naming the first that fails.
    ///
    /// The agent runs it itself at the end of every drain
    /// ([`Agent::poll_output`] returning the timeout), so after every input
    /// in every build: these checks are cheap (bounds and the agent's own
    /// record). Under debug assertions (the test profile, debug simulator
    /// runs) it also walks each sub-state (member table, suspicions,
    /// broadcast queue, leases, remediation), which is linear in the fleet:
    /// after every input in a small fleet, after one in [`WALK_EVERY`] in a
    /// large one, where walking every time made a simulated run quadratic.
    pub fn check_invariants(&self) {
        self.outbox.check_invariants();
        assert!(self.parked.len() <= PARKED_MAX, "parked claims over bound");
        assert!(
            self.introduced.len() <= INTRODUCTIONS_MAX,
            "introductions over bound"
        );
        assert!(
            self.last_probes.len() <= LAST_PROBES_MAX,
            "last probes over bound"
        );
        assert!(
            self.relays.len() <= self.config.relayed_probes_max,
            "relayed probes over bound"
        );
        assert!(
            self.syncs.len() <= SYNCS_IN_FLIGHT_MAX,
            "exchanges in flight over bound"
        );
        assert!(
            self.answering.len() <= SYNCS_ANSWERED_MAX,
            "exchanges answered over bound"
        );
        // The table's record of this agent is the one it announces.
        let own = self
            .members
            .get(self.id)
            .expect("the member table holds the agent itself");
        assert_eq!(
            own.incarnation(),
            self.incarnation,
            "own record's incarnation is not the one announced"
        );
        let expected = if self.left {
            MemberState::Left
        } else {
            MemberState::Alive
        };
        assert_eq!(own.state(), expected, "own record's state");
        if self.left {
            assert!(
                self.probe.is_none() && self.syncs.is_empty(),
                "a departed agent still probes or exchanges"
            );
            assert!(
                self.timers.keys().all(|&timer| timer == Timer::Gossip),
                "a departed agent keeps timers other than gossip"
            );
        } else {
            assert!(
                TIMERS.iter().all(|timer| self.timers.contains_key(timer)),
                "a timer went unset"
            );
        }
        for (doc, applied) in &self.applied {
            assert_eq!(&applied.doc, doc, "release filed under another document");
        }
        if cfg!(debug_assertions) && self.walk_due() {
            self.members.check_invariants();
            self.suspicions.check_invariants();
            self.broadcasts.check_invariants();
            self.leases.check_invariants();
            self.remedy.check_invariants();
        }
    }

    /// Whether the debug walk of every sub-state runs after this input.
    fn walk_due(&self) -> bool {
        self.members.len() <= WALK_ALWAYS_MEMBERS || self.drains.is_multiple_of(WALK_EVERY)
    }
}
