//! Real agents: `fleetmesh agent` processes on loopback, made and admitted
//! with the operator CLI as an operator would, watched through their admin
//! APIs. Every wait is bounded in time and in polls; every agent is killed
//! when the test ends, pass or fail.

mod common;

use std::fs;
use std::process::Command;

use common::{exec_check, loopback_fleet, rule, running, wait_for};

/// Agents in the test fleet.
const AGENTS: usize = 5;

#[test]
fn five_agents_converge_detect_a_crash_and_take_a_restart_back() {
    let (mut fleet, _scratch, ids) = running(AGENTS);
    let all: Vec<usize> = (0..AGENTS).collect();
    // The admin API serves the core's counters.
    let (status, metrics) = fleet.get(0, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fleetmesh_members{state=\"alive\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleetmesh_messages_received_total"),
        "{metrics}"
    );
    assert_eq!(
        fleet.get(0, "/healthz").map(|(status, _)| status),
        Some(200)
    );

    // A config release, made and signed with the operator CLI and handed
    // to one agent, reaches them all, content included.
    fleet
        .publish_release(0, "app", "[web]\nport = 8080\n")
        .expect("the release is published");
    wait_for(&fleet, "every agent runs release 1 of app", || {
        all.iter()
            .all(|&index| fleet.release(index, "app") == Some(1))
            .then_some(())
    });
    let releases = fleet.get_json(3, "/v1/releases").expect("releases");
    assert_eq!(releases["releases"][0]["content"]["web"]["port"], 8080);

    // A crash: the others declare it dead. It is killed once it saved a
    // replica snapshot holding the release (within one save interval).
    let victim = AGENTS - 1;
    let saves = |index: usize| fleet.metric(index, "fleetmesh_runtime_replicas_writes_total");
    let saved = saves(victim).expect("the snapshot write counter");
    wait_for(
        &fleet,
        "the victim saves a snapshot after the release",
        || saves(victim).filter(|&now| now > saved),
    );
    let before = fleet.view(0).expect("view")[&ids[victim]].1;
    fleet.kill(victim).expect("killed");
    let survivors: Vec<usize> = (0..victim).collect();
    wait_for(
        &fleet,
        "the survivors declare the killed agent dead",
        || {
            survivors
                .iter()
                .all(|&index| fleet.state_of(index, &ids[victim]).as_deref() == Some("dead"))
                .then_some(())
        },
    );

    // What it must not forget was written before it was acted on.
    let durable = fs::read_to_string(fleet.nodes[victim].dir.join("durable.json"))
        .expect("the killed agent left its durable state");
    assert!(durable.contains("\"app\""), "{durable}");

    // A restart from the same state directory: the same node, restored,
    // alive again everywhere at a higher incarnation (it refuted its death).
    // It replaces the admin socket the killed one left.
    let socket = fleet.nodes[victim].admin.endpoint.to_string();
    assert!(std::path::Path::new(&socket).exists(), "{socket}");
    fleet.start(victim).expect("the agent restarts");
    let id = wait_for(&fleet, "the restarted agent's admin API answers", || {
        fleet.id(victim)
    });
    assert_eq!(id, ids[victim], "the restarted agent kept its identity");
    wait_for(&fleet, "all 5 see the restarted agent alive again", || {
        fleet.all_see_alive(&all, &ids).then_some(())
    });
    let log = fs::read_to_string(fleet.nodes[victim].dir.join("agent.log")).expect("log");
    let restarted = log
        .lines()
        .filter(|line| line.contains("agent started"))
        .nth(1)
        .expect("two starts logged");
    assert!(restarted.contains("\"restored\":true"), "{restarted}");
    assert_eq!(fleet.release(victim, "app"), Some(1));
    let after = fleet.view(0).expect("view")[&ids[victim]].1;
    assert!(after > before, "incarnation {after} should exceed {before}");
    let trust = fs::read_to_string(fleet.nodes[victim].dir.join("trust.json")).expect("trust");
    assert!(trust.contains("fleetmesh-trust-chain"));

    // A graceful stop: SIGTERM, a clean exit, and the others see it left.
    let leaver = 2;
    let mut child = fleet.terminate(leaver).expect("running");
    let exit = wait_for(&fleet, "the agent exits after SIGTERM", || {
        child.try_wait().expect("wait")
    });
    assert!(exit.success(), "exit status {exit:?}\n{}", fleet.logs());
    let others: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&index| index != leaver)
        .collect();
    wait_for(&fleet, "the others see the stopped agent as left", || {
        others
            .iter()
            .all(|&index| fleet.state_of(index, &ids[leaver]).as_deref() == Some("left"))
            .then_some(())
    });

    // The crashed agent, started alone with no peer to catch up from,
    // runs the release and serves its content from its own disk.
    for index in others {
        fleet.kill(index).expect("killed");
    }
    fleet.start(victim).expect("the agent restarts alone");
    wait_for(&fleet, "the lone agent's admin API answers", || {
        fleet.id(victim)
    });
    assert_eq!(fleet.release(victim, "app"), Some(1));
    let releases = fleet.get_json(victim, "/v1/releases").expect("releases");
    assert_eq!(releases["releases"][0]["content"]["web"]["port"], 8080);
    let loaded = fleet.metric(victim, "fleetmesh_runtime_replicas_loaded_total");
    assert!(loaded.is_some_and(|loaded| loaded >= 3), "{loaded:?}");
}

#[test]
fn a_released_policy_is_checked_and_remediated_by_the_agents_executors() {
    let (fleet, _scratch, ids) = running(2);
    // An exec check that fails while `broken` exists in the node's
    // directory, and a local action that records its environment and
    // repairs it. `max_unhealthy = 1`: one of two nodes failing is not a
    // systemic fault here.
    let steps = r#"steps = [
  { action = "repair", class = "local", timeout_ms = 5000, command = ["sh", "-c", "echo $FLEETMESH_RULE $FLEETMESH_EPOCH $FLEETMESH_ACTION > repaired; rm broken"] },
]
"#;
    let policy = exec_check("marker", "broken") + &rule("marker-down", "marker", steps);
    fleet
        .publish_release(0, "remediation", &policy)
        .expect("the policy is published");
    let health = |index: usize| fleet.health(index, &ids[0], "marker");
    wait_for(&fleet, "node 0 reports the check healthy", || {
        (health(0).as_deref() == Some("healthy")).then_some(())
    });
    fs::write(fleet.nodes[0].dir.join("broken"), "").expect("break the service");
    let outcome = wait_for(&fleet, "node 1 holds node 0's successful outcome", || {
        let ledger = fleet.get_json(1, "/v1/ledger")?;
        ledger["records"]
            .as_array()?
            .iter()
            .find(|record| {
                record["target_id"] == ids[0].as_str() && record["record"]["kind"] == "outcome"
            })
            .cloned()
    });
    assert_eq!(outcome["rule"], "marker-down");
    assert_eq!(outcome["record"]["success"], true, "{outcome}");
    assert_eq!(outcome["record"]["exit_code"], 0, "{outcome}");
    let repaired = fs::read_to_string(fleet.nodes[0].dir.join("repaired")).expect("the action ran");
    assert_eq!(repaired.trim(), "marker-down 0 repair");
    assert!(
        !fleet.nodes[1].dir.join("repaired").exists(),
        "only the broken node acts"
    );
    wait_for(
        &fleet,
        "node 0's check is healthy again, as node 1 sees it",
        || (health(1).as_deref() == Some("healthy")).then_some(()),
    );
    let (_, metrics) = fleet.get(0, "/metrics").expect("metrics");
    assert!(
        metrics.contains("fleetmesh_remedy_successes_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_bad_config_or_state_directory_is_refused_with_what_to_do() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let run = |config: &str| {
        fs::write(scratch.path().join("agent.toml"), config).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(["agent", "--config"])
            .arg(scratch.path().join("agent.toml"))
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let stderr = run("state_dir = \".\"\nlisten_addr = []\n");
    assert!(stderr.contains("listen_addr"), "{stderr}");
    let stderr = run("state_dir = \"missing\"\nadmin = \"off\"\nmdns = false\n");
    assert!(stderr.contains("does not exist"), "{stderr}");
    let stderr = run("state_dir = \".\"\nadmin = \"off\"\nmdns = false\n");
    assert!(stderr.contains("fleetmesh keygen"), "{stderr}");
}

#[test]
fn sighup_reloads_the_log_level_and_never_stops_the_agent() {
    // Node 1 stays down: node 0 keeps dialing it, which it logs at debug.
    let (mut fleet, _scratch) = loopback_fleet(2);
    fleet.start(0).expect("the agent starts");
    let id = wait_for(&fleet, "the agent answers", || fleet.id(0));
    let dir = fleet.nodes[0].dir.clone();
    let log = || fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    let config = dir.join("agent.toml");
    let text = fs::read_to_string(&config).expect("the config");
    assert!(!log().contains("\"DEBUG\""), "{}", log());
    fs::write(
        &config,
        text.replace("log_level = \"info\"", "log_level = \"debug\""),
    )
    .expect("write");
    fleet.hangup(0).expect("SIGHUP");
    wait_for(&fleet, "the reload logged", || {
        log()
            .contains("SIGHUP: reloaded log level debug; other settings need a restart")
            .then_some(())
    });
    wait_for(&fleet, "debug lines logged", || {
        log().contains("\"DEBUG\"").then_some(())
    });

    // A config that no longer loads changes nothing and stops nothing.
    fs::write(&config, "state_dir = [\n").expect("write");
    fleet.hangup(0).expect("SIGHUP");
    wait_for(&fleet, "the refusal logged", || {
        log()
            .contains("SIGHUP: the config did not load; the log level stays debug")
            .then_some(())
    });
    assert_eq!(fleet.id(0), Some(id), "{}", fleet.logs());
}
