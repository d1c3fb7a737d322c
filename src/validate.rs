//! `fleetmesh validate`: checks agent config files and scenario files with
//! the same parsers the agent and the simulator use, without starting
//! anything (as `consul validate` does).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use fleetmesh_runtime::AgentConfig;
use fleetmesh_simulator::Scenario;

/// The largest file `validate` reads: agent configs and scenarios are a
/// few kilobytes; a larger file is a mistake, not something to parse.
const FILE_BYTES_MAX: u64 = 1 << 20;

/// What a file to validate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// An agent config (`fleetmesh agent --config FILE`).
    Agent,
    /// A simulator scenario (`fleetmesh sim run FILE`).
    Scenario,
}

impl Kind {
    /// What the kind is called in messages.
    fn name(self) -> &'static str {
        match self {
            Kind::Agent => "agent config",
            Kind::Scenario => "scenario",
        }
    }

    /// The kind of a file by its content: one with a top-level
    /// `duration_s` or `[fleet]` is a scenario (both are required there and
    /// unknown to an agent config); anything else, text that is not TOML
    /// included, is an agent config.
    fn of(text: &str) -> Kind {
        match text.parse::<toml::Table>() {
            Ok(table) if table.contains_key("duration_s") || table.contains_key("fleet") => {
                Kind::Scenario
            }
            _ => Kind::Agent,
        }
    }
}

/// `fleetmesh validate`'s arguments.
#[derive(Args, Clone, Debug)]
pub struct ValidateArgs {
    /// The files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// What the files are [default: by content: a file with a top-level
    /// `duration_s` or `[fleet]` is a scenario, any other an agent
    /// config].
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
}

/// Checks every file, printing `FILE: OK (kind)` on stdout or the error,
/// naming the file (and the field or line), on stderr; exit status 1 when
/// any file fails.
pub fn run(args: &ValidateArgs) -> ExitCode {
    let mut failed = 0_usize;
    for path in &args.files {
        match check(path, args.kind) {
            Ok(kind) => println!("{}: OK ({})", path.display(), kind.name()),
            Err(error) => {
                failed += 1;
                eprintln!("{error:#}");
            }
        }
    }
    if failed == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("{failed} of {} files failed", args.files.len());
    ExitCode::FAILURE
}

/// Checks one file as `kind` (by content when `None`); returns the kind
/// it was checked as, or an error that starts with the file's name.
fn check(path: &Path, kind: Option<Kind>) -> anyhow::Result<Kind> {
    let name = path.display().to_string();
    let text = read(path).with_context(|| name.clone())?;
    let kind = kind.unwrap_or_else(|| Kind::of(&text));
    match kind {
        Kind::Agent => {
            AgentConfig::parse(&text).with_context(|| format!("{name}: agent config"))?;
        }
        // Its errors start with the name given and a line number.
        Kind::Scenario => {
            Scenario::parse(&name, &text)?;
        }
    }
    Ok(kind)
}

/// The text of `path`, at most [`FILE_BYTES_MAX`] bytes of UTF-8.
fn read(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path)
        .context("cannot open the file: check the path and its permissions")?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the file: check its permissions")?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        bail!(
            "larger than {} KiB: this is not an agent config or a scenario",
            FILE_BYTES_MAX >> 10
        );
    }
    String::from_utf8(bytes).context("not UTF-8 text: save the file as UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_a_scenario_only_when_it_has_what_a_scenario_requires() {
        assert_eq!(Kind::of("duration_s = 10\n"), Kind::Scenario);
        assert_eq!(Kind::of("[fleet]\nnodes = 3\n"), Kind::Scenario);
        assert_eq!(
            Kind::of("state_dir = \"/var/lib/fleetmesh\"\n"),
            Kind::Agent
        );
        assert_eq!(Kind::of("not = [toml"), Kind::Agent);
    }
}
