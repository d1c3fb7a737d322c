//! The driver's network side: sending the core's messages within the
//! queue bounds, dialing bootstrap peers, remembering seeds, the swarm's
//! connection and message events, admission, and the addresses this agent
//! announces.

use fleetmesh_crdt::{NodeId, NodeMeta};
use fleetmesh_node::Transmit;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure};
use libp2p::swarm::{DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, mdns};

use super::Driver;
use crate::peers::{Opened, SeedAdded};
use crate::transport::{self, MeshEvent};

impl Driver {
    /// The peer a message for `node` goes to: a connected one, a seed, or
    /// the key of the node's certificate.
    fn peer_for(&self, node: NodeId) -> Option<PeerId> {
        if let Some(peer) = self.peers.route(node) {
            return Some(peer);
        }
        let cert = self.agent.replicas().certs().get(node)?;
        transport::peer_of_key(&cert.body.node_key)
    }

    /// Where `node` can be dialed: its announced addresses, and those it
    /// was found at as a seed.
    fn addresses_of(&self, node: NodeId) -> Vec<Multiaddr> {
        let announced: Vec<Multiaddr> = self
            .agent
            .members()
            .meta(node)
            .map(|meta| {
                meta.addrs
                    .iter()
                    .filter_map(|addr| addr.parse::<Multiaddr>().ok())
                    .collect()
            })
            .unwrap_or_default();
        self.peers.with_seed_addresses(node, announced)
    }

    /// Hands one of the core's messages to libp2p, within the queue
    /// bounds; counts what it cannot route or fit.
    pub(super) fn send(&mut self, transmit: Transmit) {
        let Some(peer) = self.peer_for(transmit.to) else {
            self.stats.transmits_unroutable += 1;
            return;
        };
        let bytes = transmit.bytes.len();
        if !self.peers.has_room(&peer, bytes) {
            self.stats.transmits_dropped_queue_full += 1;
            return;
        }
        let addrs = if self.swarm.is_connected(&peer) {
            Vec::new()
        } else {
            self.addresses_of(transmit.to)
        };
        let id = self
            .swarm
            .behaviour_mut()
            .wire
            .inner_mut()
            .send_request_with_addresses(&peer, transmit.bytes, addrs);
        self.peers.sent(id, peer, bytes);
        self.stats.transmits_sent += 1;
    }

    /// Dials the bootstrap addresses no agent has answered from yet
    /// (none of this agent's own).
    pub(super) fn dial_bootstrap(&mut self) {
        let own: Vec<Multiaddr> = self.listening.iter().map(without_peer).collect();
        for addr in self.bootstrap_pending.clone() {
            if own.contains(&without_peer(&addr)) {
                continue;
            }
            if let Err(error) = self.swarm.dial(addr.clone()) {
                self.stats.dial_errors += 1;
                tracing::debug!(%addr, %error, "cannot dial bootstrap peer");
            }
        }
    }

    /// Remembers `peer`, found at `addr`, as a seed; tells the core when
    /// the seed list grew.
    fn add_seed(&mut self, peer: PeerId, addr: Multiaddr) {
        let Some((_, node)) = transport::node_of(&peer) else {
            return;
        };
        if node == self.agent.id() {
            return;
        }
        match self.peers.add_seed(peer, node, without_peer(&addr)) {
            SeedAdded::New => {}
            SeedAdded::Known => return,
            SeedAdded::Dropped => {
                self.stats.seeds_dropped += 1;
                return;
            }
        }
        let seeds = self.peers.seed_nodes();
        let now = self.clock.now();
        self.agent.join(now, &seeds);
    }

    /// One swarm event: a message, a discovery, a connection opened or
    /// closed, a listener's address.
    pub(super) fn on_swarm(&mut self, event: SwarmEvent<MeshEvent>) {
        match event {
            SwarmEvent::Behaviour(MeshEvent::Wire(event)) => self.on_wire(event),
            SwarmEvent::Behaviour(MeshEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.stats.mdns_discovered += 1;
                    self.swarm.add_peer_address(peer, addr.clone());
                    self.add_seed(peer, addr);
                }
            }
            SwarmEvent::Behaviour(MeshEvent::Mdns(mdns::Event::Expired(_))) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.stats.connections_opened += 1;
                let Some((_, node)) = transport::node_of(&peer_id) else {
                    // Not an ed25519 key: no agent can be behind it.
                    self.stats.peers_refused += 1;
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                let now = tokio::time::Instant::now();
                let admitted = self.agent.admits(self.clock.now(), node);
                self.admitted.set(peer_id, admitted);
                let incoming = endpoint.is_listener();
                match self
                    .peers
                    .opened(connection_id, peer_id, node, incoming, admitted, now)
                {
                    Opened::Refused => {
                        self.stats.connections_unadmitted_refused += 1;
                        self.swarm.close_connection(connection_id);
                        return;
                    }
                    Opened::Kept { stale } => {
                        for stale in stale {
                            self.stats.connections_replaced += 1;
                            self.swarm.close_connection(stale);
                        }
                    }
                }
                // A bootstrap peer may reach this agent first: its dial
                // crosses ours (which the per-peer limit may then refuse).
                // QUIC sends from its listening socket, so the address an
                // incoming connection comes from is the peer's own.
                let remote = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let remote = without_peer(&remote);
                let before = self.bootstrap_pending.len();
                self.bootstrap_pending
                    .retain(|pending| without_peer(pending) != remote);
                if self.bootstrap_pending.len() < before {
                    tracing::info!(
                        member = self.member_name(node).as_deref(),
                        id = %node,
                        addr = %remote,
                        "bootstrap peer answered"
                    );
                    self.add_seed(peer_id, remote);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.stats.connections_closed += 1;
                let last_of = if num_established == 0 {
                    self.admitted.set(peer_id, false);
                    transport::node_of(&peer_id).map(|(_, node)| node)
                } else {
                    None
                };
                self.peers.closed(connection_id, &peer_id, last_of);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if !self.listening.contains(&address) {
                    self.listening.push(address);
                }
                self.announce_addresses();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listening.retain(|addr| *addr != address);
                self.announce_addresses();
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                self.stats.incoming_connection_errors += 1;
                tracing::debug!(error = ?error, "incoming connection failed");
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                self.stats.dial_errors += 1;
                if let DialError::LocalPeerId { address } = &error {
                    // A bootstrap address that is this agent itself.
                    let own = without_peer(address);
                    self.bootstrap_pending
                        .retain(|pending| without_peer(pending) != own);
                }
                tracing::debug!(error = ?error, "dial failed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                // Not the listener failing (that is `ListenerClosed`): most
                // often one incoming connection refused before it existed,
                // a QUIC Initial packet that does not decrypt ("authentication
                // failed": a stale or duplicated packet of a dial already
                // answered or forgotten, common when a partition heals and
                // both sides dial at once). The dialer retries. INFO, not
                // WARN: it needs no one unless it never stops.
                self.stats.incoming_connection_errors += 1;
                tracing::info!(%error, "a listener refused one incoming packet or connection attempt; it goes on listening (at a heal: stale QUIC packets, expected)");
            }
            _ => {}
        }
    }

    /// Asks the core whether `peer` (node `node`) is admitted now, and
    /// tells the codec and the strangers' bookkeeping; returns the answer.
    fn check_admission(&mut self, peer: PeerId, node: NodeId) -> bool {
        let admitted = self.agent.admits(self.clock.now(), node);
        self.admitted.set(peer, admitted);
        if admitted {
            self.peers.admitted(&peer);
        }
        admitted
    }

    /// Asks the core again about every connected peer (certificates also
    /// come from third parties, and go with revocation and expiry): a peer
    /// no longer admitted gets the strangers' grace, and connections past
    /// their grace are closed.
    pub(super) fn sweep_admission(&mut self) {
        let now = tokio::time::Instant::now();
        for peer in self.peers.connected_peers() {
            let Some((_, node)) = transport::node_of(&peer) else {
                continue;
            };
            if !self.check_admission(peer, node) {
                self.peers.not_admitted(peer, now);
            }
        }
        for id in self.peers.expired(now) {
            self.stats.connections_unadmitted_expired += 1;
            self.swarm.close_connection(id);
        }
    }

    /// One event of the wire protocol: a message in (acknowledged at
    /// once, then handed to the core), an acknowledgement or a failure out.
    fn on_wire(&mut self, event: request_response::Event<Vec<u8>, ()>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    // Acknowledge first: the sender's queue is freed whatever
                    // the core makes of the bytes.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .wire
                        .inner_mut()
                        .send_response(channel, ());
                    let Some((_, node)) = transport::node_of(&peer) else {
                        self.stats.peers_refused += 1;
                        return;
                    };
                    self.stats.messages_delivered += 1;
                    let now = self.clock.now();
                    self.agent.handle_message(now, node, &request);
                    // A Hello admits its sender at once: its next message
                    // may be a large one.
                    self.check_admission(peer, node);
                }
                request_response::Message::Response { request_id, .. } => {
                    self.peers.settle(request_id)
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                match error {
                    OutboundFailure::DialFailure => self.stats.transmit_dial_failures += 1,
                    OutboundFailure::Timeout => self.stats.transmit_timeouts += 1,
                    OutboundFailure::ConnectionClosed
                    | OutboundFailure::UnsupportedProtocols
                    | OutboundFailure::Io(_) => self.stats.transmit_failures += 1,
                }
                self.peers.settle(request_id);
            }
            request_response::Event::InboundFailure { error, .. } => {
                self.stats.receive_failures += 1;
                tracing::debug!(%error, "incoming message failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Announces the addresses peers should dial: the configured
    /// `advertise` ones, or those bound (loopback ones only when nothing
    /// else is bound, as on a test host), within the metadata's limits.
    fn announce_addresses(&mut self) {
        use fleetmesh_crdt::meta_limits::{ADDR_BYTES_MAX, ADDRS_MAX, TOTAL_BYTES_MAX};
        let candidates: Vec<Multiaddr> = if self.config.advertise.is_empty() {
            let routable: Vec<Multiaddr> = self
                .listening
                .iter()
                .filter(|addr| !is_loopback(addr))
                .cloned()
                .collect();
            if routable.is_empty() {
                self.listening.clone()
            } else {
                routable
            }
        } else {
            self.config.advertise.clone()
        };
        let Some(current) = self.agent.members().meta(self.agent.id()).cloned() else {
            return;
        };
        let mut budget = TOTAL_BYTES_MAX.saturating_sub(
            current
                .tags
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum::<usize>(),
        );
        let mut addrs = Vec::new();
        for addr in candidates.iter().map(without_peer) {
            let text = addr.to_string();
            if addrs.len() >= ADDRS_MAX || text.len() > ADDR_BYTES_MAX || text.len() > budget {
                self.stats.addrs_dropped += 1;
                continue;
            }
            budget -= text.len();
            addrs.push(text);
        }
        if addrs == current.addrs {
            return;
        }
        let meta = NodeMeta {
            tags: current.tags.clone(),
            addrs,
        };
        if let Err(error) = self.agent.set_meta(meta) {
            tracing::warn!(%error, "cannot announce the listen addresses");
        }
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// `addr` without a trailing `/p2p/...`.
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|part| !matches!(part, Protocol::P2p(_)))
        .collect()
}
