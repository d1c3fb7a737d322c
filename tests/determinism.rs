//! The same seed gives the same run, event for event; another seed gives
//! another run.

use fleetmesh_simulator::{RunOptions, Scenario, run};
use std::path::Path;

fn hash(scenario: &Scenario, seed: u64) -> (String, u64) {
    let outcome = run(scenario, RunOptions::seeded(seed));
    (outcome.trace_hash, outcome.trace_events)
}

/// The scenario file at `path`.
fn load(path: &str) -> Scenario {
    Scenario::load(Path::new(path)).expect("scenario loads")
}

/// Asserts that `seed` gives `scenario` the same trace twice and that the
/// next seed gives another.
fn replays_exactly(scenario: &Scenario, seed: u64) {
    let first = hash(scenario, seed);
    assert_eq!(first, hash(scenario, seed), "one seed, two different runs");
    assert_ne!(first.0, hash(scenario, seed + 1).0, "two seeds, one trace");
}

#[test]
fn same_seed_same_trace_hash_other_seed_other_hash() {
    // One-way link: partition, heal, suspicion, refutation and anti-entropy
    // all happen, so most code paths feed the hash.
    let scenario = load("scenarios/one-way-link.toml");
    let first = hash(&scenario, 7);
    let again = hash(&scenario, 7);
    assert_eq!(
        first, again,
        "one seed, two different runs: something reads unseeded state"
    );
    assert!(first.1 > 100_000, "the run traced only {} events", first.1);
    let other = hash(&scenario, 8);
    assert_ne!(
        first.0, other.0,
        "two seeds, one trace: the seed does not reach the run"
    );
}

#[test]
fn operators_and_an_attacker_replay_exactly() {
    // Config writes, releases, a revocation-free attack of every kind and
    // an expiring release: the operator and attacker streams feed the hash.
    replays_exactly(&load("scenarios/attack-forgeries.toml"), 3);
}

#[test]
fn a_stolen_config_key_its_quarantine_and_floods_replay_exactly() {
    // The attacker signs with a stolen config key and a revoked node's key,
    // the operators' laptops quarantine the stolen key, floods are built
    // once and answered from the verdict cache: none of it may depend on
    // anything but the seed.
    let scenario = load("scenarios/attack-automerge.toml");
    assert_eq!(hash(&scenario, 2), hash(&scenario, 2), "one seed, two runs");
}

#[test]
fn the_written_trace_matches_the_hashed_one() {
    let scenario = load("scenarios/rolling-leave.toml");
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let options = RunOptions {
        trace: Some(Box::new(Shared(buffer.clone()))),
        ..RunOptions::seeded(3)
    };
    let written = run(&scenario, options);
    let hashed = run(&scenario, RunOptions::seeded(3));
    assert_eq!(
        written.trace_hash, hashed.trace_hash,
        "writing the trace changed the run"
    );
    let lines = buffer
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    assert_eq!(lines, written.trace_events);
}

#[test]
fn remediation_replays_exactly() {
    // Checks, local and disruptive actions, a budget lease that changes
    // hands twice and task results lost with crashed processes: the
    // service model feeds the hash through the actions it traces.
    replays_exactly(&load("scenarios/remedy-holder-crash.toml"), 5);
}

#[test]
fn a_staged_rollout_cut_by_a_partition_replays_exactly() {
    // Waves opened by attestations, ranks drawn from the release digest
    // and a partition in the middle of a bake.
    replays_exactly(&load("scenarios/rollout-partition.toml"), 3);
}

#[test]
fn the_determinism_check_agrees_on_a_seed_and_names_where_schedules_part() {
    use fleetmesh_simulator::check_determinism;
    use fleetmesh_simulator::fingerprint::{STEP_KINDS, first_divergence};
    let text = |crash_at: u32| {
        format!(
            "name = \"part\"\nduration_s = 40\n[fleet]\nagents = 20\n\
             [[faults]]\nkind = \"crash\"\nat_s = {crash_at}\nnodes = {{ ids = [7] }}\n"
        )
    };
    let scenario = Scenario::parse("part.toml", &text(20)).expect("scenario parses");
    let (outcome, divergence) = check_determinism(&scenario, 5);
    assert_eq!(divergence, None, "one seed, two runs part ways");
    assert!(outcome.events > 3_000, "only {} steps", outcome.events);

    // The same seed under a schedule whose crash comes a second later: the
    // runs are one until the first crash, and the check must say so.
    let later = Scenario::parse("part.toml", &text(21)).expect("scenario parses");
    let fingerprinted = |scenario: &Scenario| {
        run(
            scenario,
            RunOptions {
                fingerprint: true,
                ..RunOptions::seeded(5)
            },
        )
        .steps
    };
    let divergence = first_divergence(&fingerprinted(&scenario), &fingerprinted(&later))
        .expect("different schedules differ");
    let first = divergence.first.expect("the first run goes on");
    assert_eq!(first.at, 20_000_000_000, "{divergence}");
    assert_eq!(STEP_KINDS[usize::from(first.what)], "fault", "{divergence}");
    let agreed = divergence.agreed.expect("the runs start alike");
    assert!(
        agreed.at <= first.at && agreed.at > 19_000_000_000,
        "{divergence}"
    );
}
