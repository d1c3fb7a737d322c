//! The read-only views of a running agent: `fleetmesh health`, `leases`
//! and `remediations`, and the [`View`] `members` prints with too.

use super::table::{brief, cell, list, print_json, short, sort_rows, table, tags_cell, time_cell};
use super::{Client, Target};
use serde_json::Value;

/// One list view of the admin API: where it is, and how it prints.
pub(super) struct View<'a> {
    /// The admin API path to `GET`.
    pub(super) path: &'a str,
    /// The answer's field holding the list.
    pub(super) key: &'a str,
    /// The table's column titles.
    pub(super) titles: &'a [&'a str],
    /// What to print instead of a table when the list is empty.
    pub(super) empty: &'a str,
}

impl View<'_> {
    /// Prints the view: with `--json` the answer as it came, else its list
    /// as a table, one `row` an item, rows sorted by their cells from the
    /// left. Returns the items it printed as a
    /// table (none after JSON or an empty list).
    fn show(
        &self,
        target: &Target,
        row: impl Fn(&Value) -> Vec<String>,
    ) -> anyhow::Result<Vec<Value>> {
        let answer = Client::new(&target.agent)?.get(self.path)?;
        if target.json {
            print_json(&answer)?;
            return Ok(Vec::new());
        }
        Ok(self.print(&answer, row))
    }

    /// Prints the table of the items of `answer` (or the empty message);
    /// returns the items.
    pub(super) fn print(&self, answer: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Value> {
        let items = list(answer, self.key);
        if items.is_empty() {
            println!("{}", self.empty);
            return Vec::new();
        }
        let mut rows: Vec<Vec<String>> = items.iter().map(row).collect();
        sort_rows(&mut rows);
        print!("{}", table(self.titles, &rows));
        items.to_vec()
    }
}

/// `fleetmesh health`.
pub fn health(target: &Target) -> anyhow::Result<()> {
    let view = View {
        path: "/v1/health",
        key: "reports",
        titles: &["NODE", "ID", "CHECK", "STATE", "SINCE", "DETAIL"],
        empty: "no health reports: no released policy has checks for these nodes yet",
    };
    view.show(target, |report| {
        vec![
            cell(&report["name"]),
            cell(&report["node"]),
            cell(&report["check"]),
            cell(&report["state"]),
            time_cell(&report["at_millis"]),
            brief(&report["detail"], 60),
        ]
    })?;
    Ok(())
}

/// `fleetmesh leases`.
pub fn leases(target: &Target) -> anyhow::Result<()> {
    let view = View {
        path: "/v1/leases",
        key: "leases",
        titles: &[
            "SCOPE",
            "EPOCH",
            "HOLDER",
            "HOLDER ID",
            "EXPIRES",
            "HELD HERE",
            "BUDGET IN USE",
        ],
        empty: "no leases: no rule has asked for a budget lease yet",
    };
    view.show(target, |lease| {
        vec![
            cell(&lease["scope"]),
            cell(&lease["epoch"]),
            cell(&lease["holder_name"]),
            cell(&lease["holder_id"]),
            expires_cell(lease),
            if lease["held_here"] == true {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
            cell(&lease["budget_in_use"]),
        ]
    })?;
    Ok(())
}

/// A lease's EXPIRES: when its last published claim runs out. A holder
/// renews every third of the ttl but republishes the renewed lease only
/// every few minutes (`lease_publish_interval`), so between two
/// publications the claim every agent holds has run out while the lease
/// holds: the holder itself says so; any other agent marks the time as the
/// last one published.
fn expires_cell(lease: &Value) -> String {
    let at = time_cell(&lease["expires_at_millis"]);
    match (lease["claim_expired"] == true, lease["held_here"] == true) {
        (false, _) => at,
        (true, true) => "renewed (held here)".to_owned(),
        (true, false) => format!("{at} (last published)"),
    }
}

/// `fleetmesh remediations`.
pub fn remediations(target: &Target) -> anyhow::Result<()> {
    let view = View {
        path: "/v1/remediations",
        key: "remediations",
        titles: &[
            "TARGET",
            "RULE",
            "INCIDENT",
            "STATUS",
            "ACTION",
            "LAST",
            "APPROVE ID",
            "DETAIL",
        ],
        empty: "no remediations in the ledger",
    };
    let answer = Client::new(&target.agent)?.get(view.path)?;
    if target.json {
        return print_json(&answer);
    }
    print_stops(&answer);
    let shown = view.print(&answer, |remediation| {
        vec![
            cell(&remediation["target_name"]),
            cell(&remediation["rule"]),
            brief(&remediation["incident"], 40),
            cell(&remediation["status"]),
            cell(&remediation["action"]),
            time_cell(&remediation["last_at_millis"]),
            short(&remediation["id"], 16),
            brief(&remediation["detail"], 50),
        ]
    });
    let waiting = shown
        .iter()
        .filter(|remediation| remediation["id"].is_string())
        .count();
    if waiting > 0 {
        println!(
            "{waiting} waiting for an approval: `fleetmesh approve ID --key FILE` with a key holding the `approve` role"
        );
    }
    Ok(())
}

/// Prints the emergency stops in force that `answer` (the agent's
/// `/v1/remediations`) lists, ahead of everything else.
fn print_stops(answer: &Value) {
    for stop in list(answer, "stops") {
        let scope = match stop["selector"].as_object() {
            Some(selector) if !selector.is_empty() => {
                format!("agents with {}", tags_cell(&stop["selector"]))
            }
            _ => "every agent".to_owned(),
        };
        println!(
            "EMERGENCY STOP {} ({}{}): no automation until {}: {}",
            short(&stop["id"], 16),
            scope,
            if stop["applies"] == true {
                ", this agent included"
            } else {
                ", not this agent"
            },
            cell(&stop["expires"]),
            cell(&stop["reason"]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_renewed_lease_does_not_show_its_old_claim_as_its_expiry() {
        let claim = 1_800_000_000_000_u64;
        let time = time_cell(&json!(claim));
        let lease = |expired: bool, here: bool| json!({ "expires_at_millis": claim, "claim_expired": expired, "held_here": here });
        assert_eq!(expires_cell(&lease(false, true)), time);
        assert_eq!(expires_cell(&lease(true, true)), "renewed (held here)");
        assert_eq!(
            expires_cell(&lease(true, false)),
            format!("{time} (last published)")
        );
    }
}
