//! One voter's grant decisions: pure logic, local time injected.
//!
//! Safety rests on three rules (DESIGN §4): a voter grants at most one
//! holder per epoch, never goes back to a lower epoch, and grants no new
//! epoch until its last grant's ttl plus a lock-delay has passed on its own
//! clock. The agent must persist [`Voter::records`] before it sends a grant,
//! or a restart could forget a promise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;

use super::grant::lease_limits;

/// What a candidate asks a voter for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// The scope.
    pub scope: String,
    /// The epoch asked for.
    pub epoch: u64,
    /// The candidate.
    pub holder: PublicKey,
    /// How long the candidate wants to hold.
    pub ttl_millis: u64,
}

/// A voter's last grant for one scope: the state to persist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterRecord {
    /// The epoch granted.
    pub epoch: u64,
    /// Who it was granted to.
    pub holder: PublicKey,
    /// How long the grant holds.
    pub ttl_millis: u64,
    /// When it was granted (or last renewed), on the voter's local clock.
    pub granted_local_millis: u64,
}

impl VoterRecord {
    /// Local time from which a new epoch may be granted.
    pub fn new_epoch_at_local_millis(&self, lock_delay_millis: u64) -> u64 {
        self.granted_local_millis
            .saturating_add(self.ttl_millis)
            .saturating_add(lock_delay_millis)
    }
}

/// A grant the voter decided to make; the agent persists `record`, then
/// signs and sends the grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantDecision {
    /// The scope's record after this grant.
    pub record: VoterRecord,
    /// Whether this renews the grant already held at this epoch.
    pub renewal: bool,
}

/// A voter's standing grant, as a refusal reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Current {
    /// The epoch granted.
    pub epoch: u64,
    /// Its holder.
    pub holder: PublicKey,
    /// Local time from which a new epoch may be granted.
    pub new_epoch_at_local_millis: u64,
}

/// Why a voter refused a request; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is for an epoch below the one granted.
    #[error("epoch {requested} is below granted epoch {}", current.epoch)]
    StaleEpoch {
        /// The epoch asked for.
        requested: u64,
        /// The standing grant.
        current: Current,
    },
    /// The epoch is granted to another holder.
    #[error("epoch {} is granted to {:?}", current.epoch, current.holder)]
    HeldByOther {
        /// The standing grant.
        current: Current,
    },
    /// A new epoch, asked for before the last grant's ttl plus lock-delay
    /// has passed.
    #[error("no new epoch before local time {} ms", current.new_epoch_at_local_millis)]
    TooEarly {
        /// The standing grant.
        current: Current,
    },
    /// The scope name is empty or too long.
    #[error("scope must be 1..={} bytes", lease_limits::SCOPE_MAX)]
    BadScope,
    /// The voter keeps records for as many scopes as it may.
    #[error("voter holds records for {} scopes already", lease_limits::SCOPES_MAX)]
    TooManyScopes,
}

/// One voter's grant decisions for every scope it votes in.
///
/// Records are never forgotten, not even long-expired ones: a forgotten
/// record would let the voter grant an epoch it had already moved past. At
/// [`lease_limits::SCOPES_MAX`] scopes it refuses new ones instead.
#[derive(Clone, Debug, Default)]
pub struct Voter {
    records: BTreeMap<String, VoterRecord>,
}

impl Voter {
    /// A voter that has granted nothing.
    pub fn new() -> Voter {
        Voter::default()
    }

    /// A voter restarted at local time `now_local_millis` with its persisted
    /// `records`. Each grant is treated as made at restart time: the local
    /// clock reading across a restart cannot be trusted, so the voter waits
    /// out a full ttl plus lock-delay before granting a new epoch. The
    /// records are the voter's own, written under the scope bound, so none
    /// is dropped here.
    pub fn restore(
        records: impl IntoIterator<Item = (String, VoterRecord)>,
        now_local_millis: u64,
    ) -> Voter {
        let records = records
            .into_iter()
            .map(|(scope, record)| {
                let restarted = VoterRecord {
                    granted_local_millis: now_local_millis,
                    ..record
                };
                (scope, restarted)
            })
            .collect();
        Voter { records }
    }

    /// The per-scope records to persist before sending a grant.
    pub fn records(&self) -> &BTreeMap<String, VoterRecord> {
        &self.records
    }

    /// Withdraws the grant of `epoch` of `scope` to `holder`, at the
    /// holder's own (authenticated) request: it did not reach a majority
    /// with it, or it stopped holding and acts no more. The promise ends at
    /// `now_local_millis`, so a new epoch may be granted at once (the
    /// lock-delay is slack for a holder that may still act, and this one
    /// says it will not); the epoch stays recorded, so it is never granted
    /// to another holder nor gone back from. Returns whether a grant was
    /// withdrawn; nothing changes for any other epoch or holder.
    pub fn release(
        &mut self,
        scope: &str,
        epoch: u64,
        holder: PublicKey,
        now_local_millis: u64,
        lock_delay_millis: u64,
    ) -> bool {
        let Some(record) = self.records.get_mut(scope) else {
            return false;
        };
        if record.epoch != epoch || record.holder != holder {
            return false;
        }
        record.ttl_millis = 0;
        record.granted_local_millis = now_local_millis.saturating_sub(lock_delay_millis);
        true
    }

    /// Decides `request` at local time `now_local_millis`.
    pub fn decide(
        &mut self,
        request: GrantRequest,
        now_local_millis: u64,
        lock_delay_millis: u64,
    ) -> Result<GrantDecision, Refusal> {
        if request.scope.is_empty() || request.scope.len() > lease_limits::SCOPE_MAX {
            return Err(Refusal::BadScope);
        }
        let fresh = VoterRecord {
            epoch: request.epoch,
            holder: request.holder,
            ttl_millis: request.ttl_millis,
            granted_local_millis: now_local_millis,
        };
        let decision = match self.records.get(&request.scope) {
            None if self.records.len() >= lease_limits::SCOPES_MAX => {
                return Err(Refusal::TooManyScopes);
            }
            None => GrantDecision {
                record: fresh,
                renewal: false,
            },
            Some(last) => {
                let decision = decide_after(last, fresh, lock_delay_millis)?;
                // Paired with the refusals of `decide_after`, from the
                // records themselves: a voter's epoch of a scope only
                // grows, and one epoch has one holder.
                let next = decision.record;
                assert!(
                    next.epoch > last.epoch
                        || (next.epoch == last.epoch && next.holder == last.holder),
                    "voter would grant epoch {} of {} after epoch {} to another holder",
                    next.epoch,
                    request.scope,
                    last.epoch
                );
                decision
            }
        };
        self.records.insert(request.scope, decision.record);
        Ok(decision)
    }
}

/// Decides a request (as the record it would make) against the scope's
/// `last` grant.
fn decide_after(
    last: &VoterRecord,
    fresh: VoterRecord,
    lock_delay_millis: u64,
) -> Result<GrantDecision, Refusal> {
    let new_epoch_at_local_millis = last.new_epoch_at_local_millis(lock_delay_millis);
    let current = Current {
        epoch: last.epoch,
        holder: last.holder,
        new_epoch_at_local_millis,
    };
    if fresh.epoch < last.epoch {
        return Err(Refusal::StaleEpoch {
            requested: fresh.epoch,
            current,
        });
    }
    if fresh.epoch == last.epoch {
        if fresh.holder != last.holder {
            return Err(Refusal::HeldByOther { current });
        }
        // A renewal never shortens what was promised: others may already
        // be waiting out the earlier, longer grant.
        let promised_until = last.granted_local_millis.saturating_add(last.ttl_millis);
        let ttl_millis = fresh
            .ttl_millis
            .max(promised_until.saturating_sub(fresh.granted_local_millis));
        return Ok(GrantDecision {
            record: VoterRecord {
                ttl_millis,
                ..fresh
            },
            renewal: true,
        });
    }
    if fresh.granted_local_millis < new_epoch_at_local_millis {
        return Err(Refusal::TooEarly { current });
    }
    Ok(GrantDecision {
        record: fresh,
        renewal: false,
    })
}
