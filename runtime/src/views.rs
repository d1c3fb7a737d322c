//! The admin API's views (`GET /v1/...`): JSON built from the core's
//! [`Agent`] and the little the runtime knows around it ([`Local`]), as
//! pure functions, so each is tested against an agent built in the test
//! and none can change what it shows.

use std::collections::BTreeMap;
use std::path::Path;

use fleetmesh_crdt::config::rollout::Verdict;
use fleetmesh_crdt::{
    Digest, HealthState, IdempotencyKey, LeaseKind, MemberState, NodeId, PublicKey, RecordKind,
    Replica, SignedRecord, SignedRelease, is_stop_record,
};
use fleetmesh_node::Entry;
use fleetmesh_node::{Agent, Instant, Policy, PolicyRefusal, RolloutView};
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};

use crate::files;
use crate::formats;
use crate::records::{self, record_json};

/// What `GET /v1/agent` shows besides the core's state: the runtime's own.
#[derive(Clone, Copy, Debug)]
pub struct Local<'a> {
    /// The agent's libp2p peer id.
    pub peer: &'a PeerId,
    /// The addresses its listeners bound.
    pub listening: &'a [Multiaddr],
    /// Whether it is leaving the fleet.
    pub leaving: bool,
    /// How long it has run.
    pub uptime_millis: u64,
    /// Its wall clock, in Unix milliseconds.
    pub now_millis: u64,
    /// Its state directory.
    pub state_dir: &'a Path,
}

/// Why a published release is stale, if it is: this agent already
/// runs a higher version of its document, or another release of the
/// same version. Agents only move forward, so such a release would be
/// held and never run; an operator publishing it made a mistake worth
/// saying. The release this agent runs may be published again (after a
/// whole fleet restarted, say).
pub fn stale(agent: &Agent, entry: &Entry) -> Option<String> {
    let Entry::Release(release) = entry else {
        return None;
    };
    let body = &release.release;
    let applied = agent.applied_release(&body.doc)?;
    let behind = body.version < applied.version
        || (body.version == applied.version && body.digest() != applied.digest && !applied.void);
    behind.then(|| {
        format!(
            "release {} version {} is stale: this agent already runs version {} of {}; make release {} instead (`fleetmesh config release --version {}`)",
            body.doc,
            body.version,
            applied.version,
            body.doc,
            applied.version + 1,
            applied.version + 1
        )
    })
}

/// `GET /v1/trust`: the trust chain this agent runs, as the file an
/// operator would hold; `None` if it cannot be written out.
pub fn trust(agent: &Agent) -> Option<Value> {
    formats::chain_json(agent.replicas().trust())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
}

/// `GET /v1/remediations`: the ledger grouped per remediation.
/// The emergency stops in force come first (`stops`, [`records::stops`]).
pub fn remediations(agent: &Agent, now_millis: u64) -> Value {
    json!({
        "stops": records::stops(agent, now_millis),
        "remediations": remediations_of(agent, now_millis).iter().map(Remediation::json).collect::<Vec<_>>(),
    })
}

/// The ledger grouped per remediation (rule, target, incident), oldest
/// first.
fn remediations_of(agent: &Agent, now_millis: u64) -> Vec<Remediation> {
    let mut grouped: BTreeMap<&IdempotencyKey, Vec<&SignedRecord>> = BTreeMap::new();
    // Stops and resumes are about all automation, not one remediation.
    let ledger = agent.replicas().ledger();
    for signed in ledger
        .iter()
        .filter(|signed| !is_stop_record(&signed.record.kind))
    {
        grouped.entry(&signed.record.key).or_default().push(signed);
    }
    let mut all: Vec<Remediation> = grouped
        .into_iter()
        .map(|(key, records)| {
            let name = name_of(agent, key.target.node_id());
            Remediation::of(key, name, &records, now_millis, agent.policy())
        })
        .collect();
    all.sort_by_key(|remediation| remediation.first_millis);
    all
}

/// `GET /v1/approvals`: the remediations waiting for an operator's
/// approval, and the agent's clock (an approval's expiry counts from it).
pub fn approvals(agent: &Agent, now_millis: u64) -> Value {
    let waiting: Vec<Value> = remediations_of(agent, now_millis)
        .iter()
        .filter(|remediation| remediation.awaits_approval.is_some())
        .map(Remediation::json)
        .collect();
    json!({ "approvals": waiting, "now_millis": now_millis })
}

/// `GET /v1/config/history`: every release held, sorted by document,
/// version and digest, which one runs, and the quarantined config keys.
pub fn config_history(agent: &Agent) -> Value {
    let log = agent.replicas().releases();
    let mut releases: Vec<SignedRelease> = log
        .versions()
        .iter()
        .filter_map(|(key, _)| log.entry(key))
        .collect();
    releases.sort_by(|a, b| {
        (&a.release.doc, a.release.version, a.release.digest()).cmp(&(
            &b.release.doc,
            b.release.version,
            b.release.digest(),
        ))
    });
    let releases: Vec<Value> = releases
        .iter()
        .map(|signed| {
            let body = &signed.release;
            let digest = body.digest();
            let applied = agent.applied_release(&body.doc);
            json!({
                "doc": body.doc,
                "version": body.version,
                "digest": digest.to_hex(),
                "trust_version": body.trust_version,
                "expires_millis": body.expires_millis,
                "signers": signed.signatures.keys().map(PublicKey::to_hex).collect::<Vec<_>>(),
                "running": applied.is_some_and(|applied| applied.digest == digest),
            })
        })
        .collect();
    json!({ "releases": releases, "quarantined": quarantined(agent) })
}

/// Config keys this agent refuses for equivocating or for signing a
/// change automerge cannot apply: the operator's cue to revoke them.
fn quarantined(agent: &Agent) -> Vec<String> {
    agent
        .replicas()
        .config()
        .quarantined()
        .map(PublicKey::to_hex)
        .collect()
}

/// `GET /v1/agent`: who this agent is, its version and wire protocol, its
/// fleet and trust version, its addresses, members by state, the releases
/// it runs, safe mode and stops, uptime and clock (`fleetmesh info`).
pub fn info(agent: &Agent, now: Instant, local: &Local<'_>) -> Value {
    let trust = agent.replicas().trust();
    let me = agent.members().meta(agent.id());
    json!({
        "id": agent.id().to_string(),
        "name": name_of(agent, agent.id()),
        "key": key_of(agent, agent.id()),
        "peer": local.peer.to_string(),
        "incarnation": agent.incarnation(),
        "fleet": trust.fleet_id().to_hex(),
        "fleet_name": trust.head().doc.fleet,
        "trust_version": trust.head().doc.version,
        "tags": me.map(|meta| meta.tags.clone()).unwrap_or_default(),
        "addrs": me.map(|meta| meta.addrs.clone()).unwrap_or_default(),
        "listening": local.listening.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "safe_mode": agent.is_safe_mode(now),
        "policy_loaded": agent.policy_loaded(),
        "policy_refused": agent.policy_refused().map(PolicyRefusal::reason),
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": fleetmesh_node::wire::PROTOCOL_VERSION,
        "members": member_counts(agent).into_iter().collect::<BTreeMap<_, _>>(),
        "releases": agent
            .applied_releases()
            .iter()
            .map(|(doc, applied)| (doc.clone(), applied.version))
            .collect::<BTreeMap<_, _>>(),
        "stops_applying": records::stops_applying(agent, local.now_millis),
        "leaving": local.leaving,
        "uptime_millis": local.uptime_millis,
        "now_millis": local.now_millis,
        "now": files::format_time(local.now_millis),
        "state_dir": local.state_dir.display().to_string(),
    })
}

/// The key in `node`'s certificate, if this agent holds it.
fn key_of(agent: &Agent, node: NodeId) -> Option<String> {
    agent
        .replicas()
        .certs()
        .get(node)
        .map(|cert| cert.body.node_key.to_hex())
}

/// The name in `node`'s certificate, if this agent holds it.
pub(crate) fn name_of(agent: &Agent, node: NodeId) -> Option<String> {
    agent
        .replicas()
        .certs()
        .get(node)
        .map(|cert| cert.body.name.clone())
}

/// `GET /v1/members`: the member table, with whether each member has a
/// connected peer (`is_connected`).
pub fn members(agent: &Agent, is_connected: impl Fn(NodeId) -> bool) -> Value {
    let table = agent.members();
    let members: Vec<Value> = (0..table.len())
        .map(|at| {
            let member = table.member_at(at);
            let cert = agent.replicas().certs().get(member.id);
            let meta = table.meta(member.id);
            json!({
                "id": member.id.to_string(),
                "name": cert.map(|cert| cert.body.name.clone()),
                "key": cert.map(|cert| cert.body.node_key.to_hex()),
                "state": state_name(member.state()),
                "incarnation": member.incarnation(),
                "tags": meta.map(|meta| meta.tags.clone()).unwrap_or_default(),
                "addrs": meta.map(|meta| meta.addrs.clone()).unwrap_or_default(),
                "connected": is_connected(member.id),
                "self": member.id == agent.id(),
            })
        })
        .collect();
    json!({ "members": members })
}

/// `GET /v1/health`: every health report held.
pub fn health(agent: &Agent) -> Value {
    let reports: Vec<Value> = agent
        .replicas()
        .health()
        .iter()
        .map(|signed| {
            let report = &signed.report;
            json!({
                "node": report.node.node_id().to_string(),
                "name": name_of(agent, report.node.node_id()),
                "key": report.node.to_hex(),
                "check": report.check,
                "state": match report.state {
                    HealthState::Healthy => "healthy",
                    HealthState::Unhealthy => "unhealthy",
                    HealthState::Unknown => "unknown",
                },
                "at_millis": report.at.millis,
                "detail": report.detail,
                "cause": report.cause.map(|cause| cause.to_hex()),
            })
        })
        .collect();
    json!({ "reports": reports })
}

/// `GET /v1/releases`: the release run per document, with its content and,
/// for a staged release it runs or waits for, where the rollout stands.
pub fn releases(agent: &Agent, now: Instant) -> Value {
    let releases: Vec<Value> = agent
        .applied_releases()
        .values()
        .map(|applied| {
            let reverted_to = applied.reverted_to.and_then(|digest| {
                agent
                    .replicas()
                    .releases()
                    .entry(&digest)
                    .map(|release| release.release.version)
            });
            json!({
                "doc": applied.doc,
                "version": applied.version,
                "digest": applied.digest.to_hex(),
                "expires_millis": applied.expires_millis,
                "void": applied.void,
                "reverted_to": reverted_to,
                "rollout": agent.rollout_view(now, &applied.doc).map(|view| rollout(&view)),
                "policy_refused": agent.policy_refused()
                    .filter(|refused| refused.digest == applied.digest)
                    .map(PolicyRefusal::reason),
                "content": agent.released_config(&applied.doc)
                    .and_then(|value| serde_json::to_value(value).ok()),
            })
        })
        .collect();
    json!({ "releases": releases, "quarantined": quarantined(agent) })
}

/// A rollout as `GET /v1/releases` shows it.
fn rollout(view: &RolloutView) -> Value {
    let waves: Vec<Value> = view
        .waves
        .iter()
        .enumerate()
        .map(|(index, wave)| {
            json!({
                "wave": index,
                "hosts": wave.tally.hosts,
                "passed": wave.tally.passed,
                "failed": wave.tally.failed,
                "verdict": match wave.verdict {
                    Verdict::Passed => "passed",
                    Verdict::Failed => "failed",
                    Verdict::Pending if index < view.progress.open => "open",
                    Verdict::Pending => "waiting",
                },
                "bake_millis": wave.bake_millis,
            })
        })
        .collect();
    json!({
        "version": view.version,
        "digest": view.digest.to_hex(),
        "revert_to": view.revert_to,
        "open_waves": view.progress.open,
        "failed_wave": view.progress.failed,
        "own_wave": view.own_wave,
        "bake_left_millis": view.bake_left_millis,
        "waves": waves,
    })
}

/// `GET /v1/leases`: the lease table, with who backs each lease and
/// whether this agent holds it at `now`.
pub fn leases(agent: &Agent, now: Instant) -> Value {
    // The runtime's instants are nanoseconds since the Unix epoch, the
    // lease stamps HLC milliseconds of the same clock (`crate::clock`).
    let now_millis = now.0 / 1_000_000;
    let leases: Vec<Value> = agent
        .replicas()
        .leases()
        .iter()
        .map(|signed| {
            let lease = &signed.lease;
            // Who backs the lease, so an operator can see which voters
            // granted it (a quorum lease) or that none did.
            let (voters, granted_by): (Vec<String>, Vec<String>) = match &lease.kind {
                LeaseKind::Quorum { voters, grants } => (
                    voters.iter().map(PublicKey::to_hex).collect(),
                    grants
                        .iter()
                        .map(|grant| grant.body.voter.to_hex())
                        .collect(),
                ),
                LeaseKind::Component => (Vec::new(), Vec::new()),
            };
            json!({
                "scope": lease.scope,
                "voters": voters,
                "granted_by": granted_by,
                "epoch": lease.epoch,
                "holder": lease.holder.to_hex(),
                "holder_id": lease.holder.node_id().to_string(),
                "holder_name": name_of(agent, lease.holder.node_id()),
                "granted_at_millis": lease.granted_at.millis,
                "expires_at_millis": lease.expires_at_millis(),
                // The claim the table holds is the holder's last published
                // one: renewals between publications are not in it.
                "claim_expired": lease.expires_at_millis() <= now_millis,
                "held_here": agent.holds(now, &lease.scope) == Some(lease.epoch),
                "budget_in_use": agent.budget_in_use(now, &lease.scope),
            })
        })
        .collect();
    json!({ "leases": leases })
}

/// `GET /v1/ledger`: every ledger record.
pub fn ledger(agent: &Agent) -> Value {
    let records: Vec<Value> = agent
        .replicas()
        .ledger()
        .iter()
        .map(|signed| {
            let record = &signed.record;
            json!({
                "digest": signed.digest().to_hex(),
                "rule": record.key.rule,
                "target": record.key.target.to_hex(),
                "target_id": record.key.target.node_id().to_string(),
                "incident": record.key.incident,
                "author": record.author.to_hex(),
                "at_millis": record.at.millis,
                "record": record_json(&record.kind),
            })
        })
        .collect();
    json!({ "records": records })
}

/// One remediation as the ledger tells it: every record about one
/// (rule, target, incident).
struct Remediation {
    key: IdempotencyKey,
    target_name: Option<String>,
    first_millis: u64,
    last_millis: u64,
    records: usize,
    /// Where it stands, in one word.
    status: &'static str,
    /// The action planned or asked for, if a record names it.
    action: Option<String>,
    /// The outcome's detail or the rail's reason, if any.
    detail: Option<String>,
    approved: bool,
    /// The record an approval would answer (an intent of a step that waits
    /// for one, or a needs-human record), if it still waits: the id
    /// `fleetmesh approve` takes.
    awaits_approval: Option<Digest>,
}

impl Remediation {
    fn of(
        key: &IdempotencyKey,
        target_name: Option<String>,
        records: &[&SignedRecord],
        now_millis: u64,
        policy: Option<&Policy>,
    ) -> Remediation {
        let find = |wanted: fn(&RecordKind) -> bool| {
            records
                .iter()
                .find(|signed| wanted(&signed.record.kind))
                .copied()
        };
        let outcome = find(|kind| matches!(kind, RecordKind::Outcome { .. }));
        let started = find(|kind| matches!(kind, RecordKind::Started { .. }));
        let skipped = find(|kind| matches!(kind, RecordKind::Skipped { .. }));
        let needs_human = find(|kind| matches!(kind, RecordKind::NeedsHuman { .. }));
        let intent = find(|kind| matches!(kind, RecordKind::Intent { .. }));
        let request = find(|kind| matches!(kind, RecordKind::Request { .. }));
        let approved = records.iter().any(|signed| {
            matches!(signed.record.kind, RecordKind::Approval { expires_millis, .. } if expires_millis > now_millis)
        });
        let action = records.iter().find_map(|signed| match &signed.record.kind {
            RecordKind::Intent { action, .. } | RecordKind::Request { action, .. } => {
                Some(action.clone())
            }
            _ => None,
        });
        // The detail of the record that decides the status.
        let mut detail = [outcome, skipped, needs_human].into_iter().flatten();
        let detail = detail.find_map(|signed| match &signed.record.kind {
            RecordKind::Outcome { detail, .. } => Some(detail.clone()),
            RecordKind::Skipped { reason } | RecordKind::NeedsHuman { reason } => {
                Some(reason.clone())
            }
            _ => None,
        });
        let dry_run = intent.is_some_and(|signed| {
            matches!(signed.record.kind, RecordKind::Intent { dry_run: true, .. })
        });
        // A step's intent waits for an approval when the policy says the
        // step needs one; with no policy loaded the agent cannot tell, so
        // it lists it rather than hide it.
        let gated = |action: &str| {
            policy
                .and_then(|policy| policy.rules.get(&key.rule))
                .is_none_or(|rule| {
                    rule.steps
                        .iter()
                        .any(|step| step.action == action && step.approval)
                })
        };
        let status = match (outcome, started, skipped, needs_human, intent, request) {
            (Some(signed), ..) => match signed.record.kind {
                RecordKind::Outcome { success: true, .. } => "succeeded",
                _ => "failed",
            },
            (None, Some(_), ..) => "running",
            (None, None, Some(_), ..) => "skipped",
            (None, None, None, Some(_), ..) if approved => "approved",
            (None, None, None, Some(_), ..) => "needs-human",
            (None, None, None, None, Some(_), _) if dry_run => "dry-run",
            (None, None, None, None, Some(_), _) => "planned",
            (None, None, None, None, None, Some(_)) => "requested",
            (None, None, None, None, None, None) if approved => "approved",
            (None, None, None, None, None, None) => "lapsed",
        };
        let awaits_approval = match status {
            _ if approved => None,
            "needs-human" => needs_human,
            "planned" if action.as_deref().is_some_and(gated) => intent,
            _ => None,
        }
        .map(|signed| signed.digest());
        let status = match status {
            "planned" if awaits_approval.is_some() => "awaiting-approval",
            other => other,
        };
        let times = records.iter().map(|signed| signed.record.at.millis);
        Remediation {
            key: key.clone(),
            target_name,
            first_millis: times.clone().min().unwrap_or(0),
            last_millis: times.max().unwrap_or(0),
            records: records.len(),
            status,
            action,
            detail,
            approved,
            awaits_approval,
        }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.awaits_approval.map(|digest| digest.to_hex()),
            "rule": self.key.rule,
            "target": self.key.target.to_hex(),
            "target_id": self.key.target.node_id().to_string(),
            "target_name": self.target_name,
            "incident": self.key.incident,
            "status": self.status,
            "action": self.action,
            "detail": self.detail,
            "approved": self.approved,
            "records": self.records,
            "first_at_millis": self.first_millis,
            "last_at_millis": self.last_millis,
        })
    }
}

/// Members per state, in the order [`state_name`] lists the states: the
/// metrics' member gauges.
pub fn member_counts(agent: &Agent) -> Vec<(&'static str, usize)> {
    let table = agent.members();
    let mut counts = [0usize; 4];
    for at in 0..table.len() {
        counts[state_index(table.member_at(at).state())] += 1;
    }
    [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ]
    .into_iter()
    .map(|state| (state_name(state), counts[state_index(state)]))
    .collect()
}

/// Disruptive remediations in flight per `remediate:` lease scope at
/// `now`: the metrics' budget gauges.
pub fn budgets_in_use(agent: &Agent, now: Instant) -> Vec<(String, usize)> {
    agent
        .replicas()
        .leases()
        .iter()
        .filter(|signed| signed.lease.scope.starts_with("remediate:"))
        .map(|signed| {
            let scope = signed.lease.scope.clone();
            let used = agent.budget_in_use(now, &scope);
            (scope, used)
        })
        .collect()
}

fn state_index(state: MemberState) -> usize {
    match state {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}

/// A member state as the admin API and logs name it.
pub fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

#[cfg(test)]
mod tests;
