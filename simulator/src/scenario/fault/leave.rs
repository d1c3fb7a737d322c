//! `leave`: agents leave gracefully, then their processes stop a gossip
//! round later.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;

/// How long a leaving agent gossips its departure before it stops.
const GOSSIP_BEFORE_STOP: Duration = Duration::from_secs(1);

/// Agents leave gracefully.
#[derive(Clone, Debug, PartialEq)]
pub struct Leave {
    /// When.
    pub at: Duration,
    /// Which agents.
    pub nodes: Nodes,
}

/// A `leave` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    nodes: NodesFile,
}

impl Parse for Leave {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 20\nnodes = { count = 1, exclude_seeds = true }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Leave, ScenarioError> {
        Ok(Leave {
            at: input.seconds("at_s", file.at_s)?,
            nodes: input.nodes("nodes", &file.nodes)?,
        })
    }
}

impl Kind for Leave {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let picked = resolution.pick(&self.nodes);
        resolution.push(self.at, Action::Leave(picked.clone()));
        resolution.push(self.at + GOSSIP_BEFORE_STOP, Action::Stop(picked));
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, format!("leave {}", self.nodes.label()))
    }
}
