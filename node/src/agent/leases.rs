//! The bridge between the agent and its lease table ([`crate::lease`]): the
//! operator's acquire and release, lease messages and timers, and what the
//! table asks the agent to send, persist, publish and tell.

use super::Agent;
use super::effects::{By, Effect};
use crate::error::AgentError;
use crate::lease::{Cx, LeaseMessage, Leases, Out};
use crate::state::Entry;
use crate::time::Instant;
use crate::wire::Message;
use fleetmesh_crdt::{NodeId, PublicKey};
use std::collections::BTreeSet;
use std::time::Duration;

impl Agent {
    /// Starts asking `voters` for `scope`, for leases of `ttl`, and keeps it
    /// held (renewing every third of `ttl`) until [`Agent::release_lease`].
    /// Calling it again changes voters and ttl. Refused for a bad scope,
    /// voter set or ttl (which must exceed `lease_drift_bound`), past
    /// [`crate::limits::WANTED_MAX`] scopes, or after [`Agent::leave`].
    pub fn acquire(
        &mut self,
        now: Instant,
        scope: &str,
        voters: BTreeSet<PublicKey>,
        ttl: Duration,
    ) -> Result<(), AgentError> {
        if self.left {
            return Err(AgentError::Left);
        }
        let result = self.with_leases(now, |leases, cx, out| {
            leases.acquire(cx, scope, voters, ttl, out)
        });
        Ok(result?)
    }

    /// Stops wanting `scope`; a lease held is lost at once.
    pub fn release_lease(&mut self, now: Instant, scope: &str) {
        self.with_leases(now, |leases, cx, out| leases.release(cx, scope, out));
    }

    /// The epoch at which this agent holds `scope` at `now`: only until
    /// `asked + ttl - lease_drift_bound` on this agent's clock, counted from
    /// when it sent the requests that won, and never once its lease table
    /// shows a higher epoch. Act on it only after draining
    /// [`Output::Persist`].
    pub fn holds(&self, now: Instant, scope: &str) -> Option<u64> {
        if self.left {
            return None;
        }
        self.leases.holds(now, scope, self.replicas.leases())
    }

    /// Runs `input` on the lease logic, then carries out what it asked for.
    pub(super) fn with_leases<R>(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Leases, &mut Cx<'_>, &mut Vec<Out>) -> R,
    ) -> R {
        let mut out = Vec::new();
        let mut cx = Cx {
            now,
            config: &self.config,
            keypair: &self.keypair,
            hlc: &mut self.hlc,
            rng: &mut self.rng,
            table: self.replicas.leases(),
            stats: &mut self.stats.leases,
        };
        let result = input(&mut self.leases, &mut cx, &mut out);
        self.apply_lease_outs(now, out);
        result
    }

    pub(super) fn on_lease(&mut self, now: Instant, from: NodeId, message: LeaseMessage) {
        self.with_leases(now, |leases, cx, out| {
            leases.on_message(cx, from, message, out)
        });
    }

    pub(super) fn lease_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.with_leases(now, |leases, cx, out| leases.tick(cx, out));
    }

    fn apply_lease_outs(&mut self, now: Instant, out: Vec<Out>) {
        for out in out {
            match out {
                Out::Persist(persist) => self.outbox.persist(persist),
                Out::Send(to, message) => self.send(to, &Message::Lease(message)),
                Out::Publish(lease) => self.defer(Effect::Publish(Entry::Lease(lease), By::Leases)),
                Out::Event(event) => self.push_event(event),
            }
        }
        self.settle(now);
    }
}
