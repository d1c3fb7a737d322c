//! `fleetmesh config`: signed config documents and releases. Each
//! subcommand either works on local files ([`crate::operator::config`]:
//! draft, release and show with `--store`, sign, verify) or asks a running
//! agent ([`crate::client`]: publish, history, and release and show
//! without `--store`); this module holds the command line and sends each
//! to its side, so neither side needs the other's.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::client::{self, PublishArgs, Target};
use crate::operator::Format;
use crate::operator::config;

/// Who signs what about which document, for the commands that sign.
#[derive(Args)]
pub struct DocSigner {
    /// The trust chain file.
    #[arg(long, value_name = "CHAIN")]
    trust: PathBuf,
    /// The signer's `config` key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The document id.
    #[arg(long, value_name = "ID")]
    doc: String,
}

/// `fleetmesh config rollout ...`
#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Where the staged rollout of a document stands, as the agent sees
    /// it: each wave's hosts, passes and failures, and the bake left here.
    Status {
        /// The document id.
        doc: String,
        /// Redraw every second until the rollout ends (on a terminal).
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// `fleetmesh config ...`
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Staged rollouts (docs/rollouts.md).
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Releases the content of an earlier release again, as the next
    /// version: going back is a release like any other, signed by one
    /// config key here and by the rest with `config sign`.
    Revert {
        #[command(flatten)]
        signer: DocSigner,
        /// The store directory holding the release to go back to.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The version whose content is released again.
        #[arg(long, value_name = "VERSION")]
        to: u64,
        /// Expiry: RFC 3339 (2027-01-31T12:00:00Z) or Unix milliseconds.
        #[arg(long, value_name = "TIME")]
        expires: Option<String>,
        /// The release file; inside the store by default.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Turns a TOML or JSON file into one signed change on top of what the
    /// store directory holds, written into it.
    Draft {
        #[command(flatten)]
        signer: DocSigner,
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
        /// Stage the release in waves: a TOML file with a `[rollout]`
        /// table (docs/rollouts.md). Without it every agent runs the
        /// release as soon as it holds it.
        #[arg(long, value_name = "PLAN.toml", requires = "store")]
        rollout: Option<PathBuf>,
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

/// Runs a `fleetmesh config` command.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Draft {
            signer,
            from,
            store,
        } => config::draft(&config::Draft {
            trust: &signer.trust,
            key: &signer.key,
            doc: &signer.doc,
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
            rollout,
            ..
        } => config::release(&config::ReleaseArgs {
            trust: &trust,
            key: &key,
            doc: &doc,
            store: &store,
            version,
            expires: expires.as_deref(),
            out: out.as_deref(),
            rollout: rollout.as_deref(),
            content_of: None,
        }),
        ConfigCommand::Revert {
            signer,
            store,
            to,
            expires,
            out,
        } => config::release(&config::ReleaseArgs {
            trust: &signer.trust,
            key: &signer.key,
            doc: &signer.doc,
            store: &store,
            version: None,
            expires: expires.as_deref(),
            out: out.as_deref(),
            rollout: None,
            content_of: Some(to),
        }),
        ConfigCommand::Rollout {
            command: RolloutCommand::Status { doc, watch, target },
        } => client::rollout_status(&target, &doc, watch),
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
