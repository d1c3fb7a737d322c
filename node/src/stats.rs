//! Counters the agent keeps about itself; the runtime exports them as
//! metrics and the simulator sums them into its report.

use std::ops::AddAssign;

/// Monotonic counters of one agent. Every drop of input or output is counted
/// here, so that nothing is lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed to the driver to send.
    pub messages_sent: u64,
    /// Bytes handed to the driver to send.
    pub bytes_sent: u64,
    /// Messages received and decoded.
    pub messages_received: u64,
    /// Bytes received, decodable or not.
    pub bytes_received: u64,
    /// Messages dropped because they did not decode or broke a limit.
    pub decode_errors: u64,
    /// Messages this agent built but could not encode (over the size limit);
    /// dropped.
    pub encode_errors: u64,
    /// Claims dropped unapplied: about strangers that carry no metadata or
    /// are not up, or anti-entropy records outside the exchanged buckets.
    pub claims_ignored: u64,
    /// Well-formed messages that did not fit the agent's state (an ack for no
    /// probe, a ping for another member, a reply to no sync) and were ignored.
    pub unexpected_messages: u64,
    /// Messages dropped because their sender holds no valid certificate.
    pub unadmitted_messages: u64,
    /// Messages that would have verified signatures (introductions,
    /// entries, grants), dropped because their sender's verification
    /// budget was spent (`Config::verify_per_peer`, shared
    /// `Config::verify_unadmitted` for peers not admitted).
    pub verify_budget_exceeded: u64,
    /// Claims dropped because they are about a node holding no valid
    /// certificate (yet: its certificate is fetched from the claimer).
    pub unadmitted_claims: u64,
    /// Members expelled because their key or certificate was revoked.
    pub expelled: u64,
    /// Probes started.
    pub probes: u64,
    /// Probes that got no ack, direct or indirect.
    pub probes_failed: u64,
    /// Indirect probe requests sent.
    pub indirect_probes: u64,
    /// Suspicions this agent raised itself.
    pub suspicions_raised: u64,
    /// Last probes sent to members whose suspicion ran out.
    pub last_probes: u64,
    /// Members this agent declared dead at the end of a suspicion.
    pub declared_dead: u64,
    /// Times this agent refuted a claim about itself.
    pub refutations: u64,
    /// Gossip messages sent.
    pub gossip_messages: u64,
    /// Anti-entropy exchanges started.
    pub syncs_started: u64,
    /// Anti-entropy exchanges that found a difference.
    pub syncs_differing: u64,
    /// Anti-entropy exchanges not started or not answered because too many
    /// were open.
    pub syncs_refused: u64,
    /// Anti-entropy messages cut short by the record or byte limit; the rest
    /// follows in later exchanges.
    pub sync_truncated: u64,
    /// Member records received through anti-entropy.
    pub sync_records_received: u64,
    /// Queued updates dropped because the broadcast queue was full.
    pub broadcasts_dropped: u64,
    /// Outgoing messages dropped because the driver did not drain them.
    pub transmits_dropped: u64,
    /// Events dropped because the driver did not drain them.
    pub events_dropped: u64,
    /// Entries to journal dropped because the driver did not drain them
    /// ([`crate::Output::Journal`]): the driver must then save a whole
    /// snapshot before it sends anything.
    pub journal_dropped: u64,
    /// Work one part of the agent asked of another (an entry to publish, a
    /// lease to acquire or release) dropped because its queue was full.
    /// Never expected.
    pub effects_dropped: u64,
    /// Indirect probe requests refused: too many in flight, or naming this
    /// agent as the target.
    pub relays_refused: u64,
    /// Members forgotten after `reap_after`.
    pub reaped: u64,
    /// Config releases this agent moved to.
    pub releases_applied: u64,
    /// Releases next in line that this agent refused to move to: expired,
    /// or not newer than the one it runs (rollback protection).
    pub releases_refused: u64,
    /// Times this agent entered safe mode (its release expired).
    pub safe_mode_entered: u64,
    /// Releases this agent ran that stopped counting (a signer revoked).
    pub releases_voided: u64,
    /// The lease protocol's counters.
    pub leases: LeaseStats,
    /// Checks and remediation.
    pub remedy: RemedyStats,
    /// Staged rollouts.
    pub rollout: RolloutStats,
}

/// Counters of staged rollouts (`docs/rollouts.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutStats {
    /// Times this agent found the next release staged and its own wave not
    /// open yet, so it stayed on the release it runs.
    pub waits: u64,
    /// Staged releases this agent skipped because their gate had failed
    /// before it ran them: recorded as reverted without running.
    pub halted: u64,
    /// Attestations signed that this host passed its bake.
    pub attested_passed: u64,
    /// Attestations signed that this host failed the gate.
    pub attested_failed: u64,
    /// Times this agent went back to a release's predecessor after the
    /// release's gate failed.
    pub reverted: u64,
    /// Reverts held back because the predecessor or its content was not
    /// here yet (retried).
    pub revert_blocked: u64,
    /// Times the attestations about a release were gathered from the
    /// ledger: once per staged release, again only if the index dropped
    /// it.
    pub evidence_rebuilt: u64,
    /// Own attestations the ledger refused.
    pub publish_rejected: u64,
}

impl AddAssign<&RolloutStats> for RolloutStats {
    fn add_assign(&mut self, other: &RolloutStats) {
        self.waits += other.waits;
        self.halted += other.halted;
        self.attested_passed += other.attested_passed;
        self.attested_failed += other.attested_failed;
        self.reverted += other.reverted;
        self.revert_blocked += other.revert_blocked;
        self.evidence_rebuilt += other.evidence_rebuilt;
        self.publish_rejected += other.publish_rejected;
    }
}

/// Counters of checks and remediation (`docs/remediation.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemedyStats {
    /// Remediation policies loaded from a release.
    pub policies_loaded: u64,
    /// Released policy documents refused (they did not parse); the agent
    /// kept the policy it had.
    pub policies_refused: u64,
    /// Check runs handed to the driver.
    pub checks_run: u64,
    /// Check runs with no result by their timeout (counted as failures).
    pub check_timeouts: u64,
    /// Check results for no run in flight (late or unknown), ignored.
    pub results_ignored: u64,
    /// Health transitions this agent reported.
    pub health_changes: u64,
    /// Incidents opened: a rule's check turned unhealthy, not caused by an
    /// action.
    pub incidents: u64,
    /// Actions started on this node.
    pub attempts: u64,
    /// Actions that reported success.
    pub successes: u64,
    /// Actions that failed or timed out.
    pub failures: u64,
    /// Incidents whose check turned healthy again after an action.
    pub fixes: u64,
    /// Sum over fixes of the time from the incident opening to the fix, in
    /// milliseconds (with `fixes`, the mean).
    pub fix_millis_total: u64,
    /// The longest time from an incident opening to its fix.
    pub fix_millis_max: u64,
    /// Intents this agent planned as a lease holder.
    pub intents_planned: u64,
    /// Dry runs recorded instead of actions.
    pub dry_runs: u64,
    /// Skipped: more than `max_unhealthy` of the rule's nodes unhealthy.
    pub skipped_systemic: u64,
    /// Held back: in cooldown since the last action on the target.
    pub skipped_cooldown: u64,
    /// Skipped: the target reached the rule's limit and a human is asked.
    pub skipped_limit: u64,
    /// Held back: safe mode (the release expired or turned void).
    pub skipped_safe_mode: u64,
    /// Skipped: the step's approval expired before the action could start.
    pub skipped_approval_expired: u64,
    /// Skipped: the step's window passed with no approval.
    pub skipped_no_approval: u64,
    /// Intents refused: a higher epoch was seen for the scope (fencing).
    pub refused_stale_epoch: u64,
    /// Intents refused: the action could not finish by the intent's
    /// deadline.
    pub refused_late: u64,
    /// Held back as planner: the scope's budget was in use.
    pub budget_full: u64,
    /// Escalation ladders that ran out with the check still unhealthy.
    pub ladders_exhausted: u64,
    /// Needs-human records of a ladder that ran out, approved while the
    /// incident was open: the fix runs once more.
    pub reruns_approved: u64,
    /// Needs-human records approved after their incident was over: the
    /// approval is answered with a note and nothing runs.
    pub approvals_after_recovery: u64,
    /// Ledger records of interest dropped because an index was full.
    pub index_dropped: u64,
    /// Tasks dropped because the driver did not drain them.
    pub tasks_dropped: u64,
    /// Own health reports or ledger records the replicas refused.
    pub publish_rejected: u64,
    /// Emergency stops and resumes this agent learnt and rushed on to
    /// peers (the refused ones are in the state counters).
    pub stops_received: u64,
    /// Steps held back by an emergency stop that applies to this agent
    /// (each step counted once; the planner's held requests are not).
    pub skipped_stopped: u64,
}

impl AddAssign<&RemedyStats> for RemedyStats {
    fn add_assign(&mut self, other: &RemedyStats) {
        self.policies_loaded += other.policies_loaded;
        self.policies_refused += other.policies_refused;
        self.checks_run += other.checks_run;
        self.check_timeouts += other.check_timeouts;
        self.results_ignored += other.results_ignored;
        self.health_changes += other.health_changes;
        self.incidents += other.incidents;
        self.attempts += other.attempts;
        self.successes += other.successes;
        self.failures += other.failures;
        self.fixes += other.fixes;
        self.fix_millis_total += other.fix_millis_total;
        self.fix_millis_max = self.fix_millis_max.max(other.fix_millis_max);
        self.intents_planned += other.intents_planned;
        self.dry_runs += other.dry_runs;
        self.skipped_systemic += other.skipped_systemic;
        self.skipped_cooldown += other.skipped_cooldown;
        self.skipped_limit += other.skipped_limit;
        self.skipped_safe_mode += other.skipped_safe_mode;
        self.skipped_approval_expired += other.skipped_approval_expired;
        self.skipped_no_approval += other.skipped_no_approval;
        self.refused_stale_epoch += other.refused_stale_epoch;
        self.refused_late += other.refused_late;
        self.budget_full += other.budget_full;
        self.ladders_exhausted += other.ladders_exhausted;
        self.reruns_approved += other.reruns_approved;
        self.approvals_after_recovery += other.approvals_after_recovery;
        self.index_dropped += other.index_dropped;
        self.tasks_dropped += other.tasks_dropped;
        self.publish_rejected += other.publish_rejected;
        self.stops_received += other.stops_received;
        self.skipped_stopped += other.skipped_stopped;
    }
}

/// Counters of the lease protocol, both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Grants this agent gave as a voter (renewals included).
    pub grants_given: u64,
    /// Requests refused: the epoch is below the one granted.
    pub refused_stale_epoch: u64,
    /// Requests refused: the epoch is granted to another holder.
    pub refused_held_by_other: u64,
    /// Requests refused: a new epoch before ttl plus lock-delay had passed.
    pub refused_too_early: u64,
    /// Requests refused as malformed: bad scope or ttl, too many scopes, or
    /// asking on behalf of another key.
    pub refused_bad_request: u64,
    /// Grant requests this agent sent as a candidate.
    pub requests_sent: u64,
    /// Grant requests sent again to voters silent halfway to the answer
    /// deadline.
    pub requests_resent: u64,
    /// Answers dropped unused: for no attempt in flight (late, duplicated),
    /// or from a key that is not one of the scope's voters.
    pub answers_ignored: u64,
    /// Grants dropped because their signature, scope, epoch, holder, voter
    /// or ttl did not match the request.
    pub grants_rejected: u64,
    /// Leases acquired (a new epoch, or holding again after a gap).
    pub acquired: u64,
    /// Acquisitions that took a scope over from another holder (its lease
    /// expired, or it stepped down): the fail-over path.
    pub taken_over: u64,
    /// Leases renewed while held.
    pub renewed: u64,
    /// Leases lost: expired unrenewed, released, or stepped down from.
    pub lost: u64,
    /// Own leases the replicated lease table refused to merge.
    pub publish_rejected: u64,
    /// Grants given back: of attempts that did not win, or of a lease
    /// released.
    pub releases_sent: u64,
    /// Grants withdrawn as a voter at their holder's request.
    pub releases_applied: u64,
}

impl AddAssign<&LeaseStats> for LeaseStats {
    fn add_assign(&mut self, other: &LeaseStats) {
        self.grants_given += other.grants_given;
        self.refused_stale_epoch += other.refused_stale_epoch;
        self.refused_held_by_other += other.refused_held_by_other;
        self.refused_too_early += other.refused_too_early;
        self.refused_bad_request += other.refused_bad_request;
        self.requests_sent += other.requests_sent;
        self.requests_resent += other.requests_resent;
        self.answers_ignored += other.answers_ignored;
        self.grants_rejected += other.grants_rejected;
        self.acquired += other.acquired;
        self.taken_over += other.taken_over;
        self.renewed += other.renewed;
        self.lost += other.lost;
        self.publish_rejected += other.publish_rejected;
        self.releases_sent += other.releases_sent;
        self.releases_applied += other.releases_applied;
    }
}

/// Sums counters, e.g. over all agents of a simulated fleet or over the
/// successive processes of one restarted agent.
impl AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, other: &Stats) {
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.messages_received += other.messages_received;
        self.bytes_received += other.bytes_received;
        self.decode_errors += other.decode_errors;
        self.encode_errors += other.encode_errors;
        self.claims_ignored += other.claims_ignored;
        self.unexpected_messages += other.unexpected_messages;
        self.unadmitted_messages += other.unadmitted_messages;
        self.verify_budget_exceeded += other.verify_budget_exceeded;
        self.unadmitted_claims += other.unadmitted_claims;
        self.expelled += other.expelled;
        self.probes += other.probes;
        self.probes_failed += other.probes_failed;
        self.indirect_probes += other.indirect_probes;
        self.suspicions_raised += other.suspicions_raised;
        self.last_probes += other.last_probes;
        self.declared_dead += other.declared_dead;
        self.refutations += other.refutations;
        self.gossip_messages += other.gossip_messages;
        self.syncs_started += other.syncs_started;
        self.syncs_differing += other.syncs_differing;
        self.syncs_refused += other.syncs_refused;
        self.sync_truncated += other.sync_truncated;
        self.sync_records_received += other.sync_records_received;
        self.broadcasts_dropped += other.broadcasts_dropped;
        self.transmits_dropped += other.transmits_dropped;
        self.events_dropped += other.events_dropped;
        self.journal_dropped += other.journal_dropped;
        self.effects_dropped += other.effects_dropped;
        self.relays_refused += other.relays_refused;
        self.reaped += other.reaped;
        self.releases_applied += other.releases_applied;
        self.releases_refused += other.releases_refused;
        self.safe_mode_entered += other.safe_mode_entered;
        self.releases_voided += other.releases_voided;
        self.leases += &other.leases;
        self.remedy += &other.remedy;
        self.rollout += &other.rollout;
    }
}
