//! `/metrics`: the core's counters and the runtime's own, in the
//! Prometheus text format. Every drop anywhere in the agent has a counter
//! here; docs/operations.md ("Metrics") says what each means.
//!
//! The registry is built afresh from the counters at each scrape: the
//! counters live in the core (`Agent::stats`) and in [`RuntimeStats`],
//! which only the agent's own task touches, so there is nothing to keep
//! in sync between scrapes.

use fleetmesh_node::StateStats;
use fleetmesh_node::Stats;
use fleetmesh_node::{LeaseStats, RemedyStats, RolloutStats};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The runtime's counters: transport, executors, persistence, admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Messages handed to libp2p.
    pub transmits_sent: u64,
    /// Messages dropped: the peer's (or the whole) queue of
    /// unacknowledged bytes was full.
    pub transmits_dropped_queue_full: u64,
    /// Messages dropped: no key known for the recipient (no certificate
    /// yet), so it cannot be authenticated.
    pub transmits_unroutable: u64,
    /// Messages the peer never acknowledged: the dial failed.
    pub transmit_dial_failures: u64,
    /// Messages the peer never acknowledged: timed out.
    pub transmit_timeouts: u64,
    /// Messages the peer never acknowledged: connection closed, I/O error
    /// or protocol not supported.
    pub transmit_failures: u64,
    /// Incoming messages that failed after they were read: the
    /// acknowledgement timed out or its stream closed.
    pub receive_failures: u64,
    /// Incoming messages refused unread past the size limit
    /// (`MESSAGE_BYTES_MAX`).
    pub messages_oversized: u64,
    /// Incoming messages from peers not admitted, refused unread past
    /// `gate::UNADMITTED_MESSAGE_BYTES_MAX`.
    pub messages_unadmitted_oversized: u64,
    /// Incoming messages handed to the core.
    pub messages_delivered: u64,
    /// Connections established.
    pub connections_opened: u64,
    /// Connections closed.
    pub connections_closed: u64,
    /// Connections closed as leftovers of a peer's previous process: the
    /// peer opened a new one.
    pub connections_replaced: u64,
    /// Connections refused or dropped: the peer's key is not ed25519, so it
    /// can be no agent.
    pub peers_refused: u64,
    /// Incoming connections closed at once: their peer is not admitted and
    /// `limits.unadmitted_connections_max` others like them were open.
    pub connections_unadmitted_refused: u64,
    /// Connections closed because their peer was still not admitted after
    /// `limits.unadmitted_grace_secs`.
    pub connections_unadmitted_expired: u64,
    /// Incoming connection attempts that failed (limits included).
    pub incoming_connection_errors: u64,
    /// Outgoing connection attempts that failed.
    pub dial_errors: u64,
    /// Peers discovered by mDNS.
    pub mdns_discovered: u64,
    /// Seeds not kept because the seed list was full.
    pub seeds_dropped: u64,
    /// Advertised addresses left out of the node's metadata (over the
    /// size limits the fleet enforces).
    pub addrs_dropped: u64,
    /// Durable state writes (each before the messages depending on it).
    pub durable_writes: u64,
    /// Trust chain writes, as newer trust versions arrived.
    pub trust_writes: u64,
    /// Trust chain writes that failed (the agent goes on; the chain is
    /// fetched again after a restart).
    pub trust_write_errors: u64,
    /// Replica snapshots written (`replicas.bin`).
    pub replicas_writes: u64,
    /// Replica snapshot writes that failed (retried at the next interval).
    pub replicas_write_errors: u64,
    /// Entries merged from the snapshot at start.
    pub replicas_loaded: u64,
    /// Entries of the snapshot refused at start (signature, signer,
    /// bounds): the file was altered, or keys were revoked since.
    pub replicas_refused: u64,
    /// Snapshots found damaged at start and set aside.
    pub replicas_damaged: u64,
    /// Journal appends (one sync each, for every entry one drain merged).
    pub journal_writes: u64,
    /// Entries appended to the journal.
    pub journal_entries: u64,
    /// Entries merged from the journal at start.
    pub journal_replayed: u64,
    /// Journals found with a torn or damaged tail at start, cut off at the
    /// last whole record.
    pub journal_damaged: u64,
    /// Checks and actions started.
    pub tasks_started: u64,
    /// Checks and actions failed at once: too many were running.
    pub tasks_refused: u64,
    /// Task runs whose executor itself failed (no result reached the core,
    /// which counts the run failed at its timeout).
    pub tasks_lost: u64,
    /// Admin API requests answered.
    pub admin_requests: u64,
    /// Admin API requests refused because the agent was busy.
    pub admin_busy: u64,
    /// Admin API requests refused before any handler ran: a foreign
    /// `Host`, an `Origin`, no or a wrong token, a POST that is not JSON.
    pub admin_requests_refused: u64,
    /// Admin connections closed at once: the most were open.
    pub admin_connections_refused: u64,
    /// Admin connections cut off idle or past their time.
    pub admin_connections_timed_out: u64,
    /// Admin API accepts that failed (out of descriptors, say).
    pub admin_accept_errors: u64,
}

/// Point-in-time values, read from the agent at the scrape.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Members by state name (`alive`, `suspect`, `dead`, `left`).
    pub members: Vec<(&'static str, usize)>,
    /// Updates waiting to be gossiped.
    pub broadcast_queue: usize,
    /// Replicated entries waiting to be pushed.
    pub push_queue: usize,
    /// Messages sent and not yet acknowledged.
    pub outbound_in_flight: usize,
    /// Bytes of those messages.
    pub outbound_bytes: usize,
    /// Checks and actions running.
    pub tasks_running: usize,
    /// Open connections.
    pub connections: usize,
    /// Open admin API connections.
    pub admin_connections: usize,
    /// Open connections whose peer is not admitted (yet).
    pub connections_unadmitted: usize,
    /// Disruptive remediations in flight per budget scope.
    pub budget_in_use: Vec<(String, usize)>,
    /// Whether the agent is in safe mode.
    pub safe_mode: bool,
    /// Emergency stops in force that apply to this agent.
    pub stops_applying: usize,
    /// Stop and resume records the ledger evicted or refused at its bound
    /// of 64 (a count since start).
    pub stops_evicted: u64,
    /// The agent's incarnation.
    pub incarnation: u64,
    /// The trust version the agent runs.
    pub trust_version: u64,
    /// The release version run per config document.
    pub releases: Vec<(String, u64)>,
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Counter::<u64>::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Gauge::<i64>::default();
    metric.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, metric);
}

fn labelled(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) {
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    for (value, count) in values {
        family
            .get_or_create(&vec![(label.to_owned(), value.clone())])
            .set(i64::try_from(*count).unwrap_or(i64::MAX));
    }
    registry.register(name, help, family);
}

/// Registers one counter per listed field of `$stats`, named after it.
macro_rules! counters {
    ($registry:expr, $prefix:literal, $stats:expr, { $($field:ident: $help:literal,)* }) => {
        $(counter($registry, concat!($prefix, stringify!($field)), $help, $stats.$field);)*
    };
}

fn core(registry: &mut Registry, stats: &Stats) {
    counters!(registry, "", stats, {
        messages_sent: "Messages the core handed out to send",
        bytes_sent: "Bytes the core handed out to send",
        messages_received: "Messages received and decoded",
        bytes_received: "Bytes received, decodable or not",
        decode_errors: "Messages dropped: did not decode or broke a limit",
        encode_errors: "Messages the core could not encode (over the size limit)",
        claims_ignored: "Membership claims dropped unapplied",
        unexpected_messages: "Well-formed messages that fit no state (late acks, replies to nothing)",
        unadmitted_messages: "Messages dropped: the sender holds no valid certificate",
        verify_budget_exceeded: "Messages dropped unverified: the sender's verification budget was spent",
        unadmitted_claims: "Claims dropped: about a node holding no valid certificate yet",
        expelled: "Members expelled: key or certificate revoked",
        probes: "Probes started",
        probes_failed: "Probes with no ack, direct or indirect",
        indirect_probes: "Indirect probe requests sent",
        suspicions_raised: "Suspicions this agent raised",
        last_probes: "Last probes sent before declaring a suspect dead",
        declared_dead: "Members this agent declared dead",
        refutations: "Times this agent refuted a claim about itself",
        gossip_messages: "Gossip messages sent",
        syncs_started: "Anti-entropy rounds started",
        syncs_differing: "Anti-entropy rounds that found a difference",
        syncs_refused: "Anti-entropy rounds refused: too many open",
        sync_truncated: "Anti-entropy messages cut at the size limit",
        sync_records_received: "Member records received by anti-entropy",
        broadcasts_dropped: "Gossip updates dropped: broadcast queue full",
        transmits_dropped: "Messages dropped: the core's transmit queue was full",
        events_dropped: "Events dropped: the core's event queue was full",
        journal_dropped: "Entries to journal dropped: the core's journal queue was full (a snapshot saved them)",
        effects_dropped: "Work the core asked of itself (a publish, a lease to acquire or release) dropped: its queue was full",
        relays_refused: "Indirect probe requests refused",
        reaped: "Dead or departed members forgotten",
        releases_applied: "Config releases applied",
        releases_refused: "Config releases refused: expired or not newer",
        safe_mode_entered: "Times the agent entered safe mode",
        releases_voided: "Releases run that stopped counting (a signer revoked)",
    });
    leases(registry, &stats.leases);
    remedy(registry, &stats.remedy);
    rollout(registry, &stats.rollout);
}

fn rollout(registry: &mut Registry, stats: &RolloutStats) {
    counters!(registry, "rollout_", stats, {
        waits: "Staged releases this agent waited for: its wave was not open yet",
        halted: "Staged releases skipped: their gate failed before this agent ran them",
        attested_passed: "Attestations signed that this host passed its bake",
        attested_failed: "Attestations signed that this host failed a rollout gate",
        reverted: "Times this agent went back to a release's predecessor after its gate failed",
        revert_blocked: "Reverts held back: the predecessor or its content was not here yet",
        evidence_rebuilt: "Times the attestations about a release were gathered from the ledger",
        publish_rejected: "Own attestations the ledger refused",
    });
}

fn leases(registry: &mut Registry, stats: &LeaseStats) {
    counters!(registry, "lease_", stats, {
        grants_given: "Lease grants given as a voter",
        refused_stale_epoch: "Lease requests refused: epoch below the one granted",
        refused_held_by_other: "Lease requests refused: epoch granted to another holder",
        refused_too_early: "Lease requests refused: new epoch before ttl plus lock delay",
        refused_bad_request: "Lease requests refused as malformed",
        requests_sent: "Lease grant requests sent as a candidate",
        requests_resent: "Lease grant requests sent again to silent voters",
        answers_ignored: "Lease answers dropped unused",
        grants_rejected: "Lease grants rejected: signature or fields did not match",
        acquired: "Leases acquired",
        taken_over: "Leases acquired from another holder (fail-over)",
        renewed: "Leases renewed",
        lost: "Leases lost: expired, released or superseded",
        publish_rejected: "Own leases the lease table refused",
        releases_sent: "Lease grants given back as a candidate",
        releases_applied: "Lease grants withdrawn as a voter",
    });
}

fn remedy(registry: &mut Registry, stats: &RemedyStats) {
    counters!(registry, "remedy_", stats, {
        policies_loaded: "Remediation policies loaded",
        policies_refused: "Released remediation policies refused (did not parse)",
        checks_run: "Check runs handed out",
        check_timeouts: "Check runs with no result by their timeout",
        results_ignored: "Task results for no run in flight",
        health_changes: "Health transitions reported",
        incidents: "Incidents opened",
        attempts: "Actions started on this node",
        successes: "Actions that succeeded",
        failures: "Actions that failed or timed out",
        fixes: "Incidents fixed after an action",
        intents_planned: "Intents planned as budget lease holder",
        dry_runs: "Dry runs recorded instead of actions",
        skipped_systemic: "Remediations skipped: more than max_unhealthy unhealthy",
        skipped_cooldown: "Remediations held back: cooldown",
        skipped_limit: "Remediations skipped: limit reached, a human is asked",
        skipped_safe_mode: "Remediations held back: safe mode",
        skipped_approval_expired: "Remediations skipped: approval expired",
        skipped_no_approval: "Remediations skipped: no approval in time",
        refused_stale_epoch: "Intents refused: stale epoch (fencing)",
        refused_late: "Intents refused: could not finish by the deadline",
        budget_full: "Planning held back: the budget was in use",
        ladders_exhausted: "Escalation ladders that ran out",
        reruns_approved: "Needs-human records approved while the incident was open: the fix ran again",
        approvals_after_recovery: "Needs-human records approved after the incident was over: nothing ran",
        index_dropped: "Ledger records dropped from a full index",
        tasks_dropped: "Tasks dropped: the core's task queue was full",
        publish_rejected: "Own health reports or ledger records refused",
        stops_received: "Emergency stops and resumes learnt and rushed on to peers",
        skipped_stopped: "Remediation steps held back by an emergency stop",
    });
    // The field already ends in `_total`, which the encoder adds to every
    // counter: named by hand so that it is there once.
    counter(
        registry,
        "remedy_fix_millis",
        "Milliseconds from incident to fix, summed over fixes",
        stats.fix_millis_total,
    );
    gauge(
        registry,
        "remedy_fix_millis_max",
        "Longest time from incident to fix, in milliseconds",
        stats.fix_millis_max,
    );
}

fn state(registry: &mut Registry, stats: &StateStats) {
    counters!(registry, "state_", stats, {
        merged: "Replicated entries merged that changed something",
        redundant: "Replicated entries already known or older",
        pending: "Replicated entries held back waiting for a parent or a newer trust version",
        bad_signatures: "Replicated entries refused: a signature did not verify",
        unauthorized: "Replicated entries refused: signer not authorized, revoked or quarantined",
        malformed: "Replicated entries refused: malformed, over a bound, or a full queue",
        push_dropped: "Replicated entries not pushed: the push queue was full",
        fetches_refused: "Fetches not started: too many in flight",
        future_dated: "Replicated entries refused: dated too far ahead of this clock",
        automerge_panics: "Panics automerge raised on malformed config changes, caught and refused",
        stops_refused: "Emergency stops or resumes refused: no stop role, revoked, or malformed",
    });
}

fn runtime(registry: &mut Registry, stats: &RuntimeStats) {
    counters!(registry, "runtime_", stats, {
        transmits_sent: "Messages handed to the transport",
        transmits_dropped_queue_full: "Messages dropped: unacknowledged bytes to the peer or in all over their bound",
        transmits_unroutable: "Messages dropped: no key known for the recipient",
        transmit_dial_failures: "Messages lost: the dial failed",
        transmit_timeouts: "Messages lost: not acknowledged in time",
        transmit_failures: "Messages lost: connection closed, I/O error or protocol unsupported",
        receive_failures: "Incoming messages that failed after being read (timeouts, closed streams)",
        messages_oversized: "Incoming messages refused past the size limit",
        messages_unadmitted_oversized: "Incoming messages from peers not admitted refused past their size limit",
        messages_delivered: "Incoming messages handed to the core",
        connections_opened: "Connections established",
        connections_closed: "Connections closed",
        connections_replaced: "Connections closed as leftovers of a restarted peer",
        peers_refused: "Connections dropped: the peer's key is not ed25519",
        connections_unadmitted_refused: "Incoming connections closed at once: peer not admitted, bound reached",
        connections_unadmitted_expired: "Connections closed: peer still not admitted after the grace",
        incoming_connection_errors: "Incoming connection attempts that failed (limits included)",
        dial_errors: "Outgoing connection attempts that failed",
        mdns_discovered: "Peers discovered by mDNS",
        seeds_dropped: "Seeds not kept: the seed list was full",
        addrs_dropped: "Advertised addresses left out: over the metadata size limits",
        durable_writes: "Durable state writes",
        trust_writes: "Trust chain writes",
        trust_write_errors: "Trust chain writes that failed",
        replicas_writes: "Replica snapshots written",
        replicas_write_errors: "Replica snapshot writes that failed",
        replicas_loaded: "Replicated entries taken back from the snapshot at start",
        replicas_refused: "Snapshot entries refused at start",
        replicas_damaged: "Replica snapshots found damaged at start and set aside",
        journal_writes: "Journal appends, one sync each",
        journal_entries: "Replicated entries appended to the journal",
        journal_replayed: "Replicated entries taken back from the journal at start",
        journal_damaged: "Journals cut at start at their last whole record (torn or damaged tail)",
        tasks_started: "Checks and actions started",
        tasks_refused: "Checks and actions failed at once: too many running",
        tasks_lost: "Task runs whose executor failed without a result",
        admin_requests: "Admin API requests answered",
        admin_busy: "Admin API requests refused: the agent was busy",
        admin_requests_refused: "Admin API requests refused: foreign Host, an Origin, no or a wrong token, or a POST not JSON",
        admin_connections_refused: "Admin API connections closed at once: the most were open",
        admin_connections_timed_out: "Admin API connections cut off idle or past their time",
        admin_accept_errors: "Admin API accepts that failed (out of descriptors, say)",
    });
}

/// `build_info`: always 1, its labels the agent's version and the wire
/// protocol version it speaks, so dashboards can show which agents run
/// what during an upgrade.
fn build_info(registry: &mut Registry) {
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    family
        .get_or_create(&vec![
            ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            (
                "protocol".to_owned(),
                fleetmesh_node::wire::PROTOCOL_VERSION.to_string(),
            ),
        ])
        .set(1);
    registry.register(
        "build_info",
        "The agent's version and wire protocol version",
        family,
    );
}

/// The Prometheus text exposition of everything, prefixed `fleetmesh_`.
pub fn render(
    stats: &Stats,
    state_stats: &StateStats,
    runtime_stats: &RuntimeStats,
    gauges: &Gauges,
) -> String {
    let mut registry = Registry::with_prefix("fleetmesh");
    build_info(&mut registry);
    core(&mut registry, stats);
    state(&mut registry, state_stats);
    runtime(&mut registry, runtime_stats);
    let members: Vec<(String, u64)> = gauges
        .members
        .iter()
        .map(|(state, count)| ((*state).to_owned(), *count as u64))
        .collect();
    labelled(
        &mut registry,
        "members",
        "Members by state in this agent's view",
        "state",
        &members,
    );
    let budgets: Vec<(String, u64)> = gauges
        .budget_in_use
        .iter()
        .map(|(scope, used)| (scope.clone(), *used as u64))
        .collect();
    labelled(
        &mut registry,
        "budget_in_use",
        "Disruptive remediations in flight per budget scope",
        "scope",
        &budgets,
    );
    labelled(
        &mut registry,
        "release_version",
        "Release version run per config document",
        "doc",
        &gauges.releases,
    );
    for (name, help, value) in [
        (
            "broadcast_queue",
            "Gossip updates queued",
            gauges.broadcast_queue,
        ),
        (
            "push_queue",
            "Replicated entries queued to push",
            gauges.push_queue,
        ),
        (
            "outbound_in_flight",
            "Messages sent, not yet acknowledged",
            gauges.outbound_in_flight,
        ),
        (
            "outbound_bytes",
            "Bytes sent, not yet acknowledged",
            gauges.outbound_bytes,
        ),
        (
            "tasks_running",
            "Checks and actions running",
            gauges.tasks_running,
        ),
        ("connections", "Open connections", gauges.connections),
        (
            "admin_connections",
            "Open admin API connections",
            gauges.admin_connections,
        ),
        (
            "connections_unadmitted",
            "Open connections whose peer is not admitted (yet)",
            gauges.connections_unadmitted,
        ),
    ] {
        gauge(&mut registry, name, help, value as u64);
    }
    gauge(
        &mut registry,
        "safe_mode",
        "1 while in safe mode",
        u64::from(gauges.safe_mode),
    );
    gauge(
        &mut registry,
        "stops_active",
        "Emergency stops in force that apply to this agent (nothing is started while above 0)",
        gauges.stops_applying as u64,
    );
    counter(
        &mut registry,
        "stops_evicted",
        "Emergency stop and resume records the ledger evicted or refused at its bound of 64",
        gauges.stops_evicted,
    );
    gauge(
        &mut registry,
        "incarnation",
        "This agent's incarnation",
        gauges.incarnation,
    );
    gauge(
        &mut registry,
        "trust_version",
        "Trust version run",
        gauges.trust_version,
    );
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_kind_of_metric() {
        let mut stats = Stats {
            messages_sent: 12,
            decode_errors: 2,
            ..Stats::default()
        };
        stats.remedy.attempts = 3;
        stats.remedy.fix_millis_total = 1500;
        stats.leases.acquired = 1;
        stats.rollout.reverted = 2;
        let runtime = RuntimeStats {
            transmits_dropped_queue_full: 5,
            ..RuntimeStats::default()
        };
        let gauges = Gauges {
            members: vec![("alive", 4), ("dead", 1)],
            budget_in_use: vec![("remediate:web".into(), 1)],
            outbound_bytes: 99,
            stops_evicted: 4,
            ..Gauges::default()
        };
        let state = StateStats {
            automerge_panics: 7,
            ..StateStats::default()
        };
        let text = render(&stats, &state, &runtime, &gauges);
        for line in [
            "fleetmesh_messages_sent_total 12",
            "fleetmesh_decode_errors_total 2",
            "fleetmesh_remedy_attempts_total 3",
            "fleetmesh_remedy_fix_millis_total 1500",
            "fleetmesh_lease_acquired_total 1",
            "fleetmesh_rollout_reverted_total 2",
            "fleetmesh_stops_evicted_total 4",
            "fleetmesh_runtime_transmits_dropped_queue_full_total 5",
            "fleetmesh_state_automerge_panics_total 7",
            "fleetmesh_members{state=\"alive\"} 4",
            "fleetmesh_members{state=\"dead\"} 1",
            "fleetmesh_budget_in_use{scope=\"remediate:web\"} 1",
            "fleetmesh_outbound_bytes 99",
            "# HELP fleetmesh_decode_errors Messages dropped: did not decode or broke a limit.",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert!(
            !text.contains("_total_total"),
            "a doubled suffix in:\n{text}"
        );
        let version = env!("CARGO_PKG_VERSION");
        let protocol = fleetmesh_node::wire::PROTOCOL_VERSION;
        let build =
            format!("fleetmesh_build_info{{version=\"{version}\",protocol=\"{protocol}\"}} 1");
        assert!(text.contains(&build), "{build:?} missing from:\n{text}");
    }
}
