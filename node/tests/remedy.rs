//! Remediation on bare agents, on the common mesh (`common::mesh`): a
//! virtual clock, fixed-delay links, and a world of modelled services
//! answering the agents' check tasks and actions that fix them. These
//! tests pin what each rail does; the simulator's scenarios check the
//! fleet-wide invariants under faults.

mod common;

use common::mesh::Mesh;
use common::site::{Site, fleet, map, policy, restarting, step, text, web_check};
use common::{FLEET, key};
use fleetmesh_node::ActionClass;
use fleetmesh_node::Entry;
use fleetmesh_node::crdt::{Hlc, LedgerRecord, RecordKind, SignedRecord, Value};
use fleetmesh_node::{Event, POLICY_DOC, Policy, TaskResult};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn a_crashed_service_is_restarted_by_its_own_node_and_the_fix_is_recorded() {
    let mut harness = restarting(6, 5_000, vec![]);
    harness.run_for(Duration::from_secs(3));
    assert!(harness.world.ran.is_empty(), "a healthy fleet runs nothing");
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    let ran = harness.ran_actions();
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
    let limit = vec![("limit_count", Value::Int(2))];
    let mut harness = restarting(5, 3_000, limit);
    for _ in 0..5 {
        harness.world.healthy.insert(4, false);
        harness.run_for(Duration::from_secs(8));
    }
    let restarts = harness.world.ran.iter().filter(|ran| ran.node == 4).count();
    assert_eq!(restarts, 2, "the limit stops the third restart");
    assert_eq!(harness.count(4, "needs-human"), 1);
    assert!(!harness.world.healthy[&4]);
    // An operator who approves the needs-human record re-arms the rule.
    harness.approve(4, "needs-human", Duration::from_secs(60));
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
    // Failures detected at the same check round are only known to be
    // systemic once their reports have spread: `unhealthy_for` is that
    // wait.
    let wait = vec![("unhealthy_for_ms", Value::Int(2_000))];
    let mut harness = restarting(7, 3_000, wait);
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
    let gated = vec![("require_approval", Value::Bool(true))];
    let mut harness = restarting(5, 20_000, gated);
    harness.world.healthy.insert(3, false);
    harness.run_for(Duration::from_secs(5));
    assert!(harness.world.ran.is_empty(), "waits for an approval");
    assert_eq!(
        harness.count(3, "intent"),
        1,
        "what awaits approval is recorded"
    );
    // An approval that lapses before it reaches the node denies.
    harness.approve(3, "intent", Duration::ZERO);
    harness.run_for(Duration::from_secs(2));
    assert!(harness.world.ran.is_empty());
    assert_eq!(harness.count(3, "skipped"), 1);
    // A valid one lets it run.
    harness.approve(3, "intent", Duration::from_secs(30));
    harness.run_for(Duration::from_secs(2));
    assert_eq!(harness.world.ran.len(), 1);
    assert!(harness.world.healthy[&3]);
}

/// A gated step with `timeout_ms` 2 s and an approval window of 60 s.
fn gated_restart(window_s: i64) -> Value {
    let mut restart = step("restart", "local", 2_000);
    if let Value::Map(fields) = &mut restart {
        fields.insert("approval".into(), Value::Bool(true));
        fields.insert("approval_window_s".into(), Value::Int(window_s));
    }
    policy(vec![restart], 3, vec![])
}

#[test]
fn an_approval_after_the_action_timeout_but_within_the_window_starts_the_step() {
    let mut harness = fleet(5, 3);
    harness.release(&gated_restart(60));
    harness.world.healthy.insert(3, false);
    // Well past the step's 2 s timeout: the step still waits.
    harness.run_for(Duration::from_secs(20));
    assert!(harness.world.ran.is_empty(), "waits for an approval");
    assert_eq!(harness.count(3, "skipped"), 0, "{:?}", harness.reasons(3));
    harness.approve(3, "intent", Duration::from_secs(60));
    harness.run_for(Duration::from_secs(3));
    let ran = harness.ran_actions();
    assert_eq!(ran, [(3, "restart")]);
    assert!(harness.world.healthy[&3]);
}

#[test]
fn a_step_whose_approval_window_passes_is_skipped_naming_the_window() {
    let mut harness = fleet(5, 3);
    harness.release(&gated_restart(10));
    harness.world.healthy.insert(3, false);
    harness.run_for(Duration::from_secs(8));
    assert_eq!(harness.count(3, "skipped"), 0, "still within the window");
    harness.run_for(Duration::from_secs(6));
    assert!(harness.world.ran.is_empty());
    let reasons = harness.reasons(3);
    let skipped: Vec<&(String, String)> = reasons
        .iter()
        .filter(|(incident, _)| incident.ends_with("#0"))
        .collect();
    assert_eq!(skipped.len(), 1, "{reasons:?}");
    assert!(
        skipped[0]
            .1
            .contains("approval window (approval_window_s = 10)"),
        "{reasons:?}"
    );
    // The one-step ladder ran out; its needs-human record says what an
    // approval of it would run.
    let end: Vec<&(String, String)> = reasons
        .iter()
        .filter(|(incident, _)| incident.ends_with("#end"))
        .collect();
    assert_eq!(end.len(), 1, "{reasons:?}");
    assert!(end[0].1.contains("restart was skipped"), "{reasons:?}");
    // An approval of the skipped step's own intent comes too late.
    harness.approve(3, "intent", Duration::from_secs(60));
    harness.run_for(Duration::from_secs(5));
    assert!(harness.world.ran.is_empty(), "{:?}", harness.world.ran);
    // Approving the needs-human record runs the skipped step, once.
    harness.approve(3, "needs-human", Duration::from_secs(60));
    harness.run_for(Duration::from_secs(10));
    assert_eq!(harness.world.ran.len(), 1, "{:?}", harness.world.ran);
    assert!(harness.world.healthy[&3]);
}

#[test]
fn a_step_waiting_for_an_approval_keeps_its_key_and_window_across_a_restart() {
    let mut harness = fleet(5, 3);
    harness.release(&gated_restart(60));
    harness.world.healthy.insert(3, false);
    harness.run_for(Duration::from_secs(8));
    let waiting = |harness: &Mesh<Site>| -> BTreeSet<String> {
        harness
            .records(3)
            .into_iter()
            .filter(|(kind, _)| *kind == "intent")
            .map(|(_, incident)| incident)
            .collect()
    };
    let before = waiting(&harness);
    assert_eq!(before.len(), 1, "{before:?}");
    harness.crash(3);
    harness.start(3);
    harness.run_for(Duration::from_secs(10));
    assert_eq!(
        harness.agent(3).stats().remedy.incidents,
        1,
        "the restarted agent saw the failure again"
    );
    assert_eq!(
        waiting(&harness),
        before,
        "the same step waits, under its key"
    );
    // An approval of what waited before the restart runs it.
    harness.approve(3, "intent", Duration::from_secs(60));
    harness.run_for(Duration::from_secs(3));
    assert_eq!(harness.world.ran.len(), 1, "{:?}", harness.world.ran);
    assert!(harness.world.healthy[&3]);
    // The window ran from the first wait: 60 s after it, nothing is left
    // to skip.
    harness.run_for(Duration::from_secs(50));
    assert_eq!(harness.count(3, "skipped"), 0, "{:?}", harness.reasons(3));
}

#[test]
fn approving_an_exhausted_ladder_while_the_check_is_unhealthy_runs_the_fix_once() {
    let mut harness = fleet(7, 3);
    // The reboot does not help at first: the ladder runs out.
    harness.world.fixes = BTreeSet::new();
    let steps = vec![
        step("restart", "local", 2_000),
        step("reboot", "disruptive", 3_000),
    ];
    harness.release(&policy(steps, 3, vec![]));
    harness.run_for(Duration::from_secs(3));
    harness.world.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(20));
    let actions = |harness: &Mesh<Site>| -> Vec<(String, u64)> {
        harness
            .world
            .ran
            .iter()
            .map(|ran| (ran.action.clone(), ran.epoch))
            .collect()
    };
    assert_eq!(actions(&harness).len(), 2, "{:?}", actions(&harness));
    assert_eq!(harness.count(5, "needs-human"), 1);
    let exhausted = harness.agent(5).stats().remedy.ladders_exhausted;
    assert_eq!(exhausted, 1);
    // Nothing more runs without an operator.
    harness.run_for(Duration::from_secs(10));
    assert_eq!(actions(&harness).len(), 2);
    // The operator approves it; this time the reboot fixes the host.
    harness.world.fixes = BTreeSet::from(["reboot".to_owned()]);
    harness.approve(5, "needs-human", Duration::from_secs(120));
    harness.run_for(Duration::from_secs(15));
    let ran = actions(&harness);
    assert_eq!(ran.len(), 3, "the last step ran once more: {ran:?}");
    assert_eq!(ran[2].0, "reboot");
    assert_eq!(harness.agent(5).stats().remedy.reruns_approved, 1);
    assert!(ran[2].1 > 0, "under the holder's epoch: {ran:?}");
    assert!(harness.world.healthy[&5]);
    // Fenced like any other disruptive step: the holder's intent, under
    // the needs-human record's key.
    let records = harness.records(5);
    let on_end = |kind: &str| {
        records
            .iter()
            .filter(|(name, incident)| *name == kind && incident.ends_with("#end"))
            .count()
    };
    assert_eq!(
        (
            on_end("request"),
            on_end("intent"),
            on_end("started"),
            on_end("outcome")
        ),
        (1, 1, 1, 1),
        "{records:?}"
    );
    harness.run_for(Duration::from_secs(20));
    assert_eq!(actions(&harness).len(), 3, "once");
}

#[test]
fn approving_an_exhausted_ladder_after_the_check_recovered_runs_nothing() {
    let mut harness = fleet(5, 3);
    harness.world.fixes = BTreeSet::new();
    harness.release(&policy(vec![step("restart", "local", 2_000)], 3, vec![]));
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(10));
    assert_eq!(harness.world.ran.len(), 1);
    assert_eq!(harness.count(4, "needs-human"), 1);
    // The service comes back by itself: the incident is over.
    harness.world.healthy.insert(4, true);
    harness.run_for(Duration::from_secs(5));
    harness.approve(4, "needs-human", Duration::from_secs(120));
    harness.run_for(Duration::from_secs(15));
    assert_eq!(harness.world.ran.len(), 1, "{:?}", harness.world.ran);
    assert_eq!(harness.count(4, "approval"), 1, "the approval is recorded");
    assert_eq!(harness.count(4, "started"), 1);
    // And answered: the ledger says nothing ran, under the record's key.
    let reasons = harness.reasons(4);
    let answered: Vec<&(String, String)> = reasons
        .iter()
        .filter(|(incident, reason)| incident.ends_with("#end") && reason.contains("nothing ran"))
        .collect();
    assert_eq!(answered.len(), 1, "{reasons:?}");
    assert_eq!(harness.agent(4).stats().remedy.approvals_after_recovery, 1);
}

#[test]
fn a_dry_run_records_the_intent_and_runs_nothing() {
    let dry = vec![("dry_run", Value::Bool(true))];
    let mut harness = restarting(5, 2_000, dry);
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(6));
    assert!(harness.world.ran.is_empty());
    assert_eq!(harness.count(4, "intent"), 1);
    assert_eq!(harness.agent(4).stats().remedy.dry_runs, 1);
}

#[test]
fn a_reload_never_starts_an_action_for_a_failure_already_known() {
    let mut harness = fleet(5, 3);
    let no_rule = map(vec![("checks", map(vec![("web", map(web_check()))]))]);
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
fn the_approval_window_is_bounded_defaults_to_minutes_and_is_named_in_errors() {
    let gated = vec![("require_approval", Value::Bool(true))];
    let parsed =
        Policy::parse(&policy(vec![step("restart", "local", 5_000)], 3, gated)).expect("valid");
    let window = parsed.rules["web-down"].steps[0].approval_window;
    assert_eq!(window, Duration::from_secs(15 * 60), "the default");
    // A rule-level window is every gated step's default; a step may set
    // its own.
    let mut own = step("reboot", "disruptive", 3_000);
    if let Value::Map(fields) = &mut own {
        fields.insert("approval_window_s".into(), Value::Int(600));
    }
    let rule_window = vec![
        ("require_approval", Value::Bool(true)),
        ("approval_window_s", Value::Int(3_600)),
    ];
    let parsed = Policy::parse(&policy(
        vec![step("restart", "local", 5_000), own],
        3,
        rule_window,
    ))
    .expect("valid");
    let windows: Vec<u64> = parsed.rules["web-down"]
        .steps
        .iter()
        .map(|step| step.approval_window.as_secs())
        .collect();
    assert_eq!(windows, [3_600, 600]);
    let refused = |window: Value| {
        let extra = vec![
            ("require_approval", Value::Bool(true)),
            ("approval_window_s", window),
        ];
        Policy::parse(&policy(vec![step("restart", "local", 5_000)], 3, extra)).unwrap_err()
    };
    for bad in [Value::Int(9), Value::Int(7 * 24 * 3600 + 1), text("15m")] {
        let error = refused(bad);
        assert_eq!(error.field, "rules.web-down.approval_window_s");
        assert!(error.problem.contains("10..=604800"), "{error}");
    }
    assert!(
        Policy::parse(&policy(
            vec![step("restart", "local", 5_000)],
            3,
            vec![
                ("require_approval", Value::Bool(true)),
                ("approval_window_s", Value::Int(10)),
            ],
        ))
        .is_ok(),
        "the least window is taken"
    );
    // A window on a step that waits for no approval is a mistake.
    let mut ungated = step("restart", "local", 5_000);
    if let Value::Map(fields) = &mut ungated {
        fields.insert("approval_window_s".into(), Value::Int(600));
    }
    let error = Policy::parse(&policy(vec![ungated], 3, vec![])).unwrap_err();
    assert_eq!(error.field, "rules.web-down.steps[0].approval_window_s");
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
    let limit = vec![("limit_count", Value::Int(1))];
    let mut harness = restarting(5, 3_000, limit);
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

#[test]
fn a_released_policy_agents_refuse_is_told_and_the_previous_one_keeps_running() {
    let mut harness = fleet(4, 1);
    let good = policy(vec![step("restart", "local", 5_000)], 1, vec![]);
    harness.release(&good);
    for (n, agent) in harness.agents() {
        assert!(agent.policy_loaded(), "agent {n} runs the released policy");
        assert!(
            agent.policy_refused().is_none(),
            "agent {n} refused nothing"
        );
    }
    // Version 2: a step class no agent knows.
    let bad = policy(vec![step("restart", "lokal", 5_000)], 1, vec![]);
    let (operator, _) = &*FLEET;
    let site = &mut harness.world;
    site.version += 1;
    let entries = site
        .laptop
        .write_doc(operator, POLICY_DOC, &bad, site.version, None);
    harness.publish(0, entries);
    harness.run_for(Duration::from_secs(2));
    for (n, agent) in harness.agents() {
        let running = agent.applied_release(POLICY_DOC).expect("a policy release");
        assert_eq!(running.version, 2, "agent {n} moved to the release");
        let refusal = agent.policy_refused().expect("the refusal is reported");
        assert_eq!((refusal.version, refusal.digest), (2, running.digest));
        assert_eq!(
            refusal.reason(),
            "rules.web-down.steps[0].class: must be \"local\" or \"disruptive\""
        );
        assert!(
            !agent.policy_loaded(),
            "agent {n} does not claim version 2's policy"
        );
        assert_eq!(
            agent
                .policy()
                .map(|policy| policy.rules["web-down"].steps[0].class),
            Some(ActionClass::Local),
            "agent {n} keeps version 1's policy"
        );
        assert_eq!(agent.stats().remedy.policies_refused, 1);
        let told: Vec<&Event> = harness
            .node(n)
            .events
            .iter()
            .filter(|event| matches!(event, Event::PolicyRefused { .. }))
            .collect();
        assert_eq!(
            told,
            [&Event::PolicyRefused {
                version: 2,
                digest: running.digest,
                field: "rules.web-down.steps[0].class".to_owned(),
                problem: "must be \"local\" or \"disruptive\"".to_owned(),
            }],
            "agent {n} tells its driver once"
        );
    }
    // The old policy still remediates.
    harness.world.healthy.insert(3, false);
    harness.run_for(Duration::from_secs(6));
    assert!(
        harness
            .world
            .ran
            .iter()
            .any(|ran| ran.node == 3 && ran.action == "restart")
    );
    // A later good release clears the refusal.
    harness.release(&good);
    for (n, agent) in harness.agents() {
        assert!(
            agent.policy_loaded() && agent.policy_refused().is_none(),
            "agent {n}"
        );
    }
}
