//! What must hold of an agent between inputs, asserted where it lives
//! (TigerBeetle's style): a violation is a bug in the core, never a peer's
//! doing (foreign input is counted and dropped, not asserted), and
//! carrying on with broken state would be worse than stopping.

use super::{Agent, TIMERS, Timer};
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
        self.effects.check_invariants();
        self.admission.check_invariants();
        self.prober.check_invariants(self.config.relayed_probes_max);
        self.exchanges.check_invariants();
        self.rollouts.check_invariants();
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
                self.prober.is_stopped() && self.exchanges.is_idle(),
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
        self.releases.check_invariants();
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
