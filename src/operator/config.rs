//! Config store directories and the `config` commands: drafts, releases,
//! signatures, verification, content.
//!
//! A store directory holds one file per signed change and the release
//! files. Every command loads all of it through the same verifying merge
//! an agent runs, so what the CLI shows is what agents would hold.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fleetmesh_crdt::{
    ConfigEntry, ConfigError, ConfigStore, Ctx, Ed25519, PublicKey, Rejected, Release, Replica,
    Role, SignedRelease, TrustChain, Value,
};
use fleetmesh_runtime::files::{self, Existing, Mode};
use fleetmesh_runtime::formats::{
    self, CHANGE_FORMAT, ChangeJson, RELEASE_FORMAT, ReleaseJson, load_chain, short,
};

use fleetmesh_crdt::config::rollout::Rollout;

use super::drafts::Drafts;
use super::{fleet, lint};

/// Runs `body` with a merge context for `chain`. Config merges consult the
/// trust chain only; node admission (the `admitted` predicate) matters to
/// node-signed collections, which the CLI never loads.
fn with_ctx<T>(chain: &TrustChain, body: impl FnOnce(&Ctx<'_>) -> T) -> T {
    let admitted = |_: &PublicKey| false;
    let ctx = Ctx {
        trust: chain,
        admitted: &admitted,
        verifier: &Ed25519,
        now_millis: files::now_millis(),
    };
    body(&ctx)
}

/// A store directory as loaded: the verified changes merged, and the
/// releases found with whether each reaches its threshold.
struct Store {
    dir: PathBuf,
    changes: ConfigStore,
    /// Every release file with its verdict: complete (signed by the
    /// config threshold) or not yet.
    releases: Vec<(PathBuf, SignedRelease, bool)>,
}

impl Store {
    /// Loads `dir`, refusing any file that is damaged or tampered with.
    /// Changes by keys that lost `config` or were revoked are left out with
    /// a warning: the trust chain decided they no longer count, and the
    /// rest of the store is still good.
    fn load(dir: &Path, chain: &TrustChain) -> anyhow::Result<Store> {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| {
                format!(
                    "cannot read store directory {}: check the path (`fleetmesh config draft` creates it)",
                    dir.display()
                )
            })?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list store directory {}", dir.display()))?;
        // Sorted, so every run merges in one order and prints warnings in
        // one order; temporary files of interrupted writes start with a dot.
        paths.sort();
        paths.retain(|path| {
            let name = path.file_name().map(|name| name.to_string_lossy());
            path.extension().is_some_and(|ext| ext == "json")
                && !name.is_some_and(|name| name.starts_with('.'))
        });
        let mut changes = Vec::new();
        let mut releases = Vec::new();
        for path in paths {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let format = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|value| value.get("format")?.as_str().map(str::to_owned));
            // Parse errors read "file NAME is not ...", decode errors are
            // about a field; both end with the way out.
            let loaded = match format.as_deref() {
                Some(RELEASE_FORMAT) => {
                    files::parse_json::<ReleaseJson>(&text, RELEASE_FORMAT, "config release")
                        .and_then(|json| json.decode().context("holds bad data"))
                        .map(|release| releases.push((path.clone(), release)))
                }
                _ => files::parse_json::<ChangeJson>(&text, CHANGE_FORMAT, "config change")
                    .and_then(|json| json.decode().context("holds bad data"))
                    .map(|change| changes.push((path.clone(), change))),
            };
            loaded.map_err(|error| {
                anyhow::anyhow!(
                    "file {} in store {} {error:#}; remove it or restore an intact copy",
                    path.display(),
                    dir.display()
                )
            })?;
        }
        let mut store = ConfigStore::new();
        // Whether the chain itself refuses each author: then the change is
        // left out, while any other refusal means a damaged or forged file.
        let distrusted: Vec<bool> = changes
            .iter()
            .map(|(_, change)| {
                change.trust_version <= chain.head().doc.version
                    && !chain.authorizes(&change.author, Role::Config, change.trust_version)
            })
            .collect();
        let (paths, entries): (Vec<PathBuf>, Vec<ConfigEntry>) = changes
            .into_iter()
            .map(|(path, change)| (path, ConfigEntry::Change(change)))
            .unzip();
        let results = with_ctx(chain, |ctx| store.merge_batch(entries, ctx));
        for ((path, result), distrusted) in paths.iter().zip(results).zip(distrusted) {
            match result {
                Ok(_) => {}
                Err(error @ Rejected::Unauthorized(_)) if distrusted => {
                    eprintln!("warning: leaving out change {}: {error}", path.display())
                }
                Err(Rejected::Quarantined) => eprintln!(
                    "warning: leaving out change {}: its author is quarantined (it signed conflicting changes, or a change automerge cannot apply)",
                    path.display()
                ),
                Err(Rejected::BadSignature) => bail!(
                    "signature on config change {} does not verify: the file was altered or damaged; remove it or restore an intact copy",
                    path.display()
                ),
                Err(error) => bail!(
                    "config change {} is refused ({error}): remove it from the store",
                    path.display()
                ),
            }
        }
        if store.pending_len() > 0 {
            eprintln!(
                "warning: {} changes in {} wait for earlier changes that are not there (copy in the missing change files) or for a newer trust chain",
                store.pending_len(),
                dir.display()
            );
        }
        let releases = releases
            .into_iter()
            .map(|(path, release)| {
                let complete = check_release(&release, chain)
                    .with_context(|| format!("release file {}", path.display()))?
                    .is_complete();
                Ok((path, release, complete))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Store {
            dir: dir.to_owned(),
            changes: store,
            releases,
        })
    }

    /// The highest release version of `doc` in the store signed by the
    /// config threshold; 0 when there is none.
    fn released(&self, doc: &str) -> u64 {
        self.releases
            .iter()
            .filter(|(_, release, complete)| *complete && release.release.doc == doc)
            .map(|(_, release, _)| release.release.version)
            .max()
            .unwrap_or(0)
    }

    /// The heads of the complete release `version` of `doc` in the store.
    fn release_heads(
        &self,
        doc: &str,
        version: u64,
    ) -> anyhow::Result<Vec<fleetmesh_crdt::Digest>> {
        self.releases
            .iter()
            .find(|(_, release, complete)| {
                *complete && release.release.doc == doc && release.release.version == version
            })
            .map(|(_, release, _)| release.release.heads.clone())
            .with_context(|| {
                format!(
                    "store {} holds no complete release {version} of document {doc}: copy its release file in (signed by the config threshold), or name a version it holds",
                    self.dir.display()
                )
            })
    }

    /// The content of `doc` at `heads`, or an error saying what is missing.
    fn content(&self, doc: &str, heads: &[fleetmesh_crdt::Digest]) -> anyhow::Result<Value> {
        self.changes.value_at(doc, heads).with_context(|| {
            format!(
                "store {} lacks changes of document {doc} the release names: copy the document's change files into it",
                self.dir.display()
            )
        })
    }
}

/// How a release's signatures stand under a trust chain.
struct Tally {
    /// Keys whose signatures count: valid and authorized for `config` at
    /// the release's trust version.
    counted: Vec<PublicKey>,
    /// Keys whose valid signatures do not count (no `config` role then, or
    /// revoked since).
    ignored: Vec<PublicKey>,
    /// The config threshold of the release's trust version.
    threshold: u32,
}

impl Tally {
    fn is_complete(&self) -> bool {
        self.counted.len() >= self.threshold as usize
    }
}

/// Verifies every signature a release carries (any bad one means the file
/// was altered: a signer never makes one) and counts those that count.
fn check_release(release: &SignedRelease, chain: &TrustChain) -> anyhow::Result<Tally> {
    let body = &release.release;
    let head = chain.head().doc.version;
    let Some(trust) = chain.get(body.trust_version) else {
        bail!(
            "the release names trust version {} but the trust chain ends at version {head}: use the newer trust chain file",
            body.trust_version
        );
    };
    let digest = body.digest();
    let mut tally = Tally {
        counted: Vec::new(),
        ignored: Vec::new(),
        threshold: trust.doc.config_threshold,
    };
    if let Some(key) = files::bad_signer(digest, &release.signatures) {
        bail!(
            "signature by key {} on release {} version {} does not verify: the file was altered or damaged; get an intact copy from its signers",
            short(&key),
            body.doc,
            body.version
        );
    }
    for key in release.signatures.keys() {
        if chain.authorizes(key, Role::Config, body.trust_version) {
            tally.counted.push(*key);
        } else {
            tally.ignored.push(*key);
        }
    }
    // The crate's own verdict must agree: it is what agents will run.
    let verdict = with_ctx(chain, |ctx| release.verify(ctx));
    match verdict {
        Ok(_) if tally.is_complete() => {}
        Err(Rejected::Unauthorized(_)) if !tally.is_complete() => {}
        Err(Rejected::Malformed(reason)) => bail!("malformed release: {reason}"),
        other => bail!("the release's verdict is inconsistent ({other:?}): report this as a bug"),
    }
    Ok(tally)
}

/// Reads a config file, TOML or JSON by its extension.
fn read_content(path: &Path) -> anyhow::Result<Value> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let extension = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_lowercase());
    match extension.as_deref() {
        Some("toml") => {
            let value: toml::Table = toml::from_str(&text)
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            Ok(from_toml(toml::Value::Table(value)))
        }
        Some("json") => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("config file {} is not valid JSON", path.display()))?;
            from_json(value).with_context(|| format!("config file {}", path.display()))
        }
        _ => bail!(
            "config file {} must end in .toml or .json, which says how to read it",
            path.display()
        ),
    }
}

/// TOML onto config values; a datetime becomes its RFC 3339 text, since
/// config values have no time type.
fn from_toml(value: toml::Value) -> Value {
    match value {
        toml::Value::String(text) => Value::Str(text),
        toml::Value::Integer(int) => Value::Int(int),
        toml::Value::Float(float) => Value::Float(float),
        toml::Value::Boolean(flag) => Value::Bool(flag),
        toml::Value::Datetime(time) => Value::Str(time.to_string()),
        toml::Value::Array(items) => Value::List(items.into_iter().map(from_toml).collect()),
        toml::Value::Table(table) => Value::Map(
            table
                .into_iter()
                .map(|(key, value)| (key, from_toml(value)))
                .collect(),
        ),
    }
}

/// JSON onto config values; integers must fit 64 signed bits (a larger one
/// would silently lose digits as a float).
fn from_json(value: serde_json::Value) -> anyhow::Result<Value> {
    Ok(match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(flag),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(int), _) if !number.is_f64() => Value::Int(int),
            (_, Some(float)) if number.is_f64() => Value::Float(float),
            _ => bail!("number {number} does not fit a 64-bit signed integer"),
        },
        serde_json::Value::String(text) => Value::Str(text),
        serde_json::Value::Array(items) => Value::List(
            items
                .into_iter()
                .map(from_json)
                .collect::<anyhow::Result<_>>()?,
        ),
        serde_json::Value::Object(map) => Value::Map(
            map.into_iter()
                .map(|(key, value)| Ok((key, from_json(value)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
    })
}

/// How `config show` and `config verify` print content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// TOML, as operators usually write config.
    Toml,
    /// JSON, which can also show null values.
    Json,
}

/// Renders content an agent's admin API gave as JSON, as `config show`
/// renders a store's.
pub fn render_json(content: serde_json::Value, format: Format) -> anyhow::Result<String> {
    render(&from_json(content)?, format)
}

fn render(value: &Value, format: Format) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(value)? + "\n"),
        Format::Toml => {
            let toml = to_toml(value)?;
            toml::to_string_pretty(&toml)
                .context("the content cannot be shown as TOML: use --format json")
        }
    }
}

fn to_toml(value: &Value) -> anyhow::Result<toml::Value> {
    Ok(match value {
        Value::Null => bail!("the content holds a null, which TOML cannot show: use --format json"),
        Value::Bool(flag) => toml::Value::Boolean(*flag),
        Value::Int(int) => toml::Value::Integer(*int),
        Value::Float(float) => toml::Value::Float(*float),
        Value::Str(text) => toml::Value::String(text.clone()),
        Value::List(items) => {
            toml::Value::Array(items.iter().map(to_toml).collect::<anyhow::Result<_>>()?)
        }
        Value::Map(map) => toml::Value::Table(
            map.iter()
                .map(|(key, value)| Ok((key.clone(), to_toml(value)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
    })
}

/// What `fleetmesh config draft` is given.
pub struct Draft<'a> {
    /// The fleet's chain file.
    pub trust: &'a Path,
    /// The author's key file (a `config` key).
    pub key: &'a Path,
    /// The document id.
    pub doc: &'a str,
    /// The TOML or JSON file with the document's new content.
    pub from: &'a Path,
    /// The store directory (created if missing).
    pub store: &'a Path,
}

/// `fleetmesh config draft`: one signed change turning the document as the
/// store holds it into the file's content.
pub fn draft(args: &Draft<'_>) -> anyhow::Result<()> {
    let chain = load_chain(args.trust)?;
    let author = formats::load_key(args.key)?;
    let trust_version = chain.head().doc.version;
    fleet::require_role(&chain, &author.public(), Role::Config, trust_version)?;
    let content = read_content(args.from)?;
    lint::check(args.doc, &content)
        .with_context(|| format!("config file {}", args.from.display()))?;
    fs::create_dir_all(args.store)
        .with_context(|| format!("cannot create store directory {}", args.store.display()))?;
    let mut store = Store::load(args.store, &chain)?;
    let mut drafts = Drafts::load(args.key, author.public())?;
    drafts.check(args.doc, &store.changes, args.store)?;
    let authored = with_ctx(&chain, |ctx| {
        store
            .changes
            .author(args.doc, &author, trust_version, &content, ctx)
    });
    let change = match authored {
        Ok(Some(change)) => change,
        Ok(None) => {
            println!(
                "document {} already holds this content: no change written",
                args.doc
            );
            return Ok(());
        }
        Err(ConfigError::NotAMap) => bail!(
            "config file {} must hold a table (map) at the top",
            args.from.display()
        ),
        Err(ConfigError::Rejected(Rejected::Quarantined)) => bail!(
            "key {} is quarantined: the store holds proof that it signed two conflicting changes; revoke it with `fleetmesh fleet update --revoke` and use another config key",
            short(&author.public())
        ),
        Err(error) => bail!("the change is refused: {error}"),
    };
    let hash = change
        .key()
        .context("the new change does not parse: report this as a bug")?;
    let path = args
        .store
        .join(format!("change-{}.json", &hash.to_hex()[..16]));
    files::write_atomic(
        &path,
        &files::to_json(CHANGE_FORMAT, &ChangeJson::new(&change))?,
        Mode::Public,
        Existing::Refuse {
            hint: "the store holds a file of that name it could not load: move it out",
        },
    )?;
    // After the change file: a crash between the two leaves the journal
    // one change behind, which this store (holding the change) still
    // passes.
    drafts.record(args.doc, hash, args.store)?;
    println!("wrote change {} (hash {hash})", path.display());
    let heads: Vec<String> = store
        .changes
        .heads(args.doc)
        .iter()
        .map(|head| head.to_hex())
        .collect();
    println!("document {} heads {}", args.doc, heads.join(" "));
    Ok(())
}

/// What `fleetmesh config release` is given.
pub struct ReleaseArgs<'a> {
    /// The fleet's chain file.
    pub trust: &'a Path,
    /// The first signer's key file (a `config` key).
    pub key: &'a Path,
    /// The document id.
    pub doc: &'a str,
    /// The store directory.
    pub store: &'a Path,
    /// The release number; the store's highest release + 1 by default.
    pub version: Option<u64>,
    /// Expiry, Unix milliseconds or RFC 3339.
    pub expires: Option<&'a str>,
    /// The release file; inside the store by default, where later
    /// releases look for it.
    pub out: Option<&'a Path>,
    /// A TOML file with the release's `[rollout]` plan.
    pub rollout: Option<&'a Path>,
    /// Release the heads of this earlier version instead of the current
    /// ones (`config revert`).
    pub content_of: Option<u64>,
}

/// Reads the rollout plan in `path` for a release of `version`, refused
/// (naming the field) where agents would refuse the release.
fn read_plan(path: &Path, version: u64) -> anyhow::Result<Rollout> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the rollout plan {}", path.display()))?;
    formats::parse_plan(&text, version).with_context(|| path.display().to_string())
}

/// `fleetmesh config release`: a release of the document's current heads,
/// signed by one key; more signatures are added with `config sign`.
pub fn release(args: &ReleaseArgs<'_>) -> anyhow::Result<()> {
    let chain = load_chain(args.trust)?;
    let signer = formats::load_key(args.key)?;
    let trust_version = chain.head().doc.version;
    fleet::require_role(&chain, &signer.public(), Role::Config, trust_version)?;
    let store = Store::load(args.store, &chain)?;
    let mut heads = match args.content_of {
        Some(version) => store.release_heads(args.doc, version)?,
        None => store.changes.heads(args.doc),
    };
    heads.sort();
    if heads.is_empty() {
        bail!(
            "document {} has no changes in {}: draft one with `fleetmesh config draft`",
            args.doc,
            args.store.display()
        );
    }
    lint::check(args.doc, &store.content(args.doc, &heads)?)?;
    let released = store.released(args.doc);
    let version = args.version.unwrap_or(released + 1);
    if version <= released {
        bail!(
            "release version {version} is stale: version {released} is already released in {}; release version {} instead",
            args.store.display(),
            released + 1
        );
    }
    if version > released + 1 {
        bail!(
            "release version {version} would skip version {}: agents move one release at a time, so release version {} first",
            released + 1,
            released + 1
        );
    }
    let expires_millis = fleet::expires_millis(args.expires)?;
    let rollout = args
        .rollout
        .map(|path| read_plan(path, version))
        .transpose()?;
    let release = Release {
        rollout,
        doc: args.doc.to_owned(),
        version,
        heads,
        expires_millis,
        trust_version,
    };
    if release.is_expired(files::now_millis()) {
        bail!("--expires is in the past: agents would refuse the release; give a later time");
    }
    let mut signed = SignedRelease::new(release);
    signed.sign(&signer);
    let tally = check_release(&signed, &chain)?;
    let digest = signed.release.digest();
    let path = args.out.map_or_else(
        || {
            let name: String = args
                .doc
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            args.store.join(format!(
                "release-{name}-v{version}-{}.json",
                &digest.to_hex()[..8]
            ))
        },
        Path::to_path_buf,
    );
    write_release(
        &path,
        &signed,
        Existing::Refuse {
            hint: "this release was already made: sign that file with `fleetmesh config sign`, or choose another --out",
        },
    )?;
    println!(
        "wrote release {} of document {} version {version} (digest {digest})",
        path.display(),
        args.doc
    );
    print_tally(&tally, &path, args.trust);
    Ok(())
}

fn write_release(path: &Path, release: &SignedRelease, existing: Existing) -> anyhow::Result<()> {
    files::write_atomic(
        path,
        &files::to_json(RELEASE_FORMAT, &ReleaseJson::new(release))?,
        Mode::Public,
        existing,
    )
}

fn load_release(path: &Path) -> anyhow::Result<SignedRelease> {
    let json: ReleaseJson = files::read_json(path, RELEASE_FORMAT, "config release")?;
    json.decode()
        .with_context(|| format!("release file {}", path.display()))
}

fn print_tally(tally: &Tally, path: &Path, trust: &Path) {
    println!(
        "signatures: {} of the {} required",
        tally.counted.len(),
        tally.threshold
    );
    for key in &tally.ignored {
        println!(
            "  not counted: {} (no `config` role at the release's trust version, or revoked)",
            short(key)
        );
    }
    if !tally.is_complete() {
        println!(
            "next: another config key signs with `fleetmesh config sign --release {} --trust {} --key FILE`",
            path.display(),
            trust.display()
        );
    }
}

/// `fleetmesh config sign`: adds one config key's signature to a release
/// file, in place.
pub fn sign(release_path: &Path, trust: &Path, key: &Path) -> anyhow::Result<()> {
    let chain = load_chain(trust)?;
    let signer = formats::load_key(key)?;
    let mut release = load_release(release_path)?;
    check_release(&release, &chain)
        .with_context(|| format!("release file {}", release_path.display()))?;
    fleet::require_role(
        &chain,
        &signer.public(),
        Role::Config,
        release.release.trust_version,
    )?;
    if release.signatures.contains_key(&signer.public()) {
        println!(
            "release {} already carries the signature of {}: nothing to do",
            release_path.display(),
            short(&signer.public())
        );
        return Ok(());
    }
    release.sign(&signer);
    let tally = check_release(&release, &chain)?;
    write_release(release_path, &release, Existing::Replace)?;
    println!(
        "signed release {} of document {} version {}",
        release_path.display(),
        release.release.doc,
        release.release.version
    );
    print_tally(&tally, release_path, trust);
    Ok(())
}

/// `fleetmesh config verify`: whether a release reaches its config
/// threshold and is not expired, and the content it releases.
pub fn verify(
    release_path: &Path,
    trust: &Path,
    store: &Path,
    format: Format,
) -> anyhow::Result<()> {
    let chain = load_chain(trust)?;
    let release = load_release(release_path)?;
    let store = Store::load(store, &chain)?;
    let tally = check_release(&release, &chain)
        .with_context(|| format!("release file {}", release_path.display()))?;
    let body = &release.release;
    println!(
        "release of document {} version {} (digest {}), trust version {}",
        body.doc,
        body.version,
        body.digest(),
        body.trust_version
    );
    if let Some(expires) = body.expires_millis {
        println!("expires {}", files::format_time(expires));
    }
    print_tally(&tally, release_path, trust);
    if !tally.is_complete() {
        bail!(
            "release {} version {} has {} valid config signature(s) but trust version {} requires {}: add signatures with `fleetmesh config sign`",
            body.doc,
            body.version,
            tally.counted.len(),
            body.trust_version,
            tally.threshold
        );
    }
    if body.is_expired(files::now_millis()) {
        bail!(
            "release {} version {} expired at {}: agents refuse it; make a new release",
            body.doc,
            body.version,
            files::format_time(body.expires_millis.unwrap_or_default())
        );
    }
    let content = store.content(&body.doc, &body.heads)?;
    println!("content:");
    print!("{}", render(&content, format)?);
    lint::check(&body.doc, &content)?;
    println!("OK: the release reaches the config threshold");
    Ok(())
}

/// `fleetmesh config show`: a document's content, as the store's heads
/// have it or as a verified release names it.
pub fn show(
    store: &Path,
    trust: &Path,
    doc: &str,
    release: Option<&Path>,
    format: Format,
) -> anyhow::Result<()> {
    let chain = load_chain(trust)?;
    let store = Store::load(store, &chain)?;
    let heads = match release {
        Some(path) => {
            let release = load_release(path)?;
            if release.release.doc != doc {
                bail!(
                    "release {} is of document {}, not {doc}",
                    path.display(),
                    release.release.doc
                );
            }
            let tally = check_release(&release, &chain)
                .with_context(|| format!("release file {}", path.display()))?;
            if !tally.is_complete() {
                bail!(
                    "release {} has {} of the {} config signatures it needs: agents would not run it",
                    path.display(),
                    tally.counted.len(),
                    tally.threshold
                );
            }
            release.release.heads
        }
        None => store.changes.heads(doc),
    };
    if heads.is_empty() {
        bail!(
            "document {doc} has no changes in {}: draft one with `fleetmesh config draft`",
            store.dir.display()
        );
    }
    print!("{}", render(&store.content(doc, &heads)?, format)?);
    Ok(())
}
