//! Push-pull anti-entropy of the member table: root, bucket digests, then the
//! records of differing buckets, bounded in flight both ways; and
//! reconnection attempts to members believed down.

use super::claims::{Claim, Source};
use super::{Agent, SYNCS_ANSWERED_MAX, SYNCS_IN_FLIGHT_MAX};
use crate::time::Instant;
use crate::wire::{self, Message, SyncRecord};
use fleetmesh_crdt::{NodeId, NodeMeta};
use rand::RngExt;
use std::sync::Arc;
use std::time::Duration;

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
        if self.syncs.contains_key(&peer) {
            return;
        }
        if self.syncs.len() >= SYNCS_IN_FLIGHT_MAX {
            self.stats.syncs_refused += 1;
            return;
        }
        let deadline = now + self.config.probe_interval * 4;
        self.syncs.insert(
            peer,
            Sync {
                deadline,
                bootstrap,
                truncated: false,
            },
        );
        self.stats.syncs_started += 1;
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
        if self.answering.len() >= SYNCS_ANSWERED_MAX && !self.answering.contains_key(&from) {
            self.stats.syncs_refused += 1;
            return;
        }
        self.answering
            .insert(from, now + self.config.probe_interval * 4);
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
        if !self.syncs.contains_key(&from) {
            self.stats.unexpected_messages += 1;
            return;
        }
        let buckets = self.members.differing_buckets(digests);
        if buckets == 0 {
            self.syncs.remove(&from);
            return;
        }
        self.stats.syncs_differing += 1;
        let truncated = self.send_records(from, buckets, true);
        if let Some(sync) = self.syncs.get_mut(&from) {
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
            if self.answering.remove(&from).is_none() {
                self.stats.unexpected_messages += 1;
                return;
            }
            (Source::Sync { bootstrap: false }, None)
        } else {
            let Some(sync) = self.syncs.remove(&from) else {
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
