//! The CLI against running agents: `fleetmesh info`, `members`, `health`,
//! `leases`, `remediations`, `approve`, `stop`, `resume`, `leave` and `config
//! publish|release|show|history` on real agent processes on loopback,
//! asserting on the tables, the JSON and the errors; and `fleetmesh demo`
//! end to end. Every wait is bounded in time and polls; every agent is
//! killed when a test ends, pass or fail.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::command::{json, ok, refused, run};
use common::{exec_check, rule, running, wait_for};
use fleetmesh_runtime::local::{self, OPERATOR_KEY};
use serde_json::Value;

/// The line of a table whose first column is `first`.
fn row<'a>(table: &'a str, first: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
}

/// A check that fails while `broken` exists in the node's directory, and
/// a rule whose one local step waits for an operator's approval (a window
/// long enough for the test to give it), then records its environment and
/// repairs.
fn gated_policy() -> String {
    let steps = r#"steps = [
  { action = "repair", class = "local", timeout_ms = 60000, approval = true, command = ["sh", "-c", "echo $FLEETMESH_RULE > repaired; rm broken"] },
]
"#;
    exec_check("marker", "broken") + &rule("marker-down", "marker", steps)
}

#[test]
fn members_health_config_and_an_approved_remediation_read_from_a_running_agent() {
    let (fleet, scratch, ids) = running(2);
    let dir = scratch.path();
    let admin = fleet.nodes[0].admin.endpoint.to_string();
    let at = ["--admin", admin.as_str()];

    // Members: a table with both nodes, the agent itself marked; the
    // JSON is the admin API's.
    let table = ok(dir, &[&["members", "--detailed"][..], &at].concat());
    assert!(table.starts_with("NAME"), "{table}");
    let first = row(&table, "node-0");
    assert!(first.contains(&ids[0]), "{table}");
    assert!(first.contains("alive") && first.contains("self"), "{table}");
    assert!(first.contains("role=local"), "{table}");
    assert!(row(&table, "node-1").contains("alive"), "{table}");
    let short = ok(dir, &[&["members"][..], &at].concat());
    assert!(!short.contains("role=local"), "{short}");
    assert!(row(&short, "node-1").contains("alive"), "{short}");

    // Filters: on the table and on the JSON alike.
    let none = ok(dir, &[&["members", "--tag", "role=web"][..], &at].concat());
    assert_eq!(none.trim(), "no members match the filters");
    let count = |filters: &[&str]| {
        json(dir, &[&["members", "--json"][..], filters, &at].concat())["members"]
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(count(&["--state", "alive", "--tag", "role=local"]), Some(2));
    assert_eq!(count(&["--state", "dead"]), Some(0));
    assert_eq!(count(&["--tag", "role=web"]), Some(0));

    // Info: the agent summed up; its JSON is /v1/agent's.
    let info = ok(dir, &[&["info"][..], &at].concat());
    assert!(row(&info, "name").contains("node-0"), "{info}");
    assert!(
        row(&info, "members").contains("2 alive, 0 suspect, 0 dead, 0 left"),
        "{info}"
    );
    assert!(row(&info, "releases").contains("none"), "{info}");
    let agent = json(dir, &[&["info", "--json"][..], &at].concat());
    assert_eq!(agent["id"], ids[0].as_str(), "{agent}");
    assert_eq!(agent["members"]["alive"], 2, "{agent}");
    let members = json(dir, &[&["members", "--json"][..], &at].concat());
    let names: Vec<&str> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|member| member["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{members}");
    assert!(names.contains(&"node-0") && names.contains(&"node-1"));

    // Before any release: nothing to show, said plainly.
    let table = ok(dir, &[&["config", "release"][..], &at].concat());
    assert!(table.contains("runs no release yet"), "{table}");

    // `config publish` (through the fleet's publish_release) hands the
    // policy to node 0; `config release`, `show` and `history` read it
    // back from node 1.
    fleet
        .publish_release(0, "remediation", &gated_policy())
        .expect("the policy is published");
    wait_for(&fleet, "both agents run the policy", || {
        (0..2)
            .all(|index| fleet.release(index, "remediation") == Some(1))
            .then_some(())
    });
    let other = fleet.nodes[1].admin.endpoint.to_string();
    let at_other = ["--admin", other.as_str()];
    let table = ok(dir, &[&["config", "release"][..], &at_other].concat());
    let line = row(&table, "remediation");
    assert!(line.contains(" 1 ") && line.contains("running"), "{table}");
    let release = json(
        dir,
        &[
            &["config", "release", "--doc", "remediation", "--json"][..],
            &at_other,
        ]
        .concat(),
    );
    assert_eq!(release["version"], 1, "{release}");
    assert_eq!(release["content"]["checks"]["marker"]["kind"], "exec");
    let shown = ok(dir, &[&["config", "show"][..], &at_other].concat());
    assert!(shown.contains("[checks.marker]"), "{shown}");
    assert!(shown.contains("interval_ms = 200"), "{shown}");
    let shown = ok(
        dir,
        &[&["config", "show", "--format", "json"][..], &at_other].concat(),
    );
    let content: Value = serde_json::from_str(&shown).expect("JSON content");
    assert_eq!(content["rules"]["marker-down"]["check"], "marker");
    let history = ok(dir, &[&["config", "history"][..], &at_other].concat());
    let line = row(&history, "remediation");
    assert!(line.contains("running"), "{history}");
    assert!(line.contains(&release["digest"].as_str().expect("digest")[..16]));

    // Health: both nodes' checks healthy, by name.
    wait_for(
        &fleet,
        "both agents hold both nodes' checks healthy",
        || {
            (0..2)
                .all(|index| {
                    ids.iter()
                        .all(|id| fleet.health(index, id, "marker").as_deref() == Some("healthy"))
                })
                .then_some(())
        },
    );
    let table = ok(dir, &[&["health"][..], &at_other].concat());
    assert!(row(&table, "node-0").contains("marker"), "{table}");
    assert!(row(&table, "node-0").contains("healthy"), "{table}");
    assert!(row(&table, "node-1").contains("healthy"), "{table}");
    let health = json(dir, &[&["health", "--json"][..], &at].concat());
    assert_eq!(
        health["reports"].as_array().map(Vec::len),
        Some(2),
        "{health}"
    );

    // Break node 0's service: the step waits for an approval, and the
    // remediations table says so, with the id to approve.
    fs::write(fleet.nodes[0].dir.join("broken"), "").expect("break the service");
    let id = wait_for(&fleet, "the remediation waits for an approval", || {
        let waiting = fleet.get_json(0, "/v1/approvals")?;
        waiting["approvals"][0]["id"].as_str().map(str::to_owned)
    });
    let table = ok(dir, &[&["remediations"][..], &at].concat());
    let line = row(&table, "node-0");
    assert!(line.contains("marker-down"), "{table}");
    assert!(line.contains("awaiting-approval"), "{table}");
    assert!(line.contains("repair"), "{table}");
    assert!(line.contains(&id[..16]), "{table}");
    assert!(table.contains("1 waiting for an approval"), "{table}");
    assert!(
        !fleet.nodes[0].dir.join("repaired").exists(),
        "nothing runs before the approval"
    );

    // A key the trust chain does not give `approve` is refused, naming
    // the role; the operator's key approves, and the repair runs.
    ok(dir, &["keygen", "--out", "stranger.key"]);
    refused(
        dir,
        &[&["approve", &id[..12], "--key", "stranger.key"][..], &at].concat(),
        &["lacks the `approve` role", "fleetmesh fleet update --add"],
    );
    refused(
        dir,
        &[&["approve", "abcdef123456", "--key", OPERATOR_KEY][..], &at].concat(),
        &[
            "nothing waits for an approval under id abcdef123456",
            "fleetmesh remediations",
        ],
    );
    let approved = ok(
        dir,
        &[
            &["approve", &id[..12], "--key", OPERATOR_KEY, "--for", "10m"][..],
            &at,
        ]
        .concat(),
    );
    assert!(
        approved.starts_with("approved marker-down on node-0"),
        "{approved}"
    );
    wait_for(&fleet, "node 1 holds node 0's successful outcome", || {
        let remediations = fleet.get_json(1, "/v1/remediations")?;
        remediations["remediations"]
            .as_array()?
            .iter()
            .any(|remediation| {
                remediation["target_id"] == ids[0].as_str() && remediation["status"] == "succeeded"
            })
            .then_some(())
    });
    assert_eq!(
        fs::read_to_string(fleet.nodes[0].dir.join("repaired"))
            .expect("the approved action ran")
            .trim(),
        "marker-down"
    );
    let table = ok(dir, &[&["remediations"][..], &at_other].concat());
    let line = row(&table, "node-0");
    assert!(line.contains("succeeded"), "{table}");
    let remediations = json(dir, &[&["remediations", "--json"][..], &at_other].concat());
    let done = &remediations["remediations"][0];
    assert_eq!(done["approved"], true, "{remediations}");
    assert_eq!(done["action"], "repair", "{remediations}");
    // The approval is in the ledger, by the operator's key.
    let ledger = fleet.get_json(1, "/v1/ledger").expect("ledger");
    let approval = ledger["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|record| record["record"]["kind"] == "approval")
        .expect("the approval record spread");
    assert_eq!(approval["rule"], "marker-down");

    // No lease without a disruptive rule: said plainly; the JSON is the
    // API's (an empty table).
    let table = ok(dir, &[&["leases"][..], &at].concat());
    assert!(table.contains("no leases"), "{table}");
    let leases = json(dir, &[&["leases", "--json"][..], &at].concat());
    assert_eq!(leases["leases"], Value::Array(Vec::new()));
}

#[test]
fn a_disruptive_remediation_shows_its_budget_lease() {
    let (fleet, scratch, ids) = running(1);
    let dir = scratch.path();
    let admin = fleet.nodes[0].admin.endpoint.to_string();
    let key = fleet.get_json(0, "/v1/agent").expect("agent")["key"]
        .as_str()
        .expect("its key")
        .to_owned();
    // The node is the rule's only voter: its own grant is the majority.
    let steps = format!(
        r#"voters = ["{key}"]
lease_ttl_ms = 60000
steps = [
  {{ action = "reboot", class = "disruptive", timeout_ms = 5000, command = ["rm", "broken"] }},
]
"#
    );
    let policy = exec_check("marker", "broken") + &rule("marker-down", "marker", &steps);
    fleet
        .publish_release(0, "remediation", &policy)
        .expect("the policy is published");
    wait_for(&fleet, "the check runs healthy", || {
        (fleet.health(0, &ids[0], "marker").as_deref() == Some("healthy")).then_some(())
    });
    fs::write(fleet.nodes[0].dir.join("broken"), "").expect("break the service");
    wait_for(&fleet, "the disruptive step succeeds", || {
        let remediations = fleet.get_json(0, "/v1/remediations")?;
        (remediations["remediations"][0]["status"] == "succeeded").then_some(())
    });
    let table = ok(dir, &["leases", "--admin", &admin]);
    assert!(table.starts_with("SCOPE"), "{table}");
    let line = row(&table, "remediate:marker-down");
    assert!(line.contains("node-0"), "{table}");
    assert!(line.contains(&ids[0]), "{table}");
    let leases = json(dir, &["leases", "--admin", &admin, "--json"]);
    let lease = &leases["leases"][0];
    assert_eq!(lease["scope"], "remediate:marker-down", "{leases}");
    assert_eq!(lease["holder"], key.as_str(), "{leases}");
    assert!(lease["epoch"].as_u64() >= Some(1), "{leases}");
    let table = ok(dir, &["remediations", "--admin", &admin]);
    let line = row(&table, "node-0");
    assert!(
        line.contains("succeeded") && line.contains("reboot"),
        "{table}"
    );
}

#[test]
fn a_stale_release_and_a_missing_agent_are_refused_with_what_to_do() {
    let (fleet, scratch, _) = running(1);
    let dir = scratch.path();
    let admin = fleet.nodes[0].admin.endpoint.to_string();
    let first = fleet
        .publish_release(0, "app", "[web]\nport = 8080\n")
        .expect("release 1");
    fleet
        .publish_release(0, "app", "[web]\nport = 8081\n")
        .expect("release 2");
    wait_for(&fleet, "the agent runs release 2", || {
        (fleet.release(0, "app") == Some(2)).then_some(())
    });
    let shown = ok(dir, &["config", "show", "--admin", &admin, "--doc", "app"]);
    assert!(shown.contains("port = 8081"), "{shown}");
    let first = first.display().to_string();
    refused(
        dir,
        &["config", "publish", "--admin", &admin, &first],
        &[
            "release app version 1 is stale",
            "already runs version 2 of app",
            "--version 3",
        ],
    );
    // The release it runs may be published again.
    let history = json(dir, &["config", "history", "--admin", &admin, "--json"]);
    let versions: Vec<u64> = history["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|release| release["version"].as_u64())
        .collect();
    assert_eq!(versions, [1, 2], "{history}");
    refused(
        dir,
        &["config", "show", "--admin", &admin, "--doc", "web"],
        &["runs no release of document web (it runs: app)"],
    );

    // Nothing listening: every command says to start an agent or point
    // --admin at one.
    let nobody = dir.join("no-agent.sock").display().to_string();
    for command in [
        &["members"][..],
        &["health"],
        &["leases"],
        &["remediations"],
        &["leave"],
        &["config", "history"],
        &["config", "publish", "trust.json"],
        &["approve", "abcdef", "--key", OPERATOR_KEY],
    ] {
        refused(
            dir,
            &[command, &["--admin", nobody.as_str()]].concat(),
            &[
                &format!("no agent answers at {nobody}"),
                "fleetmesh agent --config",
                "--admin",
            ],
        );
    }
    // The local-file commands keep their shape: --store brings --trust.
    let output = run(
        dir,
        &["config", "release", "--store", "store", "--doc", "app"],
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn leave_stops_the_agent_and_the_fleet_sees_it_left() {
    let (mut fleet, scratch, ids) = running(2);
    let admin = fleet.nodes[1].admin.endpoint.to_string();
    let stdout = ok(scratch.path(), &["leave", "--admin", &admin]);
    assert!(
        stdout.contains(&format!("agent node-1 ({})", ids[1])),
        "{stdout}"
    );
    assert!(stdout.contains("is leaving the fleet"), "{stdout}");
    assert!(stdout.trim_end().ends_with("it stopped"), "{stdout}");
    wait_for(&fleet, "node 0 sees node 1 left", || {
        (fleet.state_of(0, &ids[1]).as_deref() == Some("left")).then_some(())
    });
    let stopped = fleet.stop_all(Duration::from_secs(10));
    assert!(
        matches!(&stopped[1], local::Stopped::Exited(status) if status.success()),
        "{stopped:?}"
    );
    // Stopped agents take their admin sockets with them.
    for node in &fleet.nodes {
        assert!(!Path::new(&node.admin.endpoint.to_string()).exists());
    }
}

#[test]
fn the_demo_heals_its_service_and_cleans_up() {
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["demo", "--nodes", "3"])
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for stage in [
        "made a throwaway fleet of 3 nodes in ",
        "the mesh formed: every agent sees all 3 alive",
        "every agent runs release 1 of `remediation`",
        "every node reports `service` healthy",
        "broke the service on node-2",
        "node-2: check `service` is unhealthy",
        "node-2: rule `service-down` ran its action: succeeded (exit code 0)",
        "node-2: check `service` healthy again",
        "stopped 3 agents (0 killed after 10 s, 0 exited with an error)",
        "done: the mesh healed its own service",
    ] {
        assert!(stdout.contains(stage), "{stage:?} missing from\n{stdout}");
    }
    let dir: PathBuf = stdout
        .lines()
        .find_map(|line| line.split_once("fleet of 3 nodes in "))
        .and_then(|(_, rest)| rest.split(" (").next())
        .map(PathBuf::from)
        .expect("the demo names its directory");
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// The inputs of `shared/repro/automerge-panics.md` published to a real
/// agent: the first (unparsable) once killed the agent from any local
/// user's `POST /v1/publish`, the second (unappliable, signed by the
/// fleet's config key) killed every agent that applied it. Now the first
/// is refused with the reason, the second quarantines its signer, and the
/// agents go on answering and agree.
#[test]
fn config_changes_that_panic_automerge_are_refused_and_the_agents_live_on() {
    use fleetmesh_crdt::SignedChange;
    use fleetmesh_crdt::config::hostile;
    use fleetmesh_runtime::formats::{self, CHANGE_FORMAT, ChangeJson};
    let (fleet, scratch, _) = running(2);
    let dir = scratch.path();
    let admin = fleet.nodes[0].admin.endpoint.to_string();
    let operator = formats::load_key(&dir.join(OPERATOR_KEY)).expect("the operator key");
    let write = |name: &str, change: &SignedChange| {
        let json = fleetmesh_runtime::files::to_json(CHANGE_FORMAT, &ChangeJson::new(change))
            .expect("json");
        fs::write(dir.join(name), json).expect("write");
        name.to_owned()
    };
    let unparsable = write(
        "unparsable.json",
        &hostile::unparsable_change("app", 1, operator.public()),
    );
    refused(
        dir,
        &["config", "publish", "--admin", &admin, &unparsable],
        &["refused before parsing"],
    );
    let bytes = hostile::apply_panic(&operator.public());
    let bomb = SignedChange::sign("boom", 1, &operator, bytes).expect("it parses");
    let bomb = write("bomb.json", &bomb);
    let output = run(dir, &["config", "publish", "--admin", &admin, &bomb]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("quarantined"), "{stderr}");
    let panics = fleet.metric(0, "fleetmesh_state_automerge_panics_total");
    assert!(panics.expect("the panic counter") >= 1);
    // The evidence reaches the other agent, which checks it itself.
    let key = operator.public().to_hex();
    wait_for(&fleet, "both agents quarantine the key", || {
        (0..2)
            .all(|index| {
                fleet
                    .get_json(index, "/v1/config/history")
                    .is_some_and(|history| history["quarantined"] == serde_json::json!([key]))
            })
            .then_some(())
    });
    for index in 0..2 {
        assert!(fleet.id(index).is_some(), "agent {index} answers");
    }
}

/// [`gated_policy`]'s check with a rule that repairs at once, no approval.
fn ungated_policy() -> String {
    let steps = r#"steps = [
  { action = "repair", class = "local", timeout_ms = 5000, command = ["sh", "-c", "echo fixed > repaired; rm broken"] },
]
"#;
    exec_check("marker", "broken") + &rule("marker-down", "marker", steps)
}

#[test]
fn an_emergency_stop_reaches_another_agent_holds_its_repair_and_resume_lifts_it() {
    let (fleet, scratch, _) = running(2);
    let dir = scratch.path();
    let admin = fleet.nodes[0].admin.endpoint.to_string();
    let at = ["--admin", admin.as_str()];
    let other = fleet.nodes[1].admin.endpoint.to_string();
    let at_other = ["--admin", other.as_str()];
    fleet
        .publish_release(0, "remediation", &ungated_policy())
        .expect("the policy is published");
    wait_for(&fleet, "both agents run the policy", || {
        (0..2)
            .all(|index| fleet.release(index, "remediation") == Some(1))
            .then_some(())
    });
    let metric = |index: usize, name: &str| fleet.metric(index, name);

    // A key without the `stop` role is refused before anything is signed.
    ok(dir, &["keygen", "--out", "stranger.key"]);
    refused(
        dir,
        &[&["stop", "--reason", "x", "--key", "stranger.key"][..], &at].concat(),
        &["lacks the `stop` role"],
    );
    // The operator's key stops every agent carrying role=local; node 0
    // takes it, node 1 holds it soon after.
    let said = ok(
        dir,
        &[
            &["stop", "--select", "role=local", "--for", "10m"][..],
            &["--reason", "bad push", "--key", OPERATOR_KEY],
            &at,
        ]
        .concat(),
    );
    assert!(
        said.starts_with("every automated action is stopped"),
        "{said}"
    );
    wait_for(&fleet, "node 1 holds the stop", || {
        (metric(1, "fleetmesh_stops_active") == Some(1)).then_some(())
    });
    let table = ok(dir, &[&["remediations"][..], &at_other].concat());
    assert!(table.starts_with("EMERGENCY STOP"), "{table}");
    assert!(table.contains("this agent included") && table.contains("bad push"));
    let view = json(dir, &[&["remediations", "--json"][..], &at_other].concat());
    assert_eq!(view["stops"][0]["selector"]["role"], "local", "{view}");
    // `info` sums it up with the release the agent runs.
    let info = ok(dir, &[&["info"][..], &at_other].concat());
    assert!(
        row(&info, "emergency").contains("1 applying here"),
        "{info}"
    );
    assert!(row(&info, "releases").contains("remediation v1"), "{info}");
    assert!(row(&info, "policy").contains("loaded"), "{info}");

    // Node 1's service breaks: the check sees it, the repair is held and
    // the skip recorded.
    fs::write(fleet.nodes[1].dir.join("broken"), "").expect("break the service");
    wait_for(&fleet, "node 1 records the step held by the stop", || {
        (metric(1, "fleetmesh_remedy_skipped_stopped_total") == Some(1)).then_some(())
    });
    let table = ok(dir, &[&["remediations"][..], &at_other].concat());
    assert!(table.contains("emergency stop"), "{table}");
    assert!(!fleet.nodes[1].dir.join("repaired").exists());

    // Resume through node 0: node 1 repairs by itself.
    let said = ok(
        dir,
        &[
            &["resume", "--select", "role=local", "--key", OPERATOR_KEY][..],
            &at,
        ]
        .concat(),
    );
    assert!(said.contains("are lifted"), "{said}");
    wait_for(&fleet, "node 1 repairs once the stop is lifted", || {
        fleet.nodes[1].dir.join("repaired").exists().then_some(())
    });
    assert_eq!(metric(1, "fleetmesh_stops_active"), Some(0));
    assert!(metric(1, "fleetmesh_remedy_stops_received_total") >= Some(2));
}
