//! What a run reports: the figures, the violations, the trace hash.

use crate::checkers::Violation;
use crate::checkers::rollout::RolloutOutcome;
use crate::fingerprint::Step;
use crate::network::DropReason;
use fleetmesh_node::Stats;
use fleetmesh_node::{StateBytes, StateStats};
use std::fmt;
use std::time::Duration;

/// Message counts of the simulated network.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Messages delivered.
    pub delivered: u64,
    /// Dropped by the partition.
    pub dropped_partition: u64,
    /// Dropped by random loss.
    pub dropped_loss: u64,
    /// Dropped because the recipient was down.
    pub dropped_down: u64,
    /// Dropped by a paused recipient's full buffer.
    pub dropped_overflow: u64,
    /// Sent to an address that names no agent.
    pub dropped_unroutable: u64,
    /// Refutations by agents of claims about themselves.
    pub refutations: u64,
    /// Attack attempts a hostile agent sent.
    pub attacks: u64,
    /// Forged entries the attacks' floods carried, each costing its
    /// receiver a signature verification.
    pub flood_entries: u64,
    /// Operator publications that found no running agent to take them.
    pub publications_lost: u64,
    /// Operator entries the agent handed them refused (a revoked key's,
    /// for one).
    pub publications_refused: u64,
    /// Times an agent entered safe mode.
    pub safe_mode_entered: u64,
}

impl Traffic {
    /// Counts one drop.
    pub fn count_drop(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Partition => &mut self.dropped_partition,
            DropReason::Loss => &mut self.dropped_loss,
            DropReason::Down => &mut self.dropped_down,
            DropReason::Overflow => &mut self.dropped_overflow,
            DropReason::Unroutable => &mut self.dropped_unroutable,
        };
        *counter += 1;
    }
}

/// What one lease scope did over a run.
#[derive(Clone, Debug)]
pub struct LeaseOutcome {
    /// The scope.
    pub scope: String,
    /// Acquisitions (a new epoch, or holding again after a gap).
    pub acquisitions: u64,
    /// The highest epoch held.
    pub max_epoch: u64,
    /// How long each vacancy lasted (no holder while a candidate ran),
    /// in nanoseconds.
    pub vacancies: Vec<u64>,
    /// Each change of who holds it (the first few thousand).
    pub holders: Vec<crate::checkers::lease::HolderChange>,
}

/// What remediation did over a run, by the simulator's ground truth.
#[derive(Clone, Debug, Default)]
pub struct RemedyOutcome {
    /// A remediation policy was released.
    pub policy: bool,
    /// Local actions started.
    pub local: u64,
    /// Disruptive actions started: agent and true time (nanoseconds).
    pub disruptive: Vec<(u32, u64)>,
    /// Service failures (a `service` fault turning a healthy service bad).
    pub failures: u64,
    /// Time from each failure to the end of the action that fixed it.
    pub fix_times: Vec<u64>,
    /// Failures that recovered by themselves (`heal_s`, a flap's turn).
    pub healed: u64,
    /// Failures still failing at the end.
    pub still_failing: u64,
    /// Approvals the operators signed.
    pub approvals: u64,
    /// Task results lost with the process that was to receive them
    /// (crashed, stopped, or a paused agent's full buffer).
    pub results_lost: u64,
}

impl RemedyOutcome {
    /// Actions started, local and disruptive.
    pub fn actions(&self) -> u64 {
        self.local + self.disruptive.len() as u64
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Agents in the fleet.
    pub agents: usize,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall-clock time the run took.
    pub wall: Duration,
    /// Events processed.
    pub events: u64,
    /// Sum over agents of the time each was running, in seconds.
    pub agent_seconds: f64,
    /// All agents' counters, summed.
    pub stats: Stats,
    /// All agents' replicated-state counters, summed.
    pub state: StateStats,
    /// Network counts.
    pub traffic: Traffic,
    /// Time from each quiet point until every running agent agreed with the
    /// truth, in nanoseconds.
    pub settle_times: Vec<u64>,
    /// Running agents whose view was wrong when the run ended.
    pub unconverged_at_end: usize,
    /// The convergence bound in force.
    pub converge_bound: Duration,
    /// Time from each crash until every running agent declared it down.
    pub detection_times: Vec<u64>,
    /// The detection bound in force.
    pub detect_bound: Duration,
    /// Time for each retag to reach every running agent.
    pub spread_times: Vec<u64>,
    /// Time for each release to reach every running agent.
    pub release_times: Vec<u64>,
    /// Time for each emergency stop to reach every running agent.
    pub stop_times: Vec<u64>,
    /// What the run's staged rollouts came to.
    pub rollouts: RolloutOutcome,
    /// The replicated state the lowest-numbered running agent holds at the
    /// end (running agents converge on one state); `None` when none runs.
    pub state_bytes: Option<StateBytes>,
    /// Distinct running agents (and incarnations) declared dead.
    pub false_dead_incidents: usize,
    /// Declarations of a running agent's death, counting every declarer.
    pub false_dead_declarations: u64,
    /// What each lease scope did.
    pub leases: Vec<LeaseOutcome>,
    /// What remediation did.
    pub remedy: RemedyOutcome,
    /// Broken invariants.
    pub violations: Vec<Violation>,
    /// True when a liveness invariant broke.
    pub liveness_failed: bool,
    /// Hash of the trace: equal seeds give equal hashes.
    pub trace_hash: String,
    /// Events in the trace.
    pub trace_events: u64,
    /// The trace file could not be written.
    pub trace_error: Option<String>,
    /// Each step's fingerprint, when the run was asked to record them.
    pub steps: Vec<Step>,
    /// What a report draws, when the run was asked to gather it.
    pub timeline: Option<crate::timeline::Timeline>,
    /// The watched agents' last events, when the run was asked to watch.
    pub watched: Option<crate::trace::Watch>,
}

/// The `q`-quantile of `values` (nanoseconds) in seconds, nearest rank.
pub fn quantile_s(values: &[u64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1e9)
}

impl Outcome {
    /// Simulated agent-seconds per wall-clock second.
    pub fn speed(&self) -> f64 {
        self.agent_seconds / self.wall.as_secs_f64().max(1e-9)
    }

    /// Messages sent per running agent per second.
    pub fn messages_per_agent_second(&self) -> f64 {
        self.stats.messages_sent as f64 / self.agent_seconds.max(1e-9)
    }

    /// Bytes sent per running agent per second.
    pub fn bytes_per_agent_second(&self) -> f64 {
        self.stats.bytes_sent as f64 / self.agent_seconds.max(1e-9)
    }
}

impl Outcome {
    fn fmt_remedy(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let truth = &self.remedy;
        let fixes = match (
            quantile_s(&truth.fix_times, 0.5),
            quantile_s(&truth.fix_times, 1.0),
        ) {
            (Some(median), Some(max)) => {
                format!(" (failure to fix: median {median:.2}s, max {max:.2}s)")
            }
            _ => String::new(),
        };
        writeln!(
            f,
            "  remediation    {} actions ({} local, {} disruptive); {} failures: {} fixed by an action{fixes}, {} healed by themselves, {} still failing; {} approvals signed, {} task results lost",
            truth.actions(),
            truth.local,
            truth.disruptive.len(),
            truth.failures,
            truth.fix_times.len(),
            truth.healed,
            truth.still_failing,
            truth.approvals,
            truth.results_lost
        )?;
        let remedy = &self.stats.remedy;
        let mean = remedy.fix_millis_total as f64 / remedy.fixes.max(1) as f64 / 1e3;
        writeln!(
            f,
            "  agents         {} incidents, {} attempts ({} failed), {} fixes (detect to fix: mean {mean:.2}s, max {:.2}s), {} intents planned, budget full {} times; skipped: {} systemic, {} cooldown, {} limit, {} approval expired, {} no approval, {} safe mode; refused {} stale epoch, {} late; {} needs human",
            remedy.incidents,
            remedy.attempts,
            remedy.failures,
            remedy.fixes,
            remedy.fix_millis_max as f64 / 1e3,
            remedy.intents_planned,
            remedy.budget_full,
            remedy.skipped_systemic,
            remedy.skipped_cooldown,
            remedy.skipped_limit,
            remedy.skipped_approval_expired,
            remedy.skipped_no_approval,
            remedy.skipped_safe_mode,
            remedy.refused_stale_epoch,
            remedy.refused_late,
            remedy.skipped_limit + remedy.ladders_exhausted
        )
    }
}

fn times(values: &[u64]) -> String {
    match (
        quantile_s(values, 0.5),
        quantile_s(values, 0.99),
        quantile_s(values, 1.0),
    ) {
        (Some(median), Some(p99), Some(max)) => {
            format!(
                "median {median:.2}s, p99 {p99:.2}s, max {max:.2}s (n={})",
                values.len()
            )
        }
        _ => "none".into(),
    }
}

/// The time to agree after the last disturbance, and the worst over all.
fn convergence(settle_times: &[u64]) -> String {
    match (settle_times.last(), quantile_s(settle_times, 1.0)) {
        (Some(&last), Some(max)) => format!(
            "{:.2}s after the last disturbance, at worst {max:.2}s over {} quiet points",
            last as f64 / 1e9,
            settle_times.len()
        ),
        _ => "never reached".into(),
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  simulated      {:.1}s of {} agents in {:.2}s wall ({:.0} agent-s/s, {} events)",
            self.simulated.as_secs_f64(),
            self.agents,
            self.wall.as_secs_f64(),
            self.speed(),
            self.events
        )?;
        writeln!(
            f,
            "  converge       {} (bound {:.1}s)",
            convergence(&self.settle_times),
            self.converge_bound.as_secs_f64()
        )?;
        writeln!(
            f,
            "  detect         {} (bound {:.1}s)",
            times(&self.detection_times),
            self.detect_bound.as_secs_f64()
        )?;
        if !self.spread_times.is_empty() {
            writeln!(f, "  spread         {}", times(&self.spread_times))?;
        }
        if self.stats.releases_applied > 0 || !self.release_times.is_empty() {
            writeln!(
                f,
                "  releases       to every running agent: {}; {} moves, {} refused, safe mode {} times",
                times(&self.release_times),
                self.stats.releases_applied,
                self.stats.releases_refused,
                self.traffic.safe_mode_entered
            )?;
        }
        let rollout = &self.stats.rollout;
        for release in &self.rollouts.releases {
            let reverts = release
                .revert_s
                .iter()
                .map(|&seconds| (seconds * 1e9) as u64)
                .collect::<Vec<u64>>();
            writeln!(
                f,
                "  rollout        {}: wave 0 has {} hosts, {} ran it; {}",
                release.name,
                release.first_wave,
                release.ran,
                match (release.failed, release.complete_s) {
                    (true, _) => format!(
                        "gate failed, {} reverted (failure to revert: {})",
                        reverts.len(),
                        times(&reverts)
                    ),
                    (false, Some(seconds)) => {
                        format!("reached every running agent {seconds:.2}s after release")
                    }
                    (false, None) => "still rolling out at the end".to_owned(),
                }
            )?;
        }
        if rollout.attested_passed + rollout.attested_failed > 0 {
            writeln!(
                f,
                "  attestations   {} passed, {} failed; {} waits for a wave, {} skipped after a failed gate, {} reverts held back",
                rollout.attested_passed,
                rollout.attested_failed,
                rollout.waits,
                rollout.halted,
                rollout.revert_blocked
            )?;
        }
        if self.traffic.attacks > 0 {
            writeln!(
                f,
                "  attacks        {} attempts sent ({} flood entries)",
                self.traffic.attacks, self.traffic.flood_entries
            )?;
        }
        writeln!(
            f,
            "  false dead     {} incidents ({} declarations)",
            self.false_dead_incidents, self.false_dead_declarations
        )?;
        writeln!(
            f,
            "  traffic        {:.2} msg/s and {:.0} B/s sent per agent",
            self.messages_per_agent_second(),
            self.bytes_per_agent_second()
        )?;
        let traffic = &self.traffic;
        writeln!(
            f,
            "  network        {} delivered; dropped: {} partition, {} loss, {} down, {} overflow",
            traffic.delivered,
            traffic.dropped_partition,
            traffic.dropped_loss,
            traffic.dropped_down,
            traffic.dropped_overflow
        )?;
        let stats = &self.stats;
        writeln!(
            f,
            "  protocol       {} probes ({} failed), {} suspicions, {} declared dead, {} refutations, {} syncs ({} differing)",
            stats.probes,
            stats.probes_failed,
            stats.suspicions_raised,
            stats.declared_dead,
            stats.refutations,
            stats.syncs_started,
            stats.syncs_differing
        )?;
        writeln!(
            f,
            "  dropped input  {} undecodable, {} broadcasts, {} transmits, {} events, {} over a verification budget",
            stats.decode_errors,
            stats.broadcasts_dropped,
            stats.transmits_dropped,
            stats.events_dropped,
            stats.verify_budget_exceeded
        )?;
        let state = &self.state;
        writeln!(
            f,
            "  state entries  {} merged, {} redundant, {} pending; refused: {} bad signature, {} unauthorized, {} malformed; automerge panics caught {}",
            state.merged,
            state.redundant,
            state.pending,
            state.bad_signatures,
            state.unauthorized,
            state.malformed,
            state.automerge_panics
        )?;
        for lease in &self.leases {
            let longest = lease.vacancies.iter().max().copied().unwrap_or(0);
            let leases = &stats.leases;
            writeln!(
                f,
                "  lease          {}: {} acquisitions, epochs up to {}, {} vacancies (longest {:.1}s); fleet: {} grants, refused {} too early / {} held / {} stale, {} renewals, {} lost",
                lease.scope,
                lease.acquisitions,
                lease.max_epoch,
                lease.vacancies.len(),
                longest as f64 / 1e9,
                leases.grants_given,
                leases.refused_too_early,
                leases.refused_held_by_other,
                leases.refused_stale_epoch,
                leases.renewed,
                leases.lost
            )?;
        }
        if self.remedy.policy {
            self.fmt_remedy(f)?;
        }
        writeln!(
            f,
            "  end state      {} running agents disagree with the truth",
            self.unconverged_at_end
        )?;
        writeln!(
            f,
            "  trace hash     {} ({} events)",
            self.trace_hash, self.trace_events
        )?;
        if self.violations.is_empty() {
            writeln!(f, "  violations     none")?;
        }
        for violation in &self.violations {
            writeln!(f, "  VIOLATION      {violation}")?;
        }
        Ok(())
    }
}
