//! `fleetmesh completions` and `fleetmesh man`: shell completions and man
//! pages generated from the clap definitions, so they never drift from
//! the commands they describe.

use std::path::Path;

use anyhow::Context;
use clap_complete::aot::Shell;

/// Writes the completion script of `command` for `shell` to stdout.
pub fn completions(shell: Shell, mut command: clap::Command) {
    clap_complete::aot::generate(shell, &mut command, "fleetmesh", &mut std::io::stdout());
}

/// Writes one man page (section 1) per command and subcommand of
/// `command` into `out`, creating it if needed: `fleetmesh.1`,
/// `fleetmesh-members.1`, `fleetmesh-sim-run.1`, ...
pub fn man(out: &Path, command: clap::Command) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| {
        format!(
            "cannot create {}: check that its parent exists and is writable",
            out.display()
        )
    })?;
    clap_mangen::generate_to(command, out).with_context(|| {
        format!(
            "cannot write the man pages into {}: check that it is a writable directory",
            out.display()
        )
    })?;
    println!(
        "wrote the man pages into {} (`man -l {}/fleetmesh.1`)",
        out.display(),
        out.display()
    );
    Ok(())
}
