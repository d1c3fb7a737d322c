//! Everything the driver keeps per peer, and the bounds on it: which peer
//! a node is reached at, each peer's open connections, the connections of
//! peers the core does not admit ([`Strangers`]), the messages handed to
//! libp2p and not yet acknowledged (bounded in messages and bytes per
//! peer, and in bytes in all, by `limits.queue_*`), and the seeds found
//! through bootstrap and mDNS (at most [`SEEDS_MAX`], each with at most
//! [`SEED_ADDRS_MAX`] addresses).
//!
//! [`Peers`] holds only bookkeeping: it opens, closes and sends nothing.
//! It answers what the driver should do (refuse a connection, close a
//! stale one, drop a message) and the driver does it on the swarm, so
//! every bound here is tested without libp2p running.

use std::collections::BTreeMap;
use std::time::Duration;

use fleetmesh_crdt::NodeId;
use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use crate::admission::Strangers;
use crate::config::Limits;

/// Most seeds (bootstrap and mDNS peers) kept; past it, discoveries are
/// counted and dropped. The fleet is reached through any one of them.
pub const SEEDS_MAX: usize = 64;

/// Most addresses kept per seed (a host found on several interfaces).
pub const SEED_ADDRS_MAX: usize = 4;

/// A connection at least this old when its peer opens another one is taken
/// for a leftover of the peer's previous process (the peer would have used
/// it otherwise) and closed: libp2p spreads messages over all of a peer's
/// connections, and those sent on a dead one are lost until QUIC's idle
/// timeout notices. Younger ones are two dials crossing at start.
pub const STALE_CONNECTION_AGE: Duration = Duration::from_secs(2);

/// One message handed to libp2p and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    peer: PeerId,
    bytes: usize,
}

/// Unacknowledged messages to one peer.
#[derive(Clone, Copy, Debug, Default)]
struct Queued {
    messages: usize,
    bytes: usize,
}

/// A seed: a peer reached through bootstrap or mDNS, before the core
/// knows its address from its metadata.
#[derive(Clone, Debug)]
struct Seed {
    peer: PeerId,
    addrs: Vec<Multiaddr>,
}

/// What became of a seed offered to [`Peers::add_seed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedAdded {
    /// A new seed: the core should hear of the grown list.
    New,
    /// A seed already known (its address list may have grown).
    Known,
    /// Past [`SEEDS_MAX`]: dropped (count it).
    Dropped,
}

/// What to do about a connection that just opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Close it: its peer is not admitted and the strangers' bound for
    /// incoming connections is reached.
    Refused,
    /// Keep it; close these older connections of the same peer, leftovers
    /// of its previous process.
    Kept {
        /// The stale connections to close.
        stale: Vec<ConnectionId>,
    },
}

/// Per-peer bookkeeping and its bounds. `Request` names a message handed
/// to the transport: libp2p's id in the driver, any number in tests
/// (libp2p makes its ids itself).
#[derive(Debug)]
pub struct Peers<Request = OutboundRequestId> {
    queue_bytes_per_peer: usize,
    queue_messages_per_peer: usize,
    queue_bytes_max: usize,
    /// Connected peers by node: where a message for a node goes first.
    connected: BTreeMap<NodeId, PeerId>,
    /// Each peer's open connections and when they opened (bounded by the
    /// connection limits).
    connections: BTreeMap<PeerId, Vec<(ConnectionId, Instant)>>,
    /// Connections whose peer the core does not admit (yet).
    strangers: Strangers,
    in_flight: BTreeMap<Request, InFlight>,
    queued_per_peer: BTreeMap<PeerId, Queued>,
    queued_bytes: usize,
    seeds: BTreeMap<NodeId, Seed>,
}

impl<Request: Ord + Copy> Peers<Request> {
    /// No peers yet, bounded by `limits`.
    pub fn new(limits: &Limits) -> Peers<Request> {
        Peers {
            queue_bytes_per_peer: limits.queue_bytes_per_peer,
            queue_messages_per_peer: limits.queue_messages_per_peer,
            queue_bytes_max: limits.queue_bytes_max,
            connected: BTreeMap::new(),
            connections: BTreeMap::new(),
            strangers: Strangers::new(limits),
            in_flight: BTreeMap::new(),
            queued_per_peer: BTreeMap::new(),
            queued_bytes: 0,
            seeds: BTreeMap::new(),
        }
    }

    /// The peer a message for `node` goes to, if this agent knows it: a
    /// connected one, else a seed. (The driver falls back on the key of
    /// the node's certificate.)
    pub fn route(&self, node: NodeId) -> Option<PeerId> {
        self.connected
            .get(&node)
            .or_else(|| self.seeds.get(&node).map(|seed| &seed.peer))
            .copied()
    }

    /// Whether `node` has a connected peer.
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.connected.contains_key(&node)
    }

    /// `announced` (where `node` says it listens) and then the addresses
    /// it was found at as a seed, each once.
    pub fn with_seed_addresses(&self, node: NodeId, announced: Vec<Multiaddr>) -> Vec<Multiaddr> {
        let mut addrs = announced;
        if let Some(seed) = self.seeds.get(&node) {
            for addr in &seed.addrs {
                if !addrs.contains(addr) {
                    addrs.push(addr.clone());
                }
            }
        }
        addrs
    }

    /// Whether a message of `bytes` to `peer` fits the queue bounds now.
    pub fn has_room(&self, peer: &PeerId, bytes: usize) -> bool {
        let queued = self.queued_per_peer.get(peer).copied().unwrap_or_default();
        queued.bytes + bytes <= self.queue_bytes_per_peer
            && queued.messages < self.queue_messages_per_peer
            && self.queued_bytes + bytes <= self.queue_bytes_max
    }

    /// Message `id` of `bytes` was handed to the transport for `peer`.
    pub fn sent(&mut self, id: Request, peer: PeerId, bytes: usize) {
        self.in_flight.insert(id, InFlight { peer, bytes });
        let queued = self.queued_per_peer.entry(peer).or_default();
        queued.messages += 1;
        queued.bytes += bytes;
        self.queued_bytes += bytes;
    }

    /// Frees the queue space of message `id`, acknowledged or failed.
    pub fn settle(&mut self, id: Request) {
        let Some(done) = self.in_flight.remove(&id) else {
            return;
        };
        self.queued_bytes = self.queued_bytes.saturating_sub(done.bytes);
        if let Some(queued) = self.queued_per_peer.get_mut(&done.peer) {
            queued.messages = queued.messages.saturating_sub(1);
            queued.bytes = queued.bytes.saturating_sub(done.bytes);
            if queued.messages == 0 {
                self.queued_per_peer.remove(&done.peer);
            }
        }
    }

    /// Messages handed to the transport and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Their bytes.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Remembers `peer` (node `node`), found at `addr` (without its
    /// `/p2p/` part), as a seed.
    pub fn add_seed(&mut self, peer: PeerId, node: NodeId, addr: Multiaddr) -> SeedAdded {
        if let Some(seed) = self.seeds.get_mut(&node) {
            if !seed.addrs.contains(&addr) && seed.addrs.len() < SEED_ADDRS_MAX {
                seed.addrs.push(addr);
            }
            return SeedAdded::Known;
        }
        if self.seeds.len() >= SEEDS_MAX {
            return SeedAdded::Dropped;
        }
        self.seeds.insert(
            node,
            Seed {
                peer,
                addrs: vec![addr],
            },
        );
        SeedAdded::New
    }

    /// The seeds' nodes, in order.
    pub fn seed_nodes(&self) -> Vec<NodeId> {
        self.seeds.keys().copied().collect()
    }

    /// Connection `id` to `peer` (node `node`) opened at `now`, by the peer
    /// (`incoming`) or by this agent; `admitted` says whether the core
    /// admits the peer.
    pub fn opened(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        node: NodeId,
        incoming: bool,
        admitted: bool,
        now: Instant,
    ) -> Opened {
        if !admitted && !self.strangers.opened(id, peer, incoming, now) {
            return Opened::Refused;
        }
        self.connected.insert(node, peer);
        let open = self.connections.entry(peer).or_default();
        let mut stale = Vec::new();
        if incoming {
            open.retain(|(old, since)| {
                let keep = now.duration_since(*since) < STALE_CONNECTION_AGE;
                if !keep {
                    stale.push(*old);
                }
                keep
            });
        }
        open.push((id, now));
        Opened::Kept { stale }
    }

    /// Connection `id` of `peer` closed; `node` is the peer's node when
    /// it was its last connection.
    pub fn closed(&mut self, id: ConnectionId, peer: &PeerId, last_of: Option<NodeId>) {
        self.strangers.closed(id);
        if let Some(open) = self.connections.get_mut(peer) {
            open.retain(|(open, _)| *open != id);
            if open.is_empty() {
                self.connections.remove(peer);
            }
        }
        if let Some(node) = last_of {
            self.connected.remove(&node);
        }
    }

    /// Peers with open connections, in order.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.connections.keys().copied().collect()
    }

    /// `peer` is admitted now: its connections are no strangers'.
    pub fn admitted(&mut self, peer: &PeerId) {
        self.strangers.admitted(peer);
    }

    /// `peer` is not admitted (any more) at `now`: each of its connections
    /// not yet a stranger's starts its grace.
    pub fn not_admitted(&mut self, peer: PeerId, now: Instant) {
        for (id, _) in self.connections.get(&peer).cloned().unwrap_or_default() {
            if !self.strangers.contains(id) {
                self.strangers.opened(id, peer, false, now);
            }
        }
    }

    /// The strangers' connections whose grace ran out at `now`, forgotten,
    /// for the driver to close.
    pub fn expired(&mut self, now: Instant) -> Vec<ConnectionId> {
        self.strangers.expired(now)
    }

    /// Connections kept whose peer is not admitted.
    pub fn unadmitted(&self) -> usize {
        self.strangers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use fleetmesh_crdt::Keypair;

    fn limits() -> Limits {
        Limits {
            queue_bytes_per_peer: 100,
            queue_messages_per_peer: 3,
            queue_bytes_max: 150,
            unadmitted_connections_max: 1,
            unadmitted_grace_secs: 10,
            ..Limits::default()
        }
    }

    fn node(seed: u8) -> NodeId {
        Keypair::from_seed([seed; 32]).public().node_id()
    }

    fn connection(n: usize) -> ConnectionId {
        ConnectionId::new_unchecked(n)
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/10.0.0.1/udp/{port}/quic-v1")
            .parse()
            .expect("a multiaddr")
    }

    #[test]
    fn queues_are_bounded_per_peer_and_in_all_until_messages_settle() {
        let mut peers: Peers<u64> = Peers::new(&limits());
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(peers.has_room(&a, 100));
        assert!(!peers.has_room(&a, 101), "past the per-peer bytes");
        peers.sent(1, a, 60);
        peers.sent(2, a, 20);
        peers.sent(3, a, 10);
        assert!(!peers.has_room(&a, 1), "past the per-peer messages");
        assert!(peers.has_room(&b, 60));
        assert!(!peers.has_room(&b, 61), "past the bytes in all");
        assert_eq!((peers.in_flight(), peers.queued_bytes()), (3, 90));
        peers.settle(1);
        peers.settle(1);
        assert_eq!(
            (peers.in_flight(), peers.queued_bytes()),
            (2, 30),
            "a message settles once"
        );
        assert!(peers.has_room(&a, 70));
        peers.settle(2);
        peers.settle(3);
        assert_eq!((peers.in_flight(), peers.queued_bytes()), (0, 0));
        assert!(
            peers.queued_per_peer.is_empty(),
            "no entry for an idle peer"
        );
    }

    #[test]
    fn seeds_are_bounded_in_number_and_addresses() {
        let mut peers: Peers<u64> = Peers::new(&limits());
        let peer = PeerId::random();
        assert_eq!(peers.add_seed(peer, node(0), addr(1)), SeedAdded::New);
        for port in 1..10 {
            assert_eq!(peers.add_seed(peer, node(0), addr(port)), SeedAdded::Known);
        }
        let found = peers.with_seed_addresses(node(0), vec![addr(9), addr(2)]);
        assert_eq!(found, [addr(9), addr(2), addr(1), addr(3), addr(4)]);
        for seed in 1..SEEDS_MAX {
            let seed = u8::try_from(seed).expect("few seeds");
            assert_eq!(
                peers.add_seed(PeerId::random(), node(seed), addr(1)),
                SeedAdded::New
            );
        }
        assert_eq!(
            peers.add_seed(PeerId::random(), node(255), addr(1)),
            SeedAdded::Dropped
        );
        assert_eq!(peers.seed_nodes().len(), SEEDS_MAX);
        assert_eq!(peers.route(node(0)), Some(peer), "a seed routes");
        assert_eq!(peers.route(node(255)), None);
    }

    #[test]
    fn a_connected_peer_routes_before_a_seed_until_its_last_connection_closes() {
        let mut peers: Peers<u64> = Peers::new(&limits());
        let (seed, connected) = (PeerId::random(), PeerId::random());
        peers.add_seed(seed, node(1), addr(1));
        let now = Instant::now();
        let opened = peers.opened(connection(1), connected, node(1), false, true, now);
        assert_eq!(opened, Opened::Kept { stale: Vec::new() });
        assert_eq!(peers.route(node(1)), Some(connected));
        assert!(peers.is_connected(node(1)));
        peers.closed(connection(1), &connected, Some(node(1)));
        assert_eq!(peers.route(node(1)), Some(seed));
        assert!(peers.connected_peers().is_empty());
    }

    #[test]
    fn an_incoming_connection_closes_the_peers_stale_ones_not_young_ones() {
        let mut peers: Peers<u64> = Peers::new(&limits());
        let peer = PeerId::random();
        let start = Instant::now();
        peers.opened(connection(1), peer, node(1), false, true, start);
        let young = start + STALE_CONNECTION_AGE - Duration::from_millis(1);
        peers.opened(connection(2), peer, node(1), false, true, young);
        let later = start + STALE_CONNECTION_AGE;
        assert_eq!(
            peers.opened(connection(3), peer, node(1), true, true, later),
            Opened::Kept {
                stale: vec![connection(1)]
            }
        );
        // A dial of this agent's own closes nothing.
        let much_later = later + STALE_CONNECTION_AGE;
        assert_eq!(
            peers.opened(connection(4), peer, node(1), false, true, much_later),
            Opened::Kept { stale: Vec::new() }
        );
        assert_eq!(peers.connections[&peer].len(), 3);
    }

    #[test]
    fn unadmitted_connections_are_capped_and_expire_unless_admitted() {
        let mut peers: Peers<u64> = Peers::new(&limits());
        let now = Instant::now();
        let (stranger, other, member) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert!(matches!(
            peers.opened(connection(1), stranger, node(1), true, false, now),
            Opened::Kept { .. }
        ));
        assert_eq!(
            peers.opened(connection(2), other, node(2), true, false, now),
            Opened::Refused,
            "past unadmitted_connections_max"
        );
        assert!(!peers.is_connected(node(2)), "a refused one is not kept");
        peers.opened(connection(3), member, node(3), true, true, now);
        assert_eq!(peers.unadmitted(), 1);
        // The member's certificate is revoked: its grace starts now.
        peers.not_admitted(member, now + Duration::from_secs(5));
        assert_eq!(peers.unadmitted(), 2);
        assert_eq!(
            peers.expired(now + Duration::from_secs(10)),
            [connection(1)]
        );
        peers.admitted(&member);
        assert!(peers.expired(now + Duration::from_secs(60)).is_empty());
        assert_eq!(peers.unadmitted(), 0);
    }
}
