//! Every scenario in `scenarios/` passes with its own seed: invariants hold
//! and expectations are met. A small fleet also runs under many seeds, so
//! that more fault schedules are explored than the files spell out.

use fleetmesh_simulator::expect::{self, Verdict};
use fleetmesh_simulator::{RunOptions, Scenario, run};
use std::path::Path;

fn verdict(scenario: &Scenario, seed: u64) -> (Verdict, String) {
    let outcome = run(scenario, RunOptions::seeded(seed));
    let unmet = expect::unmet(&scenario.expect, &outcome);
    let verdict = expect::verdict(&outcome, &unmet);
    (verdict, format!("{outcome}{}", unmet.join("\n")))
}

#[test]
fn every_scenario_file_passes() {
    let mut files: Vec<_> = std::fs::read_dir("scenarios")
        .expect("scenarios/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "expected at least six scenarios, found {}",
        files.len()
    );
    for file in files {
        let scenario = Scenario::load(&file).unwrap_or_else(|error| panic!("{error}"));
        let (verdict, report) = verdict(&scenario, scenario.seed);
        assert_eq!(
            verdict,
            Verdict::Pass,
            "{}:\n{report}\nreplay: fleetmesh sim run {} --seed {}",
            file.display(),
            file.display(),
            scenario.seed
        );
    }
}

const SMALL_PARTITION: &str = r#"
name = "small-partition"
duration_s = 150
[fleet]
agents = 40
join_spread_s = 3
[network]
loss = 0.01
duplicate = 0.01
reorder = 0.05
reorder_ms = 20
[[faults]]
kind = "partition"
at_s = 20
heal_s = 60
groups = [{ fraction = 0.4 }]
[[faults]]
kind = "crash"
at_s = 80
nodes = { count = 2, exclude_seeds = true }
restart_after_s = 20
[expect]
converge_within_s = 40
detect_within_s = 30
"#;

#[test]
fn a_small_faulty_fleet_passes_under_many_seeds() {
    let scenario = Scenario::parse("small-partition", SMALL_PARTITION).expect("valid");
    for seed in 1..=20 {
        let (verdict, report) = verdict(&scenario, seed);
        assert_eq!(verdict, Verdict::Pass, "seed {seed}:\n{report}");
    }
}

/// Every attack kind, a dozen times over; the attack is the last fault,
/// so a line appended to the text belongs to it.
const SMALL_ATTACK: &str = r#"
name = "small-attack"
duration_s = 60
[fleet]
agents = 12
join_spread_s = 2
[expect]
release_within_s = 20
[[faults]]
kind = "config"
at_s = 4
content = { service = "web" }
[[faults]]
kind = "attack"
from_s = 10
until_s = 40
attempts = 144
attacker = 3
"#;

#[test]
fn only_a_trusted_keys_crafted_change_reaches_automerge_and_then_every_agent_quarantines_it() {
    // The attacker's own key signs the unappliable change: every agent
    // refuses it before automerge sees it.
    let scenario = Scenario::parse("small-attack", SMALL_ATTACK).expect("valid");
    let outcome = run(&scenario, RunOptions::seeded(1));
    assert_eq!(expect::verdict(&outcome, &[]), Verdict::Pass, "{outcome}");
    assert_eq!(outcome.state.automerge_panics, 0, "{outcome}");
    // Twelve floods, each entry verified and refused.
    assert!(outcome.traffic.flood_entries > 12 * 4_000, "{outcome}");
    assert!(
        outcome.state.bad_signatures >= outcome.traffic.flood_entries,
        "{outcome}"
    );
    // operator-2's key signs it: automerge panics, the guard catches it,
    // and the run passes only if every running agent quarantines the key
    // within the release bound.
    let text = format!("{SMALL_ATTACK}config_key = \"operator-2\"\n");
    let scenario = Scenario::parse("small-attack", &text).expect("valid");
    let outcome = run(&scenario, RunOptions::seeded(1));
    assert_eq!(expect::verdict(&outcome, &[]), Verdict::Pass, "{outcome}");
    assert!(outcome.state.automerge_panics > 0, "{outcome}");
}

#[test]
fn scenario_errors_name_file_line_and_field() {
    let error = Scenario::load(Path::new("does-not-exist.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("does-not-exist.toml") && error.contains("cannot read"),
        "{error}"
    );
    let text = "name = \"x\"\nduration_s = 10\n[fleet]\nagents = 0\n";
    let error = Scenario::parse("x.toml", text).unwrap_err().to_string();
    assert!(
        error.contains("x.toml:3") && error.contains("fleet.agents"),
        "{error}"
    );
}
