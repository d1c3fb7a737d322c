//! `fleetmesh info`: a running agent summed up in a few lines (as `serf
//! info` does), from its `/v1/agent`.

use serde_json::Value;

use super::table::{cell, print_json, table};
use super::{Client, Target};

/// `fleetmesh info`.
pub fn info(target: &Target) -> anyhow::Result<()> {
    let answer = Client::new(&target.agent)?.get("/v1/agent")?;
    if target.json {
        return print_json(&answer);
    }
    print!("{}", table(&["FIELD", "VALUE"], &rows(&answer)));
    Ok(())
}

/// The summary's rows, in a fixed order: who, what it runs, how it is.
fn rows(agent: &Value) -> Vec<Vec<String>> {
    let members = ["alive", "suspect", "dead", "left"]
        .iter()
        .map(|state| format!("{} {state}", cell(&agent["members"][state])))
        .collect::<Vec<_>>()
        .join(", ");
    let releases = agent["releases"]
        .as_object()
        .filter(|releases| !releases.is_empty())
        .map_or_else(
            || "none".to_owned(),
            |releases| {
                releases
                    .iter()
                    .map(|(doc, version)| format!("{doc} v{}", cell(version)))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
    let policy = match (&agent["policy_refused"], agent["policy_loaded"] == true) {
        (Value::String(reason), _) => format!("refused: {reason}"),
        (_, true) => "loaded".to_owned(),
        (_, false) => "none".to_owned(),
    };
    let yes_no = |value: &Value| if *value == true { "yes" } else { "no" }.to_owned();
    [
        ("name", cell(&agent["name"])),
        ("id", cell(&agent["id"])),
        (
            "version",
            format!(
                "{} (protocol {})",
                cell(&agent["version"]),
                cell(&agent["protocol"])
            ),
        ),
        (
            "fleet",
            format!(
                "{} (trust version {})",
                cell(&agent["fleet_name"]),
                cell(&agent["trust_version"])
            ),
        ),
        ("members", members),
        ("releases", releases),
        ("policy", policy),
        ("safe mode", yes_no(&agent["safe_mode"])),
        (
            "emergency stops",
            format!("{} applying here", cell(&agent["stops_applying"])),
        ),
        ("leaving", yes_no(&agent["leaving"])),
        ("uptime", uptime(&agent["uptime_millis"])),
    ]
    .into_iter()
    .map(|(field, value)| vec![field.to_owned(), value])
    .collect()
}

/// Milliseconds as `1d 2h 3m 4s`, leading zero units left out.
fn uptime(value: &Value) -> String {
    let Some(millis) = value.as_u64() else {
        return "-".to_owned();
    };
    let seconds = millis / 1000;
    let units = [
        (seconds / 86_400, "d"),
        (seconds / 3_600 % 24, "h"),
        (seconds / 60 % 60, "m"),
        (seconds % 60, "s"),
    ];
    let first = units
        .iter()
        .position(|(count, _)| *count > 0)
        .unwrap_or(units.len() - 1);
    units[first..]
        .iter()
        .map(|(count, unit)| format!("{count}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_says_members_by_state_releases_policy_and_stops() {
        let agent = json!({
            "name": "node-1", "id": "00ff", "version": "0.1.0", "protocol": 1,
            "fleet_name": "prod", "trust_version": 2,
            "members": { "alive": 3, "suspect": 1, "dead": 0, "left": 2 },
            "releases": { "app": 4, "remediation": 2 },
            "policy_loaded": false, "policy_refused": "rules.web: unknown check",
            "safe_mode": true, "stops_applying": 1, "leaving": false,
            "uptime_millis": 93_784_000_u64,
        });
        let printed = table(&["FIELD", "VALUE"], &rows(&agent));
        for line in [
            "version          0.1.0 (protocol 1)",
            "fleet            prod (trust version 2)",
            "members          3 alive, 1 suspect, 0 dead, 2 left",
            "releases         app v4, remediation v2",
            "policy           refused: rules.web: unknown check",
            "safe mode        yes",
            "emergency stops  1 applying here",
            "uptime           1d 2h 3m 4s",
        ] {
            assert!(printed.contains(line), "{line:?} not in\n{printed}");
        }
    }

    #[test]
    fn an_agent_without_releases_or_policy_says_none() {
        let agent = json!({ "releases": {}, "policy_loaded": false, "policy_refused": null, "uptime_millis": 61_000 });
        let printed = table(&["FIELD", "VALUE"], &rows(&agent));
        assert!(printed.contains("releases         none"), "{printed}");
        assert!(printed.contains("policy           none"), "{printed}");
        assert!(printed.contains("uptime           1m 1s"), "{printed}");
        assert_eq!(uptime(&json!(999)), "0s");
    }
}
