//! The `fleetmesh` command.

mod bench;
mod operator;
mod sim;
mod sweep;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sim::SimCommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The simulator allocates and frees millions of small messages and table
/// nodes next to large anti-entropy buffers; glibc's allocator spent a
/// quarter of large runs consolidating free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// fleetmesh: a peer-to-peer agent mesh for self-organizing server fleets.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The deterministic simulator: chaos experiments on simulated fleets.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Makes a new ed25519 key from the operating system's randomness and
    /// writes it (mode 0600); prints its public key and node id.
    Keygen {
        /// The key file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file (the old key is lost).
        #[arg(long)]
        force: bool,
    },
    /// The fleet's trust chain and node certificates, as local files.
    Fleet {
        #[command(subcommand)]
        command: operator::FleetCommand,
    },
    /// Signed config documents and releases, as local files.
    Config {
        #[command(subcommand)]
        command: operator::ConfigCommand,
    },
    /// Runs the agent in the foreground until SIGTERM or SIGINT, then
    /// leaves the fleet gracefully. Exit status: 0 after a clean stop, 1 when
    /// it cannot start or must stop (the error says why and what to do).
    Agent {
        /// The agent's config file (TOML; reference in docs/operations.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Hands signed files (a trust chain, config changes, config releases)
    /// to a running agent, which verifies them as it would from a peer and
    /// spreads them to the fleet. Exit status 1 when the agent refuses one.
    Publish {
        /// The agent's admin API address (its config's `admin`).
        #[arg(long, value_name = "IP:PORT", default_value = fleetmesh_runtime::config::DEFAULT_ADMIN)]
        agent: std::net::SocketAddr,
        /// The files, published in the order given.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim { command } => sim::command(command),
        Command::Keygen { out, force } => return operator_result(operator::keygen(&out, force)),
        Command::Fleet { command } => return operator_result(operator::fleet(command)),
        Command::Config { command } => return operator_result(operator::config(command)),
        Command::Agent { config } => return operator_result(agent(&config)),
        Command::Publish { agent, files } => return operator_result(publish(agent, &files)),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::from(2)
    })
}

/// `fleetmesh agent`: loads the config, sets up logging, runs the agent on
/// a tokio runtime until a stop signal.
fn agent(path: &Path) -> anyhow::Result<()> {
    let config = fleetmesh_runtime::AgentConfig::load(path)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .context("log_level (checked when the config was loaded)")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        fleetmesh_runtime::config::LogFormat::Human => logs.init(),
        fleetmesh_runtime::config::LogFormat::Json => logs.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(fleetmesh_runtime::run(
        config,
        fleetmesh_runtime::shutdown_signal(),
        None,
    ))
}

/// `fleetmesh publish`: posts each file to the agent's admin API.
fn publish(agent: std::net::SocketAddr, paths: &[PathBuf]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    for path in paths {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {}: check the path and its permissions",
                path.display()
            )
        })?;
        let (status, body) = runtime.block_on(fleetmesh_runtime::admin::call(
            agent,
            "/v1/publish",
            Some(text),
        ))?;
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        match status {
            200 => println!(
                "published {} ({} entries)",
                path.display(),
                answer["published"].as_u64().unwrap_or(0)
            ),
            _ => anyhow::bail!(
                "the agent on {agent} refused {}: {}",
                path.display(),
                answer["error"].as_str().unwrap_or(body.trim())
            ),
        }
    }
    Ok(())
}

/// Operator commands exit 1 when they refuse (a bad file, a missing
/// signature), keeping 2 for command-line mistakes as clap reports them.
fn operator_result(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
