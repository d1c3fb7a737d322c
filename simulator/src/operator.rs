//! The fleet's operators, as the simulator plays them: the root key, two
//! config keys, the documents they write and the releases they sign, and a
//! hostile agent's forgeries.
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

use fleetmesh_node::crdt::{
    ConfigEntry, ConfigStore, Ctx, Digest, Hlc, IdempotencyKey, Keypair, LedgerRecord, PublicKey,
    RecordKind, Release, Replica, Role, SignedChange, SignedRecord, SignedRelease, SignedTrust,
    TrustChain, Value, Verifier,
};
use fleetmesh_node::state::Entry;
use fleetmesh_node::wire::{self, Message, StateMessage};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::fleet::{Fleet, keypair};
use crate::rng::Seeds;
use crate::scenario::{Content, OperatorKey, Publication, TrustChange};

/// Kinds of attack attempt, taken in turn.
const ATTACK_KINDS: u32 = 8;
/// Longest run of random bytes one malformed attempt sends.
const GARBAGE_BYTES_MAX: usize = 2_048;
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
    /// Revoked keys, with the trust version that revoked them.
    pub revoked: BTreeMap<PublicKey, u64>,
    /// The newest trust version.
    pub trust_version: u64,
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
    /// Every agent's node key, by index.
    nodes: Vec<PublicKey>,
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
                .map(|index| fleet.node_key(index))
                .collect(),
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
            let mut release = SignedRelease::new(Release {
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
        for (other, laptop) in &mut self.laptops {
            if *other != author && !self.revoked.contains(other) {
                let pair = vec![
                    ConfigEntry::Change(first.clone()),
                    ConfigEntry::Change(second.clone()),
                ];
                laptop.with_ctx(verifier.as_ref(), now_millis, |store, ctx| {
                    store.merge_batch(pair, ctx)
                });
            }
        }
        let entry = |change: SignedChange| Entry::Config(Box::new(ConfigEntry::Change(change)));
        Some((entry(first), entry(second)))
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
            }
            TrustChange::RevokeNode(index) => {
                doc.revoked.insert(self.nodes[index as usize]);
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
        let approver = &self.keys[&OperatorKey::Operator];
        let trust_version = self.laptops[&OperatorKey::Operator]
            .chain
            .head()
            .doc
            .version;
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

    /// The bytes of attack attempt `attempt` by `attacker` (an admitted
    /// node's key) at true time `now_millis`. Every kind must be refused by
    /// every agent: checkers hold the agents to it.
    pub fn attack(&mut self, attacker: &Keypair, attempt: u32, now_millis: u64) -> Vec<u8> {
        let entry = match attempt % ATTACK_KINDS {
            0 => self.change_by(attacker, attempt, now_millis),
            1 => self.change_with_forged_signature(attempt, now_millis),
            2 => self.release_by(attacker, attempt),
            3 => self.release_with_forged_signature(attempt),
            4 => self.replay(attempt),
            5 => return self.garbage(),
            6 => return self.mutated(attempt),
            _ => self.trust_by(attacker),
        };
        let message = Message::State(StateMessage::Push {
            entries: entry.into_iter().collect(),
            announces: Vec::new(),
        });
        wire::encode(&message).unwrap_or_default()
    }

    /// A well-signed change by a key that holds no `config` role, made on
    /// a laptop that pretends it does.
    fn change_by(&self, signer: &Keypair, attempt: u32, now_millis: u64) -> Option<Entry> {
        let change = self.forged_change(signer, attempt, now_millis)?;
        Some(Entry::Config(Box::new(ConfigEntry::Change(change))))
    }

    /// A change claiming an operator as author, with a signature over
    /// something else.
    fn change_with_forged_signature(&self, attempt: u32, now_millis: u64) -> Option<Entry> {
        let operator = &self.keys[&OperatorKey::Operator];
        let mut change = self.forged_change(operator, attempt, now_millis)?;
        change.signature = operator.sign_digest(&nonce_digest(attempt));
        Some(Entry::Config(Box::new(ConfigEntry::Change(change))))
    }

    /// A change by `signer` on a laptop whose made-up fleet lists it as a
    /// config key.
    fn forged_change(
        &self,
        signer: &Keypair,
        attempt: u32,
        now_millis: u64,
    ) -> Option<SignedChange> {
        let head = &self.trust.last()?.doc;
        let mut doc = head.clone();
        doc.version = 1;
        doc.keys = BTreeMap::from([(signer.public(), BTreeSet::from([Role::Root, Role::Config]))]);
        doc.root_threshold = 1;
        doc.revoked = BTreeSet::new();
        let genesis = SignedTrust::sign(doc, &[signer]);
        let mut laptop = Laptop {
            chain: TrustChain::new(genesis, self.verifier.as_ref()).ok()?,
            store: ConfigStore::new(),
        };
        let content = Value::Map(BTreeMap::from([(
            format!("forged-{attempt}"),
            Value::Str("rm -rf /".into()),
        )]));
        let mut change = laptop
            .with_ctx(self.verifier.as_ref(), now_millis, |store, ctx| {
                store.author("fleet", signer, 1, &content, ctx)
            })
            .ok()??;
        change.trust_version = head.version;
        change.signature = signer.sign_digest(&change.signing_digest(&change.key()?));
        Some(change)
    }

    /// A release signed by a key without the `config` role, of a version
    /// ahead of the fleet's.
    fn release_by(&self, signer: &Keypair, attempt: u32) -> Option<Entry> {
        let mut release = self.forged_release(attempt)?;
        release.sign(signer);
        Some(Entry::Release(Box::new(release)))
    }

    /// A release carrying an operator's signature over something else.
    fn release_with_forged_signature(&self, attempt: u32) -> Option<Entry> {
        let mut release = self.forged_release(attempt)?;
        let operator = &self.keys[&OperatorKey::Operator];
        release.signatures.insert(
            operator.public(),
            operator.sign_digest(&nonce_digest(attempt)),
        );
        Some(Entry::Release(Box::new(release)))
    }

    fn forged_release(&self, attempt: u32) -> Option<SignedRelease> {
        let version = self.truth.latest_release.get("fleet").copied().unwrap_or(0);
        Some(SignedRelease::new(Release {
            doc: "fleet".into(),
            version: version + 1 + u64::from(attempt % 3),
            heads: vec![nonce_digest(attempt)],
            expires_millis: None,
            trust_version: self.trust.last()?.doc.version,
        }))
    }

    /// A legitimate entry published earlier, sent again: old releases must
    /// not roll anyone back, old changes change nothing.
    fn replay(&self, attempt: u32) -> Option<Entry> {
        if self.published.is_empty() {
            return None;
        }
        let index = attempt as usize / ATTACK_KINDS as usize % self.published.len();
        Some(self.published[index].clone())
    }

    fn garbage(&mut self) -> Vec<u8> {
        let len = self.rng.random_range(1..=GARBAGE_BYTES_MAX);
        (0..len).map(|_| self.rng.random()).collect()
    }

    /// A legitimate message with one byte changed or its tail cut off.
    fn mutated(&mut self, attempt: u32) -> Vec<u8> {
        let entry = self.replay(attempt);
        let message = Message::State(StateMessage::Push {
            entries: entry.into_iter().collect(),
            announces: Vec::new(),
        });
        let mut bytes = wire::encode(&message).unwrap_or_default();
        if bytes.is_empty() {
            return bytes;
        }
        let at = self.rng.random_range(0..bytes.len());
        if self.rng.random::<bool>() {
            bytes[at] ^= self.rng.random_range(1..=255u8);
        } else {
            bytes.truncate(at);
        }
        bytes
    }

    /// The next trust version, revoking every operator, signed by the
    /// attacker and by every root the fleet has retired.
    fn trust_by(&self, attacker: &Keypair) -> Option<Entry> {
        let head = self.trust.last()?;
        let mut doc = head.doc.clone();
        doc.version += 1;
        doc.revoked.extend(self.keys.values().map(Keypair::public));
        doc.keys.insert(
            attacker.public(),
            BTreeSet::from([Role::Root, Role::Config]),
        );
        let mut signers: Vec<&Keypair> = self.old_roots.iter().collect();
        signers.push(attacker);
        Some(Entry::Trust(Box::new(SignedTrust::sign(doc, &signers))))
    }
}

fn nonce_digest(attempt: u32) -> Digest {
    Digest::of_bytes("fleetmesh simulator forgery", &attempt.to_le_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
