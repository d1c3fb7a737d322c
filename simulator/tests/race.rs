//! The membership race on a tiny fleet: fleetmesh and foca each detect a
//! crash and converge after a partition heals, through the same network
//! and faults, and a race replays exactly from its seed.

use fleetmesh_simulator::Scenario;
use fleetmesh_simulator::race::fleetmesh::Fleetmesh;
use fleetmesh_simulator::race::foca::Foca;
use fleetmesh_simulator::race::{self, Implementation, RaceError, RaceOptions, RaceOutcome};
use std::time::Duration;

/// Ten agents; agent 7 crashes at 20 s; the rest split in halves from 40 s
/// to 60 s. The run goes on long enough for foca's periodic announce to
/// down members (every 65 s with its LAN preset) to bring the halves back.
const TINY: &str = r#"
name = "tiny-race"
duration_s = 240
[fleet]
agents = 10
join_spread_s = 2
[network]
loss = 0.01
[[faults]]
kind = "crash"
at_s = 20
nodes = { ids = [7] }
[[faults]]
kind = "partition"
at_s = 40
heal_s = 60
groups = [{ fraction = 0.5 }]
"#;

fn tiny<I: Implementation>(seed: u64) -> RaceOutcome {
    let scenario = Scenario::parse("tiny-race", TINY).expect("the tiny race is valid");
    let options = RaceOptions {
        seed,
        traffic_from: Duration::from_secs(10),
    };
    race::run::<I>(&scenario, options).expect("the race runs")
}

fn detects_the_crash_and_converges_after_the_heal<I: Implementation>() {
    let outcome = tiny::<I>(1);
    let name = I::NAME;
    assert_eq!(outcome.detection_times.len(), 1, "{name}: {outcome:?}");
    assert_eq!(outcome.undetected, 0, "{name}: {outcome:?}");
    // Down means declared by the protocol, not by the end of a timeout of
    // ours: well before the partition starts.
    assert!(
        outcome.detection_times[0] < Duration::from_secs(20),
        "{name}: {outcome:?}"
    );
    assert!(outcome.healed, "{name}: {outcome:?}");
    assert!(outcome.heal_converged.is_some(), "{name}: {outcome:?}");
    assert!(
        outcome.messages > 0 && outcome.bytes > 0,
        "{name}: {outcome:?}"
    );
    assert_eq!(outcome.stalls, 0, "{name}: {outcome:?}");
    // Nine agents ran from about 1 s to the end, one until 20 s.
    let expected = 9.0 * 239.0 + 19.0;
    assert!(
        (outcome.agent_seconds - expected).abs() < 20.0,
        "{name}: {outcome:?}"
    );
}

#[test]
fn fleetmesh_detects_the_crash_and_converges_after_the_heal() {
    detects_the_crash_and_converges_after_the_heal::<Fleetmesh>();
}

#[test]
fn foca_detects_the_crash_and_converges_after_the_heal() {
    detects_the_crash_and_converges_after_the_heal::<Foca>();
}

#[test]
fn a_race_replays_from_its_seed() {
    let without_wall = |mut outcome: RaceOutcome| {
        outcome.wall = Duration::ZERO;
        outcome
    };
    assert_eq!(without_wall(tiny::<Foca>(3)), without_wall(tiny::<Foca>(3)));
    assert_eq!(
        without_wall(tiny::<Fleetmesh>(3)),
        without_wall(tiny::<Fleetmesh>(3))
    );
    assert_ne!(without_wall(tiny::<Foca>(3)), without_wall(tiny::<Foca>(4)));
}

#[test]
fn faults_the_race_does_not_model_are_refused() {
    let text = format!("{TINY}[[faults]]\nkind = \"leave\"\nat_s = 30\nnodes = {{ ids = [3] }}\n");
    let scenario = Scenario::parse("leave", &text).expect("valid");
    let options = RaceOptions {
        seed: 1,
        traffic_from: Duration::ZERO,
    };
    let refused = race::run::<Foca>(&scenario, options);
    assert!(matches!(refused, Err(RaceError::Unsupported("leave"))));
}
