//! One traced event, in the fixed-size form the trace hashes, and the
//! names of its codes. A leaf: the trace records these events and the
//! timeline gathers them, and neither needs the other to name one.

/// State code of a member forgotten by reaping, after the four
/// [`fleetmesh_node::MemberState`] codes (Alive 0, Suspect 1, Dead 2, Left 3).
pub const REAPED: u8 = 4;

/// Names of the member state codes of [`TraceEvent::Member`], as the JSON
/// trace writes them.
pub const MEMBER_STATES: [&str; 5] = ["alive", "suspect", "dead", "left", "reaped"];

/// One traced event, in fixed-size form for hashing.
#[derive(Clone, Copy, Debug)]
pub enum TraceEvent {
    /// A message delivered to an agent.
    Deliver {
        /// Sender index.
        from: u32,
        /// Recipient index.
        to: u32,
        /// Size in bytes.
        bytes: u32,
    },
    /// A message dropped; `reason` is a [`crate::network::DropReason`] code.
    Drop {
        /// Sender index.
        from: u32,
        /// Recipient index.
        to: u32,
        /// Why.
        reason: u8,
    },
    /// Agent `agent` changed its belief about agent `member`.
    Member {
        /// Whose view.
        agent: u32,
        /// About whom (index, or `u32::MAX` for an id outside the fleet).
        member: u32,
        /// New incarnation.
        incarnation: u32,
        /// New state code (Alive 0, Suspect 1, Dead 2, Left 3, reaped 4).
        state: u8,
    },
    /// A scheduled fault action; `code` numbers the action kind.
    Fault {
        /// Kind of action.
        code: u8,
    },
    /// Agent `agent` moved to release `version` of a config document.
    Release {
        /// The agent.
        agent: u32,
        /// The release version it runs now.
        version: u32,
    },
    /// A remediation action on agent `agent`'s host started or ended;
    /// `phase` is one of [`ACTION_PHASES`] by index.
    Action {
        /// The host's agent.
        agent: u32,
        /// Local start 0, disruptive start 1, success 2, killed at its
        /// timeout 3.
        phase: u8,
    },
}

/// Names of the action phases in the JSON trace.
pub const ACTION_PHASES: [&str; 4] = ["local", "disruptive", "done", "killed"];
