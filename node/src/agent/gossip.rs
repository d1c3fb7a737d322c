//! Dissemination: the gossip round, piggybacking updates on messages up to
//! their byte budget, and the broadcast queue's bookkeeping.

use super::{Agent, MESSAGE_OVERHEAD_BYTES, Timer};
use crate::encoding::encoded_len;
use crate::limits::STOP_RUSH_FANOUT;
use crate::state::{Entry, StateMessage};
use crate::time::Instant;
use crate::wire::{Message, Update};
use fleetmesh_crdt::NodeId;

impl Agent {
    pub(super) fn gossip_round(&mut self) {
        if self.broadcasts.is_empty() && self.replicas.push_len() == 0 {
            return;
        }
        let fanout = usize::from(self.config.gossip_fanout.get());
        let limit = self.config.retransmit_limit(self.members.up_count());
        let budget = self
            .config
            .datagram_bytes_max
            .saturating_sub(MESSAGE_OVERHEAD_BYTES);
        for peer in self.random_up_members(fanout, &[]) {
            if !self.broadcasts.is_empty() {
                self.send_gossip(peer);
            }
            if let Some(push) = self.replicas.next_push(budget, limit as u32) {
                self.send(peer, &Message::State(push));
            }
        }
    }

    /// Sends emergency stops (and resumes) this agent just learnt straight
    /// to [`STOP_RUSH_FANOUT`] random peers, ahead of the push queue and
    /// anti-entropy, which also carry them: each agent does so once per
    /// record, so a stop floods the fleet in a few network hops.
    pub(super) fn rush(&mut self, stops: Vec<Entry>) {
        if stops.is_empty() {
            return;
        }
        self.stats.remedy.stops_received += stops.len() as u64;
        let message = Message::State(StateMessage::Push {
            entries: stops,
            announces: Vec::new(),
        });
        for peer in self.random_up_members(STOP_RUSH_FANOUT, &[]) {
            self.send(peer, &message);
        }
    }

    /// Asks other announcers for entries whose fetch went unanswered.
    pub(super) fn retry_fetches(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        for (peer, want) in self.replicas.retry_fetches(now_millis) {
            self.send(peer, &Message::State(want));
        }
    }

    pub(super) fn send_gossip(&mut self, peer: NodeId) {
        let updates = self.piggyback(None);
        if updates.is_empty() {
            return;
        }
        self.stats.gossip_messages += 1;
        self.send(peer, &Message::Gossip { updates });
    }

    pub(super) fn piggyback(&mut self, first: Option<Update>) -> Vec<Update> {
        let mut updates = Vec::new();
        let mut budget = self
            .config
            .datagram_bytes_max
            .saturating_sub(MESSAGE_OVERHEAD_BYTES);
        let skip = first.as_ref().map(|update| update.id);
        if let Some(update) = first {
            budget = budget.saturating_sub(encoded_len(&update));
            updates.push(update);
        }
        let limit = self.config.retransmit_limit(self.members.up_count());
        self.broadcasts.fill(budget, limit, skip, &mut updates);
        updates
    }

    pub(super) fn queue_broadcast(&mut self, update: Update) {
        let before = self.broadcasts.dropped();
        self.broadcasts.push(update);
        self.stats.broadcasts_dropped += self.broadcasts.dropped() - before;
    }

    /// Brings `timer` forward to `at` if it is set later.
    pub(super) fn pull_timer(&mut self, timer: Timer, at: Instant) {
        if let Some(set) = self.timers.get_mut(&timer)
            && *set > at
        {
            *set = at;
        }
    }
}
