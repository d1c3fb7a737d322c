//! Real agents on loopback (issue 17 item 8): a staged release that breaks
//! a check reverts on its canaries and never reaches the rest of 20
//! agents.
//!
//! The test plays the service the release breaks: while an agent runs
//! version 2 of `app`, the test puts the `broken` marker in its directory
//! (its exec check then fails), and takes it away once the agent went
//! back. The canary is chosen by a selector over certificate tags, so the
//! test knows which agent it is whatever the release's digest.

mod common;

use common::{exec_check, running, wait_for};
use fleetmesh_runtime::local::LocalFleet;
use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

const AGENTS: usize = 20;
/// The canary: the only host of the first wave.
const CANARY: usize = 3;
/// How long the rest are watched after the canary reverted: longer than
/// the canary's bake, so a wave opened by mistake would show.
const WATCH: Duration = Duration::from_secs(15);

/// What `/v1/releases` says agent `index` runs of `app`: version and the
/// version it went back to, if it did.
fn app(fleet: &LocalFleet, index: usize) -> Option<(u64, Option<u64>)> {
    let releases = fleet.get_json(index, "/v1/releases")?;
    let app = releases["releases"]
        .as_array()?
        .iter()
        .find(|release| release["doc"] == "app")?
        .clone();
    Some((app["version"].as_u64()?, app["reverted_to"].as_u64()))
}

/// Marks each agent running version 2 (not reverted) broken, and each
/// other one not; returns the agents running version 2.
fn play_the_service(fleet: &LocalFleet) -> BTreeSet<usize> {
    let mut running_v2 = BTreeSet::new();
    for index in 0..AGENTS {
        let marker = fleet.nodes[index].dir.join("broken");
        if app(fleet, index) == Some((2, None)) {
            running_v2.insert(index);
            fs::write(&marker, "").expect("break the service");
        } else if marker.exists() {
            fs::remove_file(&marker).expect("repair the service");
        }
    }
    running_v2
}

#[test]
fn a_bad_release_reverts_on_its_canary_and_never_reaches_the_rest() {
    let (fleet, _scratch, _ids) = running(AGENTS);
    fleet
        .publish_release(0, "remediation", &exec_check("app", "broken"))
        .expect("the policy is published");
    fleet
        .publish_release(0, "app", "version = \"1.0\"\n")
        .expect("version 1 is published");
    wait_for(&fleet, "every agent runs app version 1", || {
        (0..AGENTS)
            .all(|index| app(&fleet, index) == Some((1, None)))
            .then_some(())
    });
    let plan = format!(
        "[rollout]\nrevert_to = 1\ngate = {{ checks = [\"app\"] }}\n\
         [[rollout.wave]]\nselect = \"host=node-{CANARY}\"\nfraction = 1.0\nbake_s = 10\n\
         [[rollout.wave]]\nfraction = 1.0\nbake_s = 0\n"
    );
    let files = fleet
        .draft_staged_release("app", "version = \"2.0\"\n", Some(&plan))
        .expect("version 2 is released, staged");
    fleet.publish(0, &files).expect("version 2 is published");
    let mut ran = BTreeSet::new();
    wait_for(&fleet, "the canary ran version 2 and went back", || {
        ran.extend(play_the_service(&fleet));
        (app(&fleet, CANARY) == Some((2, Some(1)))).then_some(())
    });
    // The rest skip version 2 without running it, and nobody runs it
    // while the test watches.
    let until = Instant::now() + WATCH;
    while Instant::now() < until {
        ran.extend(play_the_service(&fleet));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ran, BTreeSet::from([CANARY]), "only the canary ran it");
    let reverted = |index: usize| {
        fleet
            .metric(index, "fleetmesh_rollout_reverted_total")
            .unwrap_or(0)
    };
    assert_eq!(reverted(CANARY), 1, "the canary went back once");
    for index in (0..AGENTS).filter(|&index| index != CANARY) {
        assert_eq!(reverted(index), 0, "agent {index} never ran version 2");
        assert_eq!(
            app(&fleet, index),
            Some((2, Some(1))),
            "agent {index} skipped version 2 and runs version 1's content"
        );
    }
    let attested = fleet
        .metric(CANARY, "fleetmesh_rollout_attested_failed_total")
        .unwrap_or(0);
    assert_eq!(attested, 1, "the canary signed that it failed");
    let status = fleet
        .fleetmesh(
            &[
                &["config", "rollout", "status", "app"][..],
                &fleet.nodes[0]
                    .admin_args()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ]
            .concat(),
        )
        .expect("rollout status answers");
    assert!(
        status.contains("wave 0 failed its gate: halted, this agent went back to version 1"),
        "{status}"
    );
}
