//! `fleetmesh keygen`: a new key file (format in `fleetmesh_runtime::formats`).

use std::path::Path;

use fleetmesh_crdt::Keypair;
use fleetmesh_runtime::files::Existing;
use fleetmesh_runtime::formats;

/// `fleetmesh keygen`: draws a seed from the operating system and writes it
/// to `out` (0600), refusing to replace a file unless `force`.
pub fn keygen(out: &Path, force: bool) -> anyhow::Result<()> {
    let mut seed = [0; 32];
    getrandom::fill(&mut seed).map_err(|error| {
        anyhow::anyhow!("the operating system gave no randomness ({error}); no key was written")
    })?;
    let keypair = Keypair::from_seed(seed);
    formats::write_key(out, &keypair, Existing::unless_forced(force))?;
    println!("wrote key {}", out.display());
    println!("public key {}", keypair.public());
    println!("node id    {}", keypair.public().node_id());
    Ok(())
}
