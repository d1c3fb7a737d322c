//! Judging a run against its scenario's expectations, and the verdict's exit
//! code.

use crate::checkers::Kind;
use crate::outcome::{Outcome, quantile_s};
use crate::scenario::expect::{Expect, RolloutExpect};
use crate::scenario::services::RemedyExpect;

/// How a run ended, from best to worst; each has its own exit code so that
/// scripts (and swarm runs) can tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every invariant held and every expectation was met.
    Pass,
    /// Invariants held, but an expectation was not met.
    ExpectationUnmet,
    /// A liveness invariant broke: something did not happen in time.
    Liveness,
    /// A safety invariant broke: something that must never happen did.
    Safety,
}

impl Verdict {
    /// The process exit code: 0 pass, 1 expectation unmet, 3 liveness,
    /// 4 safety (2 is left to usage errors).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::ExpectationUnmet => 1,
            Verdict::Liveness => 3,
            Verdict::Safety => 4,
        }
    }
}

/// Checks `outcome` against `expect`; returns the unmet expectations, each
/// as a sentence.
pub fn unmet(expect: &Expect, outcome: &Outcome) -> Vec<String> {
    let mut unmet = Vec::new();
    if let Some(max) = expect.false_dead_max
        && outcome.false_dead_incidents as u64 > max
    {
        unmet.push(format!(
            "{} false dead incidents, expected at most {max}",
            outcome.false_dead_incidents
        ));
    }
    if let Some(max) = expect.bytes_per_agent_second_max
        && outcome.bytes_per_agent_second() > max
    {
        unmet.push(format!(
            "{:.0} B/s per agent, expected at most {max:.0}",
            outcome.bytes_per_agent_second()
        ));
    }
    if let Some(bound) = expect.spread_within {
        let slowest = quantile_s(&outcome.spread_times, 1.0);
        if slowest.is_some_and(|slowest| slowest > bound.as_secs_f64()) {
            unmet.push(format!(
                "news took up to {:.2}s to spread, expected at most {:.2}s",
                slowest.unwrap_or(0.0),
                bound.as_secs_f64()
            ));
        }
    }
    if expect.converge_within.is_some() && outcome.settle_times.is_empty() {
        unmet.push("the fleet never converged after a disturbance".into());
    }
    if outcome.unconverged_at_end > 0 && expect.converge_within.is_some() {
        unmet.push(format!(
            "{} running agents disagreed with the truth at the end",
            outcome.unconverged_at_end
        ));
    }
    if let Some(min) = expect.automerge_panics_min
        && outcome.state.automerge_panics < min
    {
        unmet.push(format!(
            "agents caught {} automerge panics, expected at least {min}",
            outcome.state.automerge_panics
        ));
    }
    unmet.extend(remedy_unmet(&expect.remedy, outcome));
    unmet.extend(rollout_unmet(&expect.rollout, outcome));
    unmet
}

/// The unmet rollout expectations.
fn rollout_unmet(expect: &RolloutExpect, outcome: &Outcome) -> Vec<String> {
    let mut unmet = Vec::new();
    for release in &outcome.rollouts.releases {
        let name = &release.name;
        if let Some(max) = expect.ran_max
            && release.ran as u64 > max
        {
            unmet.push(format!(
                "{} hosts ran {name}, expected at most {max}",
                release.ran
            ));
        }
        if let Some(bound) = expect.complete_within
            && !release.failed
        {
            match release.complete_s {
                Some(seconds) if seconds <= bound.as_secs_f64() => {}
                Some(seconds) => unmet.push(format!(
                    "{name} reached every running agent after {seconds:.2}s, expected within {:.2}s",
                    bound.as_secs_f64()
                )),
                None => unmet.push(format!("{name} never reached every running agent")),
            }
        }
        if let Some(bound) = expect.reverted_within
            && release.failed
        {
            if release.revert_s.len() < release.ran {
                unmet.push(format!(
                    "{} of the {} hosts that ran {name} reverted",
                    release.revert_s.len(),
                    release.ran
                ));
            }
            let slowest = release.revert_s.iter().copied().fold(0.0, f64::max);
            if slowest > bound.as_secs_f64() {
                unmet.push(format!(
                    "a host went back from {name} {slowest:.2}s after the first failure, expected within {:.2}s",
                    bound.as_secs_f64()
                ));
            }
        }
    }
    unmet
}

/// The unmet remediation expectations.
fn remedy_unmet(expect: &RemedyExpect, outcome: &Outcome) -> Vec<String> {
    let truth = &outcome.remedy;
    let stats = &outcome.stats.remedy;
    let mut unmet = Vec::new();
    let counts = [
        (
            "actions started",
            truth.actions(),
            expect.actions_min,
            expect.actions_max,
        ),
        (
            "disruptive actions started",
            truth.disruptive.len() as u64,
            expect.disruptive_min,
            expect.disruptive_max,
        ),
        (
            "systemic-failure skips",
            stats.skipped_systemic,
            expect.skipped_systemic_min,
            None,
        ),
        (
            "needs-human records",
            stats.skipped_limit + stats.ladders_exhausted,
            expect.needs_human_min,
            None,
        ),
        (
            "expired-approval skips",
            stats.skipped_approval_expired,
            expect.approval_expired_min,
            None,
        ),
    ];
    for (what, count, min, max) in counts {
        if let Some(min) = min
            && count < min
        {
            unmet.push(format!("{count} {what}, expected at least {min}"));
        }
        if let Some(max) = max
            && count > max
        {
            unmet.push(format!("{count} {what}, expected at most {max}"));
        }
    }
    for window in &expect.local_only {
        let (from, until) = (window.from.as_nanos(), window.until.as_nanos());
        let offenders: Vec<String> = truth
            .disruptive
            .iter()
            .filter(|&&(agent, at)| {
                window.agents.contains(&agent) && (from..=until).contains(&u128::from(at))
            })
            .map(|&(agent, at)| format!("agent {agent} at t={:.3}s", at as f64 / 1e9))
            .collect();
        if !offenders.is_empty() {
            unmet.push(format!(
                "disruptive actions in the local-only window {:.1}s to {:.1}s: {}",
                window.from.as_secs_f64(),
                window.until.as_secs_f64(),
                offenders.join(", ")
            ));
        }
    }
    unmet
}

/// The verdict of `outcome` given its unmet expectations.
pub fn verdict(outcome: &Outcome, unmet: &[String]) -> Verdict {
    if outcome
        .violations
        .iter()
        .any(|violation| violation.kind == Kind::Safety)
    {
        Verdict::Safety
    } else if outcome.liveness_failed {
        Verdict::Liveness
    } else if !unmet.is_empty() {
        Verdict::ExpectationUnmet
    } else {
        Verdict::Pass
    }
}
