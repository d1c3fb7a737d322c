//! The fleet's operators, as the simulator plays them: the root key, two
//! config keys, the documents they write and the releases they sign, and a
//! hostile agent's forgeries ([`attack`]).
//!
//! Each config key writes from its own *laptop*: a trust chain and a config
//! store of its own, as the operator CLI keeps them. A laptop learns every
//! trust update except the one revoking its own key, so a revoked operator
//! goes on writing under the trust it last knew, which is exactly what the
//! fleet must refuse. The operators also keep the ground truth the
//! checkers judge agents against: which changes and releases were made
//! legitimately, and which by a key already revoked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_node::Entry;
use fleetmesh_node::crdt::{
    ConfigEntry, ConfigStore, Ctx, Digest, Hlc, IdempotencyKey, Keypair, LedgerRecord, PublicKey,
    RecordKind, Release, Replica, Role, SignedChange, SignedRecord, SignedRelease, SignedTrust,
    TrustChain, Value, Verifier, sign_resume, sign_stop,
};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::fleet::{Fleet, keypair};
use crate::rng::Seeds;
use crate::scenario::operators::{Content, OperatorKey, Publication, TrustChange};

mod attack;
pub use attack::Attempt;

/// Bytes of one generated config value (a hex string) with its key.
const GENERATED_ENTRY_BYTES: usize = 64;

/// One operator's own copy of the fleet's trust and config.
struct Laptop {
    chain: TrustChain,
    store: ConfigStore,
}

impl Laptop {
    fn with_ctx<T>(
        &mut self,
        verifier: &dyn Verifier,
        now_millis: u64,
        body: impl FnOnce(&mut ConfigStore, &Ctx<'_>) -> T,
    ) -> T {
        let admitted = |_: &PublicKey| true;
        let ctx = Ctx {
            trust: &self.chain,
            admitted: &admitted,
            verifier,
            now_millis,
        };
        body(&mut self.store, &ctx)
    }
}

/// What the operators did, for the checkers.
#[derive(Default)]
pub struct Truth {
    /// Changes written by keys trusted when they wrote them.
    pub legit_changes: BTreeSet<Digest>,
    /// Changes written by keys already revoked.
    pub rogue_changes: BTreeSet<Digest>,
    /// Who wrote each change.
    pub authors: BTreeMap<Digest, PublicKey>,
    /// Releases signed by keys trusted then: document and version.
    pub legit_releases: BTreeMap<Digest, (String, u64)>,
    /// Releases signed by a key already revoked, with that key.
    pub rogue_releases: BTreeMap<Digest, PublicKey>,
    /// The newest legitimate release per document.
    pub latest_release: BTreeMap<String, u64>,
    /// Revoked keys, operators' and nodes', with the trust version that
    /// revoked them.
    pub revoked: BTreeMap<PublicKey, u64>,
    /// The newest trust version.
    pub trust_version: u64,
    /// Releases whose content breaks checks on every host that runs it,
    /// with those checks.
    pub breaking: BTreeMap<Digest, Vec<String>>,
}

/// The operators of one simulated fleet.
pub struct Operators {
    seeds: Seeds,
    root: Keypair,
    /// Roots made so far; the next rotation derives root number `roots`.
    roots: u64,
    /// Every root key ever used, newest last: a hostile agent may hold an
    /// old one.
    old_roots: Vec<Keypair>,
    keys: BTreeMap<OperatorKey, Keypair>,
    revoked: BTreeSet<OperatorKey>,
    laptops: BTreeMap<OperatorKey, Laptop>,
    /// The trust documents signed, genesis first.
    trust: Vec<SignedTrust>,
    /// Legitimate entries published, for replay attacks.
    published: Vec<Entry>,
    /// Every agent's node key, by index: a hostile agent names the others
    /// in its forgeries, and may hold a revoked one's.
    nodes: Vec<Keypair>,
    /// Every key the root revoked, operator or node, newest last.
    revoked_keys: Vec<Keypair>,
    /// Config keys an attacker has signed an unappliable change with.
    convicted: BTreeSet<OperatorKey>,
    /// Each attacker's flood message by its most entries, built once.
    floods: BTreeMap<(PublicKey, usize), attack::Flood>,
    verifier: Arc<dyn Verifier>,
    rng: ChaCha8Rng,
    truth: Truth,
}

impl Operators {
    /// The operators of `fleet`, holding its genesis.
    pub fn new(fleet: &Fleet, seeds: &Seeds) -> Operators {
        let verifier = fleet.verifier.clone();
        let chain = || {
            TrustChain::new(fleet.genesis.clone(), verifier.as_ref())
                .expect("the simulated genesis verifies")
        };
        let keys = BTreeMap::from([
            (OperatorKey::Operator, fleet.operator.clone()),
            (OperatorKey::Operator2, fleet.operator_2.clone()),
        ]);
        let laptops = OperatorKey::ALL
            .into_iter()
            .map(|key| {
                let laptop = Laptop {
                    chain: chain(),
                    store: ConfigStore::new(),
                };
                (key, laptop)
            })
            .collect();
        Operators {
            seeds: *seeds,
            root: fleet.root.clone(),
            roots: 1,
            old_roots: Vec::new(),
            keys,
            revoked: BTreeSet::new(),
            laptops,
            trust: vec![fleet.genesis.clone()],
            published: Vec::new(),
            nodes: (0..fleet.len())
                .map(|index| fleet.node_keypair(index).clone())
                .collect(),
            revoked_keys: Vec::new(),
            convicted: BTreeSet::new(),
            floods: BTreeMap::new(),
            verifier: verifier.clone(),
            rng: seeds.rng("operators", 0),
            truth: Truth {
                trust_version: 1,
                ..Truth::default()
            },
        }
    }

    /// The public half of an operator key.
    pub fn key(&self, key: OperatorKey) -> PublicKey {
        self.keys[&key].public()
    }

    /// What the operators did.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Writes `publication` at true time `now_millis`; returns the entries
    /// to hand to an agent (the change, then the release), or why the
    /// operator's own tooling refused.
    pub fn publish(
        &mut self,
        publication: &Publication,
        now_millis: u64,
    ) -> Result<Vec<Entry>, String> {
        let author = publication.author;
        let key = self.keys[&author].clone();
        let content = match &publication.content {
            Content::Inline(value) => value.clone(),
            Content::Generated { bytes } => self.generated(*bytes),
        };
        let verifier = self.verifier.clone();
        let laptop = self.laptops.get_mut(&author).expect("every key has one");
        let trust_version = laptop.chain.head().doc.version;
        let change = laptop
            .with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
                store.author(&publication.doc, &key, trust_version, &content, ctx)
            })
            .map_err(|error| error.to_string())?;
        let mut heads = laptop.store.heads(&publication.doc);
        heads.sort_unstable();
        let rogue = self.revoked.contains(&author);
        let mut entries = Vec::new();
        if let Some(change) = change {
            self.record_change(author, &change, rogue, now_millis);
            entries.push(Entry::Config(Box::new(ConfigEntry::Change(change))));
        }
        if publication.release {
            let version = self
                .truth
                .latest_release
                .get(&publication.doc)
                .map_or(1, |version| version + 1);
            let rollout = publication
                .rollout
                .as_ref()
                .map(|spec| spec.plan(version))
                .transpose()
                .map_err(|error| error.to_string())?;
            let mut release = SignedRelease::new(Release {
                rollout,
                doc: publication.doc.clone(),
                version,
                heads,
                expires_millis: publication
                    .expires_after
                    .map(|after| now_millis + after.as_millis() as u64),
                trust_version,
            });
            release.sign(&key);
            if rogue {
                self.truth
                    .rogue_releases
                    .insert(release.release.digest(), key.public());
            } else {
                let digest = release.release.digest();
                self.truth
                    .legit_releases
                    .insert(digest, (publication.doc.clone(), version));
                if !publication.breaks.is_empty() {
                    self.truth
                        .breaking
                        .insert(digest, publication.breaks.clone());
                }
                self.truth
                    .latest_release
                    .insert(publication.doc.clone(), version);
            }
            entries.push(Entry::Release(Box::new(release)));
        }
        if !rogue {
            self.published.extend(entries.iter().cloned());
        }
        Ok(entries)
    }

    /// Notes a change and hands it to the other trusted operators' laptops,
    /// so the next write builds on it (a rogue's change stays on its own).
    fn record_change(
        &mut self,
        author: OperatorKey,
        change: &SignedChange,
        rogue: bool,
        now_millis: u64,
    ) {
        let Some(hash) = change.key() else {
            return;
        };
        self.truth.authors.insert(hash, change.author);
        if rogue {
            self.truth.rogue_changes.insert(hash);
            return;
        }
        self.truth.legit_changes.insert(hash);
        let verifier = self.verifier.clone();
        for (key, laptop) in &mut self.laptops {
            if *key != author && !self.revoked.contains(key) {
                let entry = ConfigEntry::Change(change.clone());
                let _ = laptop.with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
                    store.merge(entry, ctx)
                });
            }
        }
    }

    /// Two different changes to `doc` by `author` with one sequence number:
    /// the second is made on a twin of the author's laptop that holds the
    /// same history but not the first. Both are signed by a trusted key, so
    /// each verifies alone; together they prove the key forked its history.
    pub fn equivocate(
        &mut self,
        author: OperatorKey,
        doc: &str,
        now_millis: u64,
    ) -> Option<(Entry, Entry)> {
        let key = self.keys[&author].clone();
        let verifier = self.verifier.clone();
        let laptop = self.laptops.get(&author)?;
        let mut twin = Laptop {
            chain: laptop.chain.clone(),
            store: ConfigStore::new(),
        };
        let history: Vec<ConfigEntry> = self
            .published
            .iter()
            .filter_map(|entry| match entry {
                Entry::Config(change) => Some(ConfigEntry::clone(change)),
                _ => None,
            })
            .collect();
        twin.with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
            store.merge_batch(history, ctx)
        });
        let write = |laptop: &mut Laptop, fork: &str| {
            let content = Value::Map(BTreeMap::from([(
                "fork".to_owned(),
                Value::Str(fork.to_owned()),
            )]));
            let trust_version = laptop.chain.head().doc.version;
            laptop
                .with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
                    store.author(doc, &key, trust_version, &content, ctx)
                })
                .ok()
                .flatten()
        };
        let first = write(self.laptops.get_mut(&author)?, "a")?;
        let second = write(&mut twin, "b")?;
        for change in [&first, &second] {
            let hash = change.key()?;
            self.truth.legit_changes.insert(hash);
            self.truth.authors.insert(hash, change.author);
        }
        // The other operators see both, quarantine the key and write on
        // without its changes from then on.
        let pair = vec![
            ConfigEntry::Change(first.clone()),
            ConfigEntry::Change(second.clone()),
        ];
        self.share_with_others(author, pair, now_millis);
        let entry = |change: SignedChange| Entry::Config(Box::new(ConfigEntry::Change(change)));
        Some((entry(first), entry(second)))
    }

    /// Merges `entries`, evidence against `author`, into the laptops of
    /// the other operators still trusted.
    fn share_with_others(
        &mut self,
        author: OperatorKey,
        entries: Vec<ConfigEntry>,
        now_millis: u64,
    ) {
        let verifier = self.verifier.clone();
        for (other, laptop) in &mut self.laptops {
            if *other != author && !self.revoked.contains(other) {
                let entries = entries.clone();
                laptop.with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
                    store.merge_batch(entries, ctx)
                });
            }
        }
    }

    /// Content of about `bytes` bytes, new in every value.
    fn generated(&mut self, bytes: usize) -> Value {
        let entries = (bytes / GENERATED_ENTRY_BYTES).max(1);
        let map = (0..entries)
            .map(|index| {
                let value: [u8; 24] = self.rng.random();
                (format!("key-{index:06}"), Value::Str(hex(&value)))
            })
            .collect();
        Value::Map(map)
    }

    /// Signs the next trust document making `change`; returns it for an
    /// agent to spread.
    pub fn change_trust(&mut self, change: TrustChange, now_millis: u64) -> Entry {
        let head = self.trust.last().expect("the genesis is held");
        let mut doc = head.doc.clone();
        doc.version += 1;
        let mut signers = vec![self.root.clone()];
        match change {
            TrustChange::Revoke(key) => {
                let public = self.keys[&key].public();
                doc.keys.remove(&public);
                doc.revoked.insert(public);
                self.revoked.insert(key);
                self.truth.revoked.insert(public, doc.version);
                self.revoked_keys.push(self.keys[&key].clone());
            }
            TrustChange::RevokeNode(index) => {
                let node = self.nodes[index as usize].clone();
                doc.revoked.insert(node.public());
                self.truth.revoked.insert(node.public(), doc.version);
                self.revoked_keys.push(node);
            }
            TrustChange::RotateRoot => {
                let next = keypair(&self.seeds, "root-key", self.roots);
                self.roots += 1;
                doc.keys.remove(&self.root.public());
                doc.keys.insert(next.public(), BTreeSet::from([Role::Root]));
                // The successor needs the old roots' threshold and its own.
                signers.push(next.clone());
                self.old_roots.push(std::mem::replace(&mut self.root, next));
            }
        }
        let signers: Vec<&Keypair> = signers.iter().collect();
        let signed = SignedTrust::sign(doc, &signers);
        self.truth.trust_version = signed.doc.version;
        self.trust.push(signed.clone());
        let verifier = self.verifier.clone();
        for (key, laptop) in &mut self.laptops {
            // The revoked operator's laptop never hears of its revocation,
            // nor (missing that version) of anything after it.
            if change == TrustChange::Revoke(*key) {
                continue;
            }
            if laptop
                .chain
                .insert(signed.clone(), verifier.as_ref())
                .is_ok()
            {
                laptop.with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
                    store.trust_changed(ctx)
                });
            }
        }
        let entry = Entry::Trust(Box::new(signed));
        self.published.push(entry.clone());
        entry
    }

    /// Approvals of `keys`, signed by `operator` (the key holding
    /// `approve`) at `signed_millis` and lapsing at `expires_millis`, both
    /// on the operators' clock, under the trust its laptop knows.
    pub fn approve(
        &self,
        keys: Vec<IdempotencyKey>,
        signed_millis: u64,
        expires_millis: u64,
    ) -> Vec<Entry> {
        let (approver, trust_version) = self.operator_signer();
        keys.into_iter()
            .map(|key| {
                let record = LedgerRecord {
                    key,
                    kind: RecordKind::Approval {
                        approver: approver.public(),
                        expires_millis,
                        trust_version,
                    },
                    author: approver.public(),
                    at: Hlc {
                        millis: signed_millis,
                        counter: 0,
                    },
                };
                Entry::Ledger(Box::new(SignedRecord::sign(record, approver)))
            })
            .collect()
    }
}

impl Operators {
    /// The operator key, which signs approvals and stops in scenarios, and
    /// the trust version its laptop runs.
    fn operator_signer(&self) -> (&Keypair, u64) {
        let version = self.laptops[&OperatorKey::Operator]
            .chain
            .head()
            .doc
            .version;
        (&self.keys[&OperatorKey::Operator], version)
    }

    /// An emergency stop of the agents `selector` names lasting `lasting`
    /// (a resume of them when `None`), signed by the operator key (it
    /// holds `stop` in scenarios with a stop) at `signed_millis`.
    pub fn stop(
        &self,
        selector: BTreeMap<String, String>,
        lasting: Option<Duration>,
        signed_millis: u64,
    ) -> Entry {
        let (stopper, trust_version) = self.operator_signer();
        let at = Hlc {
            millis: signed_millis,
            counter: 0,
        };
        let signed = match lasting {
            Some(lasting) => sign_stop(
                stopper,
                selector,
                at,
                lasting.as_millis() as u64,
                "simulated emergency stop".to_owned(),
                trust_version,
            ),
            None => sign_resume(stopper, selector, at, trust_version),
        };
        Entry::Ledger(Box::new(signed))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
