//! The mesh's transport: libp2p over QUIC.
//!
//! Every connection is QUIC with libp2p's TLS handshake, so it is
//! encrypted and authenticated by both ends' ed25519 keys: the agent's node
//! key is its libp2p identity, and the peer id of an ed25519 key embeds the
//! key itself, so the `NodeId` the core sees for an incoming message is
//! derived from the key the handshake proved ([`node_of`]), and a message
//! for a `NodeId` goes only to a peer whose key hashes to it
//! ([`peer_of_key`]).
//!
//! Each core message travels as one request of a request-response
//! protocol (`/fleetmesh/wire/1`), on its own QUIC stream: the sender
//! writes the bytes and closes its side, the receiver reads to the end,
//! refusing anything over [`MESSAGE_BYTES_MAX`] (over
//! [`UNADMITTED_MESSAGE_BYTES_MAX`] from a peer the core does not admit,
//! see [`crate::gate`]), and answers with an empty acknowledgement, which
//! is what frees the message's place in the sender's bounded queue.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fleetmesh_crdt::{Keypair, NodeId, PublicKey};
use fleetmesh_node::limits::MESSAGE_BYTES_MAX;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{PeerId, StreamProtocol, connection_limits, identity, mdns, request_response};

use crate::config::Limits;
use crate::gate::{Admitted, Gated, UNADMITTED_MESSAGE_BYTES_MAX, WireProtocol};

/// The protocol name of core messages.
pub const WIRE_PROTOCOL: StreamProtocol = StreamProtocol::new("/fleetmesh/wire/1");

/// How long a message may take to be delivered and acknowledged before it
/// counts as failed: several probe timeouts, so a healthy but busy peer is
/// not given up on, and a stuck one frees its queue soon.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection with no message in flight stays open. Probes go
/// to every member about once a membership period, so in a fleet of any
/// size most connections stay in use; an idle one costs a handshake to
/// reopen.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// What the codec refused (libp2p reports a failed read to nobody): the
/// driver reads these into its metrics.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Incoming messages refused past [`MESSAGE_BYTES_MAX`].
    pub oversized: AtomicU64,
    /// Incoming messages from peers not admitted, refused past
    /// [`UNADMITTED_MESSAGE_BYTES_MAX`].
    pub unadmitted_oversized: AtomicU64,
}

/// The codec of [`WIRE_PROTOCOL`]: a request is one core message's bytes,
/// the response is empty.
#[derive(Clone, Debug, Default)]
pub struct WireCodec {
    counters: Arc<WireCounters>,
}

impl WireCodec {
    /// A codec counting the messages it refuses in `counters`.
    pub fn new(counters: Arc<WireCounters>) -> WireCodec {
        WireCodec { counters }
    }
}

/// Reads the rest of a stream into `bytes` while they hold at most `max`;
/// past that, an error, and the stream is not read further.
async fn read_bounded<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    bytes: &mut Vec<u8>,
    max: usize,
) -> io::Result<()> {
    let room = max.saturating_sub(bytes.len());
    let limit = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
    io.take(limit).read_to_end(bytes).await?;
    if bytes.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message over the {max}-byte limit"),
        ));
    }
    Ok(())
}

impl request_response::Codec for WireCodec {
    type Protocol = WireProtocol;
    type Request = Vec<u8>;
    type Response = ();

    /// Reads one message: up to [`UNADMITTED_MESSAGE_BYTES_MAX`] from
    /// anyone, past that only from a peer the gate passes, and never past
    /// [`MESSAGE_BYTES_MAX`]. The gate is asked as late as possible, so a
    /// peer admitted while its message arrives is let through.
    async fn read_request<T>(&mut self, protocol: &WireProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        let first = read_bounded(io, &mut bytes, UNADMITTED_MESSAGE_BYTES_MAX).await;
        match first {
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                if !protocol.admitted() {
                    self.counters
                        .unadmitted_oversized
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "message over the limit for a peer not admitted",
                    ));
                }
            }
            other => return other.map(|()| bytes),
        }
        let rest = read_bounded(io, &mut bytes, MESSAGE_BYTES_MAX).await;
        if rest
            .as_ref()
            .is_err_and(|error| error.kind() == io::ErrorKind::InvalidData)
        {
            self.counters.oversized.fetch_add(1, Ordering::Relaxed);
        }
        rest.map(|()| bytes)
    }

    async fn read_response<T>(&mut self, _: &WireProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_bounded(io, &mut Vec::new(), 0).await
    }

    async fn write_request<T>(
        &mut self,
        _: &WireProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message over the size limit",
            ));
        }
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &WireProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.close().await
    }
}

/// The agent's libp2p behaviour: connection limits, core messages, and
/// (optionally) mDNS discovery.
#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "MeshEvent")]
pub struct Mesh {
    /// Bounds on connections, enforced before a handshake completes.
    pub limits: connection_limits::Behaviour,
    /// Core messages, gated by admission.
    pub wire: Gated<WireCodec>,
    /// Peers on the local network.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What the behaviour reports to the agent's loop.
#[derive(Debug)]
pub enum MeshEvent {
    /// A core message arrived, was acknowledged, or failed.
    Wire(request_response::Event<Vec<u8>, ()>),
    /// Peers appeared or expired on the local network.
    Mdns(mdns::Event),
}

impl From<request_response::Event<Vec<u8>, ()>> for MeshEvent {
    fn from(event: request_response::Event<Vec<u8>, ()>) -> MeshEvent {
        MeshEvent::Wire(event)
    }
}

impl From<mdns::Event> for MeshEvent {
    fn from(event: mdns::Event) -> MeshEvent {
        MeshEvent::Mdns(event)
    }
}

/// Connection limits report nothing.
impl From<std::convert::Infallible> for MeshEvent {
    fn from(never: std::convert::Infallible) -> MeshEvent {
        match never {}
    }
}

impl Mesh {
    /// The behaviour for `local`, with mDNS when `mdns` is set and the
    /// host lets it bind its socket (failure is returned, for the caller to
    /// report and go on without it). Incoming messages are gated by
    /// `admitted`; those refused are counted in `counters`.
    pub fn new(
        local: PeerId,
        limits: &Limits,
        mdns: bool,
        admitted: Admitted,
        counters: Arc<WireCounters>,
    ) -> (Mesh, Option<io::Error>) {
        let connection_limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(limits.connections_max))
            .with_max_established_per_peer(Some(limits.connections_per_peer))
            .with_max_pending_incoming(Some(limits.pending_incoming_max))
            .with_max_pending_outgoing(Some(limits.pending_outgoing_max));
        let wire = request_response::Behaviour::with_codec(
            WireCodec::new(counters),
            [(
                WireProtocol::new(WIRE_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_max_concurrent_streams(limits.streams_per_connection),
        );
        let wire = Gated::new(wire, admitted);
        let (mdns, error) = if mdns {
            match mdns::tokio::Behaviour::new(mdns::Config::default(), local) {
                Ok(behaviour) => (Some(behaviour), None),
                Err(error) => (None, Some(error)),
            }
        } else {
            (None, None)
        };
        let mesh = Mesh {
            limits: connection_limits::Behaviour::new(connection_limits),
            wire,
            mdns: Toggle::from(mdns),
        };
        (mesh, error)
    }
}

/// The libp2p identity of the agent's node key.
pub fn libp2p_keypair(keypair: &Keypair) -> identity::Keypair {
    let secret = identity::ed25519::SecretKey::try_from_bytes(keypair.seed())
        .expect("an ed25519 secret key is any 32 bytes");
    identity::Keypair::from(identity::ed25519::Keypair::from(secret))
}

/// The peer id of the agent with key `key`; `None` for bytes that are not
/// an ed25519 point (no such agent can exist).
pub fn peer_of_key(key: &PublicKey) -> Option<PeerId> {
    let public = identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(identity::PublicKey::from(public).to_peer_id())
}

/// The key and node id of `peer`, read from the peer id itself (an ed25519
/// peer id inlines its key); `None` for a peer with another kind of key,
/// which can be no fleetmesh agent.
pub fn node_of(peer: &PeerId) -> Option<(PublicKey, NodeId)> {
    let multihash = peer.as_ref();
    // Code 0 is the identity hash: the digest is the key's encoding.
    if multihash.code() != 0 {
        return None;
    }
    let public = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let key = PublicKey(public.try_into_ed25519().ok()?.to_bytes());
    Some((key, key.node_id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;
    use request_response::Codec;

    #[test]
    fn peer_ids_carry_the_node_key_both_ways() {
        let keypair = Keypair::from_seed([3; 32]);
        let peer = libp2p_keypair(&keypair).public().to_peer_id();
        assert_eq!(peer_of_key(&keypair.public()), Some(peer));
        assert_eq!(
            node_of(&peer),
            Some((keypair.public(), keypair.public().node_id()))
        );
        // A peer id that is a hash of some key names no node.
        assert_eq!(node_of(&PeerId::random()), None);
    }

    #[test]
    fn the_codec_refuses_messages_over_the_limit_and_strangers_past_a_hello() {
        use crate::gate::Gate;
        futures::executor::block_on(async {
            let counters = Arc::new(WireCounters::default());
            let mut codec = WireCodec::new(Arc::clone(&counters));
            let admitted = Admitted::default();
            let peer = PeerId::random();
            let gated = WireProtocol::new(WIRE_PROTOCOL).gated(Gate::new(peer, admitted.clone()));
            async fn read(
                codec: &mut WireCodec,
                protocol: &WireProtocol,
                bytes: usize,
            ) -> io::Result<Vec<u8>> {
                let mut stream = Cursor::new(vec![7; bytes]);
                codec.read_request(protocol, &mut stream).await
            }
            // A stranger: a Hello's worth, not a byte more.
            let small = read(&mut codec, &gated, UNADMITTED_MESSAGE_BYTES_MAX).await;
            assert_eq!(
                small.expect("a Hello's size").len(),
                UNADMITTED_MESSAGE_BYTES_MAX
            );
            let error = read(&mut codec, &gated, UNADMITTED_MESSAGE_BYTES_MAX + 1)
                .await
                .expect_err("over a stranger's limit");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            // A stream that passed through no gate is a stranger's too.
            let ungated = WireProtocol::new(WIRE_PROTOCOL);
            assert!(read(&mut codec, &ungated, 100_000).await.is_err());
            assert_eq!(counters.unadmitted_oversized.load(Ordering::Relaxed), 2);
            // Once admitted, up to the message limit.
            admitted.set(peer, true);
            let exact = read(&mut codec, &gated, MESSAGE_BYTES_MAX).await;
            assert_eq!(exact.expect("at the limit").len(), MESSAGE_BYTES_MAX);
            let error = read(&mut codec, &gated, MESSAGE_BYTES_MAX + 1)
                .await
                .expect_err("over the limit");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert_eq!(counters.oversized.load(Ordering::Relaxed), 1);
            assert_eq!(counters.unadmitted_oversized.load(Ordering::Relaxed), 2);
            admitted.set(peer, false);
            assert!(read(&mut codec, &gated, MESSAGE_BYTES_MAX).await.is_err());

            let mut written = Cursor::new(Vec::new());
            codec
                .write_request(&ungated, &mut written, vec![7; 100])
                .await
                .expect("write");
            assert_eq!(written.into_inner(), vec![7; 100]);
            let mut written = Cursor::new(Vec::new());
            assert!(
                codec
                    .write_request(&ungated, &mut written, vec![0; MESSAGE_BYTES_MAX + 1])
                    .await
                    .is_err()
            );
            let mut response = Cursor::new(vec![1]);
            assert!(codec.read_response(&ungated, &mut response).await.is_err());
        });
    }
}
