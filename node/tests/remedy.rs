//! Remediation on bare agents, on the common mesh (`common::mesh`): a
//! virtual clock, fixed-delay links, and a world of modelled services
//! answering the agents' check tasks and actions that fix them. These
//! tests pin what each rail does; the simulator's scenarios check the
//! fleet-wide invariants under faults.

mod common;

use common::mesh::Mesh;
use common::site::{Site, fleet, map, policy, step, text};
use common::{FLEET, key};
use fleetmesh_node::ActionClass;
use fleetmesh_node::Entry;
use fleetmesh_node::crdt::{Hlc, LedgerRecord, RecordKind, SignedRecord, Value};
use fleetmesh_node::{Policy, TaskResult};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn a_crashed_service_is_restarted_by_its_own_node_and_the_fix_is_recorded() {
    let mut harness = fleet(6, 3);
    harness.release(&policy(vec![step("restart", "local", 5_000)], 3, vec![]));
    harness.run_for(Duration::from_secs(3));
    assert!(harness.world.ran.is_empty(), "a healthy fleet runs nothing");
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    let ran: Vec<(u64, &str)> = harness
        .world
        .ran
        .iter()
        .map(|ran| (ran.node, ran.action.as_str()))
        .collect();
    assert_eq!(ran, [(4, "restart")]);
    assert!(harness.world.healthy[&4]);
    assert_eq!(harness.count(4, "started"), 1);
    assert_eq!(harness.count(4, "outcome"), 1);
    let stats = &harness.agent(4).stats().remedy;
    assert_eq!((stats.incidents, stats.attempts, stats.fixes), (1, 1, 1));
    // Two failed checks at 1 s, then the restart: well under 4 s.
    assert!(stats.fix_millis_max < 4_000, "{stats:?}");
}

#[test]
fn a_flapping_service_stops_at_the_limit_and_asks_for_a_human() {
    let mut harness = fleet(5, 3);
    let limit = vec![("limit_count", Value::Int(2))];
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, limit));
    for _ in 0..5 {
        harness.world.healthy.insert(4, false);
        harness.run_for(Duration::from_secs(8));
    }
    let restarts = harness.world.ran.iter().filter(|ran| ran.node == 4).count();
    assert_eq!(restarts, 2, "the limit stops the third restart");
    assert_eq!(harness.count(4, "needs-human"), 1);
    assert!(!harness.world.healthy[&4]);
    // An operator who approves the needs-human record re-arms the rule.
    let (operator, _) = &*FLEET;
    let needs = harness
        .agent(0)
        .replicas()
        .ledger()
        .iter()
        .find(|signed| matches!(signed.record.kind, RecordKind::NeedsHuman { .. }))
        .unwrap()
        .record
        .key
        .clone();
    let now_millis = harness.now().0 / 1_000_000;
    let approval = LedgerRecord {
        key: needs,
        kind: RecordKind::Approval {
            approver: operator.public(),
            expires_millis: now_millis + 60_000,
            trust_version: 1,
        },
        author: operator.public(),
        at: Hlc {
            millis: now_millis,
            counter: 0,
        },
    };
    harness.publish(
        0,
        vec![Entry::Ledger(Box::new(SignedRecord::sign(
            approval, operator,
        )))],
    );
    harness.run_for(Duration::from_secs(5));
    assert_eq!(
        harness.world.ran.iter().filter(|ran| ran.node == 4).count(),
        3
    );
    assert!(harness.world.healthy[&4]);
}

#[test]
fn a_disruptive_step_runs_once_on_the_target_under_the_holders_epoch() {
    let mut harness = fleet(7, 3);
    harness.world.fixes = BTreeSet::from(["reboot".to_owned()]);
    let steps = vec![
        step("restart", "local", 2_000),
        step("reboot", "disruptive", 3_000),
    ];
    harness.release(&policy(steps, 3, vec![]));
    harness.run_for(Duration::from_secs(5));
    let holders: Vec<(u64, u64)> = (0..3)
        .filter_map(|n| {
            harness
                .agent(n)
                .holds(harness.now(), "remediate:web-down")
                .map(|epoch| (n, epoch))
        })
        .collect();
    assert_eq!(holders.len(), 1, "one voter holds the budget: {holders:?}");
    harness.world.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(15));
    let ran: Vec<(&str, ActionClass, u64)> = harness
        .world
        .ran
        .iter()
        .map(|ran| (ran.action.as_str(), ran.class, ran.epoch))
        .collect();
    assert_eq!(
        ran,
        [
            ("restart", ActionClass::Local, 0),
            ("reboot", ActionClass::Disruptive, holders[0].1)
        ]
    );
    assert!(harness.world.ran.iter().all(|ran| ran.node == 5));
    assert!(harness.world.healthy[&5]);
    assert_eq!(harness.count(5, "request"), 1);
    assert_eq!(harness.count(5, "intent"), 1);
    let planner = holders[0].0;
    assert_eq!(harness.agent(planner).stats().remedy.intents_planned, 1);
}

#[test]
fn the_budget_holds_concurrent_disruptive_steps_to_max_concurrent() {
    let mut harness = fleet(9, 3);
    harness.world.fixes = BTreeSet::from(["reboot".to_owned()]);
    let steps = vec![step("reboot", "disruptive", 3_000)];
    harness.release(&policy(
        steps,
        3,
        vec![("max_unhealthy", Value::Float(0.9))],
    ));
    harness.run_for(Duration::from_secs(5));
    for n in 4..7 {
        harness.world.healthy.insert(n, false);
    }
    harness.run_for(Duration::from_secs(20));
    let rebooted: Vec<u64> = harness.world.ran.iter().map(|ran| ran.node).collect();
    assert_eq!(rebooted.len(), 3, "each target rebooted once: {rebooted:?}");
    assert_eq!(harness.world.disruptive_peak_all, 1, "max_concurrent is 1");
    let outcomes: Vec<u64> = (4..7).map(|n| harness.count(n, "outcome") as u64).collect();
    assert_eq!(outcomes, [1, 1, 1]);
    // Never two at once: each intent was planned after the previous outcome.
    let ledger = harness.agent(0).replicas().ledger();
    let mut intents: Vec<u64> = Vec::new();
    let mut outcomes_at: Vec<u64> = Vec::new();
    for signed in ledger.iter() {
        match signed.record.kind {
            RecordKind::Intent { .. } => intents.push(signed.record.at.millis),
            RecordKind::Outcome { .. } => outcomes_at.push(signed.record.at.millis),
            _ => {}
        }
    }
    intents.sort_unstable();
    outcomes_at.sort_unstable();
    for pair in 1..intents.len() {
        assert!(
            intents[pair] >= outcomes_at[pair - 1],
            "intent {pair} at {} before outcome {} at {}",
            intents[pair],
            pair - 1,
            outcomes_at[pair - 1]
        );
    }
}

#[test]
fn a_systemic_failure_is_recorded_and_nothing_runs() {
    let mut harness = fleet(7, 3);
    // Failures detected at the same check round are only known to be
    // systemic once their reports have spread: `unhealthy_for` is that
    // wait.
    let wait = vec![("unhealthy_for_ms", Value::Int(2_000))];
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, wait));
    // 3 of the 4 web nodes: above max_unhealthy = 50%.
    for n in 3..6 {
        harness.world.healthy.insert(n, false);
    }
    harness.run_for(Duration::from_secs(10));
    assert!(harness.world.ran.is_empty(), "{:?}", harness.world.ran);
    let skipped: usize = (3..6).map(|n| harness.count(n, "skipped")).sum();
    assert_eq!(skipped, 3, "the short-circuit is recorded once per node");
    // One node recovering by itself brings the fleet under the threshold:
    // the others are remediated.
    harness.world.healthy.insert(3, true);
    harness.run_for(Duration::from_secs(10));
    let ran: BTreeSet<u64> = harness.world.ran.iter().map(|ran| ran.node).collect();
    assert_eq!(ran, BTreeSet::from([4, 5]));
}

#[test]
fn an_approval_gated_step_waits_and_an_expired_approval_denies_it() {
    let mut harness = fleet(5, 3);
    let gated = vec![("require_approval", Value::Bool(true))];
    harness.release(&policy(vec![step("restart", "local", 20_000)], 3, gated));
    harness.world.healthy.insert(3, false);
    harness.run_for(Duration::from_secs(5));
    assert!(harness.world.ran.is_empty(), "waits for an approval");
    assert_eq!(
        harness.count(3, "intent"),
        1,
        "what awaits approval is recorded"
    );
    // An approval that lapses before it reaches the node denies.
    harness.approve(3, Duration::ZERO);
    harness.run_for(Duration::from_secs(2));
    assert!(harness.world.ran.is_empty());
    assert_eq!(harness.count(3, "skipped"), 1);
    // A valid one lets it run.
    harness.approve(3, Duration::from_secs(30));
    harness.run_for(Duration::from_secs(2));
    assert_eq!(harness.world.ran.len(), 1);
    assert!(harness.world.healthy[&3]);
}

#[test]
fn a_dry_run_records_the_intent_and_runs_nothing() {
    let mut harness = fleet(5, 3);
    let dry = vec![("dry_run", Value::Bool(true))];
    harness.release(&policy(vec![step("restart", "local", 2_000)], 3, dry));
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert!(harness.world.ran.is_empty());
    assert_eq!(harness.count(4, "intent"), 1);
    assert_eq!(harness.agent(4).stats().remedy.dry_runs, 1);
}

#[test]
fn a_reload_never_starts_an_action_for_a_failure_already_known() {
    let mut harness = fleet(5, 3);
    let no_rule = map(vec![(
        "checks",
        map(vec![(
            "web",
            map(vec![
                ("kind", text("tcp")),
                ("addr", text("127.0.0.1:8080")),
                ("select", text("role=web")),
                ("interval_ms", Value::Int(1_000)),
                ("timeout_ms", Value::Int(500)),
                ("fall", Value::Int(2)),
            ]),
        )]),
    )]);
    harness.release(&no_rule);
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(5));
    harness.release(&policy(vec![step("restart", "local", 2_000)], 3, vec![]));
    harness.run_for(Duration::from_secs(10));
    assert!(harness.world.ran.is_empty(), "{:?}", harness.world.ran);
}

#[test]
fn policies_that_would_act_on_everything_or_unsafely_are_refused_naming_the_field() {
    let good = policy(vec![step("reboot", "disruptive", 3_000)], 3, vec![]);
    let parsed = Policy::parse(&good).expect("valid");
    assert_eq!(parsed.rules["web-down"].voters.len(), 3);
    let refused = |extra: Vec<(&str, Value)>, steps: Vec<Value>| {
        Policy::parse(&policy(steps, 3, extra)).unwrap_err().field
    };
    let reboot = || vec![step("reboot", "disruptive", 3_000)];
    assert_eq!(
        refused(vec![("select", text("*"))], reboot()),
        "rules.web-down.select"
    );
    assert_eq!(
        refused(vec![("select", text(""))], reboot()),
        "rules.web-down.select"
    );
    assert_eq!(
        refused(vec![("colour", text("red"))], reboot()),
        "rules.web-down.colour"
    );
    assert_eq!(
        refused(vec![("voters", Value::List(vec![]))], reboot()),
        "rules.web-down.voters"
    );
    // A lease must outlast twice the longest disruptive step.
    assert_eq!(
        refused(vec![("lease_ttl_ms", Value::Int(5_000))], reboot()),
        "rules.web-down.lease_ttl_ms"
    );
    assert_eq!(
        refused(vec![], vec![step("reboot", "sideways", 3_000)]),
        "rules.web-down.steps[0].class"
    );
    assert_eq!(
        refused(vec![("max_unhealthy", Value::Float(1.5))], reboot()),
        "rules.web-down.max_unhealthy"
    );
    assert_eq!(
        refused(vec![("check", text("db"))], reboot()),
        "rules.web-down.check"
    );
    // An escrow names each slot's voters, and no rule-wide ones.
    let slot = map(vec![(
        "voters",
        Value::List(vec![text(&key(0).public().to_hex())]),
    )]);
    let escrow = |slot: Value| {
        map(vec![
            ("tag", text("zone")),
            ("slots", map(vec![("a", slot)])),
        ])
    };
    assert_eq!(
        refused(vec![("escrow", escrow(slot.clone()))], reboot()),
        "rules.web-down.voters"
    );
}

#[test]
fn an_intent_not_backed_by_the_scopes_lease_is_never_run() {
    let mut harness = fleet(6, 3);
    harness.world.fixes = BTreeSet::from(["reboot".to_owned()]);
    // Voters that do not exist: nobody can hold the budget.
    let mut doc = policy(vec![step("reboot", "disruptive", 3_000)], 0, vec![]);
    if let Value::Map(root) = &mut doc
        && let Some(Value::Map(rules)) = root.get_mut("rules")
        && let Some(Value::Map(rule)) = rules.get_mut("web-down")
    {
        let ghosts = (100..103)
            .map(|n| text(&key(n).public().to_hex()))
            .collect();
        rule.insert("voters".into(), Value::List(ghosts));
    }
    harness.release(&doc);
    harness.world.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(5));
    let requested = harness
        .agent(0)
        .replicas()
        .ledger()
        .iter()
        .find(|signed| matches!(signed.record.kind, RecordKind::Request { .. }))
        .expect("the target asked for the disruptive step")
        .record
        .key
        .clone();
    // Any admitted node can sign an intent with any epoch; without the
    // scope's lease at that epoch, held by its planner, it is not run.
    let forger = key(3);
    let forged = LedgerRecord {
        key: requested,
        kind: RecordKind::Intent {
            scope: "remediate:web-down".into(),
            epoch: 99,
            action: "reboot".into(),
            planner: forger.public(),
            dry_run: false,
            deadline_millis: u64::MAX,
        },
        author: forger.public(),
        at: Hlc {
            millis: harness.now().0 / 1_000_000,
            counter: 0,
        },
    };
    harness.publish(
        3,
        vec![Entry::Ledger(Box::new(SignedRecord::sign(forged, &forger)))],
    );
    harness.run_for(Duration::from_secs(10));
    assert!(harness.world.ran.is_empty(), "{:?}", harness.world.ran);
    assert!(!harness.world.healthy[&5]);
}

#[test]
fn the_limit_holds_across_a_restart_of_the_agent() {
    let mut harness = fleet(5, 3);
    let limit = vec![("limit_count", Value::Int(1))];
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, limit));
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert_eq!(harness.world.ran.len(), 1);
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert_eq!(
        harness.world.ran.len(),
        1,
        "the limit stops the second restart"
    );
    // A crash loop of the agent must not reset the rails.
    for _ in 0..3 {
        harness.crash(4);
        harness.start(4);
        harness.run_for(Duration::from_secs(8));
    }
    assert_eq!(harness.world.ran.len(), 1, "{:?}", harness.world.ran);
    let agent = &harness.agent(4);
    assert!(
        agent.policy().is_some(),
        "the restarted agent runs the policy"
    );
    assert_eq!(
        agent.stats().remedy.incidents,
        1,
        "and saw the failure again"
    );
    assert!(harness.count(4, "needs-human") >= 2);
}

#[test]
fn a_lease_of_a_budget_scope_naming_other_voters_is_refused() {
    use fleetmesh_node::crdt::{Grant, GrantBody, Lease, LeaseKind, SignedLease};
    let mut harness = fleet(6, 3);
    harness.release(&policy(
        vec![step("reboot", "disruptive", 3_000)],
        3,
        vec![],
    ));
    harness.run_for(Duration::from_secs(5));
    let scope = "remediate:web-down";
    let holder = |harness: &Mesh<Site>| {
        (0..3)
            .filter_map(|n| harness.agent(n).holds(harness.now(), scope))
            .collect::<Vec<u64>>()
    };
    let before = holder(&harness);
    assert_eq!(before.len(), 1);
    // An admitted node makes itself sole voter of the scope at a huge
    // epoch: well-formed, well-signed, and it would outrank every real
    // lease and become the fencing token.
    let rogue = key(4);
    let at = Hlc {
        millis: harness.now().0 / 1_000_000,
        counter: 0,
    };
    let grant = Grant::sign(
        GrantBody {
            scope: scope.into(),
            epoch: 1_000_000,
            holder: rogue.public(),
            ttl_millis: 3_600_000,
            voter: rogue.public(),
            issued: at,
        },
        &rogue,
    );
    let lease = Lease {
        scope: scope.into(),
        epoch: 1_000_000,
        holder: rogue.public(),
        granted_at: at,
        ttl_millis: 3_600_000,
        kind: LeaseKind::Quorum {
            voters: BTreeSet::from([rogue.public()]),
            grants: vec![grant],
        },
    };
    let entry = Entry::Lease(Box::new(SignedLease::sign(lease, &rogue)));
    let refused = harness.input(4, |agent, now| agent.publish(now, entry));
    assert!(refused.is_err(), "refused where the policy runs");
    harness.run_for(Duration::from_secs(5));
    assert_eq!(holder(&harness), before, "the real holder keeps the scope");
    for (_, agent) in harness.agents() {
        let table = agent.replicas().leases();
        assert_eq!(table.max_epoch(scope), Some(before[0]));
    }
}

#[test]
fn an_escrowed_budget_gives_each_zone_its_own_slot_granted_by_its_own_voters() {
    let mut harness = fleet(12, 6);
    harness.world.fixes = BTreeSet::from(["reboot".to_owned()]);
    let slot = |zone_of: u64| {
        let voters = (0..6)
            .filter(|n| n % 2 == zone_of)
            .map(|n| text(&key(n).public().to_hex()))
            .collect();
        map(vec![("voters", Value::List(voters))])
    };
    let escrow = map(vec![
        ("tag", text("zone")),
        ("slots", map(vec![("a", slot(0)), ("b", slot(1))])),
    ]);
    let mut doc = policy(
        vec![step("reboot", "disruptive", 3_000)],
        0,
        vec![("escrow", escrow), ("max_unhealthy", Value::Float(0.9))],
    );
    if let Value::Map(root) = &mut doc
        && let Some(Value::Map(rules)) = root.get_mut("rules")
        && let Some(Value::Map(rule)) = rules.get_mut("web-down")
    {
        rule.remove("voters");
    }
    // A slot must name its voters.
    let mut no_voters = doc.clone();
    if let Value::Map(root) = &mut no_voters
        && let Some(Value::Map(rules)) = root.get_mut("rules")
        && let Some(Value::Map(rule)) = rules.get_mut("web-down")
    {
        rule.insert(
            "escrow".into(),
            map(vec![
                ("tag", text("zone")),
                ("slots", map(vec![("a", map(vec![]))])),
            ]),
        );
    }
    let refused = Policy::parse(&no_voters).unwrap_err();
    assert_eq!(refused.field, "rules.web-down.escrow.slots.a.voters");
    harness.release(&doc);
    harness.run_for(Duration::from_secs(5));
    for (scope, voters) in [
        ("remediate:web-down:a", [0, 2, 4]),
        ("remediate:web-down:b", [1, 3, 5]),
    ] {
        let holders: Vec<u64> = (0..6)
            .filter(|&n| harness.agent(n).holds(harness.now(), scope).is_some())
            .collect();
        assert_eq!(holders.len(), 1, "{scope}: {holders:?}");
        assert!(
            voters.contains(&holders[0]),
            "{scope} is held by its own zone"
        );
    }
    // Two web nodes down in each zone.
    for n in 6..10 {
        harness.world.healthy.insert(n, false);
    }
    harness.run_for(Duration::from_secs(20));
    assert_eq!(harness.world.ran.len(), 4, "{:?}", harness.world.ran);
    assert!((6..10).all(|n| harness.world.healthy[&n]));
    assert_eq!(harness.world.disruptive_peak.get("a"), Some(&1));
    assert_eq!(harness.world.disruptive_peak.get("b"), Some(&1));
    assert_eq!(
        harness.world.disruptive_peak_all, 2,
        "the zones' slots run side by side"
    );
}

/// An action that reports back after its timeout was already counted a
/// failure: its late result is counted and ignored, not taken as a fix.
#[test]
fn an_action_result_after_its_timeout_is_ignored() {
    let mut harness = fleet(5, 3);
    harness.world.held_actions.insert(4);
    harness.release(&policy(vec![step("restart", "local", 2_000)], 3, vec![]));
    harness.world.healthy.insert(4, false);
    harness.run_until(
        Duration::from_secs(5),
        "node 4 starts its restart",
        |harness| !harness.node(4).tasks.is_empty(),
    );
    let (&task, _) = harness.node(4).tasks.first_key_value().expect("held");
    harness.run_for(Duration::from_secs(3));
    let stats = harness.agent(4).stats().remedy.clone();
    assert!(
        stats.failures >= 1,
        "the timeout counts as a failure: {stats:?}"
    );
    let result = TaskResult {
        success: true,
        exit_code: Some(0),
        detail: String::new(),
    };
    harness.complete(4, task, result);
    let stats = &harness.agent(4).stats().remedy;
    assert_eq!(
        (stats.results_ignored, stats.successes),
        (1, 0),
        "{stats:?}"
    );
}
