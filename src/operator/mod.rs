//! The operator commands: keys, the fleet's trust chain and node
//! certificates, signed config. They work on local files only (formats in
//! docs/operations.md), so root and config keys can stay on machines that
//! never join the mesh; what talks to an agent is [`crate::client`]'s, and
//! [`crate::config_command`] sends each `config` subcommand to one or
//! the other.

pub mod config;
mod drafts;
mod fleet;
mod keys;
mod lint;

use std::path::PathBuf;

use clap::Subcommand;

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
        /// An operator key and its roles (root, config, admit, approve,
        /// stop);
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

/// `fleetmesh keygen`.
pub fn keygen(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    keys::keygen(out, force)
}

/// `fleetmesh key ...`
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Prints the public key (hex) and node id of a key file, never its
    /// secret. A key file others than its owner may read is refused, as
    /// everywhere a key is loaded.
    Show {
        /// The key file (`fleetmesh keygen --out FILE`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Print JSON (`public_key`, `node_id`) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `fleetmesh key` command.
pub fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Show { key, json } => keys::show(&key, json),
    }
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
