//! The files that say who a node is, whom it trusts and what it runs: key
//! files, trust chain files, node certificate files, config change and
//! release files (formats in docs/operations.md).
//!
//! The operator CLI writes them and the agent reads them from its state
//! directory, through this one module, so both refuse a damaged file with
//! the same words.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use fleetmesh_crdt::config::rollout::{Rollout, RolloutSpec};
use fleetmesh_crdt::{
    CertBody, Ed25519, Hlc, IdempotencyKey, Keypair, LedgerRecord, NodeCert, PublicKey, RecordKind,
    Release, Role, SignedChange, SignedRecord, SignedRelease, SignedTrust, TrustChain, TrustDoc,
    TrustError, stop_limits,
};
use serde::{Deserialize, Serialize};

use crate::files::{self, Existing, Mode};

/// The `format` of a key file.
pub const KEY_FORMAT: &str = "fleetmesh-key";
/// The `format` of a trust chain file.
pub const CHAIN_FORMAT: &str = "fleetmesh-trust-chain";
/// The `format` of a node certificate file.
pub const CERT_FORMAT: &str = "fleetmesh-node-cert";

/// A key file's body. The public key is stored beside the seed so a
/// damaged seed is caught on load instead of silently signing as someone
/// else.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    public: String,
    seed: String,
}

/// Writes `keypair` as a key file (mode 0600).
pub fn write_key(path: &Path, keypair: &Keypair, existing: Existing) -> anyhow::Result<()> {
    let body = KeyFile {
        public: keypair.public().to_hex(),
        seed: files::hex(&keypair.seed()),
    };
    files::write_atomic(
        path,
        &files::to_json(KEY_FORMAT, &body)?,
        Mode::Secret,
        existing,
    )
}

/// Loads and checks a key file. A key file others than its owner may read
/// is refused (with the `chmod` to run): whoever reads it holds the key.
pub fn load_key(path: &Path) -> anyhow::Result<Keypair> {
    files::check_secret_mode(path, "key file")?;
    let body: KeyFile = files::read_json(path, KEY_FORMAT, "key")?;
    let context = || format!("key file {}", path.display());
    let seed = files::unhex_array::<32>(&body.seed, "the seed").with_context(context)?;
    let public = files::parse_key(&body.public, "the public key").with_context(context)?;
    let keypair = Keypair::from_seed(seed);
    if keypair.public() != public {
        bail!(
            "key file {}: the seed does not match the public key {public:?} stored with it; the file is damaged: restore it from a backup",
            path.display()
        );
    }
    Ok(keypair)
}

/// A trust chain file: every trust document from the genesis on, so a
/// reader can verify each version against the one before it.
#[derive(Serialize, Deserialize)]
struct ChainFile {
    /// The genesis digest, repeated so a reader can tell fleets apart at a
    /// glance; checked against the genesis on load.
    fleet_id: String,
    chain: Vec<TrustJson>,
}

/// One signed trust document as files hold it, keys and signatures in hex.
#[derive(Serialize, Deserialize)]
pub struct TrustJson {
    fleet: String,
    version: u64,
    keys: BTreeMap<String, Vec<String>>,
    root_threshold: u32,
    config_threshold: u32,
    revoked: Vec<String>,
    signatures: BTreeMap<String, String>,
}

impl TrustJson {
    /// The file form of `signed`.
    pub fn new(signed: &SignedTrust) -> TrustJson {
        let doc = &signed.doc;
        TrustJson {
            fleet: doc.fleet.clone(),
            version: doc.version,
            keys: doc
                .keys
                .iter()
                .map(|(key, roles)| {
                    let names = roles.iter().map(|role| role.name().to_owned()).collect();
                    (key.to_hex(), names)
                })
                .collect(),
            root_threshold: doc.root_threshold,
            config_threshold: doc.config_threshold,
            revoked: doc.revoked.iter().map(PublicKey::to_hex).collect(),
            signatures: files::signatures_hex(&signed.signatures),
        }
    }

    /// The version number the file states (before anything is checked).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The signed document the file form states; its signatures are not
    /// checked here.
    pub fn decode(&self) -> anyhow::Result<SignedTrust> {
        let mut keys = BTreeMap::new();
        for (key, names) in &self.keys {
            let key = files::parse_key(key, "an operator key")?;
            let roles = names
                .iter()
                .map(|name| parse_role(name))
                .collect::<anyhow::Result<BTreeSet<Role>>>()?;
            keys.insert(key, roles);
        }
        let revoked = self
            .revoked
            .iter()
            .map(|key| files::parse_key(key, "a revoked key"))
            .collect::<anyhow::Result<_>>()?;
        let signatures = files::parse_signatures(&self.signatures)?;
        Ok(SignedTrust {
            doc: TrustDoc {
                fleet: self.fleet.clone(),
                version: self.version,
                keys,
                root_threshold: self.root_threshold,
                config_threshold: self.config_threshold,
                revoked,
            },
            signatures,
        })
    }
}

/// Parses a role name as operators type it.
pub fn parse_role(name: &str) -> anyhow::Result<Role> {
    Role::parse(name.trim()).with_context(|| {
        format!("{name:?} is not a role: roles are root, config, admit and approve")
    })
}

/// A key as messages show it: enough hex to recognize, not a wall of it.
pub fn short(key: &PublicKey) -> String {
    format!("{}…", &key.to_hex()[..16])
}

/// Loads a trust chain file and verifies it link by link: the genesis
/// against its own roots, every later version against the one before.
pub fn load_chain(path: &Path) -> anyhow::Result<TrustChain> {
    let file: ChainFile = files::read_json(path, CHAIN_FORMAT, "trust chain")?;
    verify_chain(&file).with_context(|| format!("trust chain {}", path.display()))
}

/// Parses and verifies a trust chain file's text, as [`load_chain`] does.
/// Errors read as the rest of a sentence starting "file NAME ".
pub fn parse_chain(text: &str) -> anyhow::Result<TrustChain> {
    let file: ChainFile = files::parse_json(text, CHAIN_FORMAT, "trust chain")?;
    verify_chain(&file)
}

fn verify_chain(file: &ChainFile) -> anyhow::Result<TrustChain> {
    let mut docs = file.chain.iter().enumerate().map(|(index, json)| {
        json.decode()
            .with_context(|| format!("trust document {} (version {})", index + 1, json.version))
    });
    let Some(genesis) = docs.next() else {
        bail!("the chain holds no trust document: make one with `fleetmesh fleet init`");
    };
    let genesis = genesis?;
    check_signatures(&genesis)?;
    let mut chain = TrustChain::new(genesis.clone(), &Ed25519)
        .map_err(|error| explain(error, &genesis.doc, None))?;
    for doc in docs {
        let doc = doc?;
        let head = chain.head().doc.clone();
        if doc.doc.version != head.version + 1 {
            bail!(
                "the chain lists trust version {} after version {}: versions must step by one, genesis first",
                doc.doc.version,
                head.version
            );
        }
        check_signatures(&doc)?;
        chain
            .insert(doc.clone(), &Ed25519)
            .map_err(|error| explain(error, &doc.doc, Some(&head)))?;
    }
    let fleet_id = files::parse_digest(&file.fleet_id, "the fleet id")?;
    if fleet_id != chain.fleet_id() {
        bail!(
            "the file names fleet {} but its genesis is fleet {}: the file was altered; get an intact copy",
            file.fleet_id,
            chain.fleet_id()
        );
    }
    Ok(chain)
}

/// Refuses a document carrying any signature that does not verify: a file
/// signed by the right keys never carries one, so it was altered.
pub fn check_signatures(signed: &SignedTrust) -> anyhow::Result<()> {
    if let Some(key) = files::bad_signer(signed.digest(), &signed.signatures) {
        bail!(
            "signature by key {} on trust version {} does not verify: the file was altered or damaged; get an intact copy from its signers",
            short(&key),
            signed.doc.version
        );
    }
    Ok(())
}

/// Turns a refusal of `doc` into what an operator can act on.
pub fn explain(error: TrustError, doc: &TrustDoc, previous: Option<&TrustDoc>) -> anyhow::Error {
    let version = doc.version;
    match error {
        TrustError::Unauthorized => {
            let needed = match previous {
                Some(previous) => format!(
                    "{} by the root keys of version {} and {} by its own",
                    previous.root_threshold, previous.version, doc.root_threshold
                ),
                None => format!("{} by its own root keys", doc.root_threshold),
            };
            anyhow::anyhow!(
                "trust version {version} lacks the root signatures it needs ({needed}): sign it with more root keys"
            )
        }
        TrustError::Malformed(reason) => anyhow::anyhow!("trust version {version}: {reason}"),
        other => anyhow::anyhow!("trust version {version}: {other}"),
    }
}

/// Writes `chain` (all its versions) to `path`.
pub fn save_chain(chain: &TrustChain, path: &Path, existing: Existing) -> anyhow::Result<()> {
    files::write_atomic(path, &chain_json(chain)?, Mode::Public, existing)
}

/// `chain` as the text of a trust chain file (what [`parse_chain`] reads).
pub fn chain_json(chain: &TrustChain) -> anyhow::Result<Vec<u8>> {
    let file = ChainFile {
        fleet_id: chain.fleet_id().to_hex(),
        chain: chain.chain().map(TrustJson::new).collect(),
    };
    files::to_json(CHAIN_FORMAT, &file)
}

/// A node certificate file's body.
#[derive(Serialize, Deserialize)]
struct CertJson {
    fleet: String,
    node_key: String,
    name: String,
    tags: BTreeMap<String, String>,
    expires_millis: Option<u64>,
    issuer: String,
    trust_version: u64,
    signature: String,
}

/// Writes `cert` as a node certificate file.
pub fn write_cert(path: &Path, cert: &NodeCert, existing: Existing) -> anyhow::Result<()> {
    let body = &cert.body;
    let json = CertJson {
        fleet: body.fleet.to_hex(),
        node_key: body.node_key.to_hex(),
        name: body.name.clone(),
        tags: body.tags.clone(),
        expires_millis: body.expires_millis,
        issuer: body.issuer.to_hex(),
        trust_version: body.trust_version,
        signature: files::signature_hex(&cert.signature),
    };
    files::write_atomic(
        path,
        &files::to_json(CERT_FORMAT, &json)?,
        Mode::Public,
        existing,
    )
}

/// Loads a node certificate file. Only its form is checked here; whether
/// it is valid (signature, issuer, fleet, expiry) is for
/// [`NodeCert::check`] against the trust chain to say.
pub fn load_cert(path: &Path) -> anyhow::Result<NodeCert> {
    let json: CertJson = files::read_json(path, CERT_FORMAT, "node certificate")?;
    let context = || format!("node certificate {}", path.display());
    let body = CertBody {
        fleet: files::parse_digest(&json.fleet, "the fleet").with_context(context)?,
        node_key: files::parse_key(&json.node_key, "the node key").with_context(context)?,
        name: json.name,
        tags: json.tags,
        expires_millis: json.expires_millis,
        issuer: files::parse_key(&json.issuer, "the issuer").with_context(context)?,
        trust_version: json.trust_version,
    };
    let signature =
        files::parse_signature(&json.signature, "the signature").with_context(context)?;
    Ok(NodeCert { body, signature })
}

/// The `format` of a change file.
pub const CHANGE_FORMAT: &str = "fleetmesh-config-change";
/// The `format` of a release file.
pub const RELEASE_FORMAT: &str = "fleetmesh-config-release";

/// A change file's body: the signed envelope, bytes in hex.
#[derive(Serialize, Deserialize)]
pub struct ChangeJson {
    doc: String,
    trust_version: u64,
    author: String,
    /// The automerge change, hex.
    change: String,
    signature: String,
}

impl ChangeJson {
    /// The file form of `change`.
    pub fn new(change: &SignedChange) -> ChangeJson {
        ChangeJson {
            doc: change.doc.clone(),
            trust_version: change.trust_version,
            author: change.author.to_hex(),
            change: files::hex(&change.change),
            signature: files::signature_hex(&change.signature),
        }
    }

    /// The signed change the file states; its signature is checked where
    /// it is merged.
    pub fn decode(&self) -> anyhow::Result<SignedChange> {
        Ok(SignedChange {
            doc: self.doc.clone(),
            trust_version: self.trust_version,
            author: files::parse_key(&self.author, "the author")?,
            change: files::unhex(&self.change, "the change bytes")?,
            signature: files::parse_signature(&self.signature, "the signature")?,
        })
    }
}

/// A release file's body. `release` is the release number (the envelope's
/// `version` is the file format's); `digest` is what signers sign, shown so
/// A rollout plan file: one `[rollout]` table (docs/rollouts.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    rollout: RolloutSpec,
}

/// Parses a rollout plan file for a release of `version`: refused, naming
/// the field, where agents would refuse the release.
pub fn parse_plan(text: &str, version: u64) -> anyhow::Result<Rollout> {
    let file: PlanFile =
        toml::from_str(text).context("not a rollout plan (one [rollout] table)")?;
    file.rollout
        .plan(version)
        .context("agents would refuse this plan")
}

/// operators can compare releases by eye, and checked on load.
#[derive(Serialize, Deserialize)]
pub struct ReleaseJson {
    doc: String,
    release: u64,
    heads: Vec<String>,
    expires_millis: Option<u64>,
    trust_version: u64,
    /// The staged rollout, if any, in the operators' form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollout: Option<RolloutSpec>,
    digest: String,
    signatures: BTreeMap<String, String>,
}

impl ReleaseJson {
    /// The file form of `signed`.
    pub fn new(signed: &SignedRelease) -> ReleaseJson {
        let release = &signed.release;
        ReleaseJson {
            doc: release.doc.clone(),
            release: release.version,
            heads: release.heads.iter().map(|head| head.to_hex()).collect(),
            expires_millis: release.expires_millis,
            trust_version: release.trust_version,
            rollout: release.rollout.as_ref().map(RolloutSpec::of),
            digest: release.digest().to_hex(),
            signatures: files::signatures_hex(&signed.signatures),
        }
    }

    /// The signed release the file states, its digest checked; its
    /// signatures are checked where it is merged.
    pub fn decode(&self) -> anyhow::Result<SignedRelease> {
        let rollout = self
            .rollout
            .as_ref()
            .map(|spec| spec.plan(self.release))
            .transpose()?;
        let release = Release {
            rollout,
            doc: self.doc.clone(),
            version: self.release,
            heads: self
                .heads
                .iter()
                .map(|head| files::parse_digest(head, "a head"))
                .collect::<anyhow::Result<_>>()?,
            expires_millis: self.expires_millis,
            trust_version: self.trust_version,
        };
        if release.digest() != files::parse_digest(&self.digest, "the digest")? {
            bail!(
                "the release's fields do not match its digest {}: the file was altered or damaged; get an intact copy",
                self.digest
            );
        }
        let signatures = files::parse_signatures(&self.signatures)?;
        Ok(SignedRelease {
            release,
            signatures,
        })
    }
}

/// The `format` of a config key's draft journal (`KEY.drafts.json`).
pub const DRAFTS_FORMAT: &str = "fleetmesh-config-drafts";

/// The last change a config key drafted in one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drafted {
    /// The change's hash, hex.
    pub change: String,
    /// The store directory it was written to (absolute when it could be
    /// resolved).
    pub store: String,
}

/// A config key's draft journal as its file holds it (`config draft`
/// keeps it next to the key file; docs/operations.md, "Equivocation and
/// quarantine").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftsJson {
    /// The key the journal belongs to, hex.
    pub author: String,
    /// By document id.
    pub docs: BTreeMap<String, Drafted>,
}

impl DraftsJson {
    /// Parses a journal file's text for the key `author`: refused when it
    /// is not a journal, belongs to another key, or names a change that is
    /// not a hash.
    pub fn parse(text: &str, author: &PublicKey) -> anyhow::Result<DraftsJson> {
        let json: DraftsJson = files::parse_json(text, DRAFTS_FORMAT, "draft journal")?;
        if json.author != author.to_hex() {
            bail!(
                "belongs to key {}, not to {}: it was copied next to the wrong key file; put it back beside its key",
                json.author,
                short(author)
            );
        }
        for (doc, drafted) in &json.docs {
            files::parse_digest(&drafted.change, "change hash")
                .with_context(|| format!("names no change hash for document {doc}"))?;
        }
        Ok(json)
    }
}

/// The signed ledger record an operator's file (an approval, a stop)
/// states: `kind` about `key`, by `author` at (`millis`, `counter`), with
/// the hex `signature`, which is checked where the record is merged.
fn operator_record(
    key: IdempotencyKey,
    kind: RecordKind,
    author: PublicKey,
    (millis, counter): (u64, u32),
    signature: &str,
) -> anyhow::Result<SignedRecord> {
    Ok(SignedRecord {
        record: LedgerRecord {
            key,
            kind,
            author,
            at: Hlc { millis, counter },
        },
        signature: files::parse_signature(signature, "the signature")?,
    })
}

/// The `format` of an approval file.
pub const APPROVAL_FORMAT: &str = "fleetmesh-approval";

/// An approval file's body: an operator's signed ledger record approving
/// the remediation named by (`rule`, `target`, `incident`), as
/// `fleetmesh approve` makes it. An agent verifies it like any ledger
/// record: signed by `approver`, who holds `approve` at `trust_version`.
#[derive(Serialize, Deserialize)]
pub struct ApprovalJson {
    rule: String,
    target: String,
    incident: String,
    approver: String,
    expires_millis: u64,
    trust_version: u64,
    at_millis: u64,
    at_counter: u32,
    signature: String,
}

impl ApprovalJson {
    /// The file form of `signed`; `None` when it is not an approval.
    pub fn new(signed: &SignedRecord) -> Option<ApprovalJson> {
        let record = &signed.record;
        let RecordKind::Approval {
            approver,
            expires_millis,
            trust_version,
        } = &record.kind
        else {
            return None;
        };
        Some(ApprovalJson {
            rule: record.key.rule.clone(),
            target: record.key.target.to_hex(),
            incident: record.key.incident.clone(),
            approver: approver.to_hex(),
            expires_millis: *expires_millis,
            trust_version: *trust_version,
            at_millis: record.at.millis,
            at_counter: record.at.counter,
            signature: files::signature_hex(&signed.signature),
        })
    }

    /// The signed record the file states; its signature and the
    /// approver's role are checked where it is merged.
    pub fn decode(&self) -> anyhow::Result<SignedRecord> {
        let approver = files::parse_key(&self.approver, "the approver")?;
        let key = IdempotencyKey {
            rule: self.rule.clone(),
            target: files::parse_key(&self.target, "the target")?,
            incident: self.incident.clone(),
        };
        let kind = RecordKind::Approval {
            approver,
            expires_millis: self.expires_millis,
            trust_version: self.trust_version,
        };
        operator_record(
            key,
            kind,
            approver,
            (self.at_millis, self.at_counter),
            &self.signature,
        )
    }
}

/// The `format` of a stop file.
pub const STOP_FORMAT: &str = "fleetmesh-stop";

/// A stop file's body: an operator's signed emergency stop or resume
/// (`kind`), as `fleetmesh stop` and `fleetmesh resume` make it. An agent
/// verifies it like any ledger record: signed by `stopper`, who holds
/// `stop` at `trust_version`.
#[derive(Serialize, Deserialize)]
pub struct StopJson {
    kind: String,
    stopper: String,
    incident: String,
    selector: BTreeMap<String, String>,
    expires_millis: Option<u64>,
    reason: Option<String>,
    trust_version: u64,
    at_millis: u64,
    at_counter: u32,
    signature: String,
}

impl StopJson {
    /// The file form of `signed`; `None` when it is neither a stop nor a
    /// resume.
    pub fn new(signed: &SignedRecord) -> Option<StopJson> {
        let record = &signed.record;
        let (kind, stopper, selector, expires_millis, reason, trust_version) = match &record.kind {
            RecordKind::Stop {
                stopper,
                selector,
                expires_millis,
                reason,
                trust_version,
            } => (
                "stop",
                stopper,
                selector,
                Some(*expires_millis),
                Some(reason.clone()),
                trust_version,
            ),
            RecordKind::Resume {
                stopper,
                selector,
                trust_version,
            } => ("resume", stopper, selector, None, None, trust_version),
            _ => return None,
        };
        Some(StopJson {
            kind: kind.to_owned(),
            stopper: stopper.to_hex(),
            incident: record.key.incident.clone(),
            selector: selector.clone(),
            expires_millis,
            reason,
            trust_version: *trust_version,
            at_millis: record.at.millis,
            at_counter: record.at.counter,
            signature: files::signature_hex(&signed.signature),
        })
    }

    /// The signed record the file states; its signature and the stopper's
    /// role are checked where it is merged.
    pub fn decode(&self) -> anyhow::Result<SignedRecord> {
        let stopper = files::parse_key(&self.stopper, "the stopper")?;
        let selector = self.selector.clone();
        let trust_version = self.trust_version;
        let kind = match (self.kind.as_str(), self.expires_millis, &self.reason) {
            ("stop", Some(expires_millis), Some(reason)) => RecordKind::Stop {
                stopper,
                selector,
                expires_millis,
                reason: reason.clone(),
                trust_version,
            },
            ("resume", None, None) => RecordKind::Resume {
                stopper,
                selector,
                trust_version,
            },
            _ => bail!(
                "is neither a stop (kind \"stop\" with expires_millis and reason) nor a resume (kind \"resume\" without them): write it again with `fleetmesh stop` or `fleetmesh resume`"
            ),
        };
        let key = IdempotencyKey {
            rule: stop_limits::STOP_RULE.to_owned(),
            target: stopper,
            incident: self.incident.clone(),
        };
        operator_record(
            key,
            kind,
            stopper,
            (self.at_millis, self.at_counter),
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::Digest;

    #[test]
    fn an_approval_round_trips_and_only_an_approval_has_the_file_form() {
        let operator = Keypair::from_seed([3; 32]);
        let target = Keypair::from_seed([4; 32]).public();
        let key = IdempotencyKey {
            rule: "web-down".into(),
            target,
            incident: "http@1000".into(),
        };
        let record = |kind| LedgerRecord {
            key: key.clone(),
            kind,
            author: operator.public(),
            at: Hlc {
                millis: 1_000,
                counter: 2,
            },
        };
        let approval = SignedRecord::sign(
            record(RecordKind::Approval {
                approver: operator.public(),
                expires_millis: 61_000,
                trust_version: 3,
            }),
            &operator,
        );
        let bytes = files::to_json(
            APPROVAL_FORMAT,
            &ApprovalJson::new(&approval).expect("an approval"),
        )
        .expect("JSON");
        let text = String::from_utf8(bytes).expect("text");
        let parsed: ApprovalJson =
            files::parse_json(&text, APPROVAL_FORMAT, "approval").expect("parses");
        assert_eq!(parsed.decode().expect("decodes"), approval);
        let outcome = SignedRecord::sign(
            record(RecordKind::Skipped {
                reason: "cooldown".into(),
            }),
            &operator,
        );
        assert!(ApprovalJson::new(&outcome).is_none());
    }

    #[test]
    fn keys_and_certificates_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key = Keypair::from_seed([7; 32]);
        let key_path = dir.path().join("node.key");
        write_key(&key_path, &key, Existing::Replace).expect("write key");
        assert_eq!(
            load_key(&key_path).expect("load key").public(),
            key.public()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_path)
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A seed that does not match its public key is damage, not a key.
        let text = std::fs::read_to_string(&key_path).expect("read");
        let other = Keypair::from_seed([8; 32]);
        std::fs::write(
            &key_path,
            text.replace(&files::hex(&key.seed()), &files::hex(&other.seed())),
        )
        .expect("write");
        let error = format!("{:#}", load_key(&key_path).unwrap_err());
        assert!(error.contains("damaged"), "{error}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for mode in [0o640, 0o604] {
                std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode))
                    .expect("chmod");
                let error = format!("{:#}", load_key(&key_path).unwrap_err());
                assert!(
                    error.contains(&format!("run `chmod 600 {}`", key_path.display())),
                    "{error}"
                );
            }
        }

        let cert = NodeCert::issue(
            CertBody {
                fleet: Digest([1; 32]),
                node_key: key.public(),
                name: "web-1".into(),
                tags: BTreeMap::from([("zone".into(), "a".into())]),
                expires_millis: Some(5),
                issuer: other.public(),
                trust_version: 1,
            },
            &other,
        );
        let cert_path = dir.path().join("node.cert.json");
        write_cert(&cert_path, &cert, Existing::Replace).expect("write cert");
        assert_eq!(load_cert(&cert_path).expect("load cert"), cert);
        std::fs::write(&cert_path, "{\"format\": \"fleetmesh-node-cert\"").expect("write");
        let error = format!("{:#}", load_cert(&cert_path).unwrap_err());
        assert!(error.contains("invalid JSON"), "{error}");
    }
}
