//! `sim run --seeds A..B`: one scenario over a range of seeds, on every
//! core, with a summary of what failed and the command that replays each
//! failure.

use fleetmesh_simulator::expect::{self, Verdict};
use fleetmesh_simulator::{RunOptions, Scenario};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most failing seeds listed with their replay command.
const LISTED_MAX: usize = 20;

/// Parses `A..B` (B exclusive) or `A..=B`.
pub fn parse_range(text: &str) -> Result<std::ops::Range<u64>, String> {
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

/// What one seed did.
struct Run {
    seed: u64,
    verdict: Verdict,
    first: String,
}

/// Runs `scenario` at every seed of `seeds` on `jobs` threads.
pub fn run(path: &Path, seeds: std::ops::Range<u64>, jobs: usize) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(path)?;
    let total = seeds.end - seeds.start;
    println!(
        "scenario {} ({}), seeds {}..{} ({total}), {jobs} jobs",
        scenario.name,
        path.display(),
        seeds.start,
        seeds.end
    );
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let failed: Mutex<Vec<Run>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let outcome = fleetmesh_simulator::run(&scenario, RunOptions::seeded(seed));
                    let unmet = expect::unmet(&scenario.expect, &outcome);
                    let verdict = expect::verdict(&outcome, &unmet);
                    if verdict != Verdict::Pass {
                        let first = outcome
                            .violations
                            .first()
                            .map(|violation| {
                                format!("{}: {}", violation.invariant, violation.details)
                            })
                            .or_else(|| unmet.first().map(|line| format!("unmet: {line}")))
                            .unwrap_or_default();
                        failed
                            .lock()
                            .expect("no thread panics holding it")
                            .push(Run {
                                seed,
                                verdict,
                                first,
                            });
                    }
                    let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if total >= 100 && finished.is_multiple_of(total / 10) {
                        eprintln!("  {finished}/{total} seeds");
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().expect("no thread panicked");
    failed.sort_by_key(|run| run.seed);
    let mut by_verdict: BTreeMap<String, usize> = BTreeMap::new();
    for run in &failed {
        *by_verdict.entry(format!("{:?}", run.verdict)).or_default() += 1;
    }
    println!(
        "  {total} seeds in {:.1} s: {} passed, {} failed",
        started.elapsed().as_secs_f64(),
        total - failed.len() as u64,
        failed.len()
    );
    for (verdict, count) in &by_verdict {
        println!("  {verdict:<18} {count}");
    }
    for run in failed.iter().take(LISTED_MAX) {
        println!("  seed {} {:?}: {}", run.seed, run.verdict, run.first);
        println!(
            "    replay: fleetmesh sim run {} --seed {}",
            path.display(),
            run.seed
        );
    }
    if failed.len() > LISTED_MAX {
        println!("  ... and {} more", failed.len() - LISTED_MAX);
    }
    let worst = failed
        .iter()
        .map(|run| run.verdict.exit_code())
        .max()
        .unwrap_or(0);
    Ok(ExitCode::from(u8::try_from(worst).unwrap_or(1)))
}
