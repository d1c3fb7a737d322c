//! Keys, signatures and content digests.
//!
//! Every signature in fleetmesh is an ed25519 signature over a 32-byte
//! *signing digest*: blake3 in key-derivation mode, keyed by a domain tag
//! naming what is signed, over the canonical bincode encoding of the signed
//! body. The domain tag keeps a signature made for one purpose (say a lease
//! grant) from ever verifying as another (a config change); the fixed-size
//! digest keeps every signed message the same size whatever it covers.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// An ed25519 public key: names operators and agents everywhere.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The short id an agent with this key has in the membership protocol:
    /// the first eight bytes of the key's blake3 hash.
    pub fn node_id(&self) -> NodeId {
        let hash = blake3::hash(&self.0);
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&hash.as_bytes()[..8]);
        NodeId(u64::from_le_bytes(prefix))
    }

    /// The key as lowercase hex, the form operators see and type.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<PublicKey> {
        parse_hex(text).map(PublicKey)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight bytes identify a key to a reader; the full key is in `to_hex`.
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An ed25519 signature, stored as its two 32-byte halves so serde needs no
/// big-array support.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
}

impl Signature {
    fn from_dalek(signature: &ed25519_dalek::Signature) -> Signature {
        Signature {
            r: *signature.r_bytes(),
            s: *signature.s_bytes(),
        }
    }

    fn to_dalek(self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_components(self.r, self.s)
    }

    /// The 64 signature bytes (R then s), for files that show signatures
    /// as text.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut bytes = [0; 64];
        bytes[..32].copy_from_slice(&self.r);
        bytes[32..].copy_from_slice(&self.s);
        bytes
    }

    /// The signature whose bytes are `bytes` (R then s); whether it is valid
    /// is for a [`Verifier`] to say.
    pub fn from_bytes(bytes: [u8; 64]) -> Signature {
        let mut r = [0; 32];
        let mut s = [0; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Signature { r, s }
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{}", &hex(&self.r)[..16])
    }
}

/// A 32-byte blake3 digest: content addresses, signing digests, anti-entropy
/// digests.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `value`'s canonical encoding under `domain`.
    pub fn of<T: Serialize + ?Sized>(domain: &str, value: &T) -> Digest {
        let mut hasher = blake3::Hasher::new_derive_key(domain);
        hasher.update(&canonical(value));
        Digest(*hasher.finalize().as_bytes())
    }

    /// The digest of raw bytes under `domain`.
    pub fn of_bytes(domain: &str, bytes: &[u8]) -> Digest {
        let mut hasher = blake3::Hasher::new_derive_key(domain);
        hasher.update(bytes);
        Digest(*hasher.finalize().as_bytes())
    }

    /// The first eight bytes as an integer: how digests are bucketed.
    pub fn prefix(&self) -> u64 {
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(prefix)
    }

    /// XOR-combines `other` into `self`: an order-independent set digest.
    pub fn xor(&mut self, other: &Digest) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a ^= b;
        }
    }

    /// The digest as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Digest> {
        parse_hex(text).map(Digest)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The canonical encoding of a value: bincode's standard configuration. All
/// signed types use ordered collections, so equal values encode equally.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Encoding into a Vec fails only for types serde cannot describe, and
    // every signed type here is plain data.
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

/// The domain tags, one per kind of signed statement.
pub mod domain {
    /// A trust document.
    pub const TRUST: &str = "fleetmesh 2026-11 trust document v1";
    /// A node certificate.
    pub const CERT: &str = "fleetmesh 2026-11 node certificate v1";
    /// A config change envelope.
    pub const CHANGE: &str = "fleetmesh 2026-11 config change v1";
    /// A config release.
    pub const RELEASE: &str = "fleetmesh 2026-11 config release v1";
    /// A lease grant from a voter.
    pub const GRANT: &str = "fleetmesh 2026-11 lease grant v1";
    /// A lease claim by its holder.
    pub const LEASE: &str = "fleetmesh 2026-11 lease v1";
    /// A health report.
    pub const HEALTH: &str = "fleetmesh 2026-11 health report v1";
    /// A remediation ledger record.
    pub const LEDGER: &str = "fleetmesh 2026-11 ledger record v1";
    /// A content address of a stored item (not signed, only hashed).
    pub const CONTENT: &str = "fleetmesh 2026-11 content address v1";
}

/// A secret ed25519 key with its public half.
#[derive(Clone)]
pub struct Keypair {
    secret: SigningKey,
    public: PublicKey,
}

impl Keypair {
    /// The keypair whose secret is `seed`. Callers draw the seed from the
    /// operating system (runtime, CLI) or the run's seeded RNG (simulator).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let secret = SigningKey::from_bytes(&seed);
        let public = PublicKey(secret.verifying_key().to_bytes());
        Keypair { secret, public }
    }

    /// The 32 secret bytes, for the key file.
    pub fn seed(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs `body` under `domain`.
    pub fn sign<T: Serialize + ?Sized>(&self, domain: &str, body: &T) -> Signature {
        self.sign_digest(&Digest::of(domain, body))
    }

    /// Signs a signing digest made with [`Digest::of`].
    pub fn sign_digest(&self, digest: &Digest) -> Signature {
        Signature::from_dalek(&self.secret.sign(&digest.0))
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Keypair({:?})", self.public)
    }
}

/// One signature to check: who claims to have signed which digest.
#[derive(Clone, Copy, Debug)]
pub struct SignatureCheck {
    /// The claimed signer.
    pub key: PublicKey,
    /// The signing digest.
    pub digest: Digest,
    /// The signature.
    pub signature: Signature,
}

impl SignatureCheck {
    /// The check that `key` signed `body` under `domain`: how every signed
    /// entry names what its signature covers.
    pub fn of<T: Serialize + ?Sized>(
        key: PublicKey,
        domain: &str,
        body: &T,
        signature: Signature,
    ) -> SignatureCheck {
        SignatureCheck {
            key,
            digest: Digest::of(domain, body),
            signature,
        }
    }
}

/// Checks signatures. The runtime uses [`Ed25519`]; the simulator wraps it in
/// a cache shared by all simulated agents, which changes how fast a run is
/// and nothing else (a cache hit answers exactly what ed25519 answered).
pub trait Verifier: Send + Sync {
    /// Whether `check.signature` is `check.key`'s signature of `check.digest`.
    fn verify(&self, check: &SignatureCheck) -> bool;

    /// Whether every check passes (a cache may answer some from memory).
    fn verify_all(&self, checks: &[SignatureCheck]) -> bool {
        checks.iter().all(|check| self.verify(check))
    }

    /// The verdict of each check, in order, each exactly what
    /// [`Verifier::verify`] answers for it; an implementation may share
    /// work between checks by one key.
    fn verify_each(&self, checks: &[SignatureCheck]) -> Vec<bool> {
        checks.iter().map(|check| self.verify(check)).collect()
    }
}

/// Plain ed25519 verification, strict (RFC 8032 with canonical encodings
/// and no small-order keys). Batch verification is not used: it accepts
/// some crafted signatures that strict verification refuses, and two
/// replicas must never disagree about a signature because one of them
/// happened to check it in a batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ed25519;

impl Verifier for Ed25519 {
    fn verify(&self, check: &SignatureCheck) -> bool {
        VerifyingKey::from_bytes(&check.key.0).is_ok_and(|key| strict(&key, check))
    }

    /// Decompresses each distinct key once: about a tenth of a
    /// verification, saved on every further signature by that key (a
    /// batch of config changes comes from a handful of authors). Each
    /// signature is still verified strictly on its own.
    fn verify_each(&self, checks: &[SignatureCheck]) -> Vec<bool> {
        let mut keys: BTreeMap<PublicKey, Option<VerifyingKey>> = BTreeMap::new();
        checks
            .iter()
            .map(|check| {
                keys.entry(check.key)
                    .or_insert_with(|| VerifyingKey::from_bytes(&check.key.0).ok())
                    .as_ref()
                    .is_some_and(|key| strict(key, check))
            })
            .collect()
    }
}

fn strict(key: &VerifyingKey, check: &SignatureCheck) -> bool {
    key.verify_strict(&check.digest.0, &check.signature.to_dalek())
        .is_ok()
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Keypair {
        Keypair::from_seed([n; 32])
    }

    #[test]
    fn signatures_verify_only_for_their_domain_body_and_key() {
        let alice = key(1);
        let signature = alice.sign(domain::CHANGE, "body");
        let check = |key: PublicKey, domain: &str, body: &str| SignatureCheck {
            key,
            digest: Digest::of(domain, body),
            signature,
        };
        assert!(Ed25519.verify(&check(alice.public(), domain::CHANGE, "body")));
        assert!(!Ed25519.verify(&check(alice.public(), domain::GRANT, "body")));
        assert!(!Ed25519.verify(&check(alice.public(), domain::CHANGE, "bodz")));
        assert!(!Ed25519.verify(&check(key(2).public(), domain::CHANGE, "body")));
    }

    #[test]
    fn one_bad_signature_fails_the_set() {
        let mut checks: Vec<SignatureCheck> = (0..16)
            .map(|n| {
                let signer = key(n);
                SignatureCheck {
                    key: signer.public(),
                    digest: Digest::of(domain::HEALTH, &n),
                    signature: signer.sign(domain::HEALTH, &n),
                }
            })
            .collect();
        assert!(Ed25519.verify_all(&checks));
        checks[7].digest = Digest::of(domain::HEALTH, &99u8);
        assert!(!Ed25519.verify_all(&checks));
    }

    #[test]
    fn verify_each_judges_every_check_as_verify_does() {
        let signers = [key(1), key(2)];
        let mut checks: Vec<SignatureCheck> = (0..12u8)
            .map(|n| {
                let signer = &signers[usize::from(n % 2)];
                SignatureCheck {
                    key: signer.public(),
                    digest: Digest::of(domain::CHANGE, &n),
                    signature: signer.sign(domain::CHANGE, &n),
                }
            })
            .collect();
        // A wrong digest, another check's signature, and bytes that are no
        // signer's key, amid good checks by the same keys.
        checks[3].digest = Digest::of(domain::CHANGE, &99u8);
        checks[4].signature = checks[5].signature;
        checks[6].key = PublicKey([0xff; 32]);
        let each = Ed25519.verify_each(&checks);
        let one_by_one: Vec<bool> = checks.iter().map(|check| Ed25519.verify(check)).collect();
        assert_eq!(each, one_by_one);
        assert_eq!(each.iter().filter(|verdict| !**verdict).count(), 3);
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let public = key(3).public();
        assert_eq!(PublicKey::from_hex(&public.to_hex()), Some(public));
        assert_eq!(PublicKey::from_hex("zz"), None);
        assert_eq!(PublicKey::from_hex(&"g".repeat(64)), None);
        assert_eq!(PublicKey::from_hex(&"é".repeat(32)), None);
    }
}
