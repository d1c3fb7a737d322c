//! `partition`: the network splits into groups, and heals later if the
//! fault says when. `allow` adds one-way links between groups; `bridges`
//! are agents that reach, and are reached by, every group.

use crate::network::Cut;
use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::fleet::{Fleet, Nodes, NodesFile};
use crate::scenario::schedule::{Action, pick};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::time::Duration;
use toml::{Table, Value};

/// Most named groups of one partition (the agents left over form one
/// more).
const GROUPS_MAX: usize = 64;

/// Split the network into groups.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// When it starts.
    pub at: Duration,
    /// When it heals, if ever.
    pub heal: Option<Duration>,
    /// The groups, drawn in order from agents not yet grouped; agents
    /// left over form one more group.
    pub groups: Vec<Nodes>,
    /// Extra directed links allowed between groups: one-way links.
    pub allow: Vec<(u16, u16)>,
    /// Agents that reach, and are reached by, every group.
    pub bridges: Option<Nodes>,
}

/// A `partition` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    heal_s: Option<f64>,
    groups: Vec<NodesFile>,
    #[serde(default)]
    allow: Vec<[u16; 2]>,
    bridges: Option<NodesFile>,
}

impl Parse for Partition {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 10\nheal_s = 30\ngroups = [{ fraction = 0.5 }, { count = 2, select = \"role=db\" }]\nallow = [[0, 1]]\nbridges = { ids = [5] }";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<Partition, ScenarioError> {
        let at = input.seconds("at_s", file.at_s)?;
        let heal = input.optional_after(at, "heal_s", file.heal_s)?;
        if file.groups.is_empty() || file.groups.len() > GROUPS_MAX {
            return Err(input.invalid(
                "groups",
                "give 1 to 64 groups (the agents left over form one more)",
            ));
        }
        let groups = file
            .groups
            .iter()
            .enumerate()
            .map(|(number, group)| input.nodes(&format!("groups[{number}]"), group))
            .collect::<Result<Vec<_>, _>>()?;
        let group_count = groups.len() + 1;
        let allow = file
            .allow
            .iter()
            .map(|&[from, to]| {
                if usize::from(from) >= group_count || usize::from(to) >= group_count {
                    Err(input.invalid(
                        "allow",
                        format!("groups are numbered 0 to {}", group_count - 1),
                    ))
                } else {
                    Ok((from, to))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bridges = file
            .bridges
            .as_ref()
            .map(|file| input.nodes("bridges", file))
            .transpose()?;
        Ok(Partition {
            at,
            heal,
            groups,
            allow,
            bridges,
        })
    }
}

impl Kind for Partition {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let cut = cut(
            resolution.fleet,
            &self.groups,
            &self.allow,
            self.bridges.as_ref(),
            resolution.rng,
        );
        resolution.push(self.at, Action::Partition(cut));
        if let Some(heal) = self.heal {
            resolution.push(heal, Action::Heal);
        }
    }

    fn vary(&mut self, variation: &Variation) {
        (self.at, self.heal) = variation.span(self.at, self.heal);
        // Smaller named groups reshape the partition: the agents they
        // leave out join the remainder group.
        for group in &mut self.groups {
            *group = variation.nodes(group);
        }
    }

    fn write_back(&self, entry: &mut Table) {
        write::span(entry, self.at, "heal_s", self.heal);
        if let Some(Value::Array(files)) = entry.get_mut("groups") {
            for (file, nodes) in files.iter_mut().zip(&self.groups) {
                write::nodes(file, nodes);
            }
        }
    }

    fn period(&self, end: f64) -> Period {
        let label = format!("partition, {} groups", self.groups.len() + 1);
        Period::until(self.at, self.heal, end, "partition", label)
    }
}

/// The cut: each agent's group, the groups drawn in order from agents not
/// yet grouped, then the bridges; one-way links and bridges allowed.
fn cut(
    fleet: &Fleet,
    groups: &[Nodes],
    allow: &[(u16, u16)],
    bridges: Option<&Nodes>,
    rng: &mut ChaCha8Rng,
) -> Cut {
    let agents = fleet.agents as usize;
    let rest = u16::try_from(groups.len()).expect("at most 64 groups");
    let mut group_of = vec![rest; agents];
    let mut taken = vec![false; agents];
    for (number, nodes) in groups.iter().enumerate() {
        for agent in pick(fleet, nodes, Some(&taken), rng) {
            taken[agent as usize] = true;
            group_of[agent as usize] = u16::try_from(number).expect("at most 64 groups");
        }
    }
    let bridge_group = rest + 1;
    let group_count = rest + 1 + u16::from(bridges.is_some());
    if let Some(bridges) = bridges {
        for agent in pick(fleet, bridges, None, rng) {
            group_of[agent as usize] = bridge_group;
        }
    }
    let mut cut = Cut::isolated(group_of, group_count);
    for &(from, to) in allow {
        cut.allow(from, to);
    }
    if bridges.is_some() {
        for group in 0..bridge_group {
            cut.allow(group, bridge_group);
            cut.allow(bridge_group, group);
        }
    }
    cut
}
