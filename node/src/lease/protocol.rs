//! The lease protocol's messages, its limits and the error a candidate
//! gets for a request out of them: what drivers and peers see of it.

use fleetmesh_crdt::{Grant, GrantRequest, PublicKey, lease_limits};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most scopes one agent asks to hold at once.
pub const WANTED_MAX: usize = 64;
/// Longest ttl a candidate asks for and a voter grants.
pub const TTL_MAX: Duration = Duration::from_secs(3600);

/// Why a voter refused, as the wire carries it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The epoch is below the one granted.
    StaleEpoch,
    /// The epoch is granted to another holder.
    HeldByOther,
    /// A new epoch, before the last grant's ttl plus lock-delay passed.
    TooEarly,
    /// The scope or ttl is out of bounds, the voter holds records for too
    /// many scopes, or the sender asked on behalf of another key.
    BadRequest,
}

/// The lease protocol's messages. `attempt` numbers the candidate's
/// attempt; an answer counts only for the attempt it names, so a late grant
/// from an earlier round is never credited to a later one (whose validity
/// is counted from a later send).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum LeaseMessage {
    /// A candidate asks a voter for a grant.
    Request {
        /// The candidate's attempt number.
        attempt: u64,
        /// What it asks for; `holder` must be the sender's key.
        request: GrantRequest,
    },
    /// The voter granted.
    Granted {
        /// The attempt answered.
        attempt: u64,
        /// The signed grant.
        grant: Box<Grant>,
    },
    /// The voter refused; nothing changed at the voter.
    Refused {
        /// The attempt answered.
        attempt: u64,
        /// The scope asked for.
        scope: String,
        /// The epoch asked for.
        epoch: u64,
        /// Why.
        reason: RefusalReason,
        /// The voter's standing grant: epoch and holder.
        current: Option<(u64, PublicKey)>,
        /// How long until the voter could grant a new epoch, on its clock.
        retry_after_millis: u64,
    },
    /// The sender gives back its grant of `epoch`: it did not win with it,
    /// or it stopped holding. The voter may grant a new epoch at once.
    Release {
        /// The scope.
        scope: String,
        /// The epoch given back.
        epoch: u64,
    },
}

impl LeaseMessage {
    /// Whether the message is within the protocol's limits (scope names).
    pub fn is_valid(&self) -> bool {
        let scope = match self {
            LeaseMessage::Request { request, .. } => &request.scope,
            LeaseMessage::Granted { grant, .. } => &grant.body.scope,
            LeaseMessage::Refused { scope, .. } | LeaseMessage::Release { scope, .. } => scope,
        };
        !scope.is_empty() && scope.len() <= lease_limits::SCOPE_MAX
    }
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
