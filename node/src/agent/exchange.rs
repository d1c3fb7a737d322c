//! Push-pull anti-entropy of the member table: root, bucket digests, then the
//! records of differing buckets, bounded in flight both ways; and
//! reconnection attempts to members believed down.

use super::Agent;
use super::claims::{Claim, Source};
use crate::time::Instant;
use crate::wire::{self, Message, SyncRecord};
use fleetmesh_crdt::{NodeId, NodeMeta};
use rand::RngExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Most anti-entropy exchanges this agent has in flight as initiator.
const STARTED_MAX: usize = 8;
/// Most peers this agent is answering an anti-entropy exchange for at once.
const ANSWERING_MAX: usize = 64;

/// The anti-entropy exchanges in flight, both ways, each bounded and each
/// with a deadline: those this agent started (it waits for the peer's
/// bucket digests, then its records) and those it answers (the peer, sent
/// our digests, may now ask for records, and nobody else may).
#[derive(Default)]
pub(super) struct Exchanges {
    started: BTreeMap<NodeId, Sync>,
    answering: BTreeMap<NodeId, Instant>,
}

/// Why an exchange did not start.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NotStarted {
    /// One with that peer is in flight already.
    Open,
    /// [`STARTED_MAX`] are in flight.
    Full,
}

impl Exchanges {
    /// Starts an exchange with `peer`.
    pub(super) fn start(&mut self, peer: NodeId, sync: Sync) -> Result<(), NotStarted> {
        if self.started.contains_key(&peer) {
            return Err(NotStarted::Open);
        }
        if self.started.len() >= STARTED_MAX {
            return Err(NotStarted::Full);
        }
        self.started.insert(peer, sync);
        Ok(())
    }

    /// The exchange this agent started with `peer`, if in flight.
    pub(super) fn started_mut(&mut self, peer: NodeId) -> Option<&mut Sync> {
        self.started.get_mut(&peer)
    }

    /// Ends the exchange this agent started with `peer`.
    pub(super) fn finish(&mut self, peer: NodeId) -> Option<Sync> {
        self.started.remove(&peer)
    }

    /// Lets `peer` ask for records until `deadline`; false, changing
    /// nothing, when [`ANSWERING_MAX`] other peers may already.
    pub(super) fn answer(&mut self, peer: NodeId, deadline: Instant) -> bool {
        if self.answering.len() >= ANSWERING_MAX && !self.answering.contains_key(&peer) {
            return false;
        }
        self.answering.insert(peer, deadline);
        true
    }

    /// Uses up `peer`'s permission to ask for records: whether it had one.
    pub(super) fn take_answer(&mut self, peer: NodeId) -> bool {
        self.answering.remove(&peer).is_some()
    }

    /// Forgets the exchanges whose deadline passed at `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        self.started.retain(|_, sync| sync.deadline > now);
        self.answering.retain(|_, deadline| *deadline > now);
    }

    /// Forgets every exchange (the agent left).
    pub(super) fn clear(&mut self) {
        *self = Exchanges::default();
    }

    /// The peers of the exchanges this agent started.
    pub(super) fn started_with(&self) -> Vec<NodeId> {
        self.started.keys().copied().collect()
    }

    /// Whether no exchange is in flight either way.
    pub(super) fn is_idle(&self) -> bool {
        self.started.is_empty() && self.answering.is_empty()
    }

    /// The earliest deadline of an exchange this agent started: the one
    /// the agent must wake for (an answered one just lapses).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.started.values().map(|sync| sync.deadline).min()
    }

    /// Asserts the bounds.
    pub(super) fn check_invariants(&self) {
        assert!(
            self.started.len() <= STARTED_MAX,
            "exchanges in flight over bound"
        );
        assert!(
            self.answering.len() <= ANSWERING_MAX,
            "exchanges answered over bound"
        );
    }
}

/// An exchange this agent started.
pub(super) struct Sync {
    pub(super) deadline: Instant,
    /// The exchange teaches a joiner the fleet: not re-gossiped.
    pub(super) bootstrap: bool,
    /// Our request left records out.
    pub(super) truncated: bool,
}

/// The payload of one `SyncRecords` message.
pub(super) struct Batch<'a> {
    pub(super) buckets: u64,
    pub(super) metas: &'a [Arc<NodeMeta>],
    pub(super) records: &'a [SyncRecord],
    pub(super) truncated: bool,
}

impl Agent {
    pub(super) fn start_sync(&mut self, now: Instant, peer: NodeId, bootstrap: bool) {
        let sync = Sync {
            deadline: now + self.config.probe_interval * 4,
            bootstrap,
            truncated: false,
        };
        match self.exchanges.start(peer, sync) {
            Ok(()) => self.stats.syncs_started += 1,
            Err(NotStarted::Open) => return,
            Err(NotStarted::Full) => {
                self.stats.syncs_refused += 1;
                return;
            }
        }
        // The peer may not hold our certificate (a joiner's seed, a member
        // back from a partition that outlived a revocation sweep): an
        // introduction first costs a few hundred bytes per exchange and
        // saves the exchange.
        let now_millis = self.now_millis(now);
        let known = self.replicas.certs().admits(peer, now_millis);
        self.send_hello(peer, !known);
        let root = self.members.root();
        self.send(peer, &Message::SyncRoot { root });
        self.send(peer, &Message::State(self.replicas.roots()));
    }

    /// Time to the next periodic exchange. While this agent holds
    /// suspicions it exchanges every two probe intervals instead: a
    /// suspicion may already be refuted elsewhere, and gossip of the
    /// refutation can miss an agent (loss, or it heard the suspicion after
    /// the refutation's wave passed). An exchange costs one bucket.
    pub(super) fn sync_period(&self) -> Duration {
        if self.suspicions.is_empty() {
            self.config.sync_interval
        } else {
            self.config
                .sync_interval
                .min(self.config.probe_interval * 2)
        }
    }

    /// Answers step 1 and remembers the peer: only a peer answered here may
    /// ask for records (step 3), so nobody gets a table dump unprompted.
    pub(super) fn on_sync_root(&mut self, now: Instant, from: NodeId, root: u64) {
        if root == self.members.root() {
            return;
        }
        if !self
            .exchanges
            .answer(from, now + self.config.probe_interval * 4)
        {
            self.stats.syncs_refused += 1;
            return;
        }
        let digests = self.members.digests().to_vec();
        self.send(from, &Message::SyncBuckets { digests });
    }

    /// Sends our records of as many of `buckets` as fit in one message;
    /// returns whether some were left out.
    fn send_records(&mut self, to: NodeId, buckets: u64, reply: bool) -> bool {
        let batch = self
            .members
            .records_in(buckets, self.config.sync_records_max);
        let truncated = !batch.complete;
        self.stats.sync_truncated += u64::from(truncated);
        let message = Message::SyncRecords {
            buckets: batch.covered,
            metas: batch.metas,
            records: batch.records,
            reply,
            truncated,
        };
        self.send(to, &message);
        truncated
    }

    pub(super) fn on_sync_buckets(&mut self, from: NodeId, digests: &[u64]) {
        if self.exchanges.started_mut(from).is_none() {
            self.stats.unexpected_messages += 1;
            return;
        }
        let buckets = self.members.differing_buckets(digests);
        if buckets == 0 {
            self.exchanges.finish(from);
            return;
        }
        self.stats.syncs_differing += 1;
        let truncated = self.send_records(from, buckets, true);
        if let Some(sync) = self.exchanges.started_mut(from) {
            sync.truncated = truncated;
        }
    }

    pub(super) fn on_sync_records(
        &mut self,
        now: Instant,
        from: NodeId,
        batch: Batch<'_>,
        reply: bool,
    ) {
        let Batch {
            buckets,
            metas,
            records,
            truncated,
        } = batch;
        let (source, continue_with) = if reply {
            if !self.exchanges.take_answer(from) {
                self.stats.unexpected_messages += 1;
                return;
            }
            (Source::Sync { bootstrap: false }, None)
        } else {
            let Some(sync) = self.exchanges.finish(from) else {
                self.stats.unexpected_messages += 1;
                return;
            };
            // Only a joiner needs the whole difference at once; elsewhere a
            // large difference means gossip is in flight (a fleet forming),
            // and chasing it would turn every exchange into a table dump.
            let more = sync.bootstrap && (truncated || sync.truncated);
            (
                Source::Sync {
                    bootstrap: sync.bootstrap,
                },
                more.then_some(true),
            )
        };
        self.stats.sync_records_received += records.len() as u64;
        for record in records {
            if buckets & (1 << wire::bucket_of(record.id)) == 0 {
                self.stats.claims_ignored += 1;
                continue;
            }
            let claim = Claim {
                id: record.id,
                liveness: record.liveness,
                // The codec checked every index against the table.
                meta: record
                    .meta
                    .map(|(incarnation, index)| (incarnation, &metas[index as usize])),
                from,
            };
            self.learn(now, claim, source);
        }
        if reply {
            self.send_records(from, buckets, false);
        }
        if let Some(bootstrap) = continue_with {
            // The joiner's view is still incomplete: go on with the same peer,
            // as part of the same bootstrap.
            self.start_sync(now, from, bootstrap);
        }
    }

    /// Tries to reach one member believed dead, or an unreachable seed, with an
    /// anti-entropy exchange: after a partition heals this is how each side
    /// finds out the other is back.
    pub(super) fn reconnect(&mut self, now: Instant) {
        let seeds_down: Vec<NodeId> = self
            .seeds
            .iter()
            .copied()
            .filter(|&seed| {
                !self
                    .members
                    .get(seed)
                    .is_some_and(|member| member.state().is_up())
            })
            .collect();
        let candidates = self.downed.len() + seeds_down.len();
        if candidates == 0 {
            return;
        }
        let pick = self.rng.random_range(0..candidates);
        let peer = match pick.checked_sub(self.downed.len()) {
            Some(seed) => seeds_down[seed],
            None => self.downed[pick].1,
        };
        let is_down = !self
            .members
            .get(peer)
            .is_some_and(|member| member.state().is_up());
        if is_down {
            // A joiner whose seeds were unreachable still knows only itself:
            // this exchange is its bootstrap.
            let bootstrap = self.members.len() <= 1;
            self.start_sync(now, peer, bootstrap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(deadline: u64) -> Sync {
        Sync {
            deadline: Instant(deadline),
            bootstrap: false,
            truncated: false,
        }
    }

    #[test]
    fn starts_one_per_peer_and_at_most_the_bound() {
        let mut exchanges = Exchanges::default();
        for peer in 0..STARTED_MAX as u64 {
            assert_eq!(exchanges.start(NodeId(peer), sync(10)), Ok(()));
        }
        assert_eq!(exchanges.start(NodeId(0), sync(10)), Err(NotStarted::Open));
        let late = NodeId(STARTED_MAX as u64);
        assert_eq!(exchanges.start(late, sync(10)), Err(NotStarted::Full));
        assert!(exchanges.finish(NodeId(0)).is_some());
        assert_eq!(exchanges.start(late, sync(10)), Ok(()));
        assert_eq!(exchanges.started_with().len(), STARTED_MAX);
        exchanges.check_invariants();
    }

    #[test]
    fn only_a_peer_answered_may_ask_for_records_and_only_once() {
        let mut exchanges = Exchanges::default();
        assert!(!exchanges.take_answer(NodeId(1)), "never answered");
        assert!(exchanges.answer(NodeId(1), Instant(10)));
        assert!(exchanges.take_answer(NodeId(1)));
        assert!(!exchanges.take_answer(NodeId(1)), "permission used up");
        for peer in 0..ANSWERING_MAX as u64 {
            assert!(exchanges.answer(NodeId(peer), Instant(10)));
        }
        assert!(!exchanges.answer(NodeId(ANSWERING_MAX as u64), Instant(10)));
        assert!(
            exchanges.answer(NodeId(0), Instant(20)),
            "a peer answered already may be answered again"
        );
        exchanges.check_invariants();
    }

    #[test]
    fn deadlines_expire_both_ways() {
        let mut exchanges = Exchanges::default();
        exchanges.start(NodeId(1), sync(10)).unwrap();
        exchanges.start(NodeId(2), sync(30)).unwrap();
        exchanges.answer(NodeId(3), Instant(5));
        assert_eq!(exchanges.next_deadline(), Some(Instant(10)));
        exchanges.expire(Instant(10));
        assert_eq!(exchanges.started_with(), [NodeId(2)]);
        assert!(!exchanges.take_answer(NodeId(3)), "expired");
        exchanges.expire(Instant(30));
        assert!(exchanges.is_idle());
        assert_eq!(exchanges.next_deadline(), None);
    }
}
