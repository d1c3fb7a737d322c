//! `fleetmesh stop` and `fleetmesh resume`: an operator's signed emergency
//! stop of all automation (fleet-wide or on the agents a selector names)
//! and its early end, handed to one agent, which verifies it, holds it and
//! rushes it to the fleet (`docs/remediation.md`, "Emergency stop").

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use fleetmesh_crdt::{Hlc, Role, SignedRecord, selector, sign_resume, sign_stop, stop_limits};
use fleetmesh_runtime::{files, formats};

use super::{AgentArgs, Client};
use crate::operator;

/// What `fleetmesh stop` and `fleetmesh resume` are given.
pub struct Stop<'a> {
    /// The agent to hand the record to.
    pub agent: &'a AgentArgs,
    /// `key=value[,key=value]`: the agents stopped (or resumed); `None`:
    /// every agent.
    pub select: Option<&'a str>,
    /// The operator's key file; it must hold `stop`.
    pub key: &'a Path,
}

/// `fleetmesh stop`: signs a stop lasting `lasting` for `reason` and hands
/// it to the agent.
pub fn stop(args: &Stop<'_>, lasting: Duration, reason: &str) -> anyhow::Result<()> {
    let most = Duration::from_millis(stop_limits::STOP_FOR_MAX_MILLIS);
    if lasting.is_zero() || lasting > most {
        bail!(
            "--for must be more than 0 s and at most {} days (a stop is lifted early with `fleetmesh resume`)",
            most.as_secs() / 86_400
        );
    }
    if reason.trim().is_empty() {
        bail!("--reason must say why, for the operators who read `fleetmesh remediations`");
    }
    let lasting_millis = lasting.as_millis() as u64;
    let (at, expires) = publish(args, "stopped", |keypair, selector, at, trust_version| {
        sign_stop(
            keypair,
            selector,
            at,
            lasting_millis,
            reason.to_owned(),
            trust_version,
        )
    })?;
    println!(
        "every automated action is stopped on {} from {} until {}; `fleetmesh resume` lifts it",
        scope(args.select),
        files::format_time(at),
        files::format_time(expires)
    );
    Ok(())
}

/// `fleetmesh resume`: signs a resume lifting the stops with the same
/// selector (every stop without one) and hands it to the agent.
pub fn resume(args: &Stop<'_>) -> anyhow::Result<()> {
    let (at, _) = publish(args, "resumed", |keypair, selector, at, trust_version| {
        sign_resume(keypair, selector, at, trust_version)
    })?;
    println!(
        "stops of {} signed before {} are lifted; automation goes on where it stood",
        scope(args.select),
        files::format_time(at)
    );
    Ok(())
}

fn scope(select: Option<&str>) -> String {
    select.map_or_else(
        || "every agent".to_owned(),
        |select| format!("the agents with {select}"),
    )
}

/// Signs the record `sign` makes at the agent's clock with a key holding
/// `stop` and posts it; returns when it was signed and when it lapses.
fn publish(
    args: &Stop<'_>,
    what: &str,
    sign: impl FnOnce(&fleetmesh_crdt::Keypair, BTreeMap<String, String>, Hlc, u64) -> SignedRecord,
) -> anyhow::Result<(u64, u64)> {
    let selector = match args.select {
        Some(text) => parse_selector(text)?,
        None => BTreeMap::new(),
    };
    let keypair = formats::load_key(args.key)?;
    let client = Client::new(args.agent)?;
    // The role is checked here against the trust the agent runs, so the
    // operator learns which role is missing before anything is signed;
    // the agent checks it again when it merges the record.
    let chain = formats::parse_chain(&client.get("/v1/trust")?.to_string())
        .context("the trust chain the agent serves")?;
    let trust_version = chain.head().doc.version;
    operator::require_role(&chain, &keypair.public(), Role::Stop, trust_version)?;
    let now_millis = client.get("/v1/agent")?["now_millis"]
        .as_u64()
        .context("the agent's answer lacks its clock (`now_millis`)")?;
    let at = Hlc {
        millis: now_millis,
        counter: 0,
    };
    let signed = sign(&keypair, selector, at, trust_version);
    let expires = match signed.record.kind {
        fleetmesh_crdt::RecordKind::Stop { expires_millis, .. } => expires_millis,
        _ => now_millis,
    };
    let file = formats::StopJson::new(&signed).context("a stop record")?;
    let body = files::to_json(formats::STOP_FORMAT, &file)?;
    client
        .post(
            "/v1/publish",
            String::from_utf8_lossy(&body).into_owned(),
            "the stop",
        )
        .with_context(|| format!("automation is not {what}"))?;
    Ok((now_millis, expires))
}

/// Parses `key=value[,key=value]` as the agents' tags are matched; an
/// empty selector is refused (leave `--select` out to stop every agent).
fn parse_selector(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let selector = selector::parse_selector(text).map_err(|problem| {
        anyhow::anyhow!("--select: {problem} (leave --select out to stop every agent)")
    })?;
    if selector.is_empty() {
        bail!("--select: `{text}` names no key=value (leave --select out to stop every agent)");
    }
    if selector.len() > stop_limits::SELECTOR_PAIRS_MAX {
        bail!(
            "--select: at most {} pairs",
            stop_limits::SELECTOR_PAIRS_MAX
        );
    }
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_key_value_pairs_and_nothing_else() {
        let selector = parse_selector("zone=a, role=web").unwrap();
        assert_eq!(selector.len(), 2);
        assert_eq!(selector["zone"], "a");
        assert!(parse_selector("zone").is_err());
        assert!(parse_selector("zone=").is_err());
        assert!(parse_selector("").is_err());
    }
}
