//! `fuzz-smoke`: runs every fuzz target on seeded mutations of its seeds
//! (the CI step), or replays one input.
//!
//! ```text
//! fuzz-smoke [--seed N] [--scale F] [--jobs N] [--only NAME,...]
//! fuzz-smoke replay NAME HEX|FILE
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fleetmesh_fuzzing::{TARGETS, Target, fixture, smoke, target};

#[derive(Parser)]
#[command(about = "Runs fleetmesh's fuzz targets on mutated seeds, or replays an input")]
struct Args {
    /// The mutator's seed: the same seed runs the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Multiplies every target's number of inputs (e.g. 0.01 for a quick
    /// look, 10 for a longer run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Threads to run targets on (one target per thread at a time).
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Runs only these targets (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one target on one input, as a failed run prints it.
    Replay {
        /// The target.
        name: String,
        /// The input in hex, or a file holding it (a libFuzzer crash file).
        input: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Replay { name, input }) => replay(&name, &input),
        None => run(&args),
    }
}

fn run(args: &Args) -> ExitCode {
    let chosen: Vec<&'static Target> = TARGETS
        .iter()
        .filter(|target| args.only.is_empty() || args.only.iter().any(|name| name == target.name))
        .collect();
    if let Some(unknown) = args.only.iter().find(|name| target(name).is_none()) {
        eprintln!("no fuzz target {unknown}: the targets are {}", names());
        return ExitCode::FAILURE;
    }
    let started = std::time::Instant::now();
    let fixture = fixture::fixture();
    println!(
        "fixture: seed run of {} agents, {} messages, {} entries ({:.1}s)",
        fixture.scenario.fleet.agents,
        fixture.messages.len(),
        fixture.entries.len(),
        started.elapsed().as_secs_f64()
    );
    let runs: Vec<(&'static Target, u64)> = chosen
        .into_iter()
        .map(|target| {
            let inputs = ((target.smoke_inputs as f64 * args.scale) as u64).max(1);
            (target, inputs)
        })
        .collect();
    let print = |report: &smoke::Report| {
        println!(
            "{:<16} {:>10} inputs ({} seeds) in {:>7.1}s: {:>9.0} inputs/s, 0 panics",
            report.target,
            report.inputs,
            report.seeds,
            report.elapsed.as_secs_f64(),
            report.rate()
        );
    };
    match smoke::run_all(&runs, args.seed, args.jobs, print) {
        Ok(reports) => {
            let total: u64 = reports.iter().map(|report| report.inputs).sum();
            println!(
                "fuzz smoke: {} targets, {total} inputs, 0 panics, {:.1}s on {} threads",
                reports.len(),
                started.elapsed().as_secs_f64(),
                args.jobs
            );
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}

fn replay(name: &str, input: &str) -> ExitCode {
    let Some(target) = target(name) else {
        eprintln!("no fuzz target {name}: the targets are {}", names());
        return ExitCode::FAILURE;
    };
    let bytes = match std::fs::read(input) {
        Ok(bytes) => bytes,
        Err(_) => match fleetmesh_runtime::files::unhex(input, "the input") {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("{input} is neither a readable file nor hex: {error:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    match smoke::replay(target, &bytes) {
        Ok(()) => {
            println!("{name}: {} bytes ran without a panic", bytes.len());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{name} panicked: {message}");
            ExitCode::FAILURE
        }
    }
}

fn names() -> String {
    TARGETS
        .iter()
        .map(|target| target.name)
        .collect::<Vec<_>>()
        .join(", ")
}
