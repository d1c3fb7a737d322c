//! The admin API's requests as the driver answers them: views from
//! [`crate::views`], metrics, publishing signed files, and leaving.

use std::sync::atomic::Ordering;

use anyhow::Context;
use fleetmesh_crdt::ConfigEntry;
use fleetmesh_node::Entry;
use serde_json::{Value, json};

use super::{Driver, LEAVE_GRACE};
use crate::admin::{self, Answer, Query};
use crate::files;
use crate::formats;
use crate::metrics::{self, Gauges};
use crate::records;
use crate::views;

impl Driver {
    /// Answers one admin API request; a publish's answer waits for the
    /// drain that journals it.
    pub(super) fn answer(&mut self, request: admin::Request) {
        self.stats.admin_requests += 1;
        let publish = matches!(request.query, Query::Publish(_));
        let answer = match request.query {
            Query::Alive => Answer::Alive,
            Query::Agent => Answer::Json(self.info()),
            Query::Members => Answer::Json(views::members(&self.agent, |node| {
                self.peers.is_connected(node)
            })),
            Query::Health => Answer::Json(views::health(&self.agent)),
            Query::Releases => Answer::Json(views::releases(&self.agent, self.clock.now())),
            Query::Leases => Answer::Json(views::leases(&self.agent, self.clock.now())),
            Query::Ledger => Answer::Json(views::ledger(&self.agent)),
            Query::Remediations => {
                Answer::Json(views::remediations(&self.agent, self.clock.now_millis()))
            }
            Query::Approvals => {
                Answer::Json(views::approvals(&self.agent, self.clock.now_millis()))
            }
            Query::ConfigHistory => Answer::Json(views::config_history(&self.agent)),
            Query::Trust => match views::trust(&self.agent) {
                Some(chain) => Answer::Json(chain),
                None => {
                    Answer::Refused(json!({ "error": "the trust chain could not be written out" }))
                }
            },
            Query::Metrics => Answer::Metrics(self.metrics()),
            Query::Publish(text) => self.publish(&text),
            Query::Leave => {
                self.leave();
                Answer::Json(json!({
                    "leaving": true,
                    "stops_in_millis": LEAVE_GRACE.as_millis() as u64,
                }))
            }
        };
        if publish {
            // Acknowledged means durable: answered after the drain that
            // journals what it merged ([`Driver::acknowledge`]).
            self.acknowledgements.push((request.reply, answer));
        } else {
            let _ = request.reply.send(answer);
        }
    }

    /// Announces that this agent leaves and stops the loop after
    /// [`LEAVE_GRACE`]; asked again while leaving, changes nothing.
    pub(super) fn leave(&mut self) {
        if self.leaving.is_some() {
            return;
        }
        tracing::info!("leaving the fleet");
        let now = self.clock.now();
        self.agent.leave(now);
        self.leaving = Some(tokio::time::Instant::now() + LEAVE_GRACE);
    }

    /// Merges the entries of a signed file (trust chain, config change or
    /// release) and spreads those that verify.
    fn publish(&mut self, text: &str) -> Answer {
        let entries = match entries_of(text) {
            Ok(entries) => entries,
            Err(error) => {
                return Answer::Refused(json!({ "error": format!("the file {error:#}") }));
            }
        };
        let now = self.clock.now();
        let mut refused = Vec::new();
        let count = entries.len();
        for entry in entries {
            if let Some(stale) = views::stale(&self.agent, &entry) {
                refused.push(stale);
                continue;
            }
            if let Err(error) = self.agent.publish(now, entry) {
                refused.push(error.to_string());
            }
        }
        if refused.is_empty() {
            tracing::info!(entries = count, "published");
            Answer::Json(json!({ "published": count }))
        } else {
            Answer::Refused(json!({
                "error": format!("{} of {count} entries refused: {}", refused.len(), refused.join("; ")),
                "published": count - refused.len(),
            }))
        }
    }

    /// `GET /v1/agent`, with what the runtime knows around the agent.
    fn info(&self) -> Value {
        let local = views::Local {
            peer: self.swarm.local_peer_id(),
            listening: &self.listening,
            leaving: self.leaving.is_some(),
            uptime_millis: self.started_at.elapsed().as_millis() as u64,
            now_millis: self.clock.now_millis(),
            state_dir: self.state.path(),
        };
        views::info(&self.agent, self.clock.now(), &local)
    }

    /// `GET /metrics`: the core's counters, the runtime's, and gauges of
    /// both.
    fn metrics(&mut self) -> String {
        let now = self.clock.now();
        let admin = &self.admin;
        self.stats.admin_busy = admin.busy.load(Ordering::Relaxed);
        self.stats.admin_requests_refused = admin.requests_refused.load(Ordering::Relaxed);
        self.stats.admin_connections_refused = admin.connections_refused.load(Ordering::Relaxed);
        self.stats.admin_connections_timed_out =
            admin.connections_timed_out.load(Ordering::Relaxed);
        self.stats.admin_accept_errors = admin.accept_errors.load(Ordering::Relaxed);
        let counters = &self.wire_counters;
        self.stats.messages_oversized = counters.oversized.load(Ordering::Relaxed);
        self.stats.messages_unadmitted_oversized =
            counters.unadmitted_oversized.load(Ordering::Relaxed);
        let gauges = Gauges {
            members: views::member_counts(&self.agent),
            broadcast_queue: self.agent.queued_broadcasts(),
            push_queue: self.agent.replicas().push_len(),
            outbound_in_flight: self.peers.in_flight(),
            outbound_bytes: self.peers.queued_bytes(),
            tasks_running: self.tasks.len(),
            connections_unadmitted: self.peers.unadmitted(),
            connections: self
                .swarm
                .network_info()
                .connection_counters()
                .num_established() as usize,
            admin_connections: usize::try_from(admin.connections_open.load(Ordering::Relaxed))
                .unwrap_or(usize::MAX),
            budget_in_use: views::budgets_in_use(&self.agent, now),
            safe_mode: self.agent.is_safe_mode(now),
            stops_applying: records::stops_applying(&self.agent, self.clock.now_millis()),
            stops_evicted: self.agent.replicas().ledger().stops_evicted(),
            incarnation: u64::from(self.agent.incarnation()),
            trust_version: self.agent.replicas().trust().head().doc.version,
            releases: self
                .agent
                .applied_releases()
                .values()
                .map(|applied| (applied.doc.clone(), applied.version))
                .collect(),
        };
        metrics::render(
            self.agent.stats(),
            &self.agent.replicas().stats(),
            &self.stats,
            &gauges,
        )
    }
}

/// The entries a signed file holds, by its `format`: how the admin API
/// reads a `POST /v1/publish` body (public for the fuzz target
/// `admin_body`).
pub fn entries_of(text: &str) -> anyhow::Result<Vec<Entry>> {
    let format = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| value.get("format")?.as_str().map(str::to_owned));
    match format.as_deref() {
        Some(formats::CHAIN_FORMAT) => Ok(formats::parse_chain(text)?
            .chain()
            .map(|doc| Entry::Trust(Box::new(doc.clone())))
            .collect()),
        Some(formats::CHANGE_FORMAT) => {
            let json: formats::ChangeJson =
                files::parse_json(text, formats::CHANGE_FORMAT, "config change")?;
            let change = json.decode().context("holds bad data")?;
            Ok(vec![Entry::Config(Box::new(ConfigEntry::Change(change)))])
        }
        Some(formats::APPROVAL_FORMAT) => {
            let json: formats::ApprovalJson =
                files::parse_json(text, formats::APPROVAL_FORMAT, "approval")?;
            Ok(vec![Entry::Ledger(Box::new(json.decode()?))])
        }
        Some(formats::STOP_FORMAT) => {
            let json: formats::StopJson =
                files::parse_json(text, formats::STOP_FORMAT, "stop or resume")?;
            Ok(vec![Entry::Ledger(Box::new(json.decode()?))])
        }
        Some(formats::RELEASE_FORMAT) => {
            let json: formats::ReleaseJson =
                files::parse_json(text, formats::RELEASE_FORMAT, "config release")?;
            let release = json.decode().context("holds bad data")?;
            Ok(vec![Entry::Release(Box::new(release))])
        }
        _ => anyhow::bail!(
            "is not a trust chain, config change, config release, approval, or stop file (by its \"format\" field); publish the files `fleetmesh fleet`, `fleetmesh config`, `fleetmesh approve` and `fleetmesh stop` write"
        ),
    }
}
