//! The `attack` fault's forgeries: what an admitted agent turned hostile
//! sends, one kind per attempt, taken in turn. Every kind must be refused
//! by every agent, and the checkers hold the agents to it: none may apply
//! a forgery, roll back, miss a legitimate release or stop.
//!
//! The kinds, by `attempt % ATTACK_KINDS`:
//!
//! 0. a well-signed config change by the attacker's own key, which holds
//!    no `config` role;
//! 1. a change naming an operator as author, signed over something else;
//! 2. a release signed by the attacker;
//! 3. a release carrying an operator's signature over something else;
//! 4. a replay of a legitimate entry published earlier (old releases are
//!    rollback attempts);
//! 5. random bytes;
//! 6. a legitimate message with one byte changed or its tail cut;
//! 7. the next trust document, revoking every operator, signed by the
//!    attacker and every retired root;
//! 8. a change automerge 0.12 panics *parsing*
//!    ([`hostile::parse_panic`]), naming an operator as author, with a zero
//!    signature: the shape check refuses it before automerge sees it;
//! 9. a change automerge 0.12 panics *applying* ([`hostile::apply_panic`]),
//!    signed by the config key the attacker compromised (the fault's
//!    `config_key`), or else by the attacker's own key. Signed by a trusted
//!    key it verifies, reaches automerge and panics there: the agent's
//!    guard catches it and the signed change becomes evidence that
//!    quarantines the key on every replica;
//! 10. the same change signed by the key the root revoked last (an
//!     operator's or a node's), under the trust version before its
//!     revocation, or else by the attacker's own key;
//! 11. a verification flood: one message holding as many forged health
//!     reports as the wire's decoder takes (fewer if the fault's floods
//!     would carry more than [`FLOOD_ENTRIES_PER_ATTACK`] in all), each
//!     naming another agent as its writer and carrying the attacker's
//!     signature, so that each costs its receiver a signature verification
//!     before it is refused.

use std::collections::{BTreeMap, BTreeSet};

use fleetmesh_node::Entry;
use fleetmesh_node::crdt::config::hostile;
use fleetmesh_node::crdt::{
    ConfigEntry, ConfigStore, Digest, HealthReport, HealthState, Hlc, Keypair, PublicKey, Release,
    Role, Signature, SignedChange, SignedHealth, SignedRelease, SignedTrust, TrustChain, Value,
};
use fleetmesh_node::wire::{self, Message, StateMessage};
use rand::RngExt;

use super::{Laptop, Operators};
use crate::scenario::operators::OperatorKey;

/// Kinds of attack attempt, taken in turn.
const ATTACK_KINDS: u32 = 12;
/// Longest run of random bytes one malformed attempt sends.
const GARBAGE_BYTES_MAX: usize = 2_048;
/// The document the crafted automerge changes claim to write: one no
/// operator writes, so the change is the first of its author there and
/// nothing but its own bytes decides its fate.
const CRAFTED_DOC: &str = "crafted";
/// Bytes of a flood message left to its framing: the version byte, two
/// variant tags and two length prefixes.
const FLOOD_FRAMING_BYTES: usize = 16;
/// Most forged entries the floods of one `attack` fault carry together.
/// The simulator's clock stands still while an agent verifies, so what a
/// flood tests does not grow with its length, while each entry costs the
/// run about 2 µs of the receiver's real work (decoding, hashing, a
/// verdict-cache lookup: measured on attack-forgeries). This bounds what
/// floods add to a run to about 2 s whatever the fault's `attempts`; a
/// fault of up to 142 floods (1,715 attempts) sends full messages.
const FLOOD_ENTRIES_PER_ATTACK: usize = 1 << 20;

/// One attack attempt, as the attacker sends it.
pub struct Attempt {
    /// The message.
    pub bytes: Vec<u8>,
    /// Forged entries of a flood it carries, each costing its receiver a
    /// signature verification.
    pub flood_entries: u64,
    /// A trusted config key that signed an unappliable change here for
    /// the first time: from now on every running agent must quarantine it.
    pub convicts: Option<PublicKey>,
}

impl Attempt {
    /// An attempt that is just `bytes`.
    fn plain(bytes: Vec<u8>) -> Attempt {
        Attempt {
            bytes,
            flood_entries: 0,
            convicts: None,
        }
    }
}

/// A flood message, built once per attacker: the same forged entries each
/// time cost an agent as much as new ones (it keeps none of them), and the
/// simulator's verdict cache then spares the run's wall clock.
pub(super) struct Flood {
    bytes: Vec<u8>,
    entries: u64,
}

impl Operators {
    /// Attack attempt `attempt` of `attempts` by `attacker` (an admitted
    /// node's key), holding `config_key` if the fault gives one, at true
    /// time `now_millis`.
    pub fn attack(
        &mut self,
        attacker: &Keypair,
        config_key: Option<OperatorKey>,
        (attempt, attempts): (u32, u32),
        now_millis: u64,
    ) -> Attempt {
        let mut convicts = None;
        let entry = match attempt % ATTACK_KINDS {
            0 => self.change_by(attacker, attempt, now_millis),
            1 => self.change_with_forged_signature(attempt, now_millis),
            2 => self.release_by(attacker, attempt),
            3 => self.release_with_forged_signature(attempt),
            4 => self.replay(attempt),
            5 => return Attempt::plain(self.garbage()),
            6 => return Attempt::plain(self.mutated(attempt)),
            7 => self.trust_by(attacker),
            8 => self.unparsable(),
            9 => {
                let (entry, convicted) =
                    self.unappliable_by_config_key(attacker, config_key, now_millis);
                convicts = convicted;
                entry
            }
            10 => self.unappliable_by_revoked_key(attacker),
            _ => {
                let floods = (attempts / ATTACK_KINDS).max(1) as usize;
                let entries_max = FLOOD_ENTRIES_PER_ATTACK / floods;
                let flood = self.flood(attacker, entries_max, now_millis);
                return Attempt {
                    bytes: flood.bytes.clone(),
                    flood_entries: flood.entries,
                    convicts: None,
                };
            }
        };
        let mut attempt = Attempt::plain(push(entry.into_iter().collect()));
        attempt.convicts = convicts;
        attempt
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
            rollout: None,
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
        let mut bytes = push(entry.into_iter().collect());
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

    /// Change bytes that panic automerge's parser, in an envelope naming
    /// an operator as author, under the fleet's trust version, with a zero
    /// signature (no signature can be made: the signed digest names the
    /// change hash, which only a parse yields).
    fn unparsable(&self) -> Option<Entry> {
        let operator = self.keys[&OperatorKey::Operator].public();
        let change = SignedChange {
            doc: CRAFTED_DOC.into(),
            trust_version: self.truth.trust_version,
            author: operator,
            change: hostile::parse_panic(&operator),
            signature: Signature::from_bytes([0; 64]),
        };
        Some(Entry::Config(Box::new(ConfigEntry::Change(change))))
    }

    /// The change that panics automerge when applied, signed by
    /// `config_key` under the trust its laptop knows, or by the attacker
    /// under the fleet's. The first one a trusted config key signs convicts
    /// it: it is returned, and the other operators, who see the evidence
    /// the fleet gossips, quarantine the key and write on without its
    /// changes, as after an equivocation.
    fn unappliable_by_config_key(
        &mut self,
        attacker: &Keypair,
        config_key: Option<OperatorKey>,
        now_millis: u64,
    ) -> (Option<Entry>, Option<PublicKey>) {
        let Some(author) = config_key else {
            return (unappliable(attacker, self.truth.trust_version), None);
        };
        let key = self.keys[&author].clone();
        let trust_version = self.laptops[&author].chain.head().doc.version;
        let Some(entry) = unappliable(&key, trust_version) else {
            return (None, None);
        };
        // A revoked key's change is refused unapplied wherever the
        // revocation is known: it convicts nobody everywhere.
        if self.revoked.contains(&author) || !self.convicted.insert(author) {
            return (Some(entry), None);
        }
        if let Entry::Config(change) = &entry {
            self.share_with_others(author, vec![ConfigEntry::clone(change)], now_millis);
        }
        (Some(entry), Some(key.public()))
    }

    /// The change that panics automerge when applied, signed by the key
    /// the root revoked last under the trust version before it did, or by
    /// the attacker if none is revoked yet.
    fn unappliable_by_revoked_key(&self, attacker: &Keypair) -> Option<Entry> {
        let Some(key) = self.revoked_keys.last() else {
            return unappliable(attacker, self.truth.trust_version);
        };
        let revoked_at = self.truth.revoked.get(&key.public()).copied()?;
        unappliable(key, revoked_at.saturating_sub(1).max(1))
    }

    /// `attacker`'s flood message of at most `entries_max` entries, built
    /// the first time it is asked for.
    fn flood(&mut self, attacker: &Keypair, entries_max: usize, now_millis: u64) -> &Flood {
        let nodes = &self.nodes;
        self.floods
            .entry((attacker.public(), entries_max))
            .or_insert_with(|| build_flood(attacker, nodes, entries_max, now_millis))
    }
}

/// The change bytes that panic automerge applying them, written and
/// signed by `signer` under `trust_version`.
fn unappliable(signer: &Keypair, trust_version: u64) -> Option<Entry> {
    let bytes = hostile::apply_panic(&signer.public());
    let change = SignedChange::sign(CRAFTED_DOC, trust_version, signer, bytes).ok()?;
    Some(Entry::Config(Box::new(ConfigEntry::Change(change))))
}

/// One message holding as many forged health reports as the wire's
/// decoder takes, at most `entries_max`, dated `now_millis`, each naming
/// one of the other `nodes` as its writer, all carrying one signature the
/// attacker made: well-formed, so only a full verification under the
/// named node's key refuses it.
fn build_flood(
    attacker: &Keypair,
    nodes: &[Keypair],
    entries_max: usize,
    now_millis: u64,
) -> Flood {
    let victims: Vec<PublicKey> = nodes
        .iter()
        .map(Keypair::public)
        .filter(|key| *key != attacker.public())
        .collect();
    if victims.is_empty() {
        return Flood {
            bytes: Vec::new(),
            entries: 0,
        };
    }
    let report = |index: usize| HealthReport {
        node: victims[index % victims.len()],
        check: format!("flood-{index}"),
        state: HealthState::Unhealthy,
        at: Hlc {
            millis: now_millis,
            counter: 0,
        },
        detail: String::new(),
        cause: None,
    };
    let signature = SignedHealth::sign(report(0), attacker).signature;
    // At most as many as the message's bytes hold; every entry takes over
    // a hundred, so the loop ends within MESSAGE_BYTES_MAX / 100 turns.
    let mut entries = Vec::new();
    let mut bytes = FLOOD_FRAMING_BYTES;
    while entries.len() < entries_max {
        let entry = Entry::Health(Box::new(SignedHealth {
            report: report(entries.len()),
            signature,
        }));
        bytes += fleetmesh_node::wire::encoded_len(&entry);
        if bytes > fleetmesh_node::limits::MESSAGE_BYTES_MAX {
            break;
        }
        entries.push(entry);
    }
    // The decoder's limit also counts the memory it allocates, so fewer
    // fit than the bytes allow: keep the longest prefix it takes (a
    // binary search, about 14 decodes, once per attacker and run).
    let decodes = |count: usize| wire::decode(&push(entries[..count].to_vec())).is_ok();
    let (mut fits, mut too_many) = (0, entries.len() + 1);
    while too_many - fits > 1 {
        let middle = fits + (too_many - fits) / 2;
        if decodes(middle) {
            fits = middle;
        } else {
            too_many = middle;
        }
    }
    entries.truncate(fits);
    Flood {
        bytes: push(entries),
        entries: fits as u64,
    }
}

/// `entries` as one push message.
fn push(entries: Vec<Entry>) -> Vec<u8> {
    let message = Message::State(StateMessage::Push {
        entries,
        announces: Vec::new(),
    });
    wire::encode(&message).unwrap_or_default()
}

fn nonce_digest(attempt: u32) -> Digest {
    Digest::of_bytes("fleetmesh simulator forgery", &attempt.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_fills_one_message_that_decodes_whole() {
        let nodes: Vec<Keypair> = (0..5u8)
            .map(|seed| Keypair::from_seed([seed; 32]))
            .collect();
        let flood = build_flood(&nodes[0], &nodes, usize::MAX, 1_000);
        assert!(flood.bytes.len() <= fleetmesh_node::limits::MESSAGE_BYTES_MAX);
        // Thousands of reports, and one more would not decode.
        assert!(flood.entries > 4_000, "{}", flood.entries);
        let decoded = wire::decode(&flood.bytes);
        let Ok(Message::State(StateMessage::Push { entries, .. })) = decoded else {
            panic!("the flood does not decode: {decoded:?}");
        };
        assert_eq!(entries.len() as u64, flood.entries);
        let mut one_more = entries.clone();
        one_more.push(one_more[0].clone());
        assert!(wire::decode(&push(one_more)).is_err(), "room for one more");
        let writers: BTreeSet<PublicKey> = entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Health(signed) => Some(signed.report.node),
                _ => None,
            })
            .collect();
        let others: BTreeSet<PublicKey> = nodes[1..].iter().map(Keypair::public).collect();
        assert_eq!(
            writers, others,
            "every other node is named, the attacker never"
        );
        assert_eq!(build_flood(&nodes[0], &nodes, 100, 1_000).entries, 100);
    }
}
