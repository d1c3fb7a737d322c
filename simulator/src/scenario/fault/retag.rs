//! `retag`: agents replace their tags, announced with a new incarnation;
//! the run measures how long the news takes to reach everyone.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Agents change their tags.
#[derive(Clone, Debug, PartialEq)]
pub struct Retag {
    /// When.
    pub at: Duration,
    /// Which agents.
    pub nodes: Nodes,
    /// The new tags.
    pub tags: BTreeMap<String, String>,
}

/// A `retag` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    nodes: NodesFile,
    tags: BTreeMap<String, String>,
}

impl Parse for Retag {
    type File = File;
    const EXAMPLE: &'static str =
        "at_s = 15\nnodes = { ids = [2] }\ntags = { role = \"db\", zone = \"b\" }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Retag, ScenarioError> {
        let meta = fleetmesh_node::NodeMeta {
            tags: file.tags.clone(),
            addrs: Vec::new(),
        };
        meta.validate()
            .map_err(|error| input.invalid("tags", error.to_string()))?;
        Ok(Retag {
            at: input.seconds("at_s", file.at_s)?,
            nodes: input.nodes("nodes", &file.nodes)?,
            tags: file.tags.clone(),
        })
    }
}

impl Kind for Retag {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let picked = resolution.pick(&self.nodes);
        resolution.push(self.at, Action::Retag(picked, self.tags.clone()));
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, format!("retag {}", self.nodes.label()))
    }
}
