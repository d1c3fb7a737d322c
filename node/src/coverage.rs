//! Coverage probes: the protocol's rare paths, each tied to the counter that
//! moves when the path runs.
//!
//! A chaos run that never refutes a suspicion, never takes a lease over
//! from a dead holder and never fires the systemic short-circuit has not
//! tested those paths, however many seeds it ran. Swarm runs sum these per
//! seed and list the probes no seed hit, so coverage is shown, not assumed.
//! A probe reads a [`Stats`] counter rather than keeping its own, so the
//! runtime's metrics and the simulator's coverage cannot disagree.

use crate::Stats;

/// One rare path of the core.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// Short name, stable across versions (reports and scripts use it).
    pub name: &'static str,
    /// What happened when the probe is hit.
    pub meaning: &'static str,
    count: fn(&Stats) -> u64,
}

impl Probe {
    /// How often the path ran, by `stats`.
    pub fn count(&self, stats: &Stats) -> u64 {
        (self.count)(stats)
    }
}

macro_rules! probes {
    ($($name:literal => |$stats:ident| $count:expr, $meaning:literal;)*) => {
        /// Every probe, in report order: membership, dissemination, config,
        /// leases, remediation.
        pub const PROBES: &[Probe] = &[
            $(Probe { name: $name, meaning: $meaning, count: |$stats: &Stats| $count },)*
        ];
    };
}

probes! {
    "suspicion" => |s| s.suspicions_raised, "a member missed its probes and was suspected";
    "refutation" => |s| s.refutations, "an agent refuted a suspicion or death claim about itself";
    "last-probe" => |s| s.last_probes, "a suspect got one last direct probe before being declared dead";
    "declared-dead" => |s| s.declared_dead, "an agent declared a member dead";
    "reaped" => |s| s.reaped, "a dead or departed member was forgotten";
    "relay-refused" => |s| s.relays_refused, "an indirect probe request was refused";
    "sync-repair" => |s| s.syncs_differing, "anti-entropy found a difference and repaired it";
    "sync-truncated" => |s| s.sync_truncated, "an anti-entropy answer was cut at the size limit";
    "sync-refused" => |s| s.syncs_refused, "an anti-entropy round was refused: too many open";
    "gossip-dropped" => |s| s.broadcasts_dropped, "the broadcast queue was full and dropped an update";
    "decode-error" => |s| s.decode_errors, "a message did not decode or broke a limit";
    "unadmitted" => |s| s.unadmitted_messages, "a message from a node without a valid certificate was dropped";
    "expelled" => |s| s.expelled, "a member was expelled: its key or certificate was revoked";
    "release-refused" => |s| s.releases_refused, "a config release was refused: expired or not newer";
    "release-voided" => |s| s.releases_voided, "a release in force stopped counting: a signer was revoked";
    "safe-mode" => |s| s.safe_mode_entered, "an agent entered safe mode (its release expired)";
    "lease-taken-over" => |s| s.leases.taken_over, "a lease was acquired from another holder (fail-over)";
    "lease-lost" => |s| s.leases.lost, "a holder lost a lease: expired, released or superseded";
    "lease-lock-delay" => |s| s.leases.refused_too_early, "a voter refused a new epoch before ttl plus lock-delay";
    "lease-contended" => |s| s.leases.refused_held_by_other, "a voter refused an epoch already granted to another candidate";
    "lease-stale-epoch" => |s| s.leases.refused_stale_epoch, "a voter refused a request below the epoch it granted";
    "grant-rejected" => |s| s.leases.grants_rejected, "a candidate rejected a grant that did not match its request";
    "short-circuit" => |s| s.remedy.skipped_systemic, "remediation stood down: more than max_unhealthy were unhealthy";
    "cooldown" => |s| s.remedy.skipped_cooldown, "a remediation waited out its cooldown";
    "rate-limit" => |s| s.remedy.skipped_limit, "a target hit its limit and a human was asked";
    "ladder-exhausted" => |s| s.remedy.ladders_exhausted, "every step of a ladder ran and the check stayed unhealthy";
    "approval-expired" => |s| s.remedy.skipped_approval_expired, "an approval expired before the action ran";
    "approval-missing" => |s| s.remedy.skipped_no_approval, "no approval came in time";
    "dry-run" => |s| s.remedy.dry_runs, "a dry run was recorded instead of an action";
    "budget-full" => |s| s.remedy.budget_full, "planning waited: the disruption budget was in use";
    "fenced-stale-epoch" => |s| s.remedy.refused_stale_epoch, "a target refused an intent of a stale epoch (fencing)";
    "fenced-late" => |s| s.remedy.refused_late, "a target refused an intent it could not finish by its deadline";
    "safe-mode-hold" => |s| s.remedy.skipped_safe_mode, "a remediation was held back by safe mode";
    "check-timeout" => |s| s.remedy.check_timeouts, "a check run gave no result by its timeout";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_probes_read_their_counter() {
        let names: BTreeSet<_> = PROBES.iter().map(|probe| probe.name).collect();
        assert_eq!(names.len(), PROBES.len());
        let mut stats = Stats::default();
        assert!(PROBES.iter().all(|probe| probe.count(&stats) == 0));
        stats.refutations = 3;
        stats.leases.taken_over = 2;
        stats.remedy.skipped_systemic = 1;
        let hit: Vec<_> = PROBES
            .iter()
            .filter(|probe| probe.count(&stats) > 0)
            .map(|probe| (probe.name, probe.count(&stats)))
            .collect();
        assert_eq!(
            hit,
            [
                ("refutation", 3),
                ("lease-taken-over", 2),
                ("short-circuit", 1)
            ]
        );
    }
}
