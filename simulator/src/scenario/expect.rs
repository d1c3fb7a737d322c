//! The `[expect]` section: the bounds a run must meet, remediation's
//! included; unset bounds fall back to defaults derived from the protocol
//! parameters when the run is built.

use crate::scenario::context::{Context, ScenarioError, seconds};
use crate::scenario::fleet::{Fleet, NodesFile, nodes, selected};
use crate::scenario::services::{LocalOnly, RemedyExpect};
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// What a run must meet; unset bounds fall back to defaults derived from
/// the protocol parameters (see `docs/scenarios.md`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    /// After the last disturbance, all running agents agree with the truth
    /// about who is running within this bound.
    pub converge_within: Option<Duration>,
    /// Every crashed agent is declared dead by every running agent within
    /// this bound.
    pub detect_within: Option<Duration>,
    /// Most incidents of a running agent declared dead, over the whole run.
    pub false_dead_max: Option<u64>,
    /// A retag reaches every running agent within this bound.
    pub spread_within: Option<Duration>,
    /// Ceiling of bytes sent per agent per second, averaged over the run.
    pub bytes_per_agent_second_max: Option<f64>,
    /// A release (and a trust document) reaches every running agent within
    /// this bound of its publication or, if the network is cut then, of
    /// the heal.
    pub release_within: Option<Duration>,
    /// Whenever a lease scope has no holder while one of its candidates
    /// runs, some candidate holds it again within this bound.
    pub lease_held_within: Option<Duration>,
    /// Fewest panics inside automerge the agents must have caught, summed
    /// over the fleet: that the crafted changes of an `attack` reached
    /// automerge and were refused there.
    pub automerge_panics_min: Option<u64>,
    /// What remediation must have done.
    pub remedy: RemedyExpect,
    /// What staged rollouts must have done.
    pub rollout: RolloutExpect,
}

/// Bounds on a run's staged rollouts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutExpect {
    /// Most hosts that ever ran any one staged release.
    pub ran_max: Option<u64>,
    /// A staged release whose gates passed reaches every running agent
    /// within this bound of its publication.
    pub complete_within: Option<Duration>,
    /// A staged release whose gate failed: every host that ran it went
    /// back within this bound of the first failure.
    pub reverted_within: Option<Duration>,
}

/// The `[expect]` table as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExpectFile {
    converge_within_s: Option<f64>,
    detect_within_s: Option<f64>,
    false_dead_max: Option<u64>,
    spread_within_s: Option<f64>,
    bytes_per_agent_second_max: Option<f64>,
    release_within_s: Option<f64>,
    lease_held_within_s: Option<f64>,
    automerge_panics_min: Option<u64>,
    actions_min: Option<u64>,
    actions_max: Option<u64>,
    disruptive_min: Option<u64>,
    disruptive_max: Option<u64>,
    skipped_systemic_min: Option<u64>,
    needs_human_min: Option<u64>,
    approval_expired_min: Option<u64>,
    #[serde(default)]
    local_only: Vec<LocalOnlyFile>,
    rollout_ran_max: Option<u64>,
    rollout_complete_within_s: Option<f64>,
    rollout_reverted_within_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalOnlyFile {
    nodes: NodesFile,
    from_s: f64,
    until_s: f64,
}

/// Validates `[expect]`.
pub(crate) fn expect(
    context: &Context<'_>,
    file: &Spanned<ExpectFile>,
    fleet: &Fleet,
) -> Result<Expect, ScenarioError> {
    let span = file.span();
    let expect = file.get_ref();
    let bound = |name: &str, value: Option<f64>| {
        value
            .map(|value| seconds(context, span.clone(), &format!("expect.{name}"), value))
            .transpose()
    };
    if let Some(value) = expect.bytes_per_agent_second_max
        && !(value.is_finite() && value > 0.0)
    {
        return Err(context.invalid(
            span,
            "expect.bytes_per_agent_second_max",
            "must be positive",
        ));
    }
    Ok(Expect {
        converge_within: bound("converge_within_s", expect.converge_within_s)?,
        detect_within: bound("detect_within_s", expect.detect_within_s)?,
        false_dead_max: expect.false_dead_max,
        spread_within: bound("spread_within_s", expect.spread_within_s)?,
        bytes_per_agent_second_max: expect.bytes_per_agent_second_max,
        release_within: bound("release_within_s", expect.release_within_s)?,
        lease_held_within: bound("lease_held_within_s", expect.lease_held_within_s)?,
        automerge_panics_min: expect.automerge_panics_min,
        remedy: remedy(context, span.clone(), expect, fleet)?,
        rollout: RolloutExpect {
            ran_max: expect.rollout_ran_max,
            complete_within: bound(
                "rollout_complete_within_s",
                expect.rollout_complete_within_s,
            )?,
            reverted_within: bound(
                "rollout_reverted_within_s",
                expect.rollout_reverted_within_s,
            )?,
        },
    })
}

/// Validates the remediation fields of `[expect]`.
fn remedy(
    context: &Context<'_>,
    span: Range<usize>,
    file: &ExpectFile,
    fleet: &Fleet,
) -> Result<RemedyExpect, ScenarioError> {
    for (name, min, max) in [
        ("actions", file.actions_min, file.actions_max),
        ("disruptive", file.disruptive_min, file.disruptive_max),
    ] {
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(context.invalid(
                span,
                format!("expect.{name}_min"),
                format!("{min} is above {name}_max ({max})"),
            ));
        }
    }
    let mut local_only = Vec::new();
    for (index, window) in file.local_only.iter().enumerate() {
        let field = |name: &str| format!("expect.local_only[{index}].{name}");
        let chosen = &window.nodes;
        if chosen.count.is_some() || chosen.fraction.is_some() || chosen.exclude_seeds {
            return Err(context.invalid(
                span,
                field("nodes"),
                "names agents by select or ids only (random picks would change per run)",
            ));
        }
        let chosen = nodes(context, span.clone(), &field("nodes"), chosen, fleet)?;
        let agents = match &chosen.ids {
            Some(ids) => ids.clone(),
            None => selected(&fleet.tags, &chosen.select),
        };
        let from = seconds(context, span.clone(), &field("from_s"), window.from_s)?;
        let until = seconds(context, span.clone(), &field("until_s"), window.until_s)?;
        if until <= from {
            return Err(context.invalid(span, field("until_s"), "must be after from_s"));
        }
        local_only.push(LocalOnly {
            agents,
            from,
            until,
        });
    }
    Ok(RemedyExpect {
        actions_min: file.actions_min,
        actions_max: file.actions_max,
        disruptive_min: file.disruptive_min,
        disruptive_max: file.disruptive_max,
        skipped_systemic_min: file.skipped_systemic_min,
        needs_human_min: file.needs_human_min,
        approval_expired_min: file.approval_expired_min,
        local_only,
    })
}
