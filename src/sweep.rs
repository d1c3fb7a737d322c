//! Many seeds of one scenario, on every core: `sim run --seeds A..B` plays
//! the scenario as written at each seed; `sim swarm` also draws each seed's
//! fault mix ([`fleetmesh_simulator::swarm`]). Both print what failed, by
//! invariant, with the command that replays each failure; a swarm adds the
//! slowest times and which coverage probes its seeds hit.

use fleetmesh_node::PROBES;
use fleetmesh_simulator::expect::{self, Verdict};
use fleetmesh_simulator::outcome::quantile_s;
use fleetmesh_simulator::{Outcome, RunOptions, Scenario};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most failing seeds listed with their replay command.
const LISTED_MAX: usize = 20;

/// Exit code of a determinism check that found two runs of one seed
/// differing (after 0 pass, 1 unmet, 2 usage, 3 liveness, 4 safety).
pub const EXIT_NONDETERMINISTIC: u8 = 5;

/// Why a seed failed: the simulator's verdict on its run, or its two runs
/// differing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failed {
    Verdict(Verdict),
    Nondeterministic,
}

impl Failed {
    /// The name the summary prints and counts failures by.
    fn name(self) -> &'static str {
        match self {
            Failed::Verdict(Verdict::Pass) => "Pass",
            Failed::Verdict(Verdict::ExpectationUnmet) => "ExpectationUnmet",
            Failed::Verdict(Verdict::Liveness) => "Liveness",
            Failed::Verdict(Verdict::Safety) => "Safety",
            Failed::Nondeterministic => "Nondeterministic",
        }
    }

    /// The process exit code of a run that failed so.
    fn exit_code(self) -> i32 {
        match self {
            Failed::Verdict(verdict) => verdict.exit_code(),
            Failed::Nondeterministic => i32::from(EXIT_NONDETERMINISTIC),
        }
    }
}

/// Parses `A..B` (B exclusive) or `A..=B`.
pub fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let problem = || format!("`{text}` is not a seed range: write A..B or A..=B, e.g. 1..=1000");
    let (start, end, inclusive) = match text.split_once("..=") {
        Some((start, end)) => (start, end, true),
        None => {
            let (start, end) = text.split_once("..").ok_or_else(problem)?;
            (start, end, false)
        }
    };
    let start: u64 = start.trim().parse().map_err(|_| problem())?;
    let end: u64 = end.trim().parse().map_err(|_| problem())?;
    let end = if inclusive {
        end.saturating_add(1)
    } else {
        end
    };
    if end <= start {
        return Err(format!("`{text}` names no seed"));
    }
    Ok(start..end)
}

/// What to run.
pub struct Plan {
    /// The seeds.
    pub seeds: Range<u64>,
    /// Threads.
    pub jobs: usize,
    /// Draw each seed's fault mix, and judge invariants only.
    pub swarm: bool,
    /// Run each seed twice and compare them step by step.
    pub check_determinism: bool,
    /// Hand out no new seed after this long.
    pub time_limit: Option<Duration>,
    /// Run even when the runs at once may not fit in memory.
    pub force: bool,
}

/// The command that replays `seed`.
pub fn replay(path: &Path, seed: u64, swarm: bool) -> String {
    let swarm = if swarm { " --swarm" } else { "" };
    format!("fleetmesh sim run {} --seed {seed}{swarm}", path.display())
}

/// A failing seed.
struct Failure {
    seed: u64,
    verdict: Failed,
    first: String,
    mix: Option<String>,
}

/// The slowest of one measure over all seeds, and whose it was.
#[derive(Default)]
struct Slowest {
    seconds: f64,
    seed: u64,
}

impl Slowest {
    fn offer(&mut self, values: &[u64], seed: u64) {
        if let Some(seconds) = quantile_s(values, 1.0)
            && seconds > self.seconds
        {
            *self = Slowest { seconds, seed };
        }
    }
}

/// What the seeds did, summed.
#[derive(Default)]
struct Summary {
    runs: u64,
    failures: Vec<Failure>,
    /// Seeds breaking each invariant, and the first of them.
    invariants: BTreeMap<&'static str, (u64, u64)>,
    settle: Slowest,
    detect: Slowest,
    release: Slowest,
    fix: Slowest,
    /// Per probe: seeds that hit it, and hits in all.
    probes: Vec<(u64, u64)>,
    agent_seconds: f64,
}

impl Summary {
    fn add(&mut self, seed: u64, outcome: &Outcome, failure: Option<Failure>) {
        self.runs += 1;
        self.agent_seconds += outcome.agent_seconds;
        let mut seen = Vec::new();
        for violation in &outcome.violations {
            if !seen.contains(&violation.invariant) {
                seen.push(violation.invariant);
                let entry = self
                    .invariants
                    .entry(violation.invariant)
                    .or_insert((0, seed));
                entry.0 += 1;
                entry.1 = entry.1.min(seed);
            }
        }
        self.settle.offer(&outcome.settle_times, seed);
        self.detect.offer(&outcome.detection_times, seed);
        self.release.offer(&outcome.release_times, seed);
        self.fix.offer(&outcome.remedy.fix_times, seed);
        self.probes.resize(PROBES.len(), (0, 0));
        for (probe, (seeds, hits)) in PROBES.iter().zip(&mut self.probes) {
            let count = probe.count(&outcome.stats);
            *seeds += u64::from(count > 0);
            *hits += count;
        }
        self.failures.extend(failure);
    }
}

/// A progress line on standard error: redrawn in place on a terminal, a
/// line per tenth otherwise (logs stay short).
struct Progress {
    total: u64,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn show(&self, done: u64, failed: usize) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let width = 30;
            let filled = (done * width / self.total.max(1)) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            );
            let _ = write!(
                stderr,
                "\r  [{bar}] {done}/{} seeds, {failed} failing, {elapsed:.0} s ",
                self.total
            );
            if done == self.total {
                let _ = writeln!(stderr);
            }
        } else if self.total >= 10 && done.is_multiple_of(self.total / 10) {
            let _ = writeln!(
                stderr,
                "  {done}/{} seeds, {failed} failing, {elapsed:.0} s",
                self.total
            );
        }
    }
}

/// Runs one seed as `plan` says; returns its outcome and, if it failed,
/// why.
fn one(scenario: &Scenario, seed: u64, plan: &Plan) -> (Outcome, Option<Failure>) {
    let (scenario, mix) = if plan.swarm {
        let (mixed, mix) = fleetmesh_simulator::swarm::mix(scenario, seed);
        (std::borrow::Cow::Owned(mixed), Some(mix.to_string()))
    } else {
        (std::borrow::Cow::Borrowed(scenario), None)
    };
    let (outcome, divergence) = if plan.check_determinism {
        fleetmesh_simulator::check_determinism(&scenario, seed)
    } else {
        (
            fleetmesh_simulator::run(&scenario, RunOptions::seeded(seed)),
            None,
        )
    };
    let unmet = if plan.swarm {
        Vec::new()
    } else {
        expect::unmet(&scenario.expect, &outcome)
    };
    let verdict = expect::verdict(&outcome, &unmet);
    let failure = if let Some(divergence) = divergence {
        let step = divergence.first.or(divergence.second);
        Some(Failure {
            seed,
            verdict: Failed::Nondeterministic,
            first: format!(
                "runs part at step {}: {}",
                divergence.index,
                step.map(|step| step.to_string()).unwrap_or_default()
            ),
            mix,
        })
    } else if verdict != Verdict::Pass {
        let first = outcome
            .violations
            .first()
            .map(|violation| format!("{}: {}", violation.invariant, violation.details))
            .or_else(|| unmet.first().map(|line| format!("unmet: {line}")))
            .unwrap_or_default();
        Some(Failure {
            seed,
            verdict: Failed::Verdict(verdict),
            first,
            mix,
        })
    } else {
        None
    };
    (outcome, failure)
}

/// Runs `plan` over the scenario at `path` and prints the summary.
pub fn run(path: &Path, plan: &Plan) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(path)?;
    crate::memory::check(&scenario, plan.jobs, plan.force)?;
    let total = plan.seeds.end - plan.seeds.start;
    let what = if plan.swarm { "swarm" } else { "scenario" };
    println!(
        "{what} {} ({}), seeds {}..{} ({total}), {} jobs{}",
        scenario.name,
        path.display(),
        plan.seeds.start,
        plan.seeds.end,
        plan.jobs,
        if plan.check_determinism {
            ", each seed run twice"
        } else {
            ""
        }
    );
    let next = AtomicU64::new(plan.seeds.start);
    let done = AtomicU64::new(0);
    let summary: Mutex<Summary> = Mutex::new(Summary::default());
    let progress = Progress {
        total,
        started: Instant::now(),
        terminal: std::io::stderr().is_terminal(),
    };
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs {
            scope.spawn(|| {
                loop {
                    if plan
                        .time_limit
                        .is_some_and(|limit| progress.started.elapsed() >= limit)
                    {
                        break;
                    }
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= plan.seeds.end {
                        break;
                    }
                    let (outcome, failure) = one(&scenario, seed, plan);
                    let failed = {
                        let mut summary = summary.lock().expect("no thread panics holding it");
                        summary.add(seed, &outcome, failure);
                        summary.failures.len()
                    };
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress.show(finished, failed);
                }
            });
        }
    });
    let mut summary = summary.into_inner().expect("no thread panicked");
    summary.failures.sort_by_key(|failure| failure.seed);
    print_summary(path, plan, &summary, progress.started.elapsed());
    let worst = summary
        .failures
        .iter()
        .map(|failure| failure.verdict.exit_code())
        .max()
        .unwrap_or(0);
    Ok(ExitCode::from(u8::try_from(worst).unwrap_or(1)))
}

fn print_summary(path: &Path, plan: &Plan, summary: &Summary, wall: Duration) {
    let total = plan.seeds.end - plan.seeds.start;
    let minutes = wall.as_secs_f64() / 60.0;
    println!(
        "  {} seeds in {:.1} s ({:.0} seeds/min, {:.0} simulated agent-s/s): {} passed, {} failed",
        summary.runs,
        wall.as_secs_f64(),
        summary.runs as f64 / minutes.max(1e-9),
        summary.agent_seconds / wall.as_secs_f64().max(1e-9),
        summary.runs - summary.failures.len() as u64,
        summary.failures.len()
    );
    if summary.runs < total {
        println!(
            "  stopped at the time limit: {} of {total} seeds not run",
            total - summary.runs
        );
    }
    let mut by_verdict: BTreeMap<&str, usize> = BTreeMap::new();
    for failure in &summary.failures {
        *by_verdict.entry(failure.verdict.name()).or_default() += 1;
    }
    for (verdict, count) in &by_verdict {
        println!("  {verdict:<18} {count}");
    }
    if plan.swarm {
        println!("  invariant                         seeds  first seed");
        if summary.invariants.is_empty() {
            println!("  (none broken)");
        }
        for (invariant, (seeds, first)) in &summary.invariants {
            println!("  {invariant:<32} {seeds:>6}  {first}");
        }
        println!("  slowest                        seconds  seed");
        for (name, slowest) in [
            ("convergence after a quiet point", &summary.settle),
            ("crash detection", &summary.detect),
            ("release spread", &summary.release),
            ("failure to fix", &summary.fix),
        ] {
            if slowest.seconds > 0.0 {
                println!("  {name:<32} {:>6.2}  {}", slowest.seconds, slowest.seed);
            }
        }
        print_probes(summary);
    }
    for failure in summary.failures.iter().take(LISTED_MAX) {
        println!(
            "  seed {} {}: {}",
            failure.seed,
            failure.verdict.name(),
            failure.first
        );
        if let Some(mix) = &failure.mix {
            println!("    mix: {mix}");
        }
        println!("    replay: {}", replay(path, failure.seed, plan.swarm));
    }
    if summary.failures.len() > LISTED_MAX {
        println!("  ... and {} more", summary.failures.len() - LISTED_MAX);
    }
}

fn print_probes(summary: &Summary) {
    println!("  probe                   seeds hit      hits");
    let mut never = Vec::new();
    for (probe, (seeds, hits)) in PROBES.iter().zip(&summary.probes) {
        if *seeds == 0 {
            never.push(probe.name);
        } else {
            println!("  {:<22} {seeds:>10} {hits:>9}", probe.name);
        }
    }
    if never.is_empty() {
        println!("  every probe was hit");
    } else {
        println!("  never hit: {}", never.join(", "));
    }
}
