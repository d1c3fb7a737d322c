//! Work one part of the agent asks of another: an entry the lease logic or
//! remediation made, to merge and spread, and a lease remediation wants
//! acquired or released.
//!
//! Carrying such work out inside the step that asked for it made the agent
//! re-enter itself: publishing a ledger record merged it, the merge could
//! move a release forward, the release reloaded the policy, the policy asked
//! for a lease, the lease was published, and so on down the stack. Instead
//! the step queues the work here, and the outermost step runs the queue
//! empty before it returns (a trampoline): each piece of work runs with
//! nothing of another half done underneath it, the depth of the call stack
//! no longer depends on what the data asks for, and the queue is bounded.
//!
//! Order is kept: work runs in the order it was asked for, and what it asks
//! for in turn runs after it. Outputs that cannot cause more work
//! (messages, persists, events, tasks) go straight to the outbox, whose
//! order is fixed anyway.

use super::Agent;
use crate::error::AgentError;
use crate::state::Entry;
use crate::time::Instant;
use fleetmesh_crdt::PublicKey;
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

impl Agent {
    /// Queues `effect` for the step in progress to run before it returns.
    pub(super) fn defer(&mut self, effect: Effect) {
        if !self.effects.push(effect) {
            self.stats.effects_dropped += 1;
        }
    }

    /// Runs the queued work, and what it asks for, until none is left;
    /// returns at once when called from inside that work.
    pub(super) fn settle(&mut self, now: Instant) {
        if !self.effects.start() {
            return;
        }
        while let Some(effect) = self.effects.next() {
            self.run_effect(now, effect);
        }
    }

    fn run_effect(&mut self, now: Instant, effect: Effect) {
        match effect {
            Effect::Publish(entry, by) => {
                if self.merge_own(now, entry).is_err() {
                    match by {
                        By::Leases => self.stats.leases.publish_rejected += 1,
                        By::Remedy => self.stats.remedy.publish_rejected += 1,
                        By::Rollout => self.stats.rollout.publish_rejected += 1,
                    }
                }
            }
            Effect::Acquire { scope, voters, ttl } => {
                let result = self.with_leases(now, |leases, cx, out| {
                    leases.acquire(cx, &scope, voters, ttl, out)
                });
                if result.is_err() {
                    self.stats.remedy.policies_refused += 1;
                }
            }
            Effect::Release(scope) => {
                self.with_leases(now, |leases, cx, out| leases.release(cx, &scope, out));
            }
        }
    }

    /// Merges `entry` and carries out what the merge changed; refused,
    /// changing nothing, after [`Agent::leave`] or when it does not verify.
    pub(super) fn merge_own(&mut self, now: Instant, entry: Entry) -> Result<(), AgentError> {
        if self.left {
            return Err(AgentError::Left);
        }
        let now_millis = self.now_millis(now);
        let (result, effects) = self.replicas.merge(entry, now_millis);
        self.apply_state_effects(now, effects);
        result.map(drop).map_err(AgentError::Rejected)
    }
}

/// Most pieces of work waiting at once. One step asks for at most a
/// remediation tick's records (bounded by the intents remediation keeps,
/// [`crate::remedy`]'s `STARTED_MAX`) and a lease per wanted scope; beyond
/// this the work is dropped and counted (`effects_dropped`).
const EFFECTS_MAX: usize = 16_384;
/// Most pieces of work one run takes off the queue, counting what the work
/// itself asked for: far above any chain the core has (a publish can reload
/// the policy, which can ask for leases, whose grants are published).
const EFFECT_STEPS_MAX: usize = 16 * EFFECTS_MAX;

/// One piece of queued work.
#[derive(Debug)]
pub(super) enum Effect {
    /// Merge and spread an entry made by `by`.
    Publish(Entry, By),
    /// Remediation wants `scope` held, asking `voters`, for leases of `ttl`.
    Acquire {
        scope: String,
        voters: BTreeSet<PublicKey>,
        ttl: Duration,
    },
    /// Remediation no longer wants `scope`.
    Release(String),
}

/// Which part of the agent made an entry: its counters take a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum By {
    /// The lease logic (a lease won or renewed).
    Leases,
    /// Remediation (ledger records, health reports of checks).
    Remedy,
    /// Staged rollouts (attestations).
    Rollout,
}

/// The queue of work and whether a step is already running it.
#[derive(Debug, Default)]
pub(super) struct Effects {
    queue: VecDeque<Effect>,
    running: bool,
    /// Work taken off the queue by the run in progress.
    steps: usize,
}

impl Effects {
    /// Queues `effect`; false, dropping it, when [`EFFECTS_MAX`] are
    /// already waiting.
    pub(super) fn push(&mut self, effect: Effect) -> bool {
        if self.queue.len() >= EFFECTS_MAX {
            return false;
        }
        self.queue.push_back(effect);
        true
    }

    /// Starts running the queue; false when a step further out already
    /// runs it (that step will reach what was just queued).
    pub(super) fn start(&mut self) -> bool {
        if self.running {
            return false;
        }
        self.running = true;
        self.steps = 0;
        true
    }

    /// The next piece of work of the run [`Effects::start`] began, or
    /// `None`, ending the run, once the queue is empty.
    ///
    /// # Panics
    ///
    /// After [`EFFECT_STEPS_MAX`] pieces in one run: work that keeps asking
    /// for more work is a loop in the core, and stopping beats spinning.
    pub(super) fn next(&mut self) -> Option<Effect> {
        assert!(self.running, "effects taken outside a run");
        let Some(effect) = self.queue.pop_front() else {
            self.running = false;
            return None;
        };
        self.steps += 1;
        assert!(
            self.steps <= EFFECT_STEPS_MAX,
            "effects kept causing effects: a loop in the core"
        );
        Some(effect)
    }

    /// Asserts that no work is left over between inputs.
    pub(super) fn check_invariants(&self) {
        assert!(!self.running, "an input returned with its effects running");
        assert!(self.queue.is_empty(), "an input left effects unrun");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(n: usize) -> Effect {
        Effect::Release(format!("scope-{n}"))
    }

    fn scope(effect: &Effect) -> &str {
        match effect {
            Effect::Release(scope) => scope,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn runs_in_order_what_was_asked_and_what_that_asked() {
        let mut effects = Effects::default();
        assert!(effects.push(release(0)));
        assert!(effects.push(release(1)));
        assert!(effects.start());
        let first = effects.next().unwrap();
        assert_eq!(scope(&first), "scope-0");
        // Work asked for while running is queued behind the rest, and a
        // nested step does not start a second run.
        assert!(effects.push(release(2)));
        assert!(!effects.start());
        let order: Vec<String> = std::iter::from_fn(|| effects.next())
            .map(|effect| scope(&effect).to_owned())
            .collect();
        assert_eq!(order, ["scope-1", "scope-2"]);
        effects.check_invariants();
        assert!(effects.start(), "a run ends when the queue is empty");
        assert!(effects.next().is_none());
    }

    #[test]
    fn drops_beyond_the_bound() {
        let mut effects = Effects::default();
        for n in 0..EFFECTS_MAX {
            assert!(effects.push(release(n)));
        }
        assert!(!effects.push(release(EFFECTS_MAX)));
        assert!(effects.start());
        assert_eq!(std::iter::from_fn(|| effects.next()).count(), EFFECTS_MAX);
    }

    #[test]
    #[should_panic(expected = "effects kept causing effects")]
    fn a_loop_of_effects_stops() {
        let mut effects = Effects::default();
        effects.push(release(0));
        assert!(effects.start());
        while let Some(effect) = effects.next() {
            effects.push(effect);
        }
    }

    #[test]
    #[should_panic(expected = "an input left effects unrun")]
    fn leftover_work_fails_the_invariants() {
        let mut effects = Effects::default();
        effects.push(release(0));
        effects.check_invariants();
    }
}
