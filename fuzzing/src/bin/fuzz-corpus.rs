//! `fuzz-corpus [DIR]`: writes every fuzz target's seed corpus into
//! `DIR/NAME/` (default `fuzz/corpus`), for libFuzzer. Deterministic: the
//! same commit writes the same files.

use std::path::PathBuf;
use std::process::ExitCode;

use fleetmesh_fuzzing::{TARGETS, corpus};

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus"),
        PathBuf::from,
    );
    let names: Vec<&str> = TARGETS.iter().map(|target| target.name).collect();
    match corpus::write(&dir, &names) {
        Ok(written) => {
            for (name, count) in written {
                println!("{name:<16} {count:>4} seeds");
            }
            println!("written into {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot write the corpus into {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
