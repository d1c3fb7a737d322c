//! The admission gate on the wire protocol's incoming streams: how much
//! a peer may make this agent buffer depends on whether the core admits
//! it.
//!
//! The core decides admission (a valid certificate), but libp2p reads each
//! incoming stream in its connection's own task, before the core sees a
//! byte of it. So the driver publishes the connected peers the core
//! admits in [`Admitted`], and [`Gated`], wrapped around the
//! request-response behaviour, hands the codec of each incoming stream a
//! [`Gate`] naming the stream's peer (in the stream's protocol value,
//! which reaches the codec's `read_request`). The codec then reads at most
//! [`UNADMITTED_MESSAGE_BYTES_MAX`] of a message from a peer the gate does
//! not pass: a Hello (a certificate of well under a kilobyte) and the
//! first answers of an exchange fit, a megabyte of anything does not.
//! The gate is asked only when a message runs past that size, so a peer
//! admitted by its Hello a moment before is let through.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound, InboundUpgradeSend};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, Stream, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{PeerId, StreamProtocol, request_response};

/// Most bytes of one message read from a peer the core does not admit
/// (yet): a Hello carries a certificate of under a kilobyte, and an
/// exchange's first answers (bucket digests of every collection, about
/// 15 KiB) may arrive before the Hello that admits their sender.
pub const UNADMITTED_MESSAGE_BYTES_MAX: usize = 16 << 10;

/// The connected peers the core admits, as the driver last published
/// them; every connection's codec reads it. Bounded by the connections
/// open: the driver removes a peer when its last connection closes.
#[derive(Clone, Debug, Default)]
pub struct Admitted(Arc<RwLock<HashSet<PeerId>>>);

impl Admitted {
    /// Whether `peer` is admitted. A lock poisoned by a panic elsewhere
    /// answers no: the gate fails closed.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.0.read().is_ok_and(|peers| peers.contains(peer))
    }

    /// Records whether `peer` is admitted now.
    pub fn set(&self, peer: PeerId, admitted: bool) {
        if let Ok(mut peers) = self.0.write() {
            if admitted {
                peers.insert(peer);
            } else {
                peers.remove(&peer);
            }
        }
    }
}

/// The question one incoming stream's codec may ask: is its peer admitted
/// now?
#[derive(Clone, Debug)]
pub struct Gate {
    peer: PeerId,
    admitted: Admitted,
}

impl Gate {
    /// The gate of `peer`'s streams.
    pub fn new(peer: PeerId, admitted: Admitted) -> Gate {
        Gate { peer, admitted }
    }

    /// Whether the stream's peer is admitted now.
    pub fn passes(&self) -> bool {
        self.admitted.contains(&self.peer)
    }
}

/// The wire protocol as the request-response codec sees it: its name
/// and, on an incoming stream, the [`Gate`] of the stream's peer (`None`
/// on streams this agent opens, and on any incoming stream that did not
/// pass through [`Gated`], which the codec treats as not admitted).
#[derive(Clone, Debug)]
pub struct WireProtocol {
    name: StreamProtocol,
    gate: Option<Gate>,
}

impl WireProtocol {
    /// The protocol called `name`, with no gate.
    pub fn new(name: StreamProtocol) -> WireProtocol {
        WireProtocol { name, gate: None }
    }

    /// The same protocol, on a stream of the peer `gate` asks about.
    pub fn gated(self, gate: Gate) -> WireProtocol {
        WireProtocol {
            gate: Some(gate),
            ..self
        }
    }

    /// Whether the stream's peer is admitted now.
    pub fn admitted(&self) -> bool {
        self.gate.as_ref().is_some_and(Gate::passes)
    }
}

impl AsRef<str> for WireProtocol {
    fn as_ref(&self) -> &str {
        self.name.as_ref()
    }
}

/// A request-response behaviour whose incoming streams carry their peer's
/// [`Gate`]; everything else is the inner behaviour's.
pub struct Gated<C>
where
    C: request_response::Codec<Protocol = WireProtocol> + Clone + Send + 'static,
{
    inner: request_response::Behaviour<C>,
    admitted: Admitted,
}

impl<C> Gated<C>
where
    C: request_response::Codec<Protocol = WireProtocol> + Clone + Send + 'static,
{
    /// Gates `inner`'s incoming streams by `admitted`.
    pub fn new(inner: request_response::Behaviour<C>, admitted: Admitted) -> Gated<C> {
        Gated { inner, admitted }
    }

    /// The request-response behaviour: to send requests and responses.
    pub fn inner_mut(&mut self) -> &mut request_response::Behaviour<C> {
        &mut self.inner
    }

    fn wrap(
        &self,
        peer: PeerId,
        inner: THandler<request_response::Behaviour<C>>,
    ) -> GatedHandler<THandler<request_response::Behaviour<C>>> {
        GatedHandler {
            inner,
            gate: Gate::new(peer, self.admitted.clone()),
        }
    }
}

impl<C> NetworkBehaviour for Gated<C>
where
    C: request_response::Codec<Protocol = WireProtocol> + Clone + Send + 'static,
{
    type ConnectionHandler = GatedHandler<THandler<request_response::Behaviour<C>>>;
    type ToSwarm = <request_response::Behaviour<C> as NetworkBehaviour>::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(self.wrap(peer, inner))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(self.wrap(peer, inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

/// A connection handler that gives each incoming stream's protocol value
/// the connection's [`Gate`], then hands everything to `inner`.
pub struct GatedHandler<H> {
    inner: H,
    gate: Gate,
}

impl<H> ConnectionHandler for GatedHandler<H>
where
    H: ConnectionHandler,
    H::InboundProtocol: InboundUpgradeSend<Output = (Stream, WireProtocol)>,
{
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        let event = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol),
                info,
            }) => ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (stream, protocol.gated(self.gate.clone())),
                info,
            }),
            other => other,
        };
        self.inner.on_connection_event(event);
    }
}
