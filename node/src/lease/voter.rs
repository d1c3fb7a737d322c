//! The voter side: deciding a candidate's request with
//! [`fleetmesh_crdt::Voter`] and signing the grant, its records queued to
//! persist before the answer leaves.

use fleetmesh_crdt::{Grant, GrantBody, GrantRequest, PublicKey, Refusal};

use super::context::{Cx, lock_delay_millis};
use super::{LeaseMessage, Leases, Out, RefusalReason};
use crate::limits::TTL_MAX;
use crate::persist::Persist;

impl Leases {
    /// Decides a request as a voter; the decision's records are queued to
    /// persist before the answer is returned for sending.
    pub(super) fn vote(
        &mut self,
        cx: &mut Cx<'_>,
        holder: PublicKey,
        attempt: u64,
        request: GrantRequest,
        out: &mut Vec<Out>,
    ) -> LeaseMessage {
        let (scope, epoch) = (request.scope.clone(), request.epoch);
        let ttl_ok = (1..=TTL_MAX.as_millis()).contains(&u128::from(request.ttl_millis));
        let decision = if ttl_ok {
            let lock_delay = lock_delay_millis(cx);
            self.voter.decide(request, cx.millis(), lock_delay)
        } else {
            Err(Refusal::BadScope)
        };
        let refusal = match decision {
            Ok(decision) => {
                cx.stats.grants_given += 1;
                out.push(Out::Persist(Persist::VoterRecords(
                    self.voter.records().clone(),
                )));
                let body = GrantBody {
                    scope,
                    epoch,
                    holder,
                    ttl_millis: decision.record.ttl_millis,
                    voter: cx.keypair.public(),
                    issued: cx.stamp(),
                };
                let grant = Box::new(Grant::sign(body, cx.keypair));
                return LeaseMessage::Granted { attempt, grant };
            }
            Err(refusal) => refusal,
        };
        let (reason, current) = match refusal {
            Refusal::StaleEpoch { current, .. } => {
                cx.stats.refused_stale_epoch += 1;
                (RefusalReason::StaleEpoch, Some(current))
            }
            Refusal::HeldByOther { current } => {
                cx.stats.refused_held_by_other += 1;
                (RefusalReason::HeldByOther, Some(current))
            }
            Refusal::TooEarly { current } => {
                cx.stats.refused_too_early += 1;
                (RefusalReason::TooEarly, Some(current))
            }
            Refusal::BadScope | Refusal::TooManyScopes => {
                cx.stats.refused_bad_request += 1;
                (RefusalReason::BadRequest, None)
            }
        };
        let retry_after_millis = current.map_or(0, |current| {
            current
                .new_epoch_at_local_millis
                .saturating_sub(cx.millis())
        });
        LeaseMessage::Refused {
            attempt,
            scope,
            epoch,
            reason,
            current: current.map(|current| (current.epoch, current.holder)),
            retry_after_millis,
        }
    }
}
