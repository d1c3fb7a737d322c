//! `fleetmesh sim bench --only foca-race`: fleetmesh's membership against
//! foca's (the `foca` crate) in the simulator's membership race
//! (`simulator/src/race`): the same scenarios, network, faults and seeds
//! for both, measured by the same code, printed in one table.
//!
//! Each implementation runs its own LAN preset: fleetmesh `Config::lan()`,
//! foca `Config::new_lan(N)` (memberlist's LAN defaults). The table's
//! footer prints the parameters that matter, read from the configs.

use anyhow::Context;
use fleetmesh_simulator::Scenario;
use fleetmesh_simulator::outcome::quantile_s;
use fleetmesh_simulator::race::fleetmesh::Fleetmesh;
use fleetmesh_simulator::race::foca::Foca;
use fleetmesh_simulator::race::{self, Implementation, RaceOptions, RaceOutcome};
use std::fmt::Write;
use std::time::Duration;

const AGENTS: u32 = 100;
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];
/// Fleet formation: crashes, pauses and partitions come after it, and
/// traffic is counted from it on.
const WARMUP_S: u32 = 30;
const CRASHES: u32 = 8;
const CRASH_SPACING_S: u32 = 15;
const LOSSY_S: u32 = 1200;
const STEADY_S: u32 = 300;
const PARTITION_AT_S: u32 = 40;
const HEAL_AT_S: u32 = 100;
/// How long after the heal the run goes on: past two of foca's 65 s
/// announce-to-down periods.
const AFTER_HEAL_S: u32 = 240;

/// One row: what was measured and each implementation's figure.
struct Row {
    measurement: String,
    fleetmesh: String,
    foca: String,
}

/// The outcomes of one measurement, one per seed, per implementation.
struct Runs {
    fleetmesh: Vec<RaceOutcome>,
    foca: Vec<RaceOutcome>,
}

impl Runs {
    fn measure(what: &str, text: &str) -> anyhow::Result<Runs> {
        eprintln!("foca-race: {what}, {AGENTS} agents, seeds {SEEDS:?} ...");
        let scenario = Scenario::parse("foca-race", text).context("race scenario is invalid")?;
        Ok(Runs {
            fleetmesh: seeds::<Fleetmesh>(&scenario)?,
            foca: seeds::<Foca>(&scenario)?,
        })
    }

    /// A row whose figures `figure` computes from one implementation's runs.
    fn row(&self, measurement: String, figure: impl Fn(&[RaceOutcome]) -> String) -> Row {
        Row {
            measurement,
            fleetmesh: figure(&self.fleetmesh),
            foca: figure(&self.foca),
        }
    }
}

fn seeds<I: Implementation>(scenario: &Scenario) -> anyhow::Result<Vec<RaceOutcome>> {
    SEEDS
        .iter()
        .map(|&seed| {
            let options = RaceOptions {
                seed,
                traffic_from: Duration::from_secs(u64::from(WARMUP_S)),
            };
            race::run::<I>(scenario, options)
                .with_context(|| format!("{} race, seed {seed}", I::NAME))
        })
        .collect()
}

fn fleet(duration_s: u32, extra: &str) -> String {
    format!(
        "name = \"foca-race\"\nduration_s = {duration_s}\n[fleet]\nagents = {AGENTS}\njoin_spread_s = 5\n{extra}"
    )
}

fn nanos(times: &[Duration]) -> Vec<u64> {
    times
        .iter()
        .map(|time| u64::try_from(time.as_nanos()).unwrap_or(u64::MAX))
        .collect()
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".into(), |seconds| format!("{seconds:.2} s"))
}

/// Bytes and messages per agent per second over the runs' traffic windows.
fn traffic(runs: &[RaceOutcome]) -> String {
    let agent_seconds: f64 = runs.iter().map(|run| run.traffic_agent_seconds).sum();
    let bytes: u64 = runs.iter().map(|run| run.bytes).sum();
    let messages: u64 = runs.iter().map(|run| run.messages).sum();
    format!(
        "{:.0} B/s, {:.2} msg/s",
        bytes as f64 / agent_seconds,
        messages as f64 / agent_seconds
    )
}

fn detection(runs: &[RaceOutcome]) -> String {
    let times = nanos(
        &runs
            .iter()
            .flat_map(|run| run.detection_times.iter().copied())
            .collect::<Vec<_>>(),
    );
    let undetected: usize = runs.iter().map(|run| run.undetected).sum();
    format!(
        "median {}, p99 {} ({} of {} detected)",
        seconds(quantile_s(&times, 0.5)),
        seconds(quantile_s(&times, 0.99)),
        times.len(),
        times.len() + undetected
    )
}

fn false_dead(runs: &[RaceOutcome]) -> String {
    let agent_hours: f64 = runs.iter().map(|run| run.agent_seconds).sum::<f64>() / 3600.0;
    let incidents: usize = runs.iter().map(|run| run.false_dead_incidents).sum();
    let declarations: u64 = runs.iter().map(|run| run.false_dead_declarations).sum();
    format!(
        "{:.3} per agent-hour ({incidents} incidents, {declarations} declarations)",
        incidents as f64 / agent_hours
    )
}

fn heal(runs: &[RaceOutcome]) -> String {
    let times: Vec<Duration> = runs.iter().filter_map(|run| run.heal_converged).collect();
    let each: Vec<String> = runs
        .iter()
        .map(|run| {
            run.heal_converged
                .map_or("no".into(), |time| format!("{:.1}", time.as_secs_f64()))
        })
        .collect();
    let times = nanos(&times);
    format!(
        "median {}, max {} (per seed: {} s)",
        seconds(quantile_s(&times, 0.5)),
        seconds(quantile_s(&times, 1.0)),
        each.join(", ")
    )
}

fn health(runs: &[RaceOutcome]) -> String {
    let errors: u64 = runs.iter().map(|run| run.errors).sum();
    let stalls: u64 = runs.iter().map(|run| run.stalls).sum();
    let wall: f64 = runs.iter().map(|run| run.wall.as_secs_f64()).sum();
    format!("{errors} inputs refused, {stalls} stalls, {wall:.1} s wall")
}

/// Runs the race and prints its table.
pub fn run() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut crashes = String::new();
    for index in 0..CRASHES {
        let _ = write!(
            crashes,
            "[[faults]]\nkind = \"crash\"\nat_s = {}\nnodes = {{ ids = [{}] }}\n",
            WARMUP_S + index * CRASH_SPACING_S,
            10 + index * 11
        );
    }
    let detect = Runs::measure(
        "crashes",
        &fleet(WARMUP_S + CRASHES * CRASH_SPACING_S + 30, &crashes),
    )?;
    rows.push(detect.row(
        format!(
            "crash declared down by every running agent ({CRASHES} crashes x {} seeds)",
            SEEDS.len()
        ),
        detection,
    ));
    let steady = Runs::measure("at rest", &fleet(STEADY_S, ""))?;
    rows.push(steady.row(
        format!("traffic per agent at rest, {WARMUP_S}-{STEADY_S} s"),
        traffic,
    ));
    let lossy_text = format!(
        "[network]\nloss = 0.1\n[[faults]]\nkind = \"random-pauses\"\nfrom_s = {WARMUP_S}\nuntil_s = {}\nper_agent_hour = 4\nduration_s = 1\n",
        WARMUP_S + LOSSY_S
    );
    let lossy = Runs::measure(
        "10% loss and pauses",
        &fleet(WARMUP_S + LOSSY_S, &lossy_text),
    )?;
    rows.push(lossy.row(
        "false dead, 10% loss + 1 s pauses (4 per agent-hour), whole runs".into(),
        false_dead,
    ));
    rows.push(lossy.row(
        format!("traffic per agent, 10% loss + pauses, {WARMUP_S} s on"),
        traffic,
    ));
    let partition = format!(
        "[[faults]]\nkind = \"partition\"\nat_s = {PARTITION_AT_S}\nheal_s = {HEAL_AT_S}\ngroups = [{{ fraction = 0.5 }}]\n"
    );
    let heal_runs = Runs::measure(
        "partition and heal",
        &fleet(HEAL_AT_S + AFTER_HEAL_S, &partition),
    )?;
    rows.push(heal_runs.row(
        format!(
            "heal: halves cut {PARTITION_AT_S}-{HEAL_AT_S} s, until all see all up (within {AFTER_HEAL_S} s)"
        ),
        heal,
    ));
    rows.push(heal_runs.row(
        format!("traffic per agent, partition and heal, {WARMUP_S} s on"),
        traffic,
    ));
    for (what, runs) in [
        ("crashes", &detect),
        ("at rest", &steady),
        ("loss", &lossy),
        ("heal", &heal_runs),
    ] {
        rows.push(runs.row(format!("run health: {what}"), health));
    }
    let title = format!("measurement (N={AGENTS})");
    let cells: Vec<[&str; 3]> = rows
        .iter()
        .map(|row| [row.measurement.as_str(), &row.fleetmesh, &row.foca])
        .collect();
    print!(
        "{}",
        super::markdown_table([&title, "fleetmesh", "foca"], &cells)
    );
    print_parameters()?;
    eprintln!(
        "foca-race: {:.1} s wall in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_parameters() -> anyhow::Result<()> {
    let scenario =
        Scenario::parse("foca-race", &fleet(STEADY_S, "")).context("race scenario is invalid")?;
    println!();
    println!("{}: {}", Fleetmesh::NAME, Fleetmesh::parameters(&scenario));
    println!("{}: {}", Foca::NAME, Foca::parameters(&scenario));
    Ok(())
}
