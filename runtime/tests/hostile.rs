//! A hostile peer against a real agent in this process: it connects over
//! QUIC with a key the fleet never admitted and sends an oversized message,
//! garbage and an unadmitted but well-formed message. The agent must count
//! each, drop it, and keep running.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use fleetmesh_crdt::{
    CertBody, Ed25519, Keypair, NodeCert, Role, SignedTrust, TrustChain, TrustDoc,
};
use fleetmesh_node::wire::{self, MESSAGE_BYTES_MAX, Message};
use fleetmesh_runtime::files::Existing;
use fleetmesh_runtime::transport::WIRE_PROTOCOL;
use fleetmesh_runtime::{AgentConfig, formats};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol};
use tokio::sync::oneshot;

/// A codec that writes whatever it is given, as an attacker's would.
#[derive(Clone, Default)]
struct Raw;

impl request_response::Codec for Raw {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io.take(1 << 20).read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<()> {
        let mut bytes = Vec::new();
        io.take(16).read_to_end(&mut bytes).await.map(drop)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&bytes).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        (): (),
    ) -> io::Result<()> {
        io.close().await
    }
}

/// A state directory with an admitted node's key, certificate and chain.
fn state_dir(dir: &std::path::Path) {
    let root = Keypair::from_seed([1; 32]);
    let node = Keypair::from_seed([2; 32]);
    let doc = TrustDoc {
        fleet: "hostile-test".into(),
        version: 1,
        keys: BTreeMap::from([(
            root.public(),
            BTreeSet::from([Role::Root, Role::Config, Role::Admit]),
        )]),
        root_threshold: 1,
        config_threshold: 1,
        revoked: BTreeSet::new(),
    };
    let chain = TrustChain::new(SignedTrust::sign(doc, &[&root]), &Ed25519).expect("genesis");
    let cert = NodeCert::issue(
        CertBody {
            fleet: chain.fleet_id(),
            node_key: node.public(),
            name: "target".into(),
            tags: BTreeMap::new(),
            expires_millis: None,
            issuer: root.public(),
            trust_version: 1,
        },
        &root,
    );
    formats::write_key(&dir.join("node.key"), &node, Existing::Replace).expect("key");
    formats::write_cert(&dir.join("node.cert.json"), &cert, Existing::Replace).expect("cert");
    formats::save_chain(&chain, &dir.join("trust.json"), Existing::Replace).expect("chain");
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_from_the_network_is_counted_and_dropped() {
    let dir = tempfile::tempdir().expect("temporary directory");
    state_dir(dir.path());
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port")
        .port();
    let config = AgentConfig::parse(&format!(
        "state_dir = {:?}\nlisten = [\"127.0.0.1:{port}\"]\nmdns = false\n",
        dir.path().display().to_string()
    ))
    .expect("config");
    let (stop, stopped) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel();
    let agent = tokio::spawn(fleetmesh_runtime::run(
        config,
        async {
            let _ = stopped.await;
        },
        Some(started_tx),
    ));
    let started = tokio::time::timeout(Duration::from_secs(10), started_rx)
        .await
        .expect("the agent starts in time")
        .expect("the agent reports its start");
    let admin = &fleetmesh_runtime::admin::Target {
        endpoint: started.admin.expect("admin enabled"),
        token_file: None,
    };

    // The attacker: a fresh key nobody admitted, our protocol name, no
    // size limit of its own.
    let mut attacker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|_| {
            request_response::Behaviour::<Raw>::new(
                [(WIRE_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            )
        })
        .expect("behaviour")
        .build();
    let target: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
        .parse()
        .expect("address");
    let peer = libp2p::identity::Keypair::from(libp2p::identity::ed25519::Keypair::from(
        libp2p::identity::ed25519::SecretKey::try_from_bytes([2; 32]).expect("secret"),
    ))
    .public()
    .to_peer_id();
    attacker.add_peer_address(peer, target);
    let oversized = vec![0x55; MESSAGE_BYTES_MAX + 1];
    let garbage = vec![0xff; 64];
    let gossip = wire::encode(&Message::Gossip {
        updates: Vec::new(),
    })
    .expect("encodes");
    let behaviour = attacker.behaviour_mut();
    let ids = [
        behaviour.send_request(&peer, oversized),
        behaviour.send_request(&peer, garbage),
        behaviour.send_request(&peer, gossip),
    ];
    // Each request ends one way or another: acknowledged, or failed when
    // the agent refused to read it.
    let mut ended = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ended < ids.len() {
        let event = tokio::time::timeout_at(deadline, attacker.select_next_some())
            .await
            .expect("every request ends in time");
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { .. },
                ..
            })
            | SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => ended += 1,
            _ => {}
        }
    }

    // The agent counted each and still answers. The attacker may learn of
    // a refusal before the agent's loop has counted it: poll, bounded.
    let mut metrics = String::new();
    for _ in 0..50 {
        let (status, text) = fleetmesh_runtime::admin::call(admin, "/metrics", None)
            .await
            .expect("metrics");
        assert_eq!(status, 200);
        metrics = text;
        if metric(&metrics, "fleetmesh_runtime_messages_oversized_total") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&metrics, "fleetmesh_runtime_messages_oversized_total"),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "fleetmesh_decode_errors_total"),
        1,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "fleetmesh_unadmitted_messages_total"),
        1,
        "{metrics}"
    );
    let (status, members) = fleetmesh_runtime::admin::call(admin, "/v1/members", None)
        .await
        .expect("members");
    assert_eq!(status, 200);
    let members: serde_json::Value = serde_json::from_str(&members).expect("json");
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "the stranger is no member: {members}"
    );

    // Publishing junk through the admin API is refused with a reason.
    let (status, body) =
        fleetmesh_runtime::admin::call(admin, "/v1/publish", Some("{\"format\": 7}".into()))
            .await
            .expect("publish");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("is not a trust chain"), "{body}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the agent stops in time")
        .expect("the agent task")
        .expect("the agent stops cleanly");
}
