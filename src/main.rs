//! The `fleetmesh` command.

mod bench;
mod client;
mod config_command;
mod demo;
mod interrupt;
mod logging;
mod manual;
mod memory;
mod operator;
mod pipe;
mod sim;
mod sweep;
mod validate;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
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
    /// Key files: `key show` prints a key file's public key and node id.
    Key {
        #[command(subcommand)]
        command: operator::KeyCommand,
    },
    /// Checks agent config files and scenario files as the agent and the
    /// simulator would, without starting anything; prints `FILE: OK` or
    /// the error naming the field. Exit status 1 when any file fails.
    Validate(validate::ValidateArgs),
    /// The fleet's trust chain and node certificates, as local files.
    Fleet {
        #[command(subcommand)]
        command: operator::FleetCommand,
    },
    /// Signed config documents and releases: made as local files, and
    /// published to and read from a running agent.
    Config {
        #[command(subcommand)]
        command: config_command::ConfigCommand,
    },
    /// Runs the agent in the foreground until SIGTERM or SIGINT, then
    /// leaves the fleet gracefully. Exit status: 0 after a clean stop, 1 when
    /// it cannot start or must stop (the error says why and what to do).
    Agent {
        /// The agent's config file (TOML; reference in docs/operations.md).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Hands signed files to a running agent: the same as `config
    /// publish` (kept for trust chains, which are not config).
    Publish(client::PublishArgs),
    /// A running agent in a few lines: name, id, version and protocol,
    /// fleet, members by state, the releases it runs, its policy (loaded
    /// or refused), safe mode, emergency stops applying to it, uptime.
    Info {
        #[command(flatten)]
        target: client::Target,
    },
    /// The members a running agent knows, with their state; rows sorted
    /// by name, then id. `--tag` and `--state` filter them (the JSON too);
    /// `--detailed` adds incarnation, tags and addresses.
    Members(client::MembersArgs),
    /// The health reports a running agent holds, for every node and check;
    /// rows sorted by node name, then id and check.
    Health {
        #[command(flatten)]
        target: client::Target,
    },
    /// The lease table a running agent holds; rows sorted by scope. EXPIRES
    /// is when the last published claim runs out ("renewed (held here)"
    /// on the holder once it has: renewals are republished every few
    /// minutes).
    Leases {
        #[command(flatten)]
        target: client::Target,
    },
    /// The remediations in a running agent's ledger, one line each, and
    /// the ids of those waiting for an approval; rows sorted by target
    /// name, then rule and incident.
    Remediations {
        #[command(flatten)]
        target: client::Target,
    },
    /// Approves a remediation waiting for an operator (an approval-gated
    /// step, or a rule stopped as needs-human): signs an approval with an
    /// operator key holding the `approve` role and hands it to the agent.
    Approve {
        /// The APPROVE ID `fleetmesh remediations` shows (at least 6 hex
        /// digits of it).
        id: String,
        /// The operator's key file; it must hold the `approve` role.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// How long the approval holds: 90s, 30m, 2h, 1d.
        #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = client::parse_duration)]
        valid_for: std::time::Duration,
        #[command(flatten)]
        agent: client::AgentArgs,
    },
    /// Emergency stop: pauses all automation (local actions, disruptive
    /// actions) on every agent, or on those `--select` names, until
    /// `--for` has passed or `fleetmesh resume`. Signed with an operator
    /// key holding the `stop` role (one signature is enough) and handed to
    /// the agent, which rushes it to the fleet.
    Stop {
        /// `key=value[,key=value]`: stop only the agents with these tags.
        #[arg(long, value_name = "TAGS")]
        select: Option<String>,
        /// How long the stop holds: 90s, 30m, 2h, 1d (at most 7 days).
        #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = client::parse_duration)]
        lasting: std::time::Duration,
        /// Why, for the operators who read `fleetmesh remediations`.
        #[arg(long)]
        reason: String,
        /// The operator's key file; it must hold the `stop` role.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        agent: client::AgentArgs,
    },
    /// Lifts the emergency stops signed before now with the same
    /// `--select` (every stop without it); automation goes on by itself.
    Resume {
        /// `key=value[,key=value]`: the selector of the stops to lift.
        #[arg(long, value_name = "TAGS")]
        select: Option<String>,
        /// The operator's key file; it must hold the `stop` role.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        agent: client::AgentArgs,
    },
    /// Asks a running agent to leave the fleet gracefully and stop (as
    /// SIGTERM does), and waits until it has stopped.
    Leave {
        #[command(flatten)]
        agent: client::AgentArgs,
    },
    /// Prints a shell completion script, generated from these commands:
    /// `fleetmesh completions bash > /etc/bash_completion.d/fleetmesh`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::aot::Shell,
    },
    /// Writes one man page per command and subcommand (`fleetmesh.1`,
    /// `fleetmesh-members.1`, ...), generated from these commands.
    Man {
        /// The directory to write them into (created if needed), e.g.
        /// /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// A mesh of real agents on this host, for a first look: starts them
    /// on loopback with a throwaway fleet, releases a policy, breaks a demo
    /// service on one node, shows it remediated, and stops them all.
    /// Ctrl-C stops the agents and removes the directory first (exit
    /// status 130).
    Demo {
        /// Agents to start (2 to 16).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=16))]
        nodes: u16,
        /// Keep the temporary directory (keys, configs, agents' logs)
        /// instead of removing it.
        #[arg(long)]
        keep: bool,
        /// Keep the mesh up after the demo, until Enter, Ctrl-C or an
        /// hour, to poke it with `fleetmesh members --admin SOCKET` (the
        /// demo prints the commands).
        #[arg(long)]
        hold: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Agent { .. } | Command::Demo { .. }) {
        pipe::end_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Sim { command } => sim::command(command),
        Command::Keygen { out, force } => return operator_result(operator::keygen(&out, force)),
        Command::Key { command } => return operator_result(operator::key(command)),
        Command::Validate(args) => return validate::run(&args),
        Command::Fleet { command } => return operator_result(operator::fleet(command)),
        Command::Config { command } => return operator_result(config_command::run(command)),
        Command::Agent { config } => return operator_result(agent(&config)),
        Command::Publish(args) => return operator_result(client::publish(&args)),
        Command::Info { target } => return operator_result(client::info(&target)),
        Command::Members(args) => return operator_result(client::members(&args)),
        Command::Health { target } => return operator_result(client::health(&target)),
        Command::Leases { target } => return operator_result(client::leases(&target)),
        Command::Remediations { target } => return operator_result(client::remediations(&target)),
        Command::Approve {
            id,
            key,
            valid_for,
            agent,
        } => {
            return operator_result(client::approve(&client::Approve {
                agent: &agent,
                id: &id,
                key: &key,
                valid_for,
            }));
        }
        Command::Stop {
            select,
            lasting,
            reason,
            key,
            agent,
        } => {
            let args = client::Stop {
                agent: &agent,
                select: select.as_deref(),
                key: &key,
            };
            return operator_result(client::stop(&args, lasting, &reason));
        }
        Command::Resume { select, key, agent } => {
            let args = client::Stop {
                agent: &agent,
                select: select.as_deref(),
                key: &key,
            };
            return operator_result(client::resume(&args));
        }
        Command::Leave { agent } => return operator_result(client::leave(&agent)),
        Command::Completions { shell } => {
            manual::completions(shell, Cli::command());
            return ExitCode::SUCCESS;
        }
        Command::Man { out } => return operator_result(manual::man(&out, Cli::command())),
        Command::Demo { nodes, keep, hold } => {
            return demo::run(usize::from(nodes), keep, hold)
                .unwrap_or_else(|error| operator_result(Err(error)));
        }
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
    let mut log_level = logging::init(path, &config)?;
    if let Err(error) = huge_pages {
        tracing::warn!(%error, "cannot turn transparent huge pages off; the agent may hold more memory than it uses");
    }
    open_files(&config);
    // One thread: the core's loop already runs on the thread that blocks
    // on it, and worker threads only added cross-thread wake-ups (each
    // message woke both workers of a two-core host; docs/benchmarks.md,
    // "Runtime"). Executors and the admin API are async tasks, and the
    // rare blocking write (durable state) blocks the core's loop anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let stop = fleetmesh_runtime::shutdown_signal(move || log_level.reload());
        fleetmesh_runtime::run(config, stop, None).await
    })
}

/// Raises the open files limit to the hard limit and logs both, warning
/// when even that is below what the agent may need at its bounds.
fn open_files(config: &fleetmesh_runtime::AgentConfig) {
    let needed = fleetmesh_runtime::driver::descriptors_needed(config);
    match fleetmesh_runtime::process::raise_open_files_limit() {
        Ok(limit) => {
            tracing::info!(
                soft = limit.soft,
                soft_at_start = limit.soft_before,
                hard = limit.hard,
                needed,
                "open files limit"
            );
            if limit.soft < needed {
                tracing::warn!(
                    limit = limit.soft,
                    needed,
                    "the open files limit is below what the agent may use at its bounds: raise LimitNOFILE in its systemd unit (or `ulimit -n`), or lower limits.tasks_running_max"
                );
            }
        }
        Err(error) => tracing::warn!(
            %error,
            needed,
            "cannot read or raise the open files limit; the agent runs with the one it was given"
        ),
    }
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
