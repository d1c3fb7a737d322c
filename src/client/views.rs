//! The read-only views of a running agent: `fleetmesh members`, `health`,
//! `leases` and `remediations`.

use super::table::{brief, cell, list, print_json, short, table, tags_cell, time_cell};
use super::{Client, Target};

/// `fleetmesh members`.
pub fn members(target: &Target) -> anyhow::Result<()> {
    let answer = Client::new(&target.agent)?.get("/v1/members")?;
    if target.json {
        return print_json(&answer);
    }
    let rows: Vec<Vec<String>> = list(&answer, "members")
        .iter()
        .map(|member| {
            let link = if member["self"] == true {
                "self"
            } else if member["connected"] == true {
                "yes"
            } else {
                "no"
            };
            vec![
                cell(&member["name"]),
                cell(&member["id"]),
                cell(&member["state"]),
                cell(&member["incarnation"]),
                tags_cell(&member["tags"]),
                link.to_owned(),
                list(member, "addrs")
                    .iter()
                    .map(cell)
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "NAME",
                "ID",
                "STATE",
                "INCARNATION",
                "TAGS",
                "CONNECTED",
                "ADDRESSES"
            ],
            &rows
        )
    );
    Ok(())
}

/// `fleetmesh health`.
pub fn health(target: &Target) -> anyhow::Result<()> {
    let answer = Client::new(&target.agent)?.get("/v1/health")?;
    if target.json {
        return print_json(&answer);
    }
    let rows: Vec<Vec<String>> = list(&answer, "reports")
        .iter()
        .map(|report| {
            vec![
                cell(&report["name"]),
                cell(&report["node"]),
                cell(&report["check"]),
                cell(&report["state"]),
                time_cell(&report["at_millis"]),
                brief(&report["detail"], 60),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no health reports: no released policy has checks for these nodes yet");
        return Ok(());
    }
    print!(
        "{}",
        table(&["NODE", "ID", "CHECK", "STATE", "SINCE", "DETAIL"], &rows)
    );
    Ok(())
}

/// `fleetmesh leases`.
pub fn leases(target: &Target) -> anyhow::Result<()> {
    let answer = Client::new(&target.agent)?.get("/v1/leases")?;
    if target.json {
        return print_json(&answer);
    }
    let rows: Vec<Vec<String>> = list(&answer, "leases")
        .iter()
        .map(|lease| {
            vec![
                cell(&lease["scope"]),
                cell(&lease["epoch"]),
                cell(&lease["holder_name"]),
                cell(&lease["holder_id"]),
                time_cell(&lease["expires_at_millis"]),
                if lease["held_here"] == true {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                cell(&lease["budget_in_use"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no leases: no rule has asked for a budget lease yet");
        return Ok(());
    }
    print!(
        "{}",
        table(
            &[
                "SCOPE",
                "EPOCH",
                "HOLDER",
                "HOLDER ID",
                "EXPIRES",
                "HELD HERE",
                "BUDGET IN USE"
            ],
            &rows
        )
    );
    Ok(())
}

/// `fleetmesh remediations`.
pub fn remediations(target: &Target) -> anyhow::Result<()> {
    let answer = Client::new(&target.agent)?.get("/v1/remediations")?;
    if target.json {
        return print_json(&answer);
    }
    for stop in list(&answer, "stops") {
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
    let all = list(&answer, "remediations");
    if all.is_empty() {
        println!("no remediations in the ledger");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|remediation| {
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
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TARGET",
                "RULE",
                "INCIDENT",
                "STATUS",
                "ACTION",
                "LAST",
                "APPROVE ID",
                "DETAIL"
            ],
            &rows
        )
    );
    let waiting = all
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
