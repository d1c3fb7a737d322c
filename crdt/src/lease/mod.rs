//! Leases: who may coordinate a scope, and under which fencing epoch.
//!
//! A *quorum* lease carries signed grants from a strict majority of the
//! scope's voters; each voter grants at most one holder per epoch and no new
//! epoch until its last grant's ttl plus a lock-delay has passed on its own
//! clock ([`Voter`]), and two majorities share a voter, so at most one holder
//! per epoch exists fleet-wide whatever the partition. A *component* lease
//! carries no grants and promises only one holder per connected component.
//! The [`LeaseTable`] replicates the highest lease of each scope.

mod grant;
mod table;
mod voter;

pub use grant::{Grant, GrantBody, Lease, LeaseKind, SignedLease, lease_limits};
pub use table::LeaseTable;
pub use voter::{Current, GrantDecision, GrantRequest, Refusal, Voter, VoterRecord};

#[cfg(test)]
mod tests;
