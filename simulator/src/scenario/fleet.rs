//! The `[fleet]` section (how many agents, the seeds, the tag groups) and
//! the node sets (`nodes`, `via`, `groups`, ...) that faults, links and
//! expectations select agents with.

use crate::scenario::context::{Context, ScenarioError, probability, seconds};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Most agents a scenario may ask for; the simulator's memory budget.
pub const AGENTS_MAX: u32 = 100_000;

/// The simulated fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Number of agents.
    pub agents: u32,
    /// The first `seeds` agents are the seeds every agent joins through.
    pub seeds: u32,
    /// Agents start at uniformly random times in `[0, join_spread]`; seeds
    /// start at 0.
    pub join_spread: Duration,
    /// Tags of each agent, by index.
    pub tags: Vec<BTreeMap<String, String>>,
}

/// A set of agents, resolved against the fleet when a run is built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nodes {
    /// Keep only agents carrying all these tags.
    pub select: BTreeMap<String, String>,
    /// Then pick this many at random.
    pub count: Option<u32>,
    /// Or this fraction of the agents the selection leaves, at random.
    pub fraction: Option<f64>,
    /// Or exactly these indices (not combinable with the fields above).
    pub ids: Option<Vec<u32>>,
    /// Leave the seeds out of random picks.
    pub exclude_seeds: bool,
}

impl Nodes {
    /// A short description for reports: `agents [1, 2]`, `3 agents
    /// (role=db)`, `50% of agents`, `all agents`.
    pub fn label(&self) -> String {
        if let Some(ids) = &self.ids {
            return format!("agents {ids:?}");
        }
        let what = match (self.count, self.fraction) {
            (Some(count), _) => format!("{count} agents"),
            (None, Some(fraction)) => format!("{:.0}% of agents", fraction * 100.0),
            (None, None) => "all agents".into(),
        };
        if self.select.is_empty() {
            what
        } else {
            let select: Vec<String> = self
                .select
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{what} ({})", select.join(","))
        }
    }
}

/// The agents whose tags carry every tag of `select`.
pub(crate) fn selected(
    tags: &[BTreeMap<String, String>],
    select: &BTreeMap<String, String>,
) -> Vec<u32> {
    (0..tags.len() as u32)
        .filter(|&agent| {
            select
                .iter()
                .all(|(key, value)| tags[agent as usize].get(key) == Some(value))
        })
        .collect()
}

/// The `[fleet]` table as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FleetFile {
    agents: u32,
    #[serde(default = "default_seeds")]
    seeds: u32,
    #[serde(default)]
    join_spread_s: f64,
    #[serde(default)]
    groups: Vec<GroupFile>,
}

fn default_seeds() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    count: u32,
    tags: BTreeMap<String, String>,
}

/// A node set as serde reads it.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodesFile {
    #[serde(default)]
    pub(crate) select: Option<String>,
    pub(crate) count: Option<u32>,
    pub(crate) fraction: Option<f64>,
    pub(crate) ids: Option<Vec<u32>>,
    #[serde(default)]
    pub(crate) exclude_seeds: bool,
}

/// Validates `[fleet]`.
pub(crate) fn fleet(
    context: &Context<'_>,
    file: &Spanned<FleetFile>,
) -> Result<Fleet, ScenarioError> {
    let span = file.span();
    let fleet = file.get_ref();
    if fleet.agents == 0 || fleet.agents > AGENTS_MAX {
        return Err(context.invalid(span, "fleet.agents", format!("must be 1 to {AGENTS_MAX}")));
    }
    if fleet.seeds == 0 || fleet.seeds > fleet.agents {
        return Err(context.invalid(
            span,
            "fleet.seeds",
            "must be at least 1 and at most fleet.agents",
        ));
    }
    let join_spread = seconds(
        context,
        span.clone(),
        "fleet.join_spread_s",
        fleet.join_spread_s,
    )?;
    let mut tags = Vec::with_capacity(fleet.agents as usize);
    for (index, group) in fleet.groups.iter().enumerate() {
        let field = format!("fleet.groups[{index}].tags");
        let meta = fleetmesh_node::NodeMeta {
            tags: group.tags.clone(),
            addrs: Vec::new(),
        };
        meta.validate()
            .map_err(|error| context.invalid(span.clone(), &field, error.to_string()))?;
        tags.extend(std::iter::repeat_n(
            group.tags.clone(),
            group.count as usize,
        ));
    }
    if !fleet.groups.is_empty() && tags.len() != fleet.agents as usize {
        return Err(context.invalid(
            span,
            "fleet.groups",
            format!(
                "group counts add up to {}, but fleet.agents is {}",
                tags.len(),
                fleet.agents
            ),
        ));
    }
    tags.resize(fleet.agents as usize, BTreeMap::new());
    Ok(Fleet {
        agents: fleet.agents,
        seeds: fleet.seeds,
        join_spread,
        tags,
    })
}

pub use fleetmesh_node::crdt::selector::parse_selector;

/// Validates the node set `file`, named `field` in errors, against `fleet`.
pub(crate) fn nodes(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    file: &NodesFile,
    fleet: &Fleet,
) -> Result<Nodes, ScenarioError> {
    let select = match &file.select {
        Some(text) => parse_selector(text)
            .map_err(|message| context.invalid(span.clone(), format!("{field}.select"), message))?,
        None => BTreeMap::new(),
    };
    let picks = usize::from(file.count.is_some())
        + usize::from(file.fraction.is_some())
        + usize::from(file.ids.is_some());
    if picks > 1 {
        return Err(context.invalid(span, field, "give at most one of count, fraction, ids"));
    }
    if file.ids.is_some() && (file.select.is_some() || file.exclude_seeds) {
        return Err(context.invalid(
            span,
            field,
            "ids names agents exactly; it cannot be combined with select or exclude_seeds",
        ));
    }
    if let Some(fraction) = file.fraction {
        probability(
            context,
            span.clone(),
            &format!("{field}.fraction"),
            fraction,
        )?;
    }
    if let Some(ids) = &file.ids
        && let Some(bad) = ids.iter().find(|&&id| id >= fleet.agents)
    {
        return Err(context.invalid(
            span,
            format!("{field}.ids"),
            format!("agent {bad} does not exist (fleet has {})", fleet.agents),
        ));
    }
    if file.count.is_some_and(|count| count > fleet.agents) {
        return Err(context.invalid(
            span,
            format!("{field}.count"),
            "more agents than the fleet has",
        ));
    }
    Ok(Nodes {
        select,
        count: file.count,
        fraction: file.fraction,
        ids: file.ids.clone(),
        exclude_seeds: file.exclude_seeds,
    })
}
