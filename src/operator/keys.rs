//! `fleetmesh keygen` and `fleetmesh key show`: key files (format in
//! `fleetmesh_runtime::formats`).

use std::path::Path;

use fleetmesh_crdt::Keypair;
use fleetmesh_runtime::files::Existing;
use fleetmesh_runtime::formats;
use serde_json::json;

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
    print_public(&keypair);
    Ok(())
}

/// `fleetmesh key show`: the public half of the key file at `path`, as
/// `keygen` printed it (or as JSON). The file is loaded as every command
/// loads a key, so one that others may read is refused here too; the
/// seed is never printed.
pub fn show(path: &Path, as_json: bool) -> anyhow::Result<()> {
    let keypair = formats::load_key(path)?;
    if as_json {
        let public = keypair.public();
        let answer = json!({
            "public_key": public.to_hex(),
            "node_id": public.node_id().to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_public(&keypair);
    }
    Ok(())
}

/// The public key and the node id a key is known by.
fn print_public(keypair: &Keypair) {
    println!("public key {}", keypair.public());
    println!("node id    {}", keypair.public().node_id());
}
