//! `fleetmesh sim`: the simulator's commands — one run, a sweep or swarm
//! over many seeds, the determinism check and the benchmarks.

use crate::{bench, memory, sweep};
use anyhow::Context;
use clap::Subcommand;
use fleetmesh_simulator::expect::{self, Verdict};
use fleetmesh_simulator::{RunOptions, Scenario};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The simulator's subcommands.
#[derive(Subcommand)]
pub enum SimCommand {
    /// Runs one scenario file and prints a summary. Exit codes: 0 pass,
    /// 1 expectation unmet, 2 usage or scenario error, 3 liveness
    /// violation, 4 safety violation, 5 two runs of the seed differ
    /// (--check-determinism).
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
        /// Write an HTML report of the run to this file: a timeline with
        /// the faults shaded, lanes per lease scope and per agent, and
        /// plots of convergence, detection and traffic (one file, opens in
        /// any browser, nothing fetched).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Play the seed's swarm mix of the faults (what `sim swarm` ran
        /// for this seed); only invariants are judged.
        #[arg(long)]
        swarm: bool,
        /// Run the seed twice and name the first step where the runs
        /// differ, if they do.
        #[arg(long, conflicts_with_all = ["trace", "keep_going", "report"])]
        check_determinism: bool,
        /// Run every seed of a range instead (`1..=1000`), on all cores, and
        /// print the failing seeds with their replay commands.
        #[arg(long, value_name = "A..B", conflicts_with_all = ["seed", "trace", "keep_going", "report"])]
        seeds: Option<String>,
        /// Threads for `--seeds`; defaults to the number of cores.
        #[arg(long, requires = "seeds")]
        jobs: Option<usize>,
        /// Run even when the scenario's estimated peak memory exceeds what
        /// this machine has available (MemAvailable).
        #[arg(long)]
        force: bool,
    },
    /// Swarm testing: runs a scenario over a range of seeds where each seed
    /// also draws its own fault mix (kinds on or off, intensities, start
    /// times) within the scenario's `[swarm]` bounds, on all cores. Prints
    /// violations by invariant, the slowest times, the coverage probes hit
    /// and never hit, and a replay command per failing seed. Exit code: the
    /// worst seed's (0 when every seed held every invariant).
    Swarm {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The seeds, `A..B` or `A..=B`.
        #[arg(long, value_name = "A..B")]
        seeds: String,
        /// Threads; defaults to the number of cores.
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop handing out seeds after this many seconds (runs under way
        /// finish); the summary says how many ran.
        #[arg(long, value_name = "SECONDS")]
        time_limit: Option<f64>,
        /// Run every seed twice and report seeds whose runs differ.
        #[arg(long)]
        check_determinism: bool,
        /// Run even when the scenario's estimated peak memory exceeds what
        /// this machine has available (MemAvailable).
        #[arg(long)]
        force: bool,
    },
    /// Shrinks a failing seed: removes the time after the violation, every
    /// fault the failure does not need and agents, while the same
    /// invariant still breaks, and writes what is left as a scenario file
    /// that `sim run FILE` replays (the seed is written into it). Exit
    /// code 0 when a file was written.
    Shrink {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Shrink the seed's swarm mix (a seed `sim swarm` reported).
        #[arg(long)]
        swarm: bool,
        /// Where to write the shrunk scenario; defaults to
        /// `NAME-seedN-shrunk.toml` in the current directory.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Stop trying smaller schedules after this many seconds and write
        /// the smallest found.
        #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
        time_limit: f64,
        /// Run even when the scenario's estimated peak memory exceeds what
        /// this machine has available (MemAvailable).
        #[arg(long)]
        force: bool,
    },
    /// Runs the benchmarks and prints a table (use a release build).
    Bench {
        /// Which benchmarks: all, or one of speed, spread, detect, config-merge,
        /// false-dead, traffic, release-spread, state-memory,
        /// lease-health-traffic, remediation, emergency-stop, rollouts, foca-race (fleetmesh's
        /// membership against the foca crate's, in one table).
        #[arg(long, default_value = "all")]
        only: String,
        /// Include the 10,000-agent runs. Today they take tens of minutes and
        /// more than 6 GiB of memory (see docs/benchmarks.md).
        #[arg(long)]
        large: bool,
    },
}

/// Runs one simulator command.
pub fn command(command: SimCommand) -> anyhow::Result<ExitCode> {
    let cores = || std::thread::available_parallelism().map_or(1, usize::from);
    match command {
        SimCommand::Run {
            scenario,
            seeds: Some(range),
            jobs,
            swarm,
            check_determinism,
            force,
            ..
        } => {
            let plan = sweep::Plan {
                seeds: sweep::parse_range(&range).map_err(anyhow::Error::msg)?,
                jobs: jobs.unwrap_or_else(cores).max(1),
                swarm,
                check_determinism,
                time_limit: None,
                force,
            };
            sweep::run(&scenario, &plan)
        }
        SimCommand::Run {
            scenario,
            seed,
            check_determinism: true,
            swarm,
            force,
            ..
        } => determinism(&scenario, seed, swarm, force),
        SimCommand::Run {
            scenario,
            seed,
            trace,
            keep_going,
            report,
            swarm,
            force,
            ..
        } => run(&scenario, seed, trace, keep_going, report, swarm, force),
        SimCommand::Swarm {
            scenario,
            seeds,
            jobs,
            time_limit,
            check_determinism,
            force,
        } => {
            let time_limit = time_limit
                .map(|seconds| {
                    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| {
                        anyhow::anyhow!("--time-limit {seconds} is not a number of seconds")
                    })
                })
                .transpose()?;
            let plan = sweep::Plan {
                seeds: sweep::parse_range(&seeds).map_err(anyhow::Error::msg)?,
                jobs: jobs.unwrap_or_else(cores).max(1),
                swarm: true,
                check_determinism,
                time_limit,
                force,
            };
            sweep::run(&scenario, &plan)
        }
        SimCommand::Shrink {
            scenario,
            seed,
            swarm,
            out,
            time_limit,
            force,
        } => {
            memory::check(&Scenario::load(&scenario)?, 1, force)?;
            let time_limit = std::time::Duration::try_from_secs_f64(time_limit).map_err(|_| {
                anyhow::anyhow!("--time-limit {time_limit} is not a number of seconds")
            })?;
            shrink(&scenario, seed, swarm, out, time_limit)
        }
        SimCommand::Bench { only, large } => bench::run(&only, large).map(|()| ExitCode::SUCCESS),
    }
}

/// Loads `path` and, for a swarm seed, applies the seed's mix (printing
/// it); refuses a scenario too large for this machine unless `force`.
fn scenario_for(
    path: &Path,
    seed: Option<u64>,
    swarm: bool,
    force: bool,
) -> anyhow::Result<(Scenario, u64)> {
    let scenario = Scenario::load(path)?;
    memory::check(&scenario, 1, force)?;
    let seed = seed.unwrap_or(scenario.seed);
    println!(
        "scenario {} ({}), seed {seed}",
        scenario.name,
        path.display()
    );
    if !scenario.description.is_empty() {
        println!("  {}", scenario.description);
    }
    if !swarm {
        return Ok((scenario, seed));
    }
    let (mixed, mix) = fleetmesh_simulator::swarm::mix(&scenario, seed);
    println!("  swarm mix: {mix}");
    Ok((mixed, seed))
}

fn run(
    path: &Path,
    seed: Option<u64>,
    trace: Option<PathBuf>,
    keep_going: bool,
    report: Option<PathBuf>,
    swarm: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
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
    let (scenario, seed) = scenario_for(path, seed, swarm, force)?;
    let options = RunOptions {
        trace: writer,
        stop_on_violation: !keep_going,
        timeline: report.is_some(),
        ..RunOptions::seeded(seed)
    };
    let outcome = fleetmesh_simulator::run(&scenario, options);
    print!("{outcome}");
    if let Some(file) = &report {
        let html = fleetmesh_simulator::report::html(&scenario, seed, &outcome);
        write_output(file, html.as_bytes())?;
        println!("  report         {}", file.display());
    }
    if let Some(error) = &outcome.trace_error {
        eprintln!("warning: the trace file is incomplete: {error}");
    }
    let unmet = expect::unmet(&scenario.expect, &outcome);
    for line in &unmet {
        // A swarm mix is not the schedule the expectations were written for.
        let label = if swarm { "(not judged)" } else { "UNMET" };
        println!("  {label:<14} {line}");
    }
    let verdict = if swarm {
        expect::verdict(&outcome, &[])
    } else {
        expect::verdict(&outcome, &unmet)
    };
    match verdict {
        Verdict::Pass => println!("PASS"),
        _ => {
            if let Some(violation) = outcome.violations.first() {
                let log = fleetmesh_simulator::explain::log(&scenario, seed, violation, 40);
                if !log.lines.is_empty() {
                    println!(
                        "  what agents {:?} saw, up to the first violation (last {} events):",
                        log.agents,
                        log.lines.len()
                    );
                    for line in &log.lines {
                        println!("    {line}");
                    }
                }
            }
            println!("FAIL ({verdict:?})");
            println!("replay: {}", sweep::replay(path, seed, swarm));
        }
    }
    Ok(ExitCode::from(
        u8::try_from(verdict.exit_code()).unwrap_or(1),
    ))
}

/// Writes a file the command produces (a report, a shrunk scenario),
/// crash-safely, replacing an older one.
fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fleetmesh_runtime::files::write_atomic(
        path,
        bytes,
        fleetmesh_runtime::files::Mode::Public,
        fleetmesh_runtime::files::Existing::Replace,
    )
}

fn shrink(
    path: &Path,
    seed: u64,
    swarm: bool,
    out: Option<PathBuf>,
    time_limit: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("cannot read the scenario file {label}; check the path (scenarios/ holds examples)")
    })?;
    let started = std::time::Instant::now();
    let mut runs = 0u32;
    let mut keep_going = || {
        runs += 1;
        if runs.is_multiple_of(10) {
            eprintln!("  {runs} runs, {:.0} s", started.elapsed().as_secs_f64());
        }
        started.elapsed() < time_limit
    };
    let shrunk = fleetmesh_simulator::shrink::shrink(&label, &text, seed, swarm, &mut keep_going)?;
    let out = out.unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map_or("scenario".into(), |stem| stem.to_string_lossy());
        PathBuf::from(format!("{stem}-seed{seed}-shrunk.toml"))
    });
    write_output(&out, shrunk.text.as_bytes())?;
    let (before, after) = (shrunk.before, shrunk.after);
    println!("failure:  {}", shrunk.original);
    println!(
        "shrunk in {} runs, {:.1} s{}",
        shrunk.runs,
        started.elapsed().as_secs_f64(),
        if shrunk.complete {
            ""
        } else {
            " (time limit reached: the smallest found so far)"
        }
    );
    println!(
        "  faults  {:>6} -> {}\n  agents  {:>6} -> {}\n  seconds {:>6} -> {}",
        before.faults,
        after.faults,
        before.agents,
        after.agents,
        before.duration_s,
        after.duration_s
    );
    println!("still:    {}", shrunk.violation);
    println!("wrote {}", out.display());
    println!("replay: fleetmesh sim run {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn determinism(
    path: &Path,
    seed: Option<u64>,
    swarm: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let (scenario, seed) = scenario_for(path, seed, swarm, force)?;
    let (outcome, divergence) = fleetmesh_simulator::check_determinism(&scenario, seed);
    match divergence {
        None => {
            println!(
                "deterministic: two runs agree on all {} steps (trace hash {})",
                outcome.events, outcome.trace_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(divergence) => {
            println!("NONDETERMINISTIC: {divergence}");
            Ok(ExitCode::from(sweep::EXIT_NONDETERMINISTIC))
        }
    }
}
