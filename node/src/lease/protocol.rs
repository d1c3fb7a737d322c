//! The lease protocol's messages: what peers see of it. Its limits are in
//! [`crate::limits`], the error a candidate gets in [`crate::error`].

use fleetmesh_crdt::{Grant, GrantRequest, PublicKey, lease_limits};
use serde::{Deserialize, Serialize};

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
