//! Ledger records as the admin API shows them: each record's JSON, and
//! the emergency stops in force (`docs/remediation.md`, "Emergency
//! stop"), which `GET /v1/remediations` lists first and `/metrics` counts.

use fleetmesh_crdt::{ActiveStop, PublicKey, RecordKind, active_stops};
use fleetmesh_node::Agent;
use serde_json::{Value, json};

use crate::files;

/// The stops in force at `now_millis`, those that apply to this agent
/// first, each with `applies`.
pub fn stops(agent: &Agent, now_millis: u64) -> Value {
    let mut stops: Vec<(bool, ActiveStop)> = active_stops(agent.replicas().ledger(), now_millis)
        .into_iter()
        .map(|stop| (applies(agent, &stop), stop))
        .collect();
    stops.sort_by_key(|(applies, stop)| (!applies, stop.at));
    let stops: Vec<Value> = stops
        .into_iter()
        .map(|(applies, stop)| {
            json!({
                "id": stop.digest.to_hex(),
                "applies": applies,
                "stopper": stop.stopper.to_hex(),
                "selector": stop.selector,
                "reason": stop.reason,
                "signed_millis": stop.at.millis,
                "expires_millis": stop.expires_millis,
                "expires": files::format_time(stop.expires_millis),
            })
        })
        .collect();
    Value::Array(stops)
}

/// How many stops in force at `now_millis` apply to this agent (the
/// `/metrics` gauge).
pub fn stops_applying(agent: &Agent, now_millis: u64) -> usize {
    active_stops(agent.replicas().ledger(), now_millis)
        .iter()
        .filter(|stop| applies(agent, stop))
        .count()
}

fn applies(agent: &Agent, stop: &ActiveStop) -> bool {
    let unknown = Default::default();
    let meta = agent.members().meta(agent.id());
    stop.applies_to(meta.map_or(&unknown, |meta| &**meta))
}

pub(crate) fn record_json(kind: &RecordKind) -> Value {
    let key = |key: &PublicKey| key.to_hex();
    match kind {
        RecordKind::Intent {
            scope,
            epoch,
            action,
            planner,
            dry_run,
            deadline_millis,
        } => json!({
            "kind": "intent", "scope": scope, "epoch": epoch, "action": action,
            "planner": key(planner), "dry_run": dry_run, "deadline_millis": deadline_millis,
        }),
        RecordKind::Request { scope, action } => {
            json!({ "kind": "request", "scope": scope, "action": action })
        }
        RecordKind::Started { epoch } => json!({ "kind": "started", "epoch": epoch }),
        RecordKind::Outcome {
            success,
            exit_code,
            detail,
        } => json!({
            "kind": "outcome", "success": success, "exit_code": exit_code, "detail": detail,
        }),
        RecordKind::Skipped { reason } => json!({ "kind": "skipped", "reason": reason }),
        RecordKind::NeedsHuman { reason } => json!({ "kind": "needs-human", "reason": reason }),
        RecordKind::Approval {
            approver,
            expires_millis,
            trust_version,
        } => json!({
            "kind": "approval", "approver": key(approver),
            "expires_millis": expires_millis, "trust_version": trust_version,
        }),
        RecordKind::Stop {
            stopper,
            selector,
            expires_millis,
            reason,
            trust_version,
        } => json!({
            "kind": "stop", "stopper": key(stopper), "selector": selector,
            "expires_millis": expires_millis, "reason": reason, "trust_version": trust_version,
        }),
        RecordKind::Resume {
            stopper,
            selector,
            trust_version,
        } => json!({
            "kind": "resume", "stopper": key(stopper), "selector": selector,
            "trust_version": trust_version,
        }),
        RecordKind::Attest {
            release,
            wave,
            wave_hosts,
            passed,
            reason,
        } => json!({
            "kind": "attest", "release": release.to_hex(), "wave": wave,
            "wave_hosts": wave_hosts, "passed": passed, "reason": reason,
        }),
    }
}
