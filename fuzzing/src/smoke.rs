//! The smoke run: every target on its seeds, then on seeded mutations of
//! them ([`crate::mutate`]), on stable Rust and without libFuzzer, so CI
//! runs each target's checks on every change.
//!
//! A panic fails the run. It is caught only to say which target, seed and
//! input failed and how to replay it; panics inside automerge that
//! fleetmesh's guard catches never reach here.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Target;
use crate::corpus;
use crate::mutate::Mutator;

/// What one target's smoke run did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Its seeds, each run once unchanged.
    pub seeds: usize,
    /// Inputs run, seeds included.
    pub inputs: u64,
    /// How long they took (the fixture and seeds are built before).
    pub elapsed: Duration,
}

impl Report {
    /// Inputs per second.
    pub fn rate(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An input that panicked a target.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The target.
    pub target: &'static str,
    /// The smoke run's seed.
    pub seed: u64,
    /// The input's number in the run (seeds first).
    pub index: u64,
    /// The input.
    pub input: Vec<u8>,
    /// The panic's message.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = fleetmesh_runtime::files::hex(&self.input);
        writeln!(
            f,
            "PANIC in target {} (smoke seed {}, input #{}): {}",
            self.target, self.seed, self.index, self.message
        )?;
        writeln!(f, "input ({} bytes, hex): {hex}", self.input.len())?;
        write!(
            f,
            "replay: cargo run --release -p fleetmesh-fuzzing --bin fuzz-smoke -- replay {} {hex}",
            self.target
        )
    }
}

/// Runs `target` on its seeds, then on mutations of them until `inputs`
/// inputs in all, drawn from `seed`.
pub fn run(target: &Target, inputs: u64, seed: u64) -> Result<Report, Box<Failure>> {
    let seeds = corpus::seeds(target.name);
    let mut mutator = Mutator::new(seed ^ stream_of(target.name));
    let mut input = Vec::new();
    let started = Instant::now();
    let mut index = 0;
    while index < inputs {
        match seeds.get(index as usize) {
            Some(seed) => input.clone_from(seed),
            None if seeds.is_empty() => input.clear(),
            None => mutator.mutate(&seeds, &mut input),
        }
        if let Err(message) = replay(target, &input) {
            return Err(Box::new(Failure {
                target: target.name,
                seed,
                index,
                input,
                message,
            }));
        }
        index += 1;
    }
    Ok(Report {
        target: target.name,
        seeds: seeds.len(),
        inputs,
        elapsed: started.elapsed(),
    })
}

/// Runs each of `targets` for its number of inputs, on `jobs` threads
/// (each target on one thread, the most inputs first), drawing from `seed`;
/// `report` sees each target's report as it finishes. Stops at the first
/// panic. The inputs do not depend on `jobs`.
pub fn run_all(
    targets: &[(&'static Target, u64)],
    seed: u64,
    jobs: usize,
    report: impl Fn(&Report) + Sync,
) -> Result<Vec<Report>, Box<Failure>> {
    let mut queue: Vec<(&'static Target, u64)> = targets.to_vec();
    // The largest runs start first, so none is left to run alone at the end.
    queue.sort_by_key(|&(_, inputs)| std::cmp::Reverse(inputs));
    let queue = Mutex::new(VecDeque::from(queue));
    let reports = Mutex::new(Vec::new());
    let failed: Mutex<Option<Box<Failure>>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().ok().and_then(|mut queue| queue.pop_front());
                    let Some((target, inputs)) = next else {
                        return;
                    };
                    if failed.lock().map_or(true, |failed| failed.is_some()) {
                        return;
                    }
                    match run(target, inputs, seed) {
                        Ok(done) => {
                            report(&done);
                            if let Ok(mut reports) = reports.lock() {
                                reports.push(done);
                            }
                        }
                        Err(failure) => {
                            if let Ok(mut failed) = failed.lock() {
                                failed.get_or_insert(failure);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().ok().flatten() {
        Some(failure) => Err(failure),
        None => Ok(reports.into_inner().unwrap_or_default()),
    }
}

/// Runs `target` on one input; the panic message if it panics.
pub fn replay(target: &Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "(no message)".to_owned())
    })
}

/// A per-target offset of the run's seed, so targets draw differently.
fn stream_of(name: &str) -> u64 {
    fleetmesh_node::crdt::Digest::of_bytes(crate::fixture::ITEM_DOMAIN, name.as_bytes()).prefix()
}
