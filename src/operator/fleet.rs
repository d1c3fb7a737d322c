//! Trust chain files and the `fleet` commands: genesis, updates, node
//! certificates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fleetmesh_crdt::{
    CertBody, Ed25519, Keypair, NodeCert, PublicKey, Role, SignedTrust, TrustChain, TrustDoc,
};
use serde::{Deserialize, Serialize};

use fleetmesh_runtime::files::{self, Existing, Mode};
use fleetmesh_runtime::formats::{
    self, TrustJson, check_signatures, explain, load_chain, parse_role, save_chain, short,
};

/// The `format` of a pending trust update file.
pub const PENDING_FORMAT: &str = "fleetmesh-trust-pending";

/// Checks that `key` may act as `role` under trust version `version` (and
/// is not revoked by the head), in words that say what to do instead.
pub fn require_role(
    chain: &TrustChain,
    key: &PublicKey,
    role: Role,
    version: u64,
) -> anyhow::Result<()> {
    if chain.is_revoked(key) {
        bail!(
            "key {} is revoked in trust version {}: nothing it signs counts; use another `{}` key",
            short(key),
            chain.head().doc.version,
            role.name()
        );
    }
    if !chain.authorizes(key, role, version) {
        bail!(
            "key {} lacks the `{}` role in trust version {version}: sign with a key holding `{}`, or add the role with `fleetmesh fleet update --add {}={}`",
            short(key),
            role.name(),
            role.name(),
            key.to_hex(),
            role.name()
        );
    }
    Ok(())
}

/// Parses `PUBHEX=role,role`.
fn parse_grant(text: &str) -> anyhow::Result<(PublicKey, BTreeSet<Role>)> {
    let (key, roles) = text.split_once('=').with_context(|| {
        format!("{text:?} is not PUBHEX=role,role (for example <64 hex digits>=config,admit)")
    })?;
    let key = files::parse_key(key, "the key before `=`")?;
    let roles = roles
        .split(',')
        .map(parse_role)
        .collect::<anyhow::Result<_>>()?;
    Ok((key, roles))
}

fn load_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<Keypair>> {
    paths.iter().map(|path| formats::load_key(path)).collect()
}

/// What `fleetmesh fleet init` is given.
pub struct Genesis<'a> {
    /// The fleet's name.
    pub name: &'a str,
    /// Root key files; each signs and becomes a root.
    pub root_keys: &'a [PathBuf],
    /// Further `PUBHEX=roles` grants.
    pub grants: &'a [String],
    /// Root signatures later versions need; all the given roots by default.
    pub root_threshold: Option<u32>,
    /// Config signatures a release needs.
    pub config_threshold: u32,
    /// The chain file to write.
    pub out: &'a Path,
    /// Replace an existing `out`.
    pub force: bool,
}

/// `fleetmesh fleet init`: the genesis trust document, signed by every
/// given root key.
pub fn init(args: &Genesis<'_>) -> anyhow::Result<()> {
    let roots = load_keys(args.root_keys)?;
    if roots.is_empty() {
        bail!("a fleet needs a root key: pass --root-key FILE (make one with `fleetmesh keygen`)");
    }
    let mut keys: BTreeMap<PublicKey, BTreeSet<Role>> = BTreeMap::new();
    for root in &roots {
        keys.entry(root.public()).or_default().insert(Role::Root);
    }
    for grant in args.grants {
        let (key, roles) = parse_grant(grant).context("--key")?;
        keys.entry(key).or_default().extend(roles);
    }
    let doc = TrustDoc {
        fleet: args.name.to_owned(),
        version: 1,
        keys,
        root_threshold: args
            .root_threshold
            .unwrap_or(u32::try_from(roots.len()).unwrap_or(u32::MAX)),
        config_threshold: args.config_threshold,
        revoked: BTreeSet::new(),
    };
    doc.validate()
        .map_err(|error| explain(error, &doc, None))
        .context("cannot make the genesis: fix the keys (--key) or thresholds")?;
    let signers: Vec<&Keypair> = roots.iter().collect();
    let signed = SignedTrust::sign(doc, &signers);
    let chain = TrustChain::new(signed.clone(), &Ed25519)
        .map_err(|error| explain(error, &signed.doc, None))?;
    save_chain(&chain, args.out, Existing::unless_forced(args.force))?;
    println!(
        "wrote trust chain {} (fleet {}, version 1)",
        args.out.display(),
        args.name
    );
    println!("fleet id {}", chain.fleet_id());
    Ok(())
}

/// What `fleetmesh fleet update` is given.
pub struct Update<'a> {
    /// The chain file to extend.
    pub trust: &'a Path,
    /// Root key files signing the new version.
    pub root_keys: &'a [PathBuf],
    /// `PUBHEX=roles` grants added to a key's roles.
    pub add: &'a [String],
    /// Keys to retire (what they signed stays valid).
    pub remove: &'a [String],
    /// Keys to revoke (what they ever signed stops counting).
    pub revoke: &'a [String],
    /// A new root threshold.
    pub root_threshold: Option<u32>,
    /// A new config threshold.
    pub config_threshold: Option<u32>,
    /// The chain file to write (may be `trust` itself), or the pending
    /// update file with `pending`.
    pub out: &'a Path,
    /// Write the update to `out` as a pending update when it lacks root
    /// signatures, for `fleet sign` to complete.
    pub pending: bool,
}

/// `fleetmesh fleet update`: the next trust version, signed by enough of
/// the current roots and of its own.
pub fn update(args: &Update<'_>) -> anyhow::Result<()> {
    let mut chain = load_chain(args.trust)?;
    let previous = chain.head().doc.clone();
    let mut doc = previous.clone();
    doc.version += 1;
    for grant in args.add {
        let (key, roles) = parse_grant(grant).context("--add")?;
        doc.keys.entry(key).or_default().extend(roles);
    }
    for key in args.remove {
        let key = files::parse_key(key, "--remove")?;
        if doc.keys.remove(&key).is_none() {
            bail!(
                "--remove: key {} is not in trust version {}; nothing to remove",
                short(&key),
                previous.version
            );
        }
    }
    for key in args.revoke {
        let key = files::parse_key(key, "--revoke")?;
        doc.keys.remove(&key);
        doc.revoked.insert(key);
    }
    if let Some(threshold) = args.root_threshold {
        doc.root_threshold = threshold;
    }
    if let Some(threshold) = args.config_threshold {
        doc.config_threshold = threshold;
    }
    let version = doc.version;
    doc.validate()
        .map_err(|error| explain(error, &doc, None))
        .with_context(|| format!("cannot make trust version {version}"))?;
    let signers = load_keys(args.root_keys)?;
    check_signers(&signers, &previous, &doc)?;
    let signed = SignedTrust::sign(doc, &signers.iter().collect::<Vec<_>>());
    let pending = args.pending.then_some(args.out);
    finish(&mut chain, signed, args.out, pending)
}

/// Appends `signed` to `chain` and writes the chain to `out` when it
/// carries every root signature it needs; otherwise writes it as a pending
/// update to `pending` for `fleet sign` to complete, or refuses when there
/// is nowhere to put it.
fn finish(
    chain: &mut TrustChain,
    signed: SignedTrust,
    out: &Path,
    pending: Option<&Path>,
) -> anyhow::Result<()> {
    let previous = chain.head().doc.clone();
    let version = signed.doc.version;
    match (missing_signatures(&signed, &previous), pending) {
        (None, _) => {
            chain
                .insert(signed.clone(), &Ed25519)
                .map_err(|error| explain(error, &signed.doc, Some(&previous)))?;
            save_chain(chain, out, Existing::Replace)?;
            println!("wrote trust chain {} (version {version})", out.display());
        }
        (Some(missing), Some(path)) => {
            let file = PendingFile {
                fleet_id: chain.fleet_id().to_hex(),
                doc: TrustJson::new(&signed),
            };
            files::write_atomic(
                path,
                &files::to_json(PENDING_FORMAT, &file)?,
                Mode::Public,
                Existing::Replace,
            )?;
            println!(
                "wrote pending trust version {version} to {}: {missing}",
                path.display()
            );
            println!(
                "next: another root signs with `fleetmesh fleet sign --trust CHAIN --pending {} --root-key FILE --out CHAIN`",
                path.display()
            );
        }
        (Some(missing), None) => bail!(
            "{missing}: pass more --root-key files, or write a pending update with --pending and let each root add its signature with `fleetmesh fleet sign`"
        ),
    }
    Ok(())
}

/// Refuses signing keys that are roots of neither the current nor the new
/// version: their signatures would not count, which is surely a mistake.
fn check_signers(signers: &[Keypair], previous: &TrustDoc, next: &TrustDoc) -> anyhow::Result<()> {
    if let Some(stranger) = signers.iter().find(|signer| {
        !previous.has_role(&signer.public(), Role::Root)
            && !next.has_role(&signer.public(), Role::Root)
    }) {
        bail!(
            "key {} is not a root key of trust version {} (nor of the new version {}): sign with --root-key files of the current roots",
            short(&stranger.public()),
            previous.version,
            next.version
        );
    }
    Ok(())
}

/// Which root signatures `next` still lacks as the successor of
/// `previous`, in words; `None` when it has them all.
fn missing_signatures(next: &SignedTrust, previous: &TrustDoc) -> Option<String> {
    [(previous, "current"), (&next.doc, "new")]
        .into_iter()
        .find_map(|(authority, role)| {
            let signing = next
                .signatures
                .keys()
                .filter(|key| authority.has_role(key, Role::Root))
                .count();
            (signing < authority.root_threshold as usize).then(|| {
                let roots: Vec<String> = authority.holders(Role::Root).map(short).collect();
                format!(
                    "trust version {} needs {} signatures by the {role} root keys (version {}: {}), has {signing}",
                    next.doc.version,
                    authority.root_threshold,
                    authority.version,
                    roots.join(", ")
                )
            })
        })
}

/// A pending trust update: the next version with the root signatures
/// collected so far, passed from root holder to root holder.
#[derive(Serialize, Deserialize)]
struct PendingFile {
    /// The fleet the update is for, checked against the chain.
    fleet_id: String,
    doc: TrustJson,
}

/// `fleetmesh fleet sign`: adds root signatures to a pending update; once
/// it has all it needs, appends it to the chain written to `out`.
pub fn sign(trust: &Path, pending: &Path, root_keys: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    let mut chain = load_chain(trust)?;
    let file: PendingFile = files::read_json(pending, PENDING_FORMAT, "pending trust update")?;
    let context = || format!("pending trust update {}", pending.display());
    let mut signed = file.doc.decode().with_context(context)?;
    if files::parse_digest(&file.fleet_id, "the fleet id").with_context(context)?
        != chain.fleet_id()
    {
        bail!(
            "pending trust update {} is for fleet {}, not this chain's fleet {}",
            pending.display(),
            file.fleet_id,
            chain.fleet_id()
        );
    }
    let previous = chain.head().doc.clone();
    if signed.doc.version != previous.version + 1 {
        bail!(
            "pending trust version {} does not follow the chain, whose head is version {}: make a new update with `fleetmesh fleet update`",
            signed.doc.version,
            previous.version
        );
    }
    check_signatures(&signed).with_context(context)?;
    let signers = load_keys(root_keys)?;
    check_signers(&signers, &previous, &signed.doc)?;
    let digest = signed.digest();
    for signer in &signers {
        signed
            .signatures
            .insert(signer.public(), signer.sign_digest(&digest));
    }
    finish(&mut chain, signed, out, Some(pending))
}

/// What `fleetmesh fleet admit` is given.
pub struct Admission<'a> {
    /// The fleet's chain file.
    pub trust: &'a Path,
    /// The `admit` key file that signs.
    pub admit_key: &'a Path,
    /// The node's public key in hex.
    pub node: &'a str,
    /// The node's name.
    pub name: &'a str,
    /// `k=v` tags.
    pub tags: &'a [String],
    /// Expiry, Unix milliseconds or RFC 3339.
    pub expires: Option<&'a str>,
    /// The certificate file to write.
    pub out: &'a Path,
    /// Replace an existing `out`.
    pub force: bool,
}

/// `fleetmesh fleet admit`: a node certificate, checked as an agent would
/// check it before it is written.
pub fn admit(args: &Admission<'_>) -> anyhow::Result<()> {
    let chain = load_chain(args.trust)?;
    let issuer = formats::load_key(args.admit_key)?;
    let trust_version = chain.head().doc.version;
    require_role(&chain, &issuer.public(), Role::Admit, trust_version)?;
    let node_key = files::parse_key(args.node, "--node")?;
    let tags = args
        .tags
        .iter()
        .map(|tag| {
            tag.split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .with_context(|| format!("--tag {tag:?} is not key=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    let expires_millis = expires_millis(args.expires)?;
    let body = CertBody {
        fleet: chain.fleet_id(),
        node_key,
        name: args.name.to_owned(),
        tags,
        expires_millis,
        issuer: issuer.public(),
        trust_version,
    };
    let cert = NodeCert::issue(body, &issuer);
    cert.check(&chain, files::now_millis(), &Ed25519)
        .map_err(|error| anyhow::anyhow!("agents would refuse this certificate: {error}"))
        .context("check the name (1..=128 bytes), tags and expiry")?;
    formats::write_cert(args.out, &cert, Existing::unless_forced(args.force))?;
    println!(
        "wrote certificate {} for node {} ({})",
        args.out.display(),
        cert.node_id(),
        args.name
    );
    Ok(())
}

/// `--expires` (Unix milliseconds or RFC 3339) in Unix milliseconds.
pub(super) fn expires_millis(expires: Option<&str>) -> anyhow::Result<Option<u64>> {
    expires
        .map(files::parse_time)
        .transpose()
        .context("--expires")
}
