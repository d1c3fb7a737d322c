//! Suspicion timers with Lifeguard's dynamic timeout.
//!
//! A suspicion starts at the longest timeout and shrinks, logarithmically,
//! with each *independent* confirmation (a suspect claim from another agent)
//! down to the shortest after `K` confirmations:
//!
//! `timeout(c) = max(min, max - (max - min) * log(c + 1) / log(K + 1))`
//!
//! A real failure is noticed by many probers, so it is confirmed quickly and
//! declared fast; a false suspicion (one lossy link, one slow agent) is
//! usually raised by one agent only, so it lasts long enough to be refuted.
//!
//! When the timeout passes, the agent does not declare at once: it gives
//! the member one last direct probe that carries the suspicion (see
//! [`Suspicions::pop_expired`]), so a member that refuted while this agent
//! missed the refutation's gossip is not declared dead.

use crate::time::Instant;
use fleetmesh_crdt::{Incarnation, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

struct Suspicion {
    incarnation: Incarnation,
    started: Instant,
    deadline: Instant,
    confirmers: Vec<NodeId>,
    timeout_min: Duration,
    timeout_max: Duration,
    last_probe: bool,
}

/// A suspicion whose time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Probe the member once more, then ask again after the probe timeout.
    LastProbe(NodeId, Incarnation),
    /// The last probe went unanswered: declare the member dead.
    Declare(NodeId, Incarnation),
}

/// All suspicions this agent holds, ordered by deadline.
#[derive(Default)]
pub(crate) struct Suspicions {
    by_member: BTreeMap<NodeId, Suspicion>,
    deadlines: BTreeSet<(Instant, NodeId)>,
}

impl Suspicions {
    /// True when none is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_member.is_empty()
    }

    /// Starts (or restarts, for a newer incarnation) a suspicion of `member`
    /// raised by `from`.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        member: NodeId,
        incarnation: Incarnation,
        from: NodeId,
        timeout_min: Duration,
        timeout_max: Duration,
    ) {
        self.clear(member);
        let deadline = now + timeout_max;
        self.deadlines.insert((deadline, member));
        self.by_member.insert(
            member,
            Suspicion {
                incarnation,
                started: now,
                deadline,
                confirmers: vec![from],
                timeout_min,
                timeout_max,
                last_probe: false,
            },
        );
    }

    /// Records a suspect claim from `from`. When it is a new, independent
    /// confirmation of the held suspicion, shortens the deadline and returns
    /// true (the claim is worth re-gossiping).
    pub(crate) fn confirm(
        &mut self,
        member: NodeId,
        incarnation: Incarnation,
        from: NodeId,
        confirmations_max: u8,
    ) -> bool {
        let Some(suspicion) = self.by_member.get_mut(&member) else {
            return false;
        };
        if suspicion.incarnation != incarnation
            || suspicion.confirmers.contains(&from)
            || suspicion.confirmers.len() > usize::from(confirmations_max)
        {
            return false;
        }
        suspicion.confirmers.push(from);
        let confirmations = suspicion.confirmers.len() - 1;
        let timeout = dynamic_timeout(
            confirmations,
            confirmations_max,
            suspicion.timeout_min,
            suspicion.timeout_max,
        );
        let deadline = suspicion.started + timeout;
        if deadline < suspicion.deadline && !suspicion.last_probe {
            self.deadlines.remove(&(suspicion.deadline, member));
            suspicion.deadline = deadline;
            self.deadlines.insert((deadline, member));
        }
        true
    }

    /// Drops the suspicion of `member`, if any (refuted, or declared dead).
    pub(crate) fn clear(&mut self, member: NodeId) {
        if let Some(suspicion) = self.by_member.remove(&member) {
            self.deadlines.remove(&(suspicion.deadline, member));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// One suspicion whose deadline has passed. The first time, it stays
    /// held for `last_probe_timeout` more while the caller probes the member;
    /// the second time it is removed and the member is to be declared dead.
    pub(crate) fn pop_expired(
        &mut self,
        now: Instant,
        last_probe_timeout: Duration,
    ) -> Option<Expired> {
        let &(deadline, member) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop_first();
        let suspicion = self
            .by_member
            .get_mut(&member)
            .expect("deadline has a suspicion");
        if suspicion.last_probe {
            let incarnation = suspicion.incarnation;
            self.by_member.remove(&member);
            return Some(Expired::Declare(member, incarnation));
        }
        suspicion.last_probe = true;
        suspicion.deadline = now + last_probe_timeout;
        self.deadlines.insert((suspicion.deadline, member));
        Some(Expired::LastProbe(member, suspicion.incarnation))
    }
}

impl Suspicions {
    /// Panics unless the deadline index holds exactly one entry per
    /// suspicion, at its deadline, and each suspicion's confirmers are
    /// distinct and its timeouts ordered. Costs a pass over the
    /// suspicions: for the agent's `check_invariants`.
    pub(crate) fn check_invariants(&self) {
        assert_eq!(
            self.deadlines.len(),
            self.by_member.len(),
            "suspicions: deadline index and suspicions differ in size"
        );
        for (member, suspicion) in &self.by_member {
            assert!(
                self.deadlines.contains(&(suspicion.deadline, *member)),
                "suspicions: deadline of {member} is not indexed"
            );
            let confirmers: BTreeSet<&NodeId> = suspicion.confirmers.iter().collect();
            assert!(
                !suspicion.confirmers.is_empty() && confirmers.len() == suspicion.confirmers.len(),
                "suspicions: confirmers of {member} are empty or repeat"
            );
            assert!(
                suspicion.timeout_min <= suspicion.timeout_max
                    && suspicion.started <= suspicion.deadline,
                "suspicions: timeouts of {member} are out of order"
            );
        }
    }
}

/// Lifeguard's suspicion timeout after `confirmations` independent
/// confirmations, of at most `confirmations_max` that count.
pub(crate) fn dynamic_timeout(
    confirmations: usize,
    confirmations_max: u8,
    min: Duration,
    max: Duration,
) -> Duration {
    let fraction = ((confirmations as f64) + 1.0).ln() / (f64::from(confirmations_max) + 1.0).ln();
    let timeout = max.as_secs_f64() - (max.as_secs_f64() - min.as_secs_f64()) * fraction;
    Duration::from_secs_f64(timeout.max(min.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_from_max_to_min_with_confirmations() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        assert_eq!(dynamic_timeout(0, 3, min, max), max);
        let one = dynamic_timeout(1, 3, min, max);
        assert!(one < max && one > min, "{one:?}");
        assert_eq!(dynamic_timeout(3, 3, min, max), min);
        assert_eq!(dynamic_timeout(9, 3, min, max), min);
    }

    #[test]
    #[should_panic(expected = "is not indexed")]
    fn check_invariants_fires_on_an_unindexed_deadline() {
        let mut suspicions = Suspicions::default();
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        suspicions.start(Instant::ZERO, NodeId(5), 1, NodeId(1), min, max);
        suspicions.check_invariants();
        let (_, member) = suspicions.deadlines.pop_first().expect("one deadline");
        suspicions.deadlines.insert((Instant(1), member));
        suspicions.check_invariants();
    }

    #[test]
    fn only_independent_confirmations_count() {
        let mut suspicions = Suspicions::default();
        let member = NodeId(5);
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        suspicions.start(Instant::ZERO, member, 1, NodeId(1), min, max);
        assert!(
            !suspicions.confirm(member, 1, NodeId(1), 3),
            "same accuser twice"
        );
        assert!(
            !suspicions.confirm(member, 0, NodeId(2), 3),
            "other incarnation"
        );
        for accuser in 2..5 {
            assert!(suspicions.confirm(member, 1, NodeId(accuser), 3));
        }
        assert_eq!(suspicions.next_deadline(), Some(Instant::ZERO + min));
        let probe = Duration::from_millis(500);
        let expiry = Instant::ZERO + min;
        assert_eq!(
            suspicions.pop_expired(expiry, probe),
            Some(Expired::LastProbe(member, 1))
        );
        assert_eq!(
            suspicions.pop_expired(expiry, probe),
            None,
            "held during the last probe"
        );
        assert_eq!(
            suspicions.pop_expired(expiry + probe, probe),
            Some(Expired::Declare(member, 1))
        );
        assert!(suspicions.is_empty());
        suspicions.check_invariants();
    }
}
