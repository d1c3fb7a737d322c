//! Tests over every registered kind: a new kind is covered by adding it to
//! the registry.

use super::vary::Variation;
use super::{EXAMPLES, Fault, KINDS};
use crate::scenario::Scenario;
use std::time::Duration;
use toml::{Table, Value};

/// Six agents (0 to 2 `role=db`, 3 to 5 `role=web`), a lease scope `s`,
/// and a policy declaring check `web`, rule `fix` (disruptive, so budget
/// scope `remediate:fix`) and action `reboot`: what the kinds' examples
/// name.
const BASE: &str = "name = \"every-kind\"\nduration_s = 100\n\
    [fleet]\nagents = 6\n\
    [[fleet.groups]]\ncount = 3\ntags = { role = \"db\" }\n\
    [[fleet.groups]]\ncount = 3\ntags = { role = \"web\" }\n\
    [[leases]]\nscope = \"s\"\nvoters = \"role=db\"\ncandidates = \"role=db\"\nttl_s = 10\n\
    [[faults]]\nkind = \"policy\"\nat_s = 1\n\
    [faults.content.checks.web]\nkind = \"tcp\"\naddr = \"127.0.0.1:80\"\nselect = \"role=web\"\ninterval_ms = 1000\n\
    [faults.content.rules.fix]\ncheck = \"web\"\nselect = \"role=web\"\nvoters = \"role=db\"\nlease_ttl_ms = 20000\n\
    steps = [{ action = \"reboot\", class = \"disruptive\", timeout_ms = 5000 }]\n";

/// The base document with kind `name`'s example appended to its faults.
fn document(name: &str, example: &str) -> Table {
    let mut doc: Table = BASE.parse().expect("the base parses as TOML");
    let mut entry: Table = example
        .parse()
        .unwrap_or_else(|error| panic!("{name}'s example is not TOML: {error}"));
    entry.insert("kind".into(), Value::String(name.into()));
    let Some(Value::Array(faults)) = doc.get_mut("faults") else {
        panic!("the base has faults");
    };
    faults.push(Value::Table(entry));
    doc
}

fn parse(name: &str, doc: &Table) -> Scenario {
    let text = toml::to_string(doc).expect("renders");
    Scenario::parse(name, &text).unwrap_or_else(|error| panic!("{name}: {error}\n{text}"))
}

fn last_entry(doc: &mut Table) -> &mut Table {
    match doc.get_mut("faults") {
        Some(Value::Array(faults)) => match faults.last_mut() {
            Some(Value::Table(entry)) => entry,
            _ => panic!("a fault entry"),
        },
        _ => panic!("faults"),
    }
}

#[test]
fn every_kind_round_trips_through_its_written_back_entry() {
    let variations = [(1.0, 0), (0.5, 1_234_567_891), (2.0, -500_000_003)];
    for (name, example) in EXAMPLES {
        let doc = document(name, example);
        let scenario = parse(name, &doc);
        let fault = scenario.faults.last().expect("the example's fault");
        assert_eq!(fault.name(), *name);
        for (factor, shift) in variations {
            let variation = Variation {
                factor,
                shift,
                end: scenario.duration,
            };
            let varied = if fault.is_chaos() {
                fault.varied(&variation)
            } else {
                fault.clone()
            };
            let mut written = doc.clone();
            varied.kind().write_back(last_entry(&mut written));
            let replayed = parse(name, &written);
            let mut expected = scenario.faults.clone();
            *expected.last_mut().expect("a fault") = varied.clone();
            assert_eq!(
                replayed.faults, expected,
                "{name} x{factor} shifted {shift} ns: written back, it parses to another fault"
            );
            if fault.is_chaos() && factor != 1.0 {
                assert_ne!(&varied, fault, "{name}: a swarm seed varies chaos");
            }
        }
    }
}

#[test]
fn workload_is_never_varied() {
    let variation = Variation {
        factor: 0.5,
        shift: 3_000_000_000,
        end: Duration::from_secs(100),
    };
    for (name, example) in EXAMPLES {
        let scenario = parse(name, &document(name, example));
        let fault: &Fault = scenario.faults.last().expect("the example's fault");
        if !fault.is_chaos() {
            assert_eq!(&fault.varied(&variation), fault, "{name}");
        }
    }
}

#[test]
fn every_kind_has_its_row_in_the_scenario_docs() {
    let docs = include_str!("../../../../docs/scenarios.md");
    for (name, _) in KINDS {
        assert!(
            docs.contains(&format!("| `{name}` |")),
            "docs/scenarios.md has no row for fault kind `{name}` in the [[faults]] table"
        );
    }
}

#[test]
fn swarm_runs_draw_for_the_chaos_kinds_in_their_historical_order() {
    // Swarm seeds draw each chaos kind's fate in registry order: a new
    // kind appended keeps every existing seed's mix, a reorder does not.
    let chaos: Vec<&str> = KINDS
        .iter()
        .filter(|(_, chaos)| *chaos)
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        chaos,
        [
            "partition",
            "crash",
            "pause",
            "random-pauses",
            "network",
            "clock",
            "crash-holder",
            "health-flaps"
        ]
    );
}
