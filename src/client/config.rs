//! The `config` commands against a running agent: publish signed files,
//! and read the releases it runs and holds.

use anyhow::{Context, bail};
use fleetmesh_runtime::config::Endpoint;
use serde_json::Value;

use super::table::{cell, list, print_json, short, table, time_cell};
use super::{Client, PublishArgs, Target};
use crate::operator;

/// `fleetmesh publish` and `fleetmesh config publish`: posts each file to
/// the agent's admin API, in order.
pub fn publish(args: &PublishArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.agent)?;
    for path in &args.files {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {}: check the path and its permissions",
                path.display()
            )
        })?;
        let answer = client.post("/v1/publish", text, &path.display().to_string())?;
        println!(
            "published {} ({} entries)",
            path.display(),
            answer["published"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}

/// The releases an agent runs, those of `doc` only if given; an error
/// naming what it does run when `doc` is not among them. With where the
/// agent is, for messages.
fn releases_of(
    target: &Target,
    doc: Option<&str>,
) -> anyhow::Result<(Endpoint, Value, Vec<Value>)> {
    let client = Client::new(&target.agent)?;
    let answer = client.get("/v1/releases")?;
    let all = list(&answer, "releases").to_vec();
    let Some(doc) = doc else {
        return Ok((client.target.endpoint, answer, all));
    };
    let chosen: Vec<Value> = all
        .iter()
        .filter(|release| release["doc"] == doc)
        .cloned()
        .collect();
    if chosen.is_empty() {
        let running: Vec<String> = all.iter().map(|release| cell(&release["doc"])).collect();
        bail!(
            "the agent at {} runs no release of document {doc} (it runs: {}); publish one with `fleetmesh config publish`",
            client.at(),
            if running.is_empty() {
                "none".to_owned()
            } else {
                running.join(", ")
            }
        );
    }
    Ok((client.target.endpoint, answer, chosen))
}

/// `fleetmesh config release` against an agent: the release it runs per
/// document.
pub fn config_release(target: &Target, doc: Option<&str>) -> anyhow::Result<()> {
    let (_, answer, releases) = releases_of(target, doc)?;
    if target.json {
        // One document's entry (`releases_of` found it), or the whole
        // answer.
        return print_json(match (doc, releases.first()) {
            (Some(_), Some(release)) => release,
            _ => &answer,
        });
    }
    if releases.is_empty() {
        println!("the agent runs no release yet: publish one with `fleetmesh config publish`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|release| {
            let state = if release["void"] == true {
                "void".to_owned()
            } else if let Some(reason) = release["policy_refused"].as_str() {
                format!("policy refused: {reason}")
            } else if release["content"].is_null() && !list(&answer, "quarantined").is_empty() {
                "unreadable: a config key is quarantined (see docs/operations.md)".to_owned()
            } else if release["content"].is_null() {
                "waiting for its changes".to_owned()
            } else {
                "running".to_owned()
            };
            vec![
                cell(&release["doc"]),
                cell(&release["version"]),
                short(&release["digest"], 16),
                time_cell(&release["expires_millis"]),
                state,
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["DOC", "VERSION", "DIGEST", "EXPIRES", "STATE"], &rows)
    );
    Ok(())
}

/// `fleetmesh config show` against an agent: the content of the release
/// it runs.
pub fn config_show(
    target: &Target,
    doc: Option<&str>,
    format: operator::Format,
) -> anyhow::Result<()> {
    let (at, answer, releases) = releases_of(target, doc)?;
    let release = match releases.as_slice() {
        [one] => one,
        [] => bail!(
            "the agent at {at} runs no release yet: publish one with `fleetmesh config publish`"
        ),
        more => bail!(
            "the agent runs releases of {} documents ({}): name one with --doc",
            more.len(),
            more.iter()
                .map(|release| cell(&release["doc"]))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if target.json {
        return print_json(release);
    }
    let content = release["content"].clone();
    if content.is_null() {
        let quarantined = list(&answer, "quarantined");
        if !quarantined.is_empty() {
            // The changes were dropped, not delayed: publishing them again
            // is refused, so only a new release can help.
            bail!(
                "the agent runs release {} of {} but cannot read it: it quarantines config key(s) {} for signing conflicting changes, and dropped every change they signed. Revoke the key(s) (`fleetmesh fleet update --revoke`), then draft and release the content with another config key: docs/operations.md, \"Equivocation and quarantine\", step by step",
                cell(&release["version"]),
                cell(&release["doc"]),
                quarantined
                    .iter()
                    .map(|key| short(key, 16))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        bail!(
            "the agent runs release {} of {} but does not hold all its changes yet: it is catching up from its peers; wait, or publish the change files of the store the release was made from with `fleetmesh config publish`",
            cell(&release["version"]),
            cell(&release["doc"])
        );
    }
    print!("{}", operator::render_json(content, format)?);
    Ok(())
}

/// `fleetmesh config history` against an agent: every release it holds.
pub fn config_history(target: &Target, doc: Option<&str>) -> anyhow::Result<()> {
    let answer = Client::new(&target.agent)?.get("/v1/config/history")?;
    let releases: Vec<&Value> = list(&answer, "releases")
        .iter()
        .filter(|release| doc.is_none_or(|doc| release["doc"] == doc))
        .collect();
    if target.json {
        return print_json(&match doc {
            Some(_) => serde_json::json!({ "releases": releases }),
            None => answer.clone(),
        });
    }
    if releases.is_empty() {
        println!(
            "the agent holds no release{}",
            doc.map(|doc| format!(" of {doc}")).unwrap_or_default()
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|release| {
            vec![
                cell(&release["doc"]),
                cell(&release["version"]),
                short(&release["digest"], 16),
                cell(&release["trust_version"]),
                list(release, "signers").len().to_string(),
                time_cell(&release["expires_millis"]),
                if release["running"] == true {
                    "running"
                } else {
                    ""
                }
                .to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "DOC", "VERSION", "DIGEST", "TRUST", "SIGNERS", "EXPIRES", ""
            ],
            &rows
        )
    );
    Ok(())
}
