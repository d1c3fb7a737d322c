//! `fleetmesh approve`: an operator's signed approval of a remediation
//! waiting for one, handed to the agent that lists it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use fleetmesh_crdt::{Hlc, IdempotencyKey, LedgerRecord, RecordKind, Role, SignedRecord};
use fleetmesh_runtime::{files, formats};
use serde_json::Value;

use super::table::{cell, list};
use super::{AgentArgs, Client};
use crate::operator;

/// Shortest approval id prefix taken: shorter ones match too much by
/// accident.
const ID_PREFIX_MIN: usize = 6;
/// Longest an approval may be valid for: an approval is a standing order
/// to the automation, and operators should look again before long.
const APPROVAL_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

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
    fn durations_take_a_unit_and_refuse_anything_else() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
