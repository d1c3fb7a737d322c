//! Connections from peers the core does not admit (yet): a joiner's last
//! one Hello; anybody else's are bounded in number and in time.
//!
//! A key costs nothing to make, so anybody can connect, and every
//! connection costs this agent memory: QUIC's receive windows, and up to
//! `limits.streams_per_connection` messages being read, each of at most
//! [`crate::gate::UNADMITTED_MESSAGE_BYTES_MAX`] while the peer is not
//! admitted. [`Strangers`] keeps the connections whose peer the core does
//! not admit: incoming ones past `limits.unadmitted_connections_max` are
//! refused at once, and any whose peer is still not admitted after
//! `limits.unadmitted_grace_secs` is closed. Connections this agent
//! dialed (seeds, members) count against no bound but the grace: dials
//! are already bounded by the seeds and members they go to.

use std::collections::BTreeMap;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use tokio::time::Instant;

use crate::config::Limits;

/// How often the driver asks the core again which connected peers it
/// admits: admission also comes from certificates relayed by others, and
/// goes with revocations and expiry.
pub const ADMISSION_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// One connection whose peer is not admitted.
#[derive(Clone, Copy, Debug)]
struct Stranger {
    peer: PeerId,
    since: Instant,
    incoming: bool,
}

/// The open connections whose peer is not admitted.
#[derive(Debug)]
pub struct Strangers {
    incoming_max: usize,
    grace: Duration,
    open: BTreeMap<ConnectionId, Stranger>,
}

impl Strangers {
    /// None yet, bounded by `limits`.
    pub fn new(limits: &Limits) -> Strangers {
        Strangers {
            incoming_max: usize::try_from(limits.unadmitted_connections_max).unwrap_or(usize::MAX),
            grace: limits.unadmitted_grace(),
            open: BTreeMap::new(),
        }
    }

    /// Connection `id` to `peer`, which the core does not admit, opened
    /// at `now`: whether to keep it. An incoming one past the bound is
    /// refused (and not remembered); the caller closes it.
    pub fn opened(&mut self, id: ConnectionId, peer: PeerId, incoming: bool, now: Instant) -> bool {
        if incoming && self.incoming() >= self.incoming_max {
            return false;
        }
        let since = now;
        self.open.insert(
            id,
            Stranger {
                peer,
                since,
                incoming,
            },
        );
        true
    }

    /// Whether connection `id` is kept here.
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.open.contains_key(&id)
    }

    /// Connection `id` closed.
    pub fn closed(&mut self, id: ConnectionId) {
        self.open.remove(&id);
    }

    /// `peer` is admitted now: its connections are no strangers'.
    pub fn admitted(&mut self, peer: &PeerId) {
        self.open.retain(|_, stranger| stranger.peer != *peer);
    }

    /// The peers of the connections kept, each once, for the driver to ask
    /// the core about.
    pub fn peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.open.values().map(|stranger| stranger.peer).collect();
        peers.sort_unstable();
        peers.dedup();
        peers
    }

    /// The connections whose grace ran out at `now`, forgotten here, for
    /// the caller to close.
    pub fn expired(&mut self, now: Instant) -> Vec<ConnectionId> {
        let grace = self.grace;
        let expired: Vec<ConnectionId> = self
            .open
            .iter()
            .filter(|(_, stranger)| now.duration_since(stranger.since) >= grace)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.open.remove(id);
        }
        expired
    }

    /// Connections kept whose peer is not admitted.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether every open connection's peer is admitted.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn incoming(&self) -> usize {
        self.open
            .values()
            .filter(|stranger| stranger.incoming)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strangers(incoming_max: u32, grace_secs: u64) -> Strangers {
        Strangers::new(&Limits {
            unadmitted_connections_max: incoming_max,
            unadmitted_grace_secs: grace_secs,
            ..Limits::default()
        })
    }

    fn id(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    #[test]
    fn incoming_connections_past_the_bound_are_refused_dialed_ones_not() {
        let mut strangers = strangers(2, 10);
        let now = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(strangers.opened(id(1), a, true, now));
        assert!(strangers.opened(id(2), b, true, now));
        assert!(!strangers.opened(id(3), PeerId::random(), true, now));
        assert!(
            strangers.opened(id(4), PeerId::random(), false, now),
            "a dial"
        );
        assert_eq!(strangers.len(), 3);
        // Room again once one closes or its peer is admitted.
        strangers.closed(id(1));
        assert!(strangers.opened(id(5), PeerId::random(), true, now));
        assert!(!strangers.opened(id(6), PeerId::random(), true, now));
        strangers.admitted(&b);
        assert!(strangers.opened(id(7), PeerId::random(), true, now));
        assert_eq!(strangers.peers().len(), 3);
    }

    #[test]
    fn connections_past_their_grace_are_handed_back_once() {
        let mut strangers = strangers(8, 10);
        let start = Instant::now();
        let peer = PeerId::random();
        strangers.opened(id(1), peer, true, start);
        strangers.opened(id(2), peer, false, start + Duration::from_secs(4));
        assert!(strangers.expired(start + Duration::from_secs(9)).is_empty());
        assert_eq!(
            strangers.expired(start + Duration::from_secs(10)),
            vec![id(1)]
        );
        assert!(
            strangers
                .expired(start + Duration::from_secs(11))
                .is_empty()
        );
        assert_eq!(
            strangers.expired(start + Duration::from_secs(14)),
            vec![id(2)]
        );
        assert!(strangers.is_empty());
    }
}
