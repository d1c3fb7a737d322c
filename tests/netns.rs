//! A partition on a real network: five agents, each in a network namespace
//! of its own behind a veth, the namespaces joined by two bridges (three
//! hosts on side A, two on side B) and a trunk between them
//! (`common::netns`), built as a `fleetmesh_runtime::local::LocalFleet`
//! whose agents run under `ip netns exec`. The test cuts the trunk, releases a remediation
//! policy to each side, breaks a service and a host on each side, and
//! checks that the majority remediates under a budget lease three of five
//! voters granted while the minority only acts locally; then it heals the
//! trunk and checks that all five agree on membership and config again,
//! printing how long that took.
//!
//! Needs root (network namespaces); elsewhere it prints why it skips and
//! passes, unless `FLEETMESH_NETNS_REQUIRED` is set, as `.ci/run` does as
//! root. Admin APIs listen on the Unix socket in each agent's directory,
//! which the test reaches through the shared file system: nothing listens
//! on any network for them.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use common::{exec_check, fleet_at, form, netns, rule, wait_every, wait_for};
use fleetmesh_runtime::local::LocalFleet;
use serde_json::Value;

/// Agents, one per namespace.
const AGENTS: usize = 5;
/// Hosts on side A, the majority.
const MAJORITY: usize = 3;
/// The disruptive rule's lease scope.
const BUDGET_SCOPE: &str = "remediate:host-down";
/// The longest the heal may take here: a correctness bound, generous for
/// a loaded machine; the target (5 s) is measured by tests/runtime_bench.rs.
const HEAL_BOUND: Duration = Duration::from_secs(30);
/// How often convergence is polled after the heal: the time's resolution.
const HEAL_POLL: Duration = Duration::from_millis(100);
/// How long the minority is watched at least, and at least twice as long as
/// the majority took to remediate: time enough for it to act if it could.
const MINORITY_WATCH: Duration = Duration::from_secs(5);

/// Two checks on marker files in each node's directory. `service-down`
/// repairs its check with a local restart; `host-down` repairs its own only
/// with a disruptive reboot, which needs the budget lease of all five
/// voters. Each action appends its fencing epoch to a file, as evidence it
/// ran. `max_unhealthy = 1`: two broken hosts of five are not a systemic
/// fault in this test.
fn policy(voters: &[String]) -> String {
    let voters: Vec<String> = voters.iter().map(|key| format!("\"{key}\"")).collect();
    let restart = r#"steps = [
  { action = "restart", class = "local", timeout_ms = 5000, command = ["sh", "-c", "echo $FLEETMESH_EPOCH >> restarted; rm -f service-broken"] },
]
"#;
    let reboot = format!(
        r#"max_concurrent = 1
voters = [{}]
lease_ttl_ms = 10000
steps = [
  {{ action = "reboot", class = "disruptive", timeout_ms = 5000, command = ["sh", "-c", "echo $FLEETMESH_EPOCH >> rebooted; rm -f host-broken"] }},
]
"#,
        voters.join(", "),
    );
    [
        exec_check("service", "service-broken"),
        exec_check("host", "host-broken"),
        rule("service-down", "service", restart),
        rule("host-down", "host", &reboot),
    ]
    .concat()
}

/// The epochs node `index`'s action appended to `file`; empty if it never
/// ran.
fn epochs(fleet: &LocalFleet, index: usize, file: &str) -> Vec<u64> {
    fs::read_to_string(fleet.nodes[index].dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// The ledger records node `index` holds.
fn ledger(fleet: &LocalFleet, index: usize) -> Vec<Value> {
    fleet
        .get_json(index, "/v1/ledger")
        .and_then(|ledger| ledger["records"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn a_partitioned_majority_remediates_the_minority_acts_locally_and_the_heal_converges() {
    let test = "a_partitioned_majority_remediates_the_minority_acts_locally_and_the_heal_converges";
    // Declared before the fleet, so the agents are killed before the
    // namespaces go.
    let Some(network) = netns::network_or_skip(test, AGENTS, MAJORITY) else {
        return;
    };
    let (majority, minority) = network.sides();
    let all: Vec<usize> = (0..AGENTS).collect();
    let (mut fleet, _scratch) = fleet_at(network.places());
    let ids = form(&mut fleet);
    network.cut();
    wait_for(&fleet, "each side declares the other dead", || {
        (fleet.all_see_dead(&ids, &majority, &minority)
            && fleet.all_see_dead(&ids, &minority, &majority))
        .then_some(())
    });
    // The policy reaches each side on its own: every voter asks for the
    // budget lease as soon as it loads a policy naming it, so only the
    // three voters the majority can reach grant it.
    let keys: Vec<String> = fleet.nodes.iter().map(|node| node.key.clone()).collect();
    let files = fleet
        .draft_release("remediation", &policy(&keys))
        .expect("the policy is released");
    for side in [majority[0], minority[0]] {
        fleet
            .publish(side, &files)
            .expect("the policy is published");
    }
    wait_for(&fleet, "every agent reports both checks healthy", || {
        all.iter()
            .all(|&index| {
                ["service", "host"].iter().all(|check| {
                    fleet.health(index, &ids[index], check).as_deref() == Some("healthy")
                })
            })
            .then_some(())
    });
    // A config release the minority cannot hear of until the heal.
    fleet
        .publish_release(majority[0], "app", "[web]\nport = 8080\n")
        .expect("the release is published");

    // Each side: one node's service fails (local fix), another's host
    // (disruptive fix).
    let broken_at = Instant::now();
    let [service_a, host_a] = [majority[0], majority[1]];
    let [service_b, host_b] = [minority[0], minority[1]];
    for (index, marker) in [
        (service_a, "service-broken"),
        (host_a, "host-broken"),
        (service_b, "service-broken"),
        (host_b, "host-broken"),
    ] {
        fs::write(fleet.nodes[index].dir.join(marker), "").expect("break it");
    }

    // The majority: the local restart, and the reboot under the budget.
    let epoch = wait_for(&fleet, "the majority reboots its broken host", || {
        epochs(&fleet, host_a, "rebooted").first().copied()
    });
    let majority_took = broken_at.elapsed();
    wait_for(&fleet, "the majority restarts its broken service", || {
        (epochs(&fleet, service_a, "restarted") == [0]).then_some(())
    });
    assert!(epoch >= 1, "a disruptive action runs under a lease epoch");
    let majority_keys: BTreeSet<&str> =
        majority.iter().map(|&index| keys[index].as_str()).collect();
    let leases = fleet.get_json(host_a, "/v1/leases").expect("leases");
    let lease = leases["leases"]
        .as_array()
        .and_then(|leases| leases.iter().find(|lease| lease["scope"] == BUDGET_SCOPE))
        .expect("the rebooted host holds the budget lease")
        .clone();
    assert_eq!(lease["epoch"], epoch, "{lease}");
    let holder = lease["holder"].as_str().expect("holder");
    assert!(majority_keys.contains(holder), "{lease}");
    let granted_by: BTreeSet<&str> = lease["granted_by"]
        .as_array()
        .expect("grants")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        granted_by == majority_keys,
        "the three voters of the majority side granted: {lease}"
    );
    assert_eq!(lease["voters"].as_array().map(Vec::len), Some(AGENTS));

    // The minority: its local restart runs; its host asks for the reboot
    // but nobody can plan it.
    wait_for(&fleet, "the minority restarts its broken service", || {
        (epochs(&fleet, service_b, "restarted") == [0]).then_some(())
    });
    wait_for(
        &fleet,
        "the minority's broken host asks for a reboot",
        || {
            ledger(&fleet, service_b)
                .iter()
                .any(|record| {
                    record["target_id"] == ids[host_b].as_str()
                        && record["record"]["kind"] == "request"
                })
                .then_some(())
        },
    );
    let watch = MINORITY_WATCH.max(majority_took * 2);
    std::thread::sleep(watch.saturating_sub(broken_at.elapsed()));
    assert!(
        epochs(&fleet, host_b, "rebooted").is_empty(),
        "the minority ran a disruptive action\n{}",
        fleet.logs()
    );
    for &index in &minority {
        let planned: Vec<Value> = ledger(&fleet, index)
            .into_iter()
            .filter(|record| record["record"]["kind"] == "intent" && record["rule"] == "host-down")
            .collect();
        assert!(planned.is_empty(), "the minority planned: {planned:?}");
        assert_eq!(
            fleet.release(index, "app"),
            None,
            "the cut let a release through"
        );
        let leases = fleet.get_json(index, "/v1/leases").expect("leases");
        assert!(
            !leases["leases"]
                .as_array()
                .is_some_and(|leases| leases.iter().any(|lease| lease["scope"] == BUDGET_SCOPE)),
            "the minority holds a budget lease: {leases}"
        );
        let host = if index == host_b {
            "unhealthy"
        } else {
            "healthy"
        };
        assert_eq!(
            fleet.health(index, &ids[index], "host").as_deref(),
            Some(host)
        );
    }

    // The heal: every agent alive in every view, the same views, the same
    // releases.
    network.heal();
    let healed_at = Instant::now();
    wait_every(
        &fleet,
        "all 5 agree again after the heal",
        HEAL_POLL,
        || {
            fleet
                .converged(&[("remediation", 1), ("app", 1)])
                .then_some(())
        },
    );
    let took = healed_at.elapsed();
    println!(
        "heal convergence: {:.2} s (5 agents in namespaces, 3 | 2)",
        took.as_secs_f64()
    );
    assert!(
        took < HEAL_BOUND,
        "the heal took {took:?}\n{}",
        fleet.logs()
    );

    // Now reachable, the minority's broken host gets its reboot under the
    // fleet's one budget.
    let late = wait_for(
        &fleet,
        "the healed fleet reboots the minority's host",
        || epochs(&fleet, host_b, "rebooted").first().copied(),
    );
    assert!(
        late >= epoch,
        "epoch {late} is below the majority's {epoch}"
    );
}
