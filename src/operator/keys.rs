//! Key files: an ed25519 seed in hex, with its public key for checking.

use std::path::Path;

use anyhow::{Context, bail};
use fleetmesh_crdt::Keypair;
use serde::{Deserialize, Serialize};

use super::files::{self, Existing, Mode};

/// The `format` of a key file.
pub const KEY_FORMAT: &str = "fleetmesh-key";

/// A key file's body. The public key is stored beside the seed so a
/// damaged seed is caught on load instead of silently signing as someone
/// else.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    public: String,
    seed: String,
}

/// `fleetmesh keygen`: draws a seed from the operating system and writes it
/// to `out` (0600), refusing to replace a file unless `force`.
pub fn keygen(out: &Path, force: bool) -> anyhow::Result<()> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).map_err(|error| {
        anyhow::anyhow!("the operating system gave no randomness ({error}); no key was written")
    })?;
    let keypair = Keypair::from_seed(seed);
    let body = KeyFile {
        public: keypair.public().to_hex(),
        seed: files::hex(&seed),
    };
    files::write_atomic(
        out,
        &files::to_json(KEY_FORMAT, &body)?,
        Mode::Secret,
        Existing::unless_forced(force),
    )?;
    println!("wrote key {}", out.display());
    println!("public key {}", keypair.public());
    println!("node id    {}", keypair.public().node_id());
    Ok(())
}

/// Loads and checks a key file.
pub fn load(path: &Path) -> anyhow::Result<Keypair> {
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
