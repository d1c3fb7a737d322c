//! Fetch bookkeeping: which entries this replica has asked which peer
//! for, until when, and whom to ask next when an answer does not come.

use std::collections::BTreeMap;

use fleetmesh_crdt::{Digest, NodeId};

use super::{ANNOUNCERS_MAX, FETCHES_MAX, Fetch, Kind, Replicas, StateMessage};
use crate::limits::WANTS_MAX;

impl Replicas {
    /// A request to `from` for `keys` not already being fetched, if any
    /// remain.
    pub fn want(
        &mut self,
        kind: Kind,
        keys: Vec<Digest>,
        from: NodeId,
        now_millis: u64,
    ) -> Option<StateMessage> {
        let mut out = Vec::new();
        self.fetch(kind, keys, from, now_millis, &mut out);
        out.pop()
    }

    /// Asks `from`, which holds `keys`, for those not already being
    /// fetched; for those being fetched from someone else, notes `from` as
    /// a peer to ask next.
    pub(super) fn fetch(
        &mut self,
        kind: Kind,
        keys: Vec<Digest>,
        from: NodeId,
        now_millis: u64,
        out: &mut Vec<StateMessage>,
    ) {
        let mut asked = Vec::new();
        for key in keys {
            if let Some(fetch) = self.fetching.get_mut(&(kind, key)) {
                if fetch.deadline <= now_millis {
                    // Overdue: `from` is as good a peer to ask as any.
                    fetch.asked = from;
                    fetch.deadline = now_millis + self.fetch_timeout_millis;
                    fetch.announcers.retain(|peer| *peer != from);
                    asked.push(key);
                } else if fetch.asked != from
                    && !fetch.announcers.contains(&from)
                    && fetch.announcers.len() < ANNOUNCERS_MAX
                {
                    fetch.announcers.push(from);
                }
                continue;
            }
            if self.fetching.len() >= FETCHES_MAX {
                self.stats.fetches_refused += 1;
                continue;
            }
            let fetch = Fetch {
                deadline: now_millis + self.fetch_timeout_millis,
                asked: from,
                announcers: Vec::new(),
            };
            self.fetching.insert((kind, key), fetch);
            asked.push(key);
        }
        if !asked.is_empty() {
            out.push(StateMessage::Want { kind, keys: asked });
        }
    }

    /// Fetches past their deadline, asked again of the next announcer:
    /// the requests to send, by peer. A fetch with no announcer left is
    /// given up; anti-entropy or a later announcement starts it again.
    pub fn retry_fetches(&mut self, now_millis: u64) -> Vec<(NodeId, StateMessage)> {
        let mut asks: BTreeMap<(NodeId, Kind), Vec<Digest>> = BTreeMap::new();
        let deadline = now_millis + self.fetch_timeout_millis;
        self.fetching.retain(|&(kind, key), fetch| {
            if fetch.deadline > now_millis {
                return true;
            }
            if fetch.announcers.is_empty() {
                return false;
            }
            fetch.asked = fetch.announcers.remove(0);
            fetch.deadline = deadline;
            asks.entry((fetch.asked, kind)).or_default().push(key);
            true
        });
        asks.into_iter()
            .flat_map(|((peer, kind), keys)| {
                keys.chunks(WANTS_MAX)
                    .map(|keys| {
                        let keys = keys.to_vec();
                        (peer, StateMessage::Want { kind, keys })
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
