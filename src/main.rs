//! The `fleetmesh` command.

mod bench;
mod operator;
mod seeds;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleetmesh_simulator::expect::{self, Verdict};
use fleetmesh_simulator::{RunOptions, Scenario};
use std::io::BufWriter;
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

#[derive(Subcommand)]
enum SimCommand {
    /// Runs one scenario file and prints a summary. Exit codes: 0 pass,
    /// 1 expectation unmet, 2 usage or scenario error, 3 liveness
    /// violation, 4 safety violation.
    Run {
        /// The scenario file (TOML), e.g. scenarios/partition-heal.toml.
        scenario: PathBuf,
        /// Root seed; defaults to the scenario's `seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Write every event of the run as JSON lines to this file.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Keep running after a violation, to see all of them.
        #[arg(long)]
        keep_going: bool,
        /// Run every seed of a range instead (`1..=1000`), on all cores, and
        /// print the failing seeds with their replay commands.
        #[arg(long, value_name = "A..B", conflicts_with_all = ["seed", "trace", "keep_going"])]
        seeds: Option<String>,
        /// Threads for `--seeds`; defaults to the number of cores.
        #[arg(long, requires = "seeds")]
        jobs: Option<usize>,
    },
    /// Runs the benchmarks and prints a table (use a release build).
    Bench {
        /// Which benchmarks: all, or one of speed, spread, detect, config-merge,
        /// false-dead, traffic, release-spread, state-memory,
        /// lease-health-traffic, remediation.
        #[arg(long, default_value = "all")]
        only: String,
        /// Include the 10,000-agent runs. Today they take tens of minutes and
        /// more than 6 GiB of memory (see docs/benchmarks.md).
        #[arg(long)]
        large: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim {
            command:
                SimCommand::Run {
                    scenario,
                    seeds: Some(range),
                    jobs,
                    ..
                },
        } => seeds::parse_range(&range)
            .map_err(anyhow::Error::msg)
            .and_then(|range| {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                seeds::run(&scenario, range, jobs.unwrap_or(cores).max(1))
            }),
        Command::Sim {
            command:
                SimCommand::Run {
                    scenario,
                    seed,
                    trace,
                    keep_going,
                    seeds: None,
                    ..
                },
        } => run(&scenario, seed, trace, keep_going),
        Command::Sim {
            command: SimCommand::Bench { only, large },
        } => bench::run(&only, large).map(|()| ExitCode::SUCCESS),
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
    // Before anything of size is allocated: pages faulted in as huge stay.
    let huge_pages = fleetmesh_runtime::process::disable_huge_pages();
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
    if let Err(error) = huge_pages {
        tracing::warn!(%error, "cannot turn transparent huge pages off; the agent may hold more memory than it uses");
    }
    // One thread: the core's loop already runs on the thread that blocks
    // on it, and worker threads only added cross-thread wake-ups (each
    // message woke both workers of a two-core host; docs/benchmarks.md,
    // "Runtime"). Executors and the admin API are async tasks, and the
    // rare blocking write (durable state) blocks the core's loop anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
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

fn run(
    path: &Path,
    seed: Option<u64>,
    trace: Option<PathBuf>,
    keep_going: bool,
) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(path)?;
    let seed = seed.unwrap_or(scenario.seed);
    let writer: Option<Box<dyn std::io::Write>> = match &trace {
        Some(file) => {
            let file = std::fs::File::create(file).with_context(|| {
                format!(
                    "cannot create trace file {}; check the directory exists and is writable",
                    file.display()
                )
            })?;
            Some(Box::new(BufWriter::new(file)))
        }
        None => None,
    };
    println!(
        "scenario {} ({}), seed {seed}",
        scenario.name,
        path.display()
    );
    if !scenario.description.is_empty() {
        println!("  {}", scenario.description);
    }
    let options = RunOptions {
        seed,
        trace: writer,
        stop_on_violation: !keep_going,
    };
    let outcome = fleetmesh_simulator::run(&scenario, options);
    print!("{outcome}");
    if let Some(error) = &outcome.trace_error {
        eprintln!("warning: the trace file is incomplete: {error}");
    }
    let unmet = expect::unmet(&scenario.expect, &outcome);
    for line in &unmet {
        println!("  UNMET          {line}");
    }
    let verdict = expect::verdict(&outcome, &unmet);
    match verdict {
        Verdict::Pass => println!("PASS"),
        _ => {
            println!("FAIL ({verdict:?})");
            println!("replay: fleetmesh sim run {} --seed {seed}", path.display());
        }
    }
    Ok(ExitCode::from(
        u8::try_from(verdict.exit_code()).unwrap_or(1),
    ))
}
