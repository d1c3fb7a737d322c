//! The draft journal of a config key: for each document, the last change
//! the key signed and the store it was written to, kept next to the key
//! file (`KEY.drafts.json`).
//!
//! Automerge numbers an author's changes per document (1, 2, 3, ...), and
//! a new change takes the next number after the author's changes the store
//! holds. A store that lacks the key's last change (a copy made before it,
//! a stale backup, a fresh directory) would number the next change the
//! same as one already signed: two changes with one (author, sequence
//! number) are equivocation, and every agent quarantines the key. So
//! `config draft` refuses to sign in a store that does not hold the
//! journal's change (issue 17, item 7; docs/operations.md, "Equivocation
//! and quarantine").

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fleetmesh_crdt::{ConfigStore, Digest, PublicKey};
use fleetmesh_runtime::files::{self, Existing, Mode};
use fleetmesh_runtime::formats::{DRAFTS_FORMAT, Drafted, DraftsJson, short};

/// Largest journal read: one short entry per document is far below it.
const DRAFTS_BYTES_MAX: u64 = 4 << 20;

/// A key's draft journal, as loaded.
pub(super) struct Drafts {
    path: PathBuf,
    author: PublicKey,
    docs: BTreeMap<String, Drafted>,
}

impl Drafts {
    /// Loads the journal of the key in `key_file` (`author`); empty when
    /// the key never drafted here.
    pub(super) fn load(key_file: &Path, author: PublicKey) -> anyhow::Result<Drafts> {
        let mut name = key_file.as_os_str().to_owned();
        name.push(".drafts.json");
        let path = PathBuf::from(name);
        let empty = Drafts {
            path: path.clone(),
            author,
            docs: BTreeMap::new(),
        };
        let size = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(empty),
            Err(error) => return Err(files::io_failure("cannot read", &path, &error)),
        };
        if size > DRAFTS_BYTES_MAX {
            bail!(
                "draft journal {} is {size} bytes, more than a journal ever holds ({DRAFTS_BYTES_MAX}): restore it from a backup",
                path.display()
            );
        }
        let text = fs::read_to_string(&path)
            .map_err(|error| files::io_failure("cannot read", &path, &error))?;
        let json = DraftsJson::parse(&text, &author)
            .map_err(|error| anyhow::anyhow!("draft journal {} {error:#}", path.display()))?;
        Ok(Drafts {
            path,
            author,
            docs: json.docs,
        })
    }

    /// Refuses to draft `doc` in `store` (directory `dir`) unless the store
    /// holds the last change the key signed in `doc`: a change drafted
    /// without it would reuse its sequence number.
    pub(super) fn check(&self, doc: &str, store: &ConfigStore, dir: &Path) -> anyhow::Result<()> {
        let Some(last) = self.docs.get(doc) else {
            return Ok(());
        };
        // Too late for this check: drafting refuses the key, saying why.
        if store.quarantined().any(|key| *key == self.author) {
            return Ok(());
        }
        let held = files::parse_digest(&last.change, "change hash")
            .map(|hash| store.applied().any(|applied| *applied == hash))
            .with_context(|| format!("draft journal {}", self.path.display()))?;
        if held {
            return Ok(());
        }
        bail!(
            "store {} does not hold change {} of document {doc}, the last one key {} signed (in store {}): a change drafted here would reuse its sequence number, and agents that see both quarantine the key for equivocation (docs/operations.md, \"Equivocation and quarantine\"). Draft in {} instead, or copy its change files into {} first (`cp {}/change-*.json {}/`), then draft again",
            dir.display(),
            &last.change[..16.min(last.change.len())],
            short(&self.author),
            last.store,
            last.store,
            dir.display(),
            last.store,
            dir.display()
        )
    }

    /// Records `change` as the key's last change in `doc`, written to
    /// `dir`, durably.
    pub(super) fn record(&mut self, doc: &str, change: Digest, dir: &Path) -> anyhow::Result<()> {
        // Absolute, so the refusal names the store wherever it is run from.
        let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
        self.docs.insert(
            doc.to_owned(),
            Drafted {
                change: change.to_hex(),
                store: dir.display().to_string(),
            },
        );
        let json = DraftsJson {
            author: self.author.to_hex(),
            docs: std::mem::take(&mut self.docs),
        };
        let written = files::to_json(DRAFTS_FORMAT, &json).and_then(|bytes| {
            files::write_atomic(&self.path, &bytes, Mode::Public, Existing::Replace)
        });
        self.docs = json.docs;
        written
    }
}
