//! The core's events as the agent's log lines. A line about a member names
//! it as `fleetmesh members` does (`member`, its certificate's name, when
//! this agent holds it) with its 16-hex id in `id`.
//!
//! Levels follow what an operator must see to follow the fleet from the
//! log alone: every change of a member's state at INFO, its return to
//! alive included (a log ending on "dead" for a member alive again would
//! mislead); entering safe mode at WARN, except at start, when what the
//! core reports while it takes back its saved state is summed up once.

use fleetmesh_crdt::{Liveness, MemberState, NodeId};
use fleetmesh_node::Event;

use super::Driver;
use crate::views::{name_of, state_name};

impl Driver {
    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::MemberChanged {
                id,
                previous,
                current,
            } => self.log_member(id, previous, current),
            Event::MemberReaped { id } => tracing::debug!(
                member = self.member_name(id).as_deref(),
                %id,
                "member forgotten"
            ),
            Event::Refuted { incarnation } => {
                tracing::info!(incarnation, "refuted a claim about this agent")
            }
            Event::ReleaseApplied {
                doc,
                version,
                digest,
            } => tracing::info!(doc, version, digest = %digest, "release applied"),
            Event::SafeMode { entered: true } if self.starting => {
                tracing::debug!("safe mode while the saved state loads; summed up once it has")
            }
            Event::SafeMode { entered: true } => {
                tracing::warn!(
                    "safe mode: a release expired, turned void or is incomplete; no disruptive action starts"
                )
            }
            Event::SafeMode { entered: false } if self.starting => {
                tracing::debug!("safe mode over while the saved state loads")
            }
            Event::SafeMode { entered: false } => tracing::info!("safe mode over"),
            Event::PolicyRefused {
                version,
                digest,
                field,
                problem,
            } => tracing::warn!(
                version,
                digest = %digest,
                field,
                problem,
                "policy refused: this release's remediation policy does not parse, so the agent keeps the policy it had; fix the field, check it with `fleetmesh config draft`, and release again"
            ),
            Event::LeaseAcquired { scope, epoch } => {
                tracing::info!(scope, epoch, "lease acquired")
            }
            Event::LeaseLost { scope, epoch } => tracing::info!(scope, epoch, "lease lost"),
            Event::ReleaseReverted {
                doc,
                version,
                to_version,
                ran: true,
            } => tracing::warn!(
                doc,
                version,
                to_version,
                "rollout gate failed: went back to the release's predecessor; see `fleetmesh config rollout status`"
            ),
            Event::ReleaseReverted {
                doc,
                version,
                to_version,
                ran: false,
            } => tracing::info!(
                doc,
                version,
                to_version,
                "rollout gate failed before this host ran the release: skipped it, running the predecessor"
            ),
            Event::RolloutAttested {
                doc,
                version,
                wave,
                passed,
                reason,
            } => tracing::info!(
                doc,
                version,
                wave,
                passed,
                reason,
                "rollout attestation signed"
            ),
        }
    }

    /// Ends the start-up: from the first drain on, events are logged as
    /// they come. An agent that took back a release whose config changes
    /// it does not hold yet (they come from peers) is in safe mode at
    /// start; that is expected after a restart with a stale snapshot and
    /// needs no one, so it is said at INFO. Entering safe mode later is a
    /// WARN.
    pub(super) fn started(&mut self) {
        self.starting = false;
        if self.agent.is_safe_mode(self.clock.now()) {
            tracing::info!(
                "safe mode at start: a release this agent ran is expired, void, or names config changes it does not hold yet (they come from peers); no disruptive action starts until it is over"
            );
        }
    }

    /// The name `id`'s certificate gives it, if this agent holds it.
    pub(super) fn member_name(&self, id: NodeId) -> Option<String> {
        name_of(&self.agent, id)
    }

    /// A member's change of state: new members, returns to alive and every
    /// loss at INFO; a new incarnation of a member alive all along (a
    /// refutation, new addresses or tags) at DEBUG.
    fn log_member(&self, id: NodeId, previous: Option<Liveness>, current: Liveness) {
        let member = self.member_name(id);
        let member = member.as_deref();
        let incarnation = current.incarnation;
        let state = state_name(current.state);
        let before = previous.map(|previous| state_name(previous.state));
        match (previous.map(|previous| previous.state), current.state) {
            (Some(MemberState::Alive), MemberState::Alive) => {
                tracing::debug!(member, %id, incarnation, state, "member changed")
            }
            (None, MemberState::Alive) => {
                tracing::info!(member, %id, incarnation, state, "member joined")
            }
            (Some(_), MemberState::Alive) => tracing::info!(
                member,
                %id,
                incarnation,
                state,
                previous = before,
                "member alive again"
            ),
            (_, MemberState::Suspect | MemberState::Dead | MemberState::Left) => tracing::info!(
                member,
                %id,
                incarnation,
                state,
                previous = before,
                "member changed"
            ),
        }
    }
}
