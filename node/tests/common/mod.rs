//! The test fleet every node test file runs: node keys derived from small
//! numbers, one operator holding root, config, admit and approve, and the
//! certified identity of node `n`; and the one harness that drives their
//! agents ([`mesh::Mesh`] over [`links::Links`]).

#[allow(dead_code, reason = "each test file uses its own part of the harness")]
pub mod links;
#[allow(dead_code, reason = "each test file uses its own part of the harness")]
pub mod mesh;
#[allow(dead_code, reason = "each test file uses its own part of the harness")]
pub mod site;

use fleetmesh_node::Entry;
use fleetmesh_node::crdt::{
    CertBody, ConfigEntry, ConfigStore, Ctx, Ed25519, Keypair, NodeCert, PublicKey, Release,
    Replica, Role, SignedRelease, SignedTrust, TrustChain, TrustDoc, Value, Verifier,
};
use fleetmesh_node::{Identity, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

/// The key of node `n`.
pub fn key(n: u64) -> Keypair {
    Keypair::from_seed(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// The test fleet's stop key: it holds `stop` and nothing else.
#[allow(dead_code, reason = "each test file uses its own part of the fleet")]
pub fn stopper() -> Keypair {
    key(u64::MAX - 1)
}

/// The test fleet's operator (root, config, admit and approve, not stop)
/// and genesis.
pub static FLEET: LazyLock<(Keypair, SignedTrust)> = LazyLock::new(|| {
    let operator = key(u64::MAX);
    let doc = TrustDoc::genesis(
        "test",
        BTreeMap::from([
            (
                operator.public(),
                BTreeSet::from([Role::Root, Role::Config, Role::Admit, Role::Approve]),
            ),
            (stopper().public(), BTreeSet::from([Role::Stop])),
        ]),
    );
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

/// The merge context of an operator's laptop: it trusts its own chain and
/// admits every node (it merges config only).
fn laptop_ctx(chain: &TrustChain) -> Ctx<'_> {
    fn anyone(_: &PublicKey) -> bool {
        true
    }
    Ctx {
        trust: chain,
        admitted: &anyone,
        verifier: &Ed25519,
        now_millis: 0,
    }
}

/// An operator's own copy of trust and config, as the CLI keeps it: writes
/// signed changes and releases for agents to spread.
#[allow(dead_code, reason = "each test file uses its own part of the fleet")]
pub struct Laptop {
    chain: TrustChain,
    store: ConfigStore,
}

#[allow(dead_code, reason = "each test file uses its own part of the fleet")]
impl Laptop {
    /// A laptop holding the test genesis and no config.
    pub fn new() -> Laptop {
        let (_, genesis) = &*FLEET;
        Laptop {
            chain: TrustChain::new(genesis.clone(), &Ed25519).unwrap(),
            store: ConfigStore::new(),
        }
    }

    /// Adopts a new trust document and returns it as an entry to publish.
    pub fn trust(&mut self, doc: SignedTrust) -> Entry {
        self.chain.insert(doc.clone(), &Ed25519).unwrap();
        Replica::trust_changed(&mut self.store, &laptop_ctx(&self.chain));
        Entry::Trust(Box::new(doc))
    }

    /// A change making document `doc` hold `content` by `author`, and
    /// release `version` of the result.
    pub fn write_doc(
        &mut self,
        author: &Keypair,
        doc: &str,
        content: &Value,
        version: u64,
        expires_millis: Option<u64>,
    ) -> Vec<Entry> {
        let trust_version = self.chain.head().doc.version;
        let change = self
            .store
            .author(
                doc,
                author,
                trust_version,
                content,
                &laptop_ctx(&self.chain),
            )
            .unwrap()
            .unwrap();
        let mut heads = self.store.heads(doc);
        heads.sort_unstable();
        let mut release = SignedRelease::new(Release {
            rollout: None,
            doc: doc.into(),
            version,
            heads,
            expires_millis,
            trust_version,
        });
        release.sign(author);
        vec![
            Entry::Config(Box::new(ConfigEntry::Change(change))),
            Entry::Release(Box::new(release)),
        ]
    }
}
