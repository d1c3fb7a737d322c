//! Acknowledged means durable: a lone agent (nobody to catch up from) is
//! killed with SIGKILL while an operator publishes config changes and
//! releases to it, restarted, and killed again, over and over. Each
//! iteration drafts the next version of one document, publishes what is
//! not acknowledged yet (the new change and release, and whatever an
//! earlier kill cut off) one file per `fleetmesh config publish`, and
//! kills the agent either at a random moment of that (mid-publish) or
//! right after a random one of its acknowledgements. After every restart:
//!
//! - the agent started: a torn journal is cut, never a refusal;
//! - it runs at least the newest release it acknowledged, with that
//!   release's content (so the changes the release names survived too),
//!   and `/v1/config/history` holds that release;
//! - its release version never went down (no rollback).
//!
//! At the end everything not yet acknowledged is published again and one
//! last release must run: it names every change drafted, so a change that
//! was acknowledged and then lost would hold it back forever.
//!
//! `cargo test` runs a short loop; the long one is ignored (it takes
//! about a second an iteration):
//!
//! ```sh
//! cargo test --release --test kill_loop -- --ignored --nocapture
//! ```
//!
//! `FLEETMESH_KILL_ITERATIONS` (default 1,000) and `FLEETMESH_KILL_MINUTES`
//! (default 40) bound it; it stops at whichever comes first and prints a
//! summary line.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleetmesh_runtime::local::{self, LocalFleet};
use serde_json::Value;

/// The document published.
const DOC: &str = "app";
/// Longest an agent may take to answer after a start.
const START_WAIT: Duration = Duration::from_secs(30);
/// Longest a random kill waits after the publishing began: past the time
/// a publish of two or three files takes, so some kills land after it.
const KILL_DELAY_MAX_MILLIS: u64 = 150;

/// What a loop saw.
#[derive(Debug, Default)]
struct Summary {
    iterations: u64,
    kills_mid_publish: u64,
    kills_after_ack: u64,
    files_acknowledged: u64,
    /// Restarts whose journal had a torn or damaged tail cut off.
    journals_cut: u64,
    /// Entries the restarts took back from the journal.
    entries_replayed: u64,
    lost: u64,
    rollbacks: u64,
    refusals: u64,
}

/// A small deterministic generator (xorshift64*): the seed is printed, so
/// a failing schedule can be replayed.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The release node 0 runs for [`DOC`]: its version and content's value.
fn running(fleet: &LocalFleet) -> Option<(u64, Option<i64>)> {
    let releases = fleet.get_json(0, "/v1/releases")?;
    let release = releases["releases"]
        .as_array()?
        .iter()
        .find(|release| release["doc"] == DOC)?;
    Some((
        release["version"].as_u64()?,
        release["content"]["value"].as_i64(),
    ))
}

/// Whether node 0's `/v1/config/history` holds release `version` of [`DOC`].
fn in_history(fleet: &LocalFleet, version: u64) -> bool {
    fleet
        .get_json(0, "/v1/config/history")
        .and_then(|history| {
            history["releases"].as_array().map(|releases| {
                releases
                    .iter()
                    .any(|release| release["doc"] == DOC && release["version"] == version)
            })
        })
        .unwrap_or(false)
}

/// Starts node 0 and waits until it answers; `false` if it exited or
/// never answered (a refusal to start).
fn start(fleet: &mut LocalFleet) -> bool {
    fleet.start(0).expect("the agent process starts");
    let begun = Instant::now();
    while begun.elapsed() < START_WAIT {
        if fleet.exited(0).is_some() {
            return false;
        }
        if matches!(fleet.get(0, "/healthz"), Some((200, _))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Publishes `files` one by one (stopping at the first failure), telling
/// `acks` the index of each one acknowledged.
fn publish_each(fleet: &LocalFleet, files: &[PathBuf], acks: &mpsc::Sender<usize>) {
    for (index, file) in files.iter().enumerate() {
        if fleet.publish(0, std::slice::from_ref(file)).is_err() {
            return;
        }
        let _ = acks.send(index);
    }
}

/// Sends SIGKILL to process `pid`.
fn sigkill(pid: u32) {
    let pid = i32::try_from(pid).expect("a process id");
    // SAFETY: kill(2) takes plain integers and touches no memory; the
    // agent's `Child` is held and not reaped yet, so the id is its own.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The version a release file holds (`fleetmesh config release` numbers
/// them), read from the file.
fn release_version(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file).expect("a release file");
    let json: Value = serde_json::from_str(&text).expect("a release file is JSON");
    json["release"]
        .as_u64()
        .unwrap_or_else(|| panic!("no release version in {text}"))
}

fn kill_loop(iterations: u64, limit: Duration, seed: u64) -> Summary {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let mut fleet = LocalFleet::create(
        Path::new(env!("CARGO_BIN_EXE_fleetmesh")),
        scratch.path(),
        1,
    )
    .expect("the fleet's files");
    let mut draws = Draws(seed | 1);
    let mut summary = Summary::default();
    assert!(start(&mut fleet), "the agent starts\n{}", fleet.logs());
    // Files drafted and not acknowledged yet, in publishing order, with
    // the release version of each release among them.
    let mut unacknowledged: Vec<(PathBuf, Option<u64>)> = Vec::new();
    let mut published = std::collections::BTreeSet::new();
    let mut acknowledged_version = 0;
    let mut seen_version = 0;
    let begun = Instant::now();
    for iteration in 1..=iterations {
        if begun.elapsed() > limit {
            break;
        }
        summary.iterations = iteration;
        let drafted = fleet
            .draft_release(DOC, &format!("value = {iteration}\n"))
            .expect("drafting a release");
        let (release, changes) = drafted.split_last().expect("a release file");
        for change in changes {
            if published.insert(change.clone()) {
                unacknowledged.push((change.clone(), None));
            }
        }
        unacknowledged.push((release.clone(), Some(release_version(release))));
        let files: Vec<PathBuf> = unacknowledged
            .iter()
            .map(|(file, _)| file.clone())
            .collect();

        let pid = fleet.pid(0).expect("the agent runs");
        let (acks_to, acks) = mpsc::channel();
        let after_ack = draws.below(2) == 0;
        let wanted = draws.below(files.len() as u64) as usize;
        let delay = Duration::from_millis(draws.below(KILL_DELAY_MAX_MILLIS));
        let (shared, batch) = (&fleet, &files);
        let acked: Vec<usize> = std::thread::scope(|scope| {
            // The sender moves in: when publishing ends, `recv` ends too.
            let publisher = scope.spawn(move || publish_each(shared, batch, &acks_to));
            let mut acked = Vec::new();
            if after_ack {
                // Right after the `wanted`-th acknowledgement (or once
                // publishing ended, if it failed before).
                while let Ok(index) = acks.recv_timeout(START_WAIT) {
                    acked.push(index);
                    if index >= wanted {
                        break;
                    }
                }
            } else {
                std::thread::sleep(delay);
            }
            sigkill(pid);
            publisher.join().expect("the publisher thread");
            acked.extend(acks.try_iter());
            acked
        });
        if after_ack {
            summary.kills_after_ack += 1;
        } else {
            summary.kills_mid_publish += 1;
        }
        let _ = fleet.kill(0);
        summary.files_acknowledged += acked.len() as u64;
        for &index in &acked {
            if let Some(version) = unacknowledged[index].1 {
                acknowledged_version = acknowledged_version.max(version);
            }
        }
        let acked: std::collections::BTreeSet<usize> = acked.into_iter().collect();
        unacknowledged = unacknowledged
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !acked.contains(index))
            .map(|(_, file)| file)
            .collect();

        if !start(&mut fleet) {
            summary.refusals += 1;
            eprintln!(
                "iteration {iteration}: the agent did not start\n{}",
                fleet.logs()
            );
            break;
        }
        let (version, value) = running(&fleet).unwrap_or((0, None));
        if version < seen_version {
            summary.rollbacks += 1;
            eprintln!("iteration {iteration}: runs version {version} after {seen_version}");
        }
        seen_version = seen_version.max(version);
        let content_right = version == 0 || value == i64::try_from(version).ok();
        let history_right = acknowledged_version == 0 || in_history(&fleet, acknowledged_version);
        if version < acknowledged_version || !content_right || !history_right {
            summary.lost += 1;
            eprintln!(
                "iteration {iteration}: acknowledged release {acknowledged_version}, runs {version} with value {value:?}, in history: {history_right}\n{}",
                fleet.logs()
            );
        }
        summary.journals_cut += fleet
            .metric(0, "fleetmesh_runtime_journal_damaged_total")
            .unwrap_or(0);
        summary.entries_replayed += fleet
            .metric(0, "fleetmesh_runtime_journal_replayed_total")
            .unwrap_or(0);
    }

    if summary.refusals == 0 {
        // Everything not acknowledged, and one last release naming every
        // change drafted: it runs only if no acknowledged change was lost.
        let drafted = fleet
            .draft_release(DOC, "value = -1\n")
            .expect("drafting the last release");
        let (release, changes) = drafted.split_last().expect("a release file");
        let last = release_version(release);
        let mut files: Vec<PathBuf> = unacknowledged.into_iter().map(|(file, _)| file).collect();
        files.extend(
            changes
                .iter()
                .filter(|change| !published.contains(*change))
                .cloned(),
        );
        files.push(release.clone());
        fleet.publish(0, &files).expect("publishing what is left");
        let ran = local::wait_for("the last release runs", START_WAIT, || {
            (running(&fleet) == Some((last, Some(-1)))).then_some(())
        });
        if ran.is_err() {
            summary.lost += 1;
            eprintln!(
                "the last release ({last}) does not run: {:?}\n{}",
                running(&fleet),
                fleet.logs()
            );
        }
    }
    let _ = fleet.kill(0);
    summary
}

fn report(summary: &Summary, seed: u64, took: Duration) {
    println!(
        "kill loop (seed {seed}): {} iterations in {:.0} s, {} kills mid-publish, {} right after an acknowledgement, {} files acknowledged, {} torn journals cut at start, {} entries replayed; lost {}, rollbacks {}, refusals to start {}",
        summary.iterations,
        took.as_secs_f64(),
        summary.kills_mid_publish,
        summary.kills_after_ack,
        summary.files_acknowledged,
        summary.journals_cut,
        summary.entries_replayed,
        summary.lost,
        summary.rollbacks,
        summary.refusals,
    );
    assert_eq!(
        (summary.lost, summary.rollbacks, summary.refusals),
        (0, 0, 0),
        "acknowledged entries lost, rollbacks, refusals to start (seed {seed})"
    );
}

fn seed() -> u64 {
    env_or(
        "FLEETMESH_KILL_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64),
    )
}

#[test]
fn acknowledged_publishes_survive_kill_9() {
    let seed = seed();
    let begun = Instant::now();
    let summary = kill_loop(20, Duration::from_secs(60), seed);
    report(&summary, seed, begun.elapsed());
    assert!(
        summary.iterations >= 10,
        "only {} iterations ran",
        summary.iterations
    );
    assert!(summary.files_acknowledged > 0, "nothing was acknowledged");
}

#[test]
#[ignore = "minutes long: cargo test --release --test kill_loop -- --ignored --nocapture"]
fn acknowledged_publishes_survive_a_thousand_kill_9s() {
    let seed = seed();
    let iterations = env_or("FLEETMESH_KILL_ITERATIONS", 1_000);
    let limit = Duration::from_secs(60 * env_or("FLEETMESH_KILL_MINUTES", 40));
    let begun = Instant::now();
    let summary = kill_loop(iterations, limit, seed);
    report(&summary, seed, begun.elapsed());
}
