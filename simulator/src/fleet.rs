//! The simulated fleet's keys: operators, trust document, one certified
//! key per node, and the mapping between node indices and agent ids.
//!
//! Every key is derived from the run's seed, so a run is reproducible and
//! a failing seed replays with the same keys. Agent ids are hashes of the
//! agents' public keys, as in the runtime; the simulator maps them back to
//! node indices with a table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};

use fleetmesh_node::crdt::{
    CertBody, Digest, Ed25519, Keypair, NodeCert, PublicKey, Role, SignatureCheck, SignedTrust,
    TrustDoc, Verifier,
};
use fleetmesh_node::{Identity, NodeId};
use rand::Rng;

use crate::rng::Seeds;

/// A hasher with a fixed seed: lookups only, never iterated, but fixed
/// anyway so nothing about a run depends on the process.
type Fixed = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// The keys of one simulated fleet.
pub struct Fleet {
    /// Holds the root role of the genesis.
    pub root: Keypair,
    /// Holds `config`, `admit` and `approve`.
    pub operator: Keypair,
    /// Holds `config`: the second config key, for scenarios that revoke one.
    pub operator_2: Keypair,
    /// The genesis trust document every agent is installed with.
    pub genesis: SignedTrust,
    /// The verifier all agents share.
    pub verifier: Arc<dyn Verifier>,
    keys: Vec<Keypair>,
    certs: Vec<NodeCert>,
    ids: Vec<NodeId>,
    index: HashMap<NodeId, u32, Fixed>,
}

/// The key of stream `name`/`index`: every simulated key comes from the run's seed.
pub(crate) fn keypair(seeds: &Seeds, name: &str, index: u64) -> Keypair {
    let mut seed = [0; 32];
    seeds.rng(name, index).fill_bytes(&mut seed);
    Keypair::from_seed(seed)
}

impl Fleet {
    /// A fleet of `count` nodes, node `i` certified with `tags[i]`; the
    /// operator key holds `stop` too when `stop` is set (only scenarios with
    /// an emergency stop ask, so every other run's genesis, and trace,
    /// stays as it was).
    pub fn new(seeds: &Seeds, tags: &[BTreeMap<String, String>], stop: bool) -> Fleet {
        let root = keypair(seeds, "root-key", 0);
        let operator = keypair(seeds, "operator-key", 0);
        let operator_2 = keypair(seeds, "operator-key", 1);
        let doc = TrustDoc {
            fleet: "simulated".into(),
            version: 1,
            keys: BTreeMap::from([
                (root.public(), BTreeSet::from([Role::Root])),
                (operator.public(), {
                    let mut roles = BTreeSet::from([Role::Config, Role::Admit, Role::Approve]);
                    if stop {
                        roles.insert(Role::Stop);
                    }
                    roles
                }),
                (operator_2.public(), BTreeSet::from([Role::Config])),
            ]),
            root_threshold: 1,
            config_threshold: 1,
            revoked: BTreeSet::new(),
        };
        let genesis = SignedTrust::sign(doc, &[&root]);
        let fleet_id = genesis.digest();
        let keys: Vec<Keypair> = (0..tags.len() as u64)
            .map(|index| keypair(seeds, "node-key", index))
            .collect();
        let certs = keys
            .iter()
            .zip(tags)
            .enumerate()
            .map(|(index, (key, tags))| {
                let body = CertBody {
                    fleet: fleet_id,
                    node_key: key.public(),
                    name: format!("node-{index}"),
                    tags: tags.clone(),
                    expires_millis: None,
                    issuer: operator.public(),
                    trust_version: 1,
                };
                NodeCert::issue(body, &operator)
            })
            .collect();
        let ids: Vec<NodeId> = keys.iter().map(|key| key.public().node_id()).collect();
        let index = ids
            .iter()
            .enumerate()
            .map(|(index, &id)| (id, index as u32))
            .collect();
        Fleet {
            root,
            operator,
            operator_2,
            genesis,
            verifier: Arc::new(CachedVerifier::default()),
            keys,
            certs,
            ids,
            index,
        }
    }

    /// The identity node `index` runs with.
    pub fn identity(&self, index: u32) -> Identity {
        Identity {
            keypair: self.keys[index as usize].clone(),
            cert: self.certs[index as usize].clone(),
            genesis: self.genesis.clone(),
        }
    }

    /// The id of node `index`.
    pub fn node_id(&self, index: u32) -> NodeId {
        self.ids[index as usize]
    }

    /// The index of the node named `id`.
    pub fn node_index(&self, id: NodeId) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> u32 {
        self.keys.len() as u32
    }

    /// The public key of node `index`.
    pub fn node_key(&self, index: u32) -> PublicKey {
        self.keys[index as usize].public()
    }

    /// The key pair of node `index`: what its host holds, and a hostile
    /// agent or anyone who stole it signs with.
    pub(crate) fn node_keypair(&self, index: u32) -> &Keypair {
        &self.keys[index as usize]
    }
}

/// Most verdicts remembered before the cache starts over.
const CACHE_MAX: usize = 1 << 20;

/// Ed25519 behind a cache of verdicts shared by every simulated agent: a
/// thousand agents checking one certificate cost one verification. A hit
/// returns exactly what ed25519 returned for the same key, digest and
/// signature, so the cache changes a run's speed and nothing else.
#[derive(Default)]
pub struct CachedVerifier {
    verdicts: Mutex<HashMap<(PublicKey, Digest, fleetmesh_node::crdt::Signature), bool, Fixed>>,
}

impl Verifier for CachedVerifier {
    fn verify(&self, check: &SignatureCheck) -> bool {
        let key = (check.key, check.digest, check.signature);
        let Ok(mut verdicts) = self.verdicts.lock() else {
            return Ed25519.verify(check);
        };
        if let Some(&verdict) = verdicts.get(&key) {
            return verdict;
        }
        let verdict = Ed25519.verify(check);
        if verdicts.len() >= CACHE_MAX {
            verdicts.clear();
        }
        verdicts.insert(key, verdict);
        verdict
    }

    /// Answers hits from the cache and verifies the misses together, so
    /// they share ed25519's per-key work.
    fn verify_each(&self, checks: &[SignatureCheck]) -> Vec<bool> {
        let Ok(mut verdicts) = self.verdicts.lock() else {
            return Ed25519.verify_each(checks);
        };
        let mut answers: Vec<Option<bool>> = checks
            .iter()
            .map(|check| {
                verdicts
                    .get(&(check.key, check.digest, check.signature))
                    .copied()
            })
            .collect();
        let misses: Vec<SignatureCheck> = checks
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| answer.is_none())
            .map(|(check, _)| *check)
            .collect();
        let mut fresh = Ed25519.verify_each(&misses).into_iter();
        for (check, answer) in checks.iter().zip(&mut answers) {
            if answer.is_none() {
                let verdict = fresh.next().unwrap_or(false);
                if verdicts.len() >= CACHE_MAX {
                    verdicts.clear();
                }
                verdicts.insert((check.key, check.digest, check.signature), verdict);
                *answer = Some(verdict);
            }
        }
        answers
            .into_iter()
            .map(|answer| answer == Some(true))
            .collect()
    }
}
