//! The agent's state directory.
//!
//! | file | what | written by |
//! | --- | --- | --- |
//! | `node.key` | the node's ed25519 key (mode 0600) | `fleetmesh keygen` |
//! | `node.cert.json` | its certificate | `fleetmesh fleet admit` |
//! | `trust.json` | the fleet's trust chain, genesis first | `fleetmesh fleet init`; the agent, as newer versions arrive |
//! | `durable.json` | what the core must not forget: lease voter records, the release run per document, the remediations started | the agent, before it sends anything that depends on it |
//! | `replicas.bin` | a snapshot of the replicated collections (certificates, config changes and releases, leases, ledger) | the agent, every [`REPLICAS_SAVE_INTERVAL`] while they change, when the journal reaches [`crate::journal::JOURNAL_BYTES_MAX`], and as it stops |
//! | `replicas.journal` | the entries of those collections merged since that snapshot ([`crate::journal`]) | the agent, appended and synced before it sends anything or answers a publish; emptied after each snapshot |
//! | `agent.lock` | held while an agent runs on the directory | the agent |
//! | `admin.sock` | the admin API's Unix socket (mode 0660), by default | the agent, at start; removed as it stops |
//! | `admin.token` | the token a TCP admin API asks for (mode 0600) | the agent, at each start, when `admin` is an `IP:PORT` and no `admin_token_file` is named |
//!
//! Every write is crash-safe ([`files::write_atomic`]). `durable.json`
//! carries a checksum of its content besides the envelope's format and
//! version, so a file damaged after it was written (a bad disk, a hand
//! edit) is refused at start with what to do, rather than restored as
//! something the node never promised. `replicas.bin` is framed with a magic,
//! its length and a checksum, so a torn or altered snapshot is detected at
//! start; since everything in it is the fleet's and is verified again as it
//! is loaded, a damaged one is reported and moved aside (the agent then
//! catches up from its peers) rather than stopping the agent. What the
//! snapshot misses (the entries merged since) is in the journal, whose
//! damaged tail is cut off at start, never a reason to stop; so whatever
//! the agent acknowledged or applied survives a crash.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fleetmesh_crdt::{
    AppliedRelease, CertError, Digest, Ed25519, IdempotencyKey, TrustChain, VoterRecord,
};
use fleetmesh_node::{Durable, Identity};
use serde::{Deserialize, Serialize};

use crate::files::{self, Existing, Mode};
use crate::formats::{self, short};

/// The `format` of the durable state file.
pub const DURABLE_FORMAT: &str = "fleetmesh-agent-durable";

/// The checksum's domain tag: a durable file's checksum can never be
/// mistaken for any signed digest.
const CHECKSUM_DOMAIN: &str = "fleetmesh 2026-11 agent durable state v1";

/// How often the agent saves its replicas while they change.
pub const REPLICAS_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The first bytes of `replicas.bin`: what it is and its framing version.
const REPLICAS_MAGIC: &[u8; 8] = b"FMREPL\x00\x01";

/// `replicas.bin`'s checksum domain.
const REPLICAS_DOMAIN: &str = "fleetmesh 2026-12 replica snapshot v1";

/// Magic, payload length (u64, little-endian), checksum.
const REPLICAS_HEADER: usize = 8 + 8 + 32;

/// One lease voter record as the file holds it (keys in hex).
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct VoterJson {
    epoch: u64,
    holder: String,
    ttl_millis: u64,
    granted_local_millis: u64,
}

/// The release run for one document as the file holds it.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct ReleaseJson {
    version: u64,
    digest: String,
    expires_millis: Option<u64>,
    void: bool,
    /// The predecessor run after a failed rollout, in hex. Left out when
    /// absent, so the checksum of a file written before rollouts existed
    /// still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reverted_to: Option<String>,
}

/// One remediation started, with when (HLC milliseconds).
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct StartedJson {
    rule: String,
    target: String,
    incident: String,
    at_millis: u64,
}

/// The durable state as the file holds it: readable by an operator, keys
/// and digests in hex as in every other fleetmesh file.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct DurableBody {
    voter_records: BTreeMap<String, VoterJson>,
    releases: BTreeMap<String, ReleaseJson>,
    remediations: Vec<StartedJson>,
}

/// The durable state file: the body and its checksum.
#[derive(Serialize, Deserialize)]
struct DurableFile {
    /// Hex blake3 of the body's canonical encoding.
    checksum: String,
    #[serde(flatten)]
    body: DurableBody,
}

impl DurableBody {
    fn new(durable: &Durable) -> DurableBody {
        DurableBody {
            voter_records: durable
                .voter_records
                .iter()
                .map(|(scope, record)| {
                    let json = VoterJson {
                        epoch: record.epoch,
                        holder: record.holder.to_hex(),
                        ttl_millis: record.ttl_millis,
                        granted_local_millis: record.granted_local_millis,
                    };
                    (scope.clone(), json)
                })
                .collect(),
            releases: durable
                .releases
                .iter()
                .map(|(doc, applied)| {
                    let json = ReleaseJson {
                        version: applied.version,
                        digest: applied.digest.to_hex(),
                        expires_millis: applied.expires_millis,
                        void: applied.void,
                        reverted_to: applied.reverted_to.map(|digest| digest.to_hex()),
                    };
                    (doc.clone(), json)
                })
                .collect(),
            remediations: durable
                .remediations
                .iter()
                .map(|(key, at_millis)| StartedJson {
                    rule: key.rule.clone(),
                    target: key.target.to_hex(),
                    incident: key.incident.clone(),
                    at_millis: *at_millis,
                })
                .collect(),
        }
    }

    fn decode(self) -> anyhow::Result<Durable> {
        let mut durable = Durable::default();
        for (scope, json) in self.voter_records {
            let record = VoterRecord {
                epoch: json.epoch,
                holder: files::parse_key(&json.holder, "a voter record's holder")?,
                ttl_millis: json.ttl_millis,
                granted_local_millis: json.granted_local_millis,
            };
            durable.voter_records.insert(scope, record);
        }
        for (doc, json) in self.releases {
            let reverted_to = json
                .reverted_to
                .map(|hex| files::parse_digest(&hex, "a reverted release's predecessor"))
                .transpose()?;
            let applied = AppliedRelease {
                reverted_to,
                doc: doc.clone(),
                version: json.version,
                digest: files::parse_digest(&json.digest, "a release's digest")?,
                expires_millis: json.expires_millis,
                void: json.void,
            };
            durable.releases.insert(doc, applied);
        }
        for json in self.remediations {
            let key = IdempotencyKey {
                rule: json.rule,
                target: files::parse_key(&json.target, "a remediation's target")?,
                incident: json.incident,
            };
            durable.remediations.push((key, json.at_millis));
        }
        Ok(durable)
    }

    fn checksum(&self) -> Digest {
        Digest::of(CHECKSUM_DOMAIN, self)
    }
}

/// An open state directory, locked against a second agent.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// Held for the agent's life: two agents on one directory would
    /// overwrite each other's promises.
    _lock: File,
}

impl StateDir {
    /// Opens `dir` (which must exist) and takes its lock; removes leftovers
    /// of writes a crash interrupted.
    pub fn open(dir: &Path) -> anyhow::Result<StateDir> {
        if !dir.is_dir() {
            bail!(
                "state directory {} does not exist: create it (mode 0700) and put the node's key, certificate and trust chain in it (see docs/operations.md, \"Admit a node\")",
                dir.display()
            );
        }
        let lock_path = dir.join("agent.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| files::io_failure("cannot open", &lock_path, &error))?;
        if lock.try_lock().is_err() {
            bail!(
                "another agent is running on state directory {} (it holds {}): stop it first",
                dir.display(),
                lock_path.display()
            );
        }
        let state = StateDir {
            dir: dir.to_owned(),
            _lock: lock,
        };
        state.remove_leftovers()?;
        Ok(state)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The node key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// The certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("node.cert.json")
    }

    /// The trust chain file.
    pub fn trust_path(&self) -> PathBuf {
        self.dir.join("trust.json")
    }

    /// The durable state file.
    pub fn durable_path(&self) -> PathBuf {
        self.dir.join("durable.json")
    }

    /// Temporary files of [`files::write_atomic`] (and the directory the
    /// admin socket is made in) start with a dot and end in `.tmp-PID`; one
    /// left behind is a write that never completed, and the file it was
    /// for still holds its previous content.
    fn remove_leftovers(&self) -> anyhow::Result<()> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|error| files::io_failure("cannot list state directory", &self.dir, &error))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(".tmp-") {
                let path = entry.path();
                let removed = if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                removed.map_err(|error| {
                    files::io_failure("cannot remove interrupted write", &path, &error)
                })?;
            }
        }
        Ok(())
    }

    /// Loads the node's key, certificate and trust chain, and checks that
    /// they belong together: the certificate names this key and holds
    /// under the chain at `now_millis`. Returns the identity the core
    /// takes (with the chain's genesis) and the whole chain.
    pub fn load_identity(&self, now_millis: u64) -> anyhow::Result<(Identity, TrustChain)> {
        let key_path = self.key_path();
        if let Err(error) = fs::metadata(&key_path)
            && error.kind() == std::io::ErrorKind::NotFound
        {
            bail!(
                "node key {} does not exist: make one on this host with `fleetmesh keygen --out {}`",
                key_path.display(),
                key_path.display()
            );
        }
        let keypair = formats::load_key(&key_path)?;
        let chain = formats::load_chain(&self.trust_path())?;
        let cert = formats::load_cert(&self.cert_path())?;
        if cert.body.node_key != keypair.public() {
            bail!(
                "certificate {} is for key {}, but this node's key ({}) is {}: ask an operator for a certificate with `fleetmesh fleet admit --node {}`",
                self.cert_path().display(),
                short(&cert.body.node_key),
                key_path.display(),
                short(&keypair.public()),
                keypair.public()
            );
        }
        cert.check(&chain, now_millis, &Ed25519).map_err(|error| {
            let what = match error {
                CertError::Expired(_) => "it has expired: ask an operator for a new one with `fleetmesh fleet admit`",
                CertError::OtherFleet => "it is for another fleet than trust.json: install the matching trust chain or certificate",
                CertError::Revoked(_) => "this node's key is revoked: the node may not rejoin; make a new key and have it admitted",
                CertError::IssuerNotAuthorized(_) => "its issuer may not admit nodes under this trust chain: have an `admit` key issue it",
                CertError::Malformed | CertError::BadSignature => "it is damaged or was altered: get an intact copy",
            };
            anyhow::anyhow!(
                "certificate {} is refused ({error}): {what}",
                self.cert_path().display()
            )
        })?;
        let genesis = chain
            .chain()
            .next()
            .cloned()
            .context("the trust chain holds no genesis")?;
        Ok((
            Identity {
                keypair,
                cert,
                genesis,
            },
            chain,
        ))
    }

    /// The durable state the previous process left; `None` on a first
    /// start. A damaged file is an error, never an empty state: the node
    /// could otherwise grant a lease epoch twice or run an older release.
    pub fn load_durable(&self) -> anyhow::Result<Option<Durable>> {
        let path = self.durable_path();
        if !path.exists() {
            return Ok(None);
        }
        let file: DurableFile = files::read_json(&path, DURABLE_FORMAT, "agent durable state")
            .map_err(|error| damaged(&path, &format!("{error:#}")))?;
        let stated = files::parse_digest(&file.checksum, "the checksum")
            .map_err(|error| damaged(&path, &format!("{error:#}")))?;
        if stated != file.body.checksum() {
            return Err(damaged(
                &path,
                "its checksum does not match its content (it was altered or the disk damaged it)",
            ));
        }
        file.body
            .decode()
            .map(Some)
            .map_err(|error| damaged(&path, &format!("{error:#}")))
    }

    /// Writes `durable` crash-safely; when this returns, it survives a
    /// crash or power loss.
    pub fn save_durable(&self, durable: &Durable) -> anyhow::Result<()> {
        let body = DurableBody::new(durable);
        let file = DurableFile {
            checksum: body.checksum().to_hex(),
            body,
        };
        files::write_atomic(
            &self.durable_path(),
            &files::to_json(DURABLE_FORMAT, &file)?,
            Mode::Public,
            Existing::Replace,
        )
    }

    /// The replica snapshot file.
    pub fn replicas_path(&self) -> PathBuf {
        self.dir.join("replicas.bin")
    }

    /// The journal of entries merged since the snapshot.
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("replicas.journal")
    }

    /// The snapshot the previous process saved, checked whole: `None` when
    /// there is none. An error says what is wrong with the file; the
    /// caller reports it and moves the file aside with
    /// [`StateDir::set_aside_replicas`].
    pub fn load_replicas(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.replicas_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let payload = unframe_replicas(&bytes).with_context(|| path.display().to_string())?;
        Ok(Some(payload.to_vec()))
    }

    /// Writes a replica snapshot crash-safely.
    pub fn save_replicas(&self, snapshot: &[u8]) -> anyhow::Result<()> {
        files::write_atomic(
            &self.replicas_path(),
            &frame_replicas(snapshot),
            Mode::Public,
            Existing::Replace,
        )
    }

    /// Moves a damaged snapshot to `replicas.bin.damaged` (replacing an
    /// older one there), out of the next start's way but kept to look at.
    pub fn set_aside_replicas(&self) -> anyhow::Result<PathBuf> {
        let path = self.replicas_path();
        let aside = self.dir.join("replicas.bin.damaged");
        fs::rename(&path, &aside).map_err(|error| {
            files::io_failure("cannot move aside (remove it by hand)", &path, &error)
        })?;
        Ok(aside)
    }

    /// Writes the trust chain, so that a restarted agent starts from the
    /// newest trust it verified (with revocations) instead of the genesis.
    pub fn save_trust(&self, chain: &TrustChain) -> anyhow::Result<()> {
        formats::save_chain(chain, &self.trust_path(), Existing::Replace)
    }
}

/// `replicas.bin`'s bytes for `snapshot`: magic, length, checksum, then
/// the snapshot.
pub fn frame_replicas(snapshot: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(REPLICAS_HEADER + snapshot.len());
    bytes.extend_from_slice(REPLICAS_MAGIC);
    bytes.extend_from_slice(&(snapshot.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&Digest::of_bytes(REPLICAS_DOMAIN, snapshot).0);
    bytes.extend_from_slice(snapshot);
    bytes
}

/// The snapshot inside `replicas.bin`'s bytes, checked whole (magic,
/// length, checksum); the error says which check failed.
pub fn unframe_replicas(bytes: &[u8]) -> anyhow::Result<&[u8]> {
    let Some((header, payload)) = bytes.split_at_checked(REPLICAS_HEADER) else {
        bail!("it is no fleetmesh replica snapshot (too short)");
    };
    let (magic, rest) = header.split_at(REPLICAS_MAGIC.len());
    let (length, checksum) = rest.split_at(8);
    if magic != REPLICAS_MAGIC {
        bail!("it is no fleetmesh replica snapshot (wrong magic)");
    }
    let mut stated = [0; 8];
    stated.copy_from_slice(length);
    let stated = u64::from_le_bytes(stated);
    if u64::try_from(payload.len()).ok() != Some(stated) {
        bail!(
            "it is torn: it holds {} bytes of a {stated}-byte snapshot",
            payload.len()
        );
    }
    if checksum != Digest::of_bytes(REPLICAS_DOMAIN, payload).0 {
        bail!("its checksum does not match its content (it was altered or the disk damaged it)");
    }
    Ok(payload)
}

fn damaged(path: &Path, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "durable state {} is damaged: {why}. Restore it from a backup of the state directory. Only if there is none: move it away and start again, which forgets this node's lease grants and the releases it ran, so do that only after the node has been stopped for longer than the longest lease ttl plus lock delay",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::{
        CertBody, Keypair, NodeCert, PublicKey, Role, SignedTrust, TrustChain, TrustDoc,
    };
    use std::collections::BTreeSet;

    fn durable() -> Durable {
        let mut durable = Durable::default();
        durable.voter_records.insert(
            "remediate:web".into(),
            VoterRecord {
                epoch: 3,
                holder: PublicKey([9; 32]),
                ttl_millis: 30_000,
                granted_local_millis: 1_700_000_000_000,
            },
        );
        durable.releases.insert(
            "web".into(),
            AppliedRelease {
                reverted_to: None,
                doc: "web".into(),
                version: 4,
                digest: Digest([4; 32]),
                expires_millis: None,
                void: false,
            },
        );
        durable.remediations.push((
            IdempotencyKey {
                rule: "web-down".into(),
                target: PublicKey([1; 32]),
                incident: "web@1#0".into(),
            },
            17,
        ));
        durable
    }

    #[test]
    fn durable_state_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = StateDir::open(dir.path()).expect("open");
        assert_eq!(state.load_durable().expect("first start"), None);
        state.save_durable(&durable()).expect("save");
        assert_eq!(state.load_durable().expect("load"), Some(durable()));

        // A changed number with a valid JSON shape: only the checksum sees it.
        let text = fs::read_to_string(state.durable_path()).expect("read");
        assert!(text.contains(&"04".repeat(32)), "digests are hex: {text}");
        let altered = text.replacen("\"epoch\": 3", "\"epoch\": 2", 1);
        assert_ne!(altered, text);
        fs::write(state.durable_path(), altered).expect("write");
        let error = format!("{:#}", state.load_durable().unwrap_err());
        assert!(error.contains("checksum does not match"), "{error}");

        // A torn file (cut mid-write, as no crash-safe write leaves it).
        fs::write(state.durable_path(), &text[..text.len() / 2]).expect("write");
        let error = format!("{:#}", state.load_durable().unwrap_err());
        assert!(error.contains("is damaged"), "{error}");
        assert!(error.contains("backup"), "{error}");
    }

    #[test]
    fn a_reverted_release_round_trips_and_older_files_keep_their_checksum() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = StateDir::open(dir.path()).expect("open");
        // Written as before rollouts existed: no `reverted_to` anywhere,
        // and the checksum over what is there still holds.
        state.save_durable(&durable()).expect("save");
        let text = fs::read_to_string(state.durable_path()).expect("read");
        assert!(!text.contains("reverted_to"), "{text}");
        assert_eq!(state.load_durable().expect("load"), Some(durable()));
        let mut reverted = durable();
        let web = reverted.releases.get_mut("web").expect("web");
        web.reverted_to = Some(Digest([3; 32]));
        state.save_durable(&reverted).expect("save");
        let text = fs::read_to_string(state.durable_path()).expect("read");
        assert!(text.contains(&"03".repeat(32)), "{text}");
        assert_eq!(state.load_durable().expect("load"), Some(reverted));
    }

    #[test]
    fn a_torn_or_altered_snapshot_is_detected_and_set_aside() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = StateDir::open(dir.path()).expect("open");
        assert_eq!(state.load_replicas().expect("first start"), None);
        let snapshot = b"\x01 some entries".to_vec();
        state.save_replicas(&snapshot).expect("save");
        assert_eq!(state.load_replicas().expect("load"), Some(snapshot.clone()));
        let whole = fs::read(state.replicas_path()).expect("read");

        let torn = &whole[..whole.len() - 3];
        fs::write(state.replicas_path(), torn).expect("write");
        let error = format!("{:#}", state.load_replicas().unwrap_err());
        assert!(error.contains("is torn"), "{error}");

        let mut altered = whole.clone();
        *altered.last_mut().expect("bytes") ^= 1;
        fs::write(state.replicas_path(), &altered).expect("write");
        let error = format!("{:#}", state.load_replicas().unwrap_err());
        assert!(error.contains("checksum does not match"), "{error}");

        fs::write(state.replicas_path(), b"{}").expect("write");
        let error = format!("{:#}", state.load_replicas().unwrap_err());
        assert!(error.contains("no fleetmesh replica snapshot"), "{error}");

        let aside = state.set_aside_replicas().expect("set aside");
        assert!(aside.exists());
        assert_eq!(state.load_replicas().expect("none left"), None);
    }

    /// Writes a fleet's chain, and `node`'s key with a certificate for
    /// `certified` expiring at `expires_millis`, into `dir`.
    fn install(dir: &Path, node: &Keypair, certified: &Keypair, expires_millis: Option<u64>) {
        let root = Keypair::from_seed([1; 32]);
        let doc = TrustDoc::genesis(
            "test",
            BTreeMap::from([(
                root.public(),
                BTreeSet::from([Role::Root, Role::Config, Role::Admit]),
            )]),
        );
        let chain = TrustChain::new(SignedTrust::sign(doc, &[&root]), &Ed25519).expect("genesis");
        let cert = NodeCert::issue(
            CertBody {
                fleet: chain.fleet_id(),
                node_key: certified.public(),
                name: "n".into(),
                tags: BTreeMap::new(),
                expires_millis,
                issuer: root.public(),
                trust_version: 1,
            },
            &root,
        );
        formats::write_key(&dir.join("node.key"), node, Existing::Replace).expect("key");
        formats::write_cert(&dir.join("node.cert.json"), &cert, Existing::Replace).expect("cert");
        formats::save_chain(&chain, &dir.join("trust.json"), Existing::Replace).expect("chain");
    }

    fn identity_error(state: &StateDir) -> String {
        format!("{:#}", state.load_identity(1_000).unwrap_err())
    }

    #[test]
    fn an_identity_that_does_not_hold_together_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let state = StateDir::open(dir.path()).expect("open");
        let missing = identity_error(&state);
        assert!(missing.contains("fleetmesh keygen --out"), "{missing}");

        let node = Keypair::from_seed([2; 32]);
        install(dir.path(), &node, &node, None);
        let (identity, chain) = state.load_identity(1_000).expect("a good identity");
        assert_eq!(identity.keypair.public(), node.public());
        assert_eq!(identity.genesis, *chain.head());

        let other = Keypair::from_seed([3; 32]);
        install(dir.path(), &node, &other, None);
        let wrong_key = identity_error(&state);
        assert!(
            wrong_key.contains(&format!("--node {}", node.public())),
            "{wrong_key}"
        );

        install(dir.path(), &node, &node, Some(500));
        let expired = identity_error(&state);
        assert!(expired.contains("has expired"), "{expired}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            install(dir.path(), &node, &node, None);
            let key = dir.path().join("node.key");
            fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
            let open = identity_error(&state);
            assert!(open.contains("chmod 600"), "{open}");
        }
    }

    #[test]
    fn one_agent_per_directory_and_leftovers_are_cleaned() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let leftover = dir.path().join(".durable.json.tmp-123");
        fs::write(&leftover, "half").expect("write");
        let socket_dir = dir.path().join(".admin.sock.tmp-123");
        fs::create_dir(&socket_dir).expect("mkdir");
        fs::write(socket_dir.join("admin.sock"), "").expect("write");
        let state = StateDir::open(dir.path()).expect("open");
        assert!(!leftover.exists() && !socket_dir.exists());
        let error = format!("{:#}", StateDir::open(dir.path()).unwrap_err());
        assert!(error.contains("another agent"), "{error}");
        drop(state);
        StateDir::open(dir.path()).expect("free again");
        let missing = format!(
            "{:#}",
            StateDir::open(&dir.path().join("nope")).unwrap_err()
        );
        assert!(missing.contains("does not exist"), "{missing}");
    }
}
