//! The operator commands: keys, the fleet's trust chain and node
//! certificates, signed config. Those that make and sign files work on
//! local files only (formats in docs/operations.md), so root and config
//! keys can stay on machines that never join the mesh; the `config`
//! subcommands that read what an agent runs (`publish`, `history`, and
//! `release` and `show` without `--store`) go to [`crate::client`].

mod config;
mod fleet;
mod keys;

use std::path::PathBuf;

use clap::Subcommand;

use crate::client::{self, PublishArgs, Target};

pub use config::{Format, render_json};
pub use fleet::require_role;

/// `fleetmesh fleet ...`
#[derive(Subcommand)]
pub enum FleetCommand {
    /// Makes the genesis trust document (version 1), signed by the root
    /// keys given, as a new trust chain file.
    Init {
        /// The fleet's name (1 to 64 bytes).
        #[arg(long)]
        name: String,
        /// A root key file; repeat for several roots. Each signs and
        /// becomes a root.
        #[arg(long = "root-key", value_name = "FILE", required = true)]
        root_keys: Vec<PathBuf>,
        /// An operator key and its roles (root, config, admit, approve);
        /// repeatable.
        #[arg(long = "key", value_name = "PUBHEX=ROLE,ROLE")]
        keys: Vec<String>,
        /// Root signatures each later version needs; all the roots given by
        /// default.
        #[arg(long, value_name = "N")]
        root_threshold: Option<u32>,
        /// Config signatures a release needs.
        #[arg(long, value_name = "N", default_value_t = 1)]
        config_threshold: u32,
        /// The trust chain file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Makes the next trust version, signed by enough root keys of the
    /// current version and of the new one (rotating a root: add the new
    /// root, remove the old, sign with both).
    Update {
        /// The trust chain file.
        #[arg(long, value_name = "CHAIN")]
        trust: PathBuf,
        /// A root key file that signs; repeatable.
        #[arg(long = "root-key", value_name = "FILE", required = true)]
        root_keys: Vec<PathBuf>,
        /// Gives a key roles (added to any it has); repeatable.
        #[arg(long, value_name = "PUBHEX=ROLE,ROLE")]
        add: Vec<String>,
        /// Retires a key: it loses its roles, what it signed stays valid.
        #[arg(long, value_name = "PUBHEX")]
        remove: Vec<String>,
        /// Revokes a key (operator or node): nothing it ever signed counts.
        #[arg(long, value_name = "PUBHEX")]
        revoke: Vec<String>,
        /// A new root threshold.
        #[arg(long, value_name = "N")]
        root_threshold: Option<u32>,
        /// A new config threshold.
        #[arg(long, value_name = "N")]
        config_threshold: Option<u32>,
        /// The trust chain file to write; may be the --trust file itself.
        /// With --pending, where the pending update goes when it still
        /// lacks root signatures.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// When the root keys given are not enough, write a pending update
        /// to --out for the other roots to sign with `fleet sign`.
        #[arg(long)]
        pending: bool,
    },
    /// Adds root signatures to a pending update; once it has every
    /// signature it needs, appends it to the trust chain.
    Sign {
        /// The trust chain file the update extends.
        #[arg(long, value_name = "CHAIN")]
        trust: PathBuf,
        /// The pending update file (`fleet update --pending`), updated in
        /// place while signatures are missing.
        #[arg(long, value_name = "FILE")]
        pending: PathBuf,
        /// A root key file that signs; repeatable.
        #[arg(long = "root-key", value_name = "FILE", required = true)]
        root_keys: Vec<PathBuf>,
        /// The trust chain file to write when the update is complete; may
        /// be the --trust file itself.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Signs a node certificate with an `admit` key.
    Admit {
        /// The trust chain file.
        #[arg(long, value_name = "CHAIN")]
        trust: PathBuf,
        /// The `admit` key file that signs.
        #[arg(long, value_name = "FILE")]
        admit_key: PathBuf,
        /// The node's public key (`fleetmesh keygen` prints it).
        #[arg(long, value_name = "PUBHEX")]
        node: String,
        /// The node's name.
        #[arg(long)]
        name: String,
        /// A tag the certificate vouches for; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Expiry: RFC 3339 (2027-01-31T12:00:00Z) or Unix milliseconds.
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
        /// The certificate file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// `fleetmesh config ...`
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Turns a TOML or JSON file into one signed change on top of what the
    /// store directory holds, written into it.
    Draft {
        /// The trust chain file.
        #[arg(long, value_name = "CHAIN")]
        trust: PathBuf,
        /// The author's `config` key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The document id.
        #[arg(long, value_name = "ID")]
        doc: String,
        /// The new content (FILE.toml or FILE.json).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The store directory (created if missing).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
    },
    /// With --store: releases the document's current heads, signed by one
    /// config key. Without: shows the release a running agent runs per
    /// document.
    Release {
        /// The trust chain file.
        #[arg(long, value_name = "CHAIN", requires = "store")]
        trust: Option<PathBuf>,
        /// The signer's `config` key file.
        #[arg(long, value_name = "FILE", requires = "store")]
        key: Option<PathBuf>,
        /// The document id (with --store, required).
        #[arg(long, value_name = "ID")]
        doc: Option<String>,
        /// The store directory: make a release from it (needs --trust,
        /// --key and --doc).
        #[arg(long, value_name = "DIR", requires_all = ["trust", "key", "doc"], conflicts_with = "json")]
        store: Option<PathBuf>,
        /// The release number: the store's highest release + 1 by default.
        #[arg(long, value_name = "N", requires = "store")]
        version: Option<u64>,
        /// Expiry: RFC 3339 (2027-01-31T12:00:00Z) or Unix milliseconds.
        #[arg(long, value_name = "TIME", requires = "store")]
        expires: Option<String>,
        /// The release file; inside the store by default, where the next
        /// release looks for the previous one.
        #[arg(long, value_name = "FILE", requires = "store")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Adds a config key's signature to a release file, in place.
    Sign {
        /// The release file.
        #[arg(long, value_name = "FILE")]
        release: PathBuf,
        /// The trust chain file.
        #[arg(long, value_name = "CHAIN")]
        trust: PathBuf,
        /// The signer's `config` key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Says whether a release reaches the config threshold, and shows what
    /// it releases. Exits 1 when it does not.
    Verify {
        /// The release file.
        #[arg(long, value_name = "FILE")]
        release: PathBuf,
        /// The trust chain file.
        #[arg(long, value_name = "CHAIN")]
        trust: PathBuf,
        /// The store directory holding the document's changes.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// How to print the content.
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
    },
    /// Prints a document's content. With --store: the store's current
    /// heads, or those a verified release names. Without: the release a
    /// running agent runs.
    Show {
        /// The store directory (needs --trust and --doc).
        #[arg(long, value_name = "DIR", requires_all = ["trust", "doc"], conflicts_with = "json")]
        store: Option<PathBuf>,
        /// The trust chain file, to verify the store's changes.
        #[arg(long, value_name = "CHAIN", requires = "store")]
        trust: Option<PathBuf>,
        /// The document id; against an agent, needed only when it runs
        /// several documents.
        #[arg(long, value_name = "ID")]
        doc: Option<String>,
        /// Show this release's content instead of the current heads.
        #[arg(long, value_name = "FILE", requires = "store")]
        release: Option<PathBuf>,
        /// How to print the content.
        #[arg(long, value_enum, default_value_t = Format::Toml)]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Hands signed files (a trust chain, config changes, config releases,
    /// approvals) to a running agent, which verifies them as it would from
    /// a peer and spreads them to the fleet. Exit status 1 when the agent
    /// refuses one (a stale release among them).
    Publish(PublishArgs),
    /// Every release a running agent holds, per document, and the one it
    /// runs.
    History {
        /// Only this document.
        #[arg(long, value_name = "ID")]
        doc: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

/// `fleetmesh keygen`.
pub fn keygen(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    keys::keygen(out, force)
}

/// Runs a `fleetmesh fleet` command.
pub fn fleet(command: FleetCommand) -> anyhow::Result<()> {
    match command {
        FleetCommand::Init {
            name,
            root_keys,
            keys,
            root_threshold,
            config_threshold,
            out,
            force,
        } => fleet::init(&fleet::Genesis {
            name: &name,
            root_keys: &root_keys,
            grants: &keys,
            root_threshold,
            config_threshold,
            out: &out,
            force,
        }),
        FleetCommand::Update {
            trust,
            root_keys,
            add,
            remove,
            revoke,
            root_threshold,
            config_threshold,
            out,
            pending,
        } => fleet::update(&fleet::Update {
            trust: &trust,
            root_keys: &root_keys,
            add: &add,
            remove: &remove,
            revoke: &revoke,
            root_threshold,
            config_threshold,
            out: &out,
            pending,
        }),
        FleetCommand::Sign {
            trust,
            pending,
            root_keys,
            out,
        } => fleet::sign(&trust, &pending, &root_keys, &out),
        FleetCommand::Admit {
            trust,
            admit_key,
            node,
            name,
            tags,
            expires,
            out,
            force,
        } => fleet::admit(&fleet::Admission {
            trust: &trust,
            admit_key: &admit_key,
            node: &node,
            name: &name,
            tags: &tags,
            expires: expires.as_deref(),
            out: &out,
            force,
        }),
    }
}

/// Runs a `fleetmesh config` command.
pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Draft {
            trust,
            key,
            doc,
            from,
            store,
        } => config::draft(&config::Draft {
            trust: &trust,
            key: &key,
            doc: &doc,
            from: &from,
            store: &store,
        }),
        ConfigCommand::Release {
            trust: Some(trust),
            key: Some(key),
            doc: Some(doc),
            store: Some(store),
            version,
            expires,
            out,
            ..
        } => config::release(&config::ReleaseArgs {
            trust: &trust,
            key: &key,
            doc: &doc,
            store: &store,
            version,
            expires: expires.as_deref(),
            out: out.as_deref(),
        }),
        // Without --store (clap makes --store bring --trust, --key and
        // --doc along): what the agent runs.
        ConfigCommand::Release { doc, target, .. } => {
            client::config_release(&target, doc.as_deref())
        }
        ConfigCommand::Sign {
            release,
            trust,
            key,
        } => config::sign(&release, &trust, &key),
        ConfigCommand::Verify {
            release,
            trust,
            store,
            format,
        } => config::verify(&release, &trust, &store, format),
        ConfigCommand::Show {
            store: Some(store),
            trust: Some(trust),
            doc: Some(doc),
            release,
            format,
            ..
        } => config::show(&store, &trust, &doc, release.as_deref(), format),
        ConfigCommand::Show {
            doc,
            format,
            target,
            ..
        } => client::config_show(&target, doc.as_deref(), format),
        ConfigCommand::Publish(args) => client::publish(&args),
        ConfigCommand::History { doc, target } => client::config_history(&target, doc.as_deref()),
    }
}
