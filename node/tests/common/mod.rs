//! The test fleet both agent-level test files run: node keys derived from
//! small numbers, one operator holding root, config and admit, and the
//! certified identity of node `n`.

use fleetmesh_node::crdt::{
    CertBody, Ed25519, Keypair, NodeCert, Role, SignedTrust, TrustDoc, Verifier,
};
use fleetmesh_node::{Identity, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

/// The key of node `n`.
pub fn key(n: u64) -> Keypair {
    Keypair::from_seed(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// The test fleet's operator (root, config and admit) and genesis.
pub static FLEET: LazyLock<(Keypair, SignedTrust)> = LazyLock::new(|| {
    let operator = key(u64::MAX);
    let doc = TrustDoc {
        fleet: "test".into(),
        version: 1,
        keys: BTreeMap::from([(
            operator.public(),
            BTreeSet::from([Role::Root, Role::Config, Role::Admit]),
        )]),
        root_threshold: 1,
        config_threshold: 1,
        revoked: BTreeSet::new(),
    };
    let genesis = SignedTrust::sign(doc, &[&operator]);
    (operator, genesis)
});

/// The membership id of node `n`.
pub fn id(n: u64) -> NodeId {
    key(n).public().node_id()
}

/// Node `n`'s key with its certificate, under the test genesis.
pub fn identity(n: u64) -> Identity {
    let (operator, genesis) = &*FLEET;
    let body = CertBody {
        fleet: genesis.digest(),
        node_key: key(n).public(),
        name: format!("node-{n}"),
        tags: BTreeMap::new(),
        expires_millis: None,
        issuer: operator.public(),
        trust_version: 1,
    };
    Identity {
        keypair: key(n),
        cert: NodeCert::issue(body, operator),
        genesis: genesis.clone(),
    }
}

/// A verifier as agents use it.
pub fn verifier() -> Arc<dyn Verifier> {
    Arc::new(Ed25519)
}
