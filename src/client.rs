//! The commands that talk to a running agent through its admin API
//! (`fleetmesh members`, `health`, `leases`, `remediations`, `approve`,
//! `leave`, and `config publish|release|show|history` without `--store`).
//!
//! Each prints a table by default and, with `--json`, the admin API's
//! JSON as it came (for one `--doc`, that document's entry), so scripts
//! read what the API documents. Errors say what to do: no agent at the
//! address, no permission on its socket, a key without the role, a stale
//! release.
//!
//! The agent is found (see [`AgentArgs`]) at `--admin`, else where the
//! agent config (`--config`, or [`DEFAULT_CONFIG`] when it exists) says,
//! else at [`DEFAULT_SOCKET`]; a TCP admin API's token is read from
//! `--token-file` or from where the config says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use fleetmesh_crdt::{Hlc, IdempotencyKey, LedgerRecord, RecordKind, Role, SignedRecord};
use fleetmesh_runtime::config::Endpoint;
use fleetmesh_runtime::{AgentConfig, admin, files, formats};
use serde_json::Value;

use crate::operator;

/// The agent config the CLI reads, when it exists and none is named.
pub const DEFAULT_CONFIG: &str = "/etc/fleetmesh/agent.toml";
/// The admin socket the CLI tries when no config says where it is: the
/// default `admin` of an agent whose `state_dir` is `/var/lib/fleetmesh`.
pub const DEFAULT_SOCKET: &str = "/var/lib/fleetmesh/admin.sock";

/// Where the agent's admin API is.
#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// The agent's admin API: its Unix socket, or its loopback IP:PORT
    /// [default: the `admin` of the agent config, else
    /// /var/lib/fleetmesh/admin.sock].
    #[arg(long, value_name = "SOCKET|IP:PORT", alias = "agent")]
    pub admin: Option<Endpoint>,
    /// The agent's config, read for where its admin API and token are
    /// [default: /etc/fleetmesh/agent.toml, when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The token file of an admin API on TCP [default: the one the agent
    /// config names, or admin.token in its state directory].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl AgentArgs {
    /// The admin API these arguments name, with its token file for TCP.
    fn target(&self) -> anyhow::Result<admin::Target> {
        let endpoint = match &self.admin {
            Some(endpoint) => endpoint.clone(),
            None => match self.agent_config()? {
                Some((path, config)) => config.admin.clone().with_context(|| {
                    format!(
                        "the admin API is off in {} (`admin = \"off\"`): turn it on there, or pass --admin",
                        path.display()
                    )
                })?,
                None => Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)),
            },
        };
        let token_file = match (&endpoint, &self.token_file) {
            (Endpoint::Unix(_), None) => None,
            (Endpoint::Unix(socket), Some(_)) => bail!(
                "--token-file is for an admin API on TCP; the one at {} is a Unix socket: leave --token-file out",
                socket.display()
            ),
            (Endpoint::Tcp(_), Some(file)) => Some(file.clone()),
            (Endpoint::Tcp(addr), None) => Some(
                self.agent_config()?
                    .and_then(|(_, config)| config.admin_token_path())
                    .with_context(|| {
                        format!(
                            "the admin API at {addr} asks for a token: pass --token-file FILE (the agent writes admin.token in its state directory), or --config with the agent's config"
                        )
                    })?,
            ),
        };
        Ok(admin::Target {
            endpoint,
            token_file,
        })
    }

    /// The agent config named by `--config`, or the default one when it
    /// exists; with its path.
    fn agent_config(&self) -> anyhow::Result<Option<(PathBuf, AgentConfig)>> {
        let path = match &self.config {
            Some(path) => path.clone(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok(None),
        };
        let config = AgentConfig::load(&path)?;
        Ok(Some((path, config)))
    }
}

/// Where the agent is and how to print its answer.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// The agent.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Print the admin API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `publish` / `config publish`: signed files for a running agent.
#[derive(Args, Clone, Debug)]
pub struct PublishArgs {
    /// The agent.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The files (trust chain, config changes, config releases,
    /// approvals), published in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// How long `leave` waits for the agent to stop: its grace period to
/// spread the news, plus room for a loaded host.
const LEAVE_WAIT: Duration = Duration::from_secs(15);
/// Pause between two looks at a leaving agent.
const LEAVE_POLL: Duration = Duration::from_millis(200);
/// Shortest approval id prefix taken: shorter ones match too much by
/// accident.
const ID_PREFIX_MIN: usize = 6;
/// Longest an approval may be valid for: an approval is a standing order
/// to the automation, and operators should look again before long.
const APPROVAL_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// One agent's admin API, called from synchronous code.
struct Client {
    runtime: tokio::runtime::Runtime,
    target: admin::Target,
}

impl Client {
    fn new(agent: &AgentArgs) -> anyhow::Result<Client> {
        let target = agent.target()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Client { runtime, target })
    }

    /// Where the agent is, for messages.
    fn at(&self) -> &Endpoint {
        &self.target.endpoint
    }

    fn call(&self, path: &str, body: Option<String>) -> anyhow::Result<(u16, String)> {
        self.runtime.block_on(admin::call(&self.target, path, body))
    }

    /// `GET path`, as JSON; an error naming the agent's reason otherwise.
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.call(path, None)?;
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "the agent at {} answered {status} to {path}: {}",
                self.at(),
                value["error"].as_str().unwrap_or(body.trim())
            );
        }
        if value.is_null() {
            bail!(
                "the agent at {} answered {path} with something that is not JSON: is this a fleetmesh agent's admin API?",
                self.at()
            );
        }
        Ok(value)
    }

    /// `POST path` with `body`: the answer's JSON when taken, the agent's
    /// reason as the error when refused.
    fn post(&self, path: &str, body: String, what: &str) -> anyhow::Result<Value> {
        let (status, text) = self.call(path, Some(body))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "the agent at {} refused {what}: {}",
                self.at(),
                value["error"].as_str().unwrap_or(text.trim())
            );
        }
        Ok(value)
    }
}

/// A table: a header row and left-aligned columns two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A JSON field as table text: strings bare, absent or null as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) if text.is_empty() => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A time in milliseconds as RFC 3339, `-` when absent.
fn time_cell(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".to_owned(), files::format_time)
}

/// `key=value` pairs of a JSON object of tags, comma-separated.
fn tags_cell(value: &Value) -> String {
    let tags: Vec<String> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    if tags.is_empty() {
        "-".to_owned()
    } else {
        tags.join(",")
    }
}

/// The first `count` characters of a hex digest or key.
fn short(value: &Value, count: usize) -> String {
    value
        .as_str()
        .map_or_else(|| "-".to_owned(), |text| text.chars().take(count).collect())
}

/// Text shortened to `max` characters, on one line.
fn brief(value: &Value, max: usize) -> String {
    let text = cell(value).replace(['\n', '\r'], " ");
    if text.chars().count() <= max {
        return text;
    }
    text.chars().take(max - 1).collect::<String>() + "…"
}

fn list<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value[field].as_array().map_or(&[], Vec::as_slice)
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

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

/// What `fleetmesh approve` is given.
pub struct Approve<'a> {
    /// The agent.
    pub agent: &'a AgentArgs,
    /// The id (or a prefix of it) `fleetmesh remediations` shows.
    pub id: &'a str,
    /// The operator's key file; it must hold `approve`.
    pub key: &'a Path,
    /// How long the approval holds.
    pub valid_for: Duration,
}

/// `fleetmesh approve`: signs an approval of the remediation waiting
/// under `id` with an `approve` key and hands it to the agent, which
/// verifies it as one from a peer and spreads it.
pub fn approve(args: &Approve<'_>) -> anyhow::Result<()> {
    if args.valid_for.is_zero() || args.valid_for > APPROVAL_MAX {
        bail!(
            "--for must be more than 0 s and at most {} days",
            APPROVAL_MAX.as_secs() / 86_400
        );
    }
    let wanted = args.id.to_ascii_lowercase();
    if wanted.len() < ID_PREFIX_MIN || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "{:?} is not an approval id: give at least {ID_PREFIX_MIN} hex digits of the APPROVE ID `fleetmesh remediations` shows",
            args.id
        );
    }
    let keypair = formats::load_key(args.key)?;
    let client = Client::new(args.agent)?;
    let answer = client.get("/v1/approvals")?;
    let matching: Vec<&Value> = list(&answer, "approvals")
        .iter()
        .filter(|waiting| {
            waiting["id"]
                .as_str()
                .is_some_and(|id| id.starts_with(&wanted))
        })
        .collect();
    let waiting = match matching.as_slice() {
        [one] => *one,
        [] => bail!(
            "nothing waits for an approval under id {} on the agent at {}: `fleetmesh remediations --admin {}` lists what does (it may have been approved, skipped or finished meanwhile)",
            args.id,
            client.at(),
            client.at()
        ),
        _ => bail!(
            "{} remediations wait under ids starting {}: give more digits",
            matching.len(),
            args.id
        ),
    };
    // The role is checked here against the trust the agent runs, so the
    // operator learns which role is missing before anything is signed;
    // the agent checks it again when it merges the record.
    let chain = formats::parse_chain(&client.get("/v1/trust")?.to_string())
        .context("the trust chain the agent serves")?;
    let trust_version = chain.head().doc.version;
    operator::require_role(&chain, &keypair.public(), Role::Approve, trust_version)?;
    let target = files::parse_key(
        waiting["target"].as_str().unwrap_or_default(),
        "the agent's target key",
    )?;
    let now_millis = answer["now_millis"]
        .as_u64()
        .context("the agent's answer lacks its clock (`now_millis`)")?;
    let expires_millis = now_millis.saturating_add(args.valid_for.as_millis() as u64);
    let record = LedgerRecord {
        key: IdempotencyKey {
            rule: cell(&waiting["rule"]),
            target,
            incident: waiting["incident"].as_str().unwrap_or_default().to_owned(),
        },
        kind: RecordKind::Approval {
            approver: keypair.public(),
            expires_millis,
            trust_version,
        },
        author: keypair.public(),
        at: Hlc {
            millis: now_millis,
            counter: 0,
        },
    };
    let signed = SignedRecord::sign(record, &keypair);
    let file = formats::ApprovalJson::new(&signed).context("an approval record")?;
    let body = files::to_json(formats::APPROVAL_FORMAT, &file)?;
    client.post(
        "/v1/publish",
        String::from_utf8_lossy(&body).into_owned(),
        "the approval",
    )?;
    println!(
        "approved {} on {} ({}), valid until {}",
        cell(&waiting["rule"]),
        cell(&waiting["target_name"]),
        cell(&waiting["incident"]),
        files::format_time(expires_millis)
    );
    Ok(())
}

/// `fleetmesh leave`: the agent leaves the fleet and stops; waits until
/// it no longer answers.
pub fn leave(agent: &AgentArgs) -> anyhow::Result<()> {
    let client = Client::new(agent)?;
    let info = client.get("/v1/agent")?;
    client.post("/v1/leave", "{}".to_owned(), "to leave")?;
    println!(
        "agent {} ({}) at {} is leaving the fleet",
        cell(&info["name"]),
        cell(&info["id"]),
        client.at()
    );
    let polls = LEAVE_WAIT.as_millis() / LEAVE_POLL.as_millis();
    for _ in 0..polls {
        std::thread::sleep(LEAVE_POLL);
        if client.call("/healthz", None).is_err() {
            println!("it stopped");
            return Ok(());
        }
    }
    bail!(
        "the agent at {} still answers {} s after it was asked to leave: look at its log; stop it with SIGTERM",
        client.at(),
        LEAVE_WAIT.as_secs()
    )
}

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
                "void"
            } else if release["content"].is_null() {
                "waiting for its changes"
            } else {
                "running"
            };
            vec![
                cell(&release["doc"]),
                cell(&release["version"]),
                short(&release["digest"], 16),
                time_cell(&release["expires_millis"]),
                state.to_owned(),
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
    let (at, _, releases) = releases_of(target, doc)?;
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
        bail!(
            "the agent runs release {} of {} but does not hold all its changes yet (it is catching up, or they were never published): publish them with `fleetmesh config publish`",
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

/// Parses `90s`, `30m`, `2h`, `1d` (a number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 2h or 1d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 90s, 30m, 2h or 1d"
            ));
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_and_shows_absent_values_as_a_dash() {
        let rows = vec![
            vec!["node-10".to_owned(), cell(&Value::Null)],
            vec!["n".to_owned(), cell(&Value::from("alive"))],
        ];
        assert_eq!(
            table(&["NAME", "STATE"], &rows),
            "NAME     STATE\nnode-10  -\nn        alive\n"
        );
    }

    #[test]
    fn durations_take_a_unit_and_refuse_anything_else() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
