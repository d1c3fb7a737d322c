//! The lease logic's own invariants, checked from its state (the agent
//! runs them after every input under debug assertions).

use super::{Leases, TTL_MAX, WANTED_MAX};
use fleetmesh_crdt::lease_limits;

impl Leases {
    /// Panics unless every scope wanted is within the protocol's bounds,
    /// every grant an attempt counts is its voter's, for the attempt's
    /// epoch, and an attempt never asks for an epoch below the one held.
    /// Costs a pass over the attempts' grants: for the agent's
    /// `check_invariants`.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.wanted.len() <= WANTED_MAX,
            "leases: {} scopes wanted",
            self.wanted.len()
        );
        assert!(
            self.voter.records().len() <= lease_limits::SCOPES_MAX,
            "leases: voter holds {} scopes",
            self.voter.records().len()
        );
        for (scope, wanted) in &self.wanted {
            assert!(
                (1..=lease_limits::VOTERS_MAX).contains(&wanted.voters.len())
                    && wanted.ttl <= TTL_MAX,
                "leases: {scope} wanted with {} voters, ttl {:?}",
                wanted.voters.len(),
                wanted.ttl
            );
            let Some(attempt) = &wanted.attempt else {
                continue;
            };
            assert!(
                wanted.held.is_none_or(|held| held.epoch <= attempt.epoch),
                "leases: {scope} asks for epoch {} below the one held",
                attempt.epoch
            );
            for (voter, grant) in &attempt.grants {
                assert!(
                    grant.body.voter == *voter
                        && grant.body.epoch == attempt.epoch
                        && !attempt.refused.contains(voter),
                    "leases: {scope} counts a grant of {voter:?} that is not for its epoch"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Attempt, Held, Wanted};
    use super::*;
    use crate::time::Instant;
    use fleetmesh_crdt::{Ed25519, Hlc, Keypair};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Duration;

    fn wanted(held: Option<u64>, asking: u64) -> Wanted {
        let voter = Keypair::from_seed([1; 32]).public();
        Wanted {
            voters: BTreeSet::from([voter]),
            ttl: Duration::from_secs(10),
            held: held.map(|epoch| Held {
                epoch,
                until: Instant(1),
            }),
            attempt: Some(Attempt {
                number: 1,
                epoch: asking,
                asked: Instant::ZERO,
                asked_hlc: Hlc::default(),
                resend_at: None,
                deadline: Instant(1),
                grants: BTreeMap::new(),
                refused: BTreeSet::new(),
                retry_after: Duration::ZERO,
            }),
            next_try: Instant::ZERO,
            seen_epoch: 0,
            published: None,
        }
    }

    #[test]
    #[should_panic(expected = "below the one held")]
    fn check_invariants_fires_on_an_epoch_going_back() {
        let mut leases = Leases::new(Arc::new(Ed25519));
        leases.wanted.insert("renewal".into(), wanted(Some(5), 5));
        leases.check_invariants();
        leases.wanted.insert("back".into(), wanted(Some(5), 4));
        leases.check_invariants();
    }
}
