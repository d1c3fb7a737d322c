//! Failures whose cause is known, shrunk and explained: the shrunk file
//! must hold at most the faults the failure needs and replay the same
//! invariant by itself, a swarm mix written down must be the very run the
//! swarm made, and a violation's log must show its cause.

use fleetmesh_simulator::shrink::shrink;
use fleetmesh_simulator::{RunOptions, Scenario, swarm};

/// 16 agents for 60 s with 25 faults, of which one matters: a crash at
/// 20 s that the `detect_within_s` bound of 2 s (detection takes about
/// 6 s) turns into a `crash-detected` violation. The other 24 are noise the
/// run survives: short pauses, loss windows, clock skew and a healed
/// partition, all of them far from the crash or harmless to detection.
fn noisy_scenario() -> String {
    let mut text = String::from(
        "name = \"noisy-crash\"\nduration_s = 60\nseed = 3\n\
         [fleet]\nagents = 16\n\
         [expect]\ndetect_within_s = 2\n\
         [[faults]]\nkind = \"crash\"\nat_s = 20\nnodes = { ids = [5] }\n",
    );
    for i in 0..8 {
        text += &format!(
            "[[faults]]\nkind = \"pause\"\nat_s = {}\nnodes = {{ ids = [{}] }}\nduration_s = 0.3\n",
            2 + i * 6,
            8 + i
        );
    }
    for i in 0..8 {
        text += &format!(
            "[[faults]]\nkind = \"network\"\nat_s = {}\nuntil_s = {}\nloss = 0.02\n",
            1 + i * 7,
            2 + i * 7
        );
    }
    for i in 0..7 {
        text += &format!(
            "[[faults]]\nkind = \"clock\"\nat_s = {}\nnodes = {{ ids = [{}] }}\nskew_ms = 50\n",
            i * 3,
            i + 1
        );
    }
    text += "[[faults]]\nkind = \"partition\"\nat_s = 40\nheal_s = 43\ngroups = [{ ids = [0, 1, 2, 3] }]\n";
    text
}

#[test]
fn a_25_fault_failure_shrinks_to_the_one_crash_and_replays() {
    let text = noisy_scenario();
    let scenario = Scenario::parse("noisy", &text).expect("fixture parses");
    assert_eq!(scenario.faults.len(), 25);
    let mut asked = 0;
    let shrunk = shrink("noisy", &text, 3, false, &mut || {
        asked += 1;
        asked < 500
    })
    .expect("seed 3 fails");
    assert_eq!(shrunk.original.invariant, "crash-detected");
    assert!(shrunk.complete);
    assert_eq!(shrunk.before.faults, 25);
    assert_eq!(shrunk.after.faults, 1, "{}", shrunk.text);
    assert!(shrunk.after.agents < 16, "{}", shrunk.text);
    assert!(shrunk.after.duration_s < 60.0, "{}", shrunk.text);
    // The file stands alone: its own seed, no --swarm, same invariant.
    let replayed = Scenario::parse("shrunk", &shrunk.text).expect("the shrunk file parses");
    assert_eq!(replayed.faults.len(), 1);
    let outcome = fleetmesh_simulator::run(&replayed, RunOptions::seeded(replayed.seed));
    assert_eq!(
        outcome.violations.first().map(|v| v.invariant),
        Some("crash-detected")
    );
}

#[test]
fn a_run_that_holds_its_invariants_is_not_shrunk() {
    let text = noisy_scenario().replace("detect_within_s = 2", "detect_within_s = 30");
    let error = shrink("noisy", &text, 3, false, &mut || true).expect_err("nothing fails");
    assert!(error.to_string().contains("breaks no invariant"), "{error}");
}

/// A swarm mix moves faults by arbitrary nanoseconds and scales them; the
/// document the shrinker writes must replay the mix exactly (same trace
/// hash), or every shrink of a swarm failure starts from another run.
#[test]
fn a_swarm_mix_written_as_a_file_is_the_same_run() {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/chaos-mix-50.toml"
    ))
    .expect("scenario file");
    // A link rule inherits what it leaves out from the scenario's link,
    // which the mix scales: the written file must pin it.
    text += "\n[[network.links]]\nfrom = { select = \"zone=a\" }\nto = { select = \"zone=b\" }\nlatency_mean_ms = 30\n";
    let scenario = Scenario::parse("chaos-mix-50", &text).expect("parses");
    assert_eq!(scenario.links.len(), 1);
    for seed in 1..=6 {
        let (mixed, _) = swarm::mix(&scenario, seed);
        let mixed_run = fleetmesh_simulator::run(&mixed, RunOptions::seeded(seed));
        let written = fleetmesh_simulator::shrink::write_swarm_mix(&text, &scenario, seed)
            .expect("the mix is written");
        let replayed = Scenario::parse("written", &written).expect("the written mix parses");
        let replayed_run = fleetmesh_simulator::run(&replayed, RunOptions::seeded(seed));
        assert_eq!(mixed_run.trace_hash, replayed_run.trace_hash, "seed {seed}");
        assert_eq!(mixed_run.events, replayed_run.events, "seed {seed}");
    }
}

#[test]
fn a_violation_log_shows_the_crash_and_what_the_others_saw_before_it() {
    let text = noisy_scenario();
    let scenario = Scenario::parse("noisy", &text).expect("fixture parses");
    let outcome = fleetmesh_simulator::run(&scenario, RunOptions::seeded(3));
    let violation = outcome.violations.first().expect("seed 3 fails");
    assert_eq!(violation.invariant, "crash-detected");
    assert_eq!(violation.agents, [5]);
    let log = fleetmesh_simulator::explain::log(&scenario, 3, violation, 40);
    assert_eq!(log.agents, [5]);
    let log = log.lines;
    assert!(!log.is_empty() && log.len() <= 40, "{log:#?}");
    let at = |line: &str| -> f64 {
        line.trim_start_matches("t=")
            .split('s')
            .next()
            .and_then(|t| t.trim().parse().ok())
            .expect("each line starts with its time")
    };
    assert!(
        log.iter().all(|line| at(line) <= violation.at as f64 / 1e9),
        "nothing after the violation: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|line| line.contains("fault: crash of agents [5]")),
        "{log:#?}"
    );
    // The bound (2 s) ends before anyone suspects the crashed agent (about
    // 3.5 s): the last view the log can show of it is still "alive".
    assert!(
        log.iter()
            .any(|line| line.contains("see agent 5 alive") || line.contains("sees agent 5 alive")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|line| line.contains("agent 5 dead")),
        "{log:#?}"
    );
}
