//! Errors the agent's API returns to its driver.

use crate::config::ConfigError;
use crate::limits::{TTL_MAX, WANTED_MAX};
use fleetmesh_crdt::{MetaError, Rejected, lease_limits};

/// Why the agent refused an operator's request. A refused request does not
/// change the agent's state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AgentError {
    /// The metadata breaks the limits every receiver enforces; announcing it
    /// would get every message carrying it dropped.
    #[error("invalid node metadata: {0}")]
    InvalidMeta(#[from] MetaError),
    /// The key, certificate or genesis trust document is unusable.
    #[error("identity refused: {0}")]
    Identity(String),
    /// A published entry did not verify.
    #[error("entry refused: {0}")]
    Rejected(#[from] Rejected),
    /// The agent has left the fleet; it announces nothing more.
    #[error("the agent has left the fleet")]
    Left,
    /// The protocol parameters break a relationship the core relies on
    /// ([`crate::Config::validate`]); no agent was built.
    #[error("invalid protocol parameters: {0}")]
    Config(#[from] ConfigError),
    /// A lease cannot be asked for with these parameters.
    #[error("lease refused: {0}")]
    Lease(#[from] LeaseError),
}

/// Why [`crate::Agent::acquire`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The scope name is empty or too long.
    #[error("scope must be 1..={} bytes", lease_limits::SCOPE_MAX)]
    BadScope,
    /// The voter set is empty or larger than a lease may name.
    #[error("a lease names 1..={} voters", lease_limits::VOTERS_MAX)]
    BadVoters,
    /// The ttl does not exceed the drift bound, or exceeds [`TTL_MAX`].
    #[error("ttl must exceed lease_drift_bound and be at most {TTL_MAX:?}")]
    BadTtl,
    /// The agent already wants [`WANTED_MAX`] scopes.
    #[error("at most {WANTED_MAX} scopes may be wanted at once")]
    TooManyScopes,
}
