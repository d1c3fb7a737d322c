//! What the agent tells its driver: messages to deliver and events to
//! observe. A leaf module, so the parts of the core that produce events
//! (the lease table, the agent) share one type without depending on each
//! other.

use fleetmesh_crdt::{Digest, Incarnation, Liveness, NodeId};

/// A message for the driver to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The recipient.
    pub to: NodeId,
    /// The encoded message ([`crate::wire`]).
    pub bytes: Vec<u8>,
}

/// Something the driver (or an operator) may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This agent's belief about a member's liveness changed; `previous` is
    /// `None` for a member new to the table.
    MemberChanged {
        /// The member.
        id: NodeId,
        /// Liveness before.
        previous: Option<Liveness>,
        /// Liveness now.
        current: Liveness,
    },
    /// A dead or departed member was forgotten.
    MemberReaped {
        /// The member.
        id: NodeId,
    },
    /// Someone claimed this agent was suspect or dead (or announced a stale
    /// version of it); it refuted by announcing `incarnation`.
    Refuted {
        /// The new incarnation.
        incarnation: Incarnation,
    },
    /// This agent moved to a new release of a config document: from now on
    /// it runs the document's content at the release's heads.
    ReleaseApplied {
        /// The document.
        doc: String,
        /// The release version now running.
        version: u64,
        /// The release's digest. An agent can move several versions in one
        /// step, so by the time the event is read the document may already
        /// run a later release: the event says which one it was.
        digest: Digest,
    },
    /// A staged release's gate failed and this agent went back to the
    /// predecessor the release names (or, not running it yet, never will).
    ReleaseReverted {
        /// The document.
        doc: String,
        /// The release whose rollout failed.
        version: u64,
        /// The version whose content runs now.
        to_version: u64,
        /// Whether this agent ran the failed release (false: it skipped it).
        ran: bool,
    },
    /// This host signed how a staged release ran on it.
    RolloutAttested {
        /// The document.
        doc: String,
        /// The release.
        version: u64,
        /// This host's wave.
        wave: u32,
        /// Passed its bake (true) or failed the gate.
        passed: bool,
        /// For a failure, why.
        reason: String,
    },
    /// The release of the remediation policy document this agent moved to
    /// holds a policy it refuses (it would not parse): the agent keeps the
    /// policy it had. An older CLI let it through, or the document was
    /// written by hand; `fleetmesh config draft` refuses it.
    PolicyRefused {
        /// The release version refused.
        version: u64,
        /// The release's digest.
        digest: Digest,
        /// The field refused, as a path (`checks.web.interval_ms`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A release this agent runs expired or turned void (`entered`), or a
    /// valid newer one ended that: in safe mode the agent starts no new
    /// disruptive action.
    SafeMode {
        /// Whether the agent is in safe mode now.
        entered: bool,
    },
    /// This agent now holds `scope` at `epoch` ([`crate::Agent::holds`]).
    LeaseAcquired {
        /// The scope.
        scope: String,
        /// The fencing epoch.
        epoch: u64,
    },
    /// This agent no longer holds `scope` at `epoch`: it ran out unrenewed,
    /// was released, or a higher epoch superseded it.
    LeaseLost {
        /// The scope.
        scope: String,
        /// The epoch that was held.
        epoch: u64,
    },
}
