//! `pause`: agents stop handling input for a while, as a stopped process
//! does; their timers fire late.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Pause agents (a stopped process: no input handled, timers late).
#[derive(Clone, Debug, PartialEq)]
pub struct Pause {
    /// When.
    pub at: Duration,
    /// Which agents.
    pub nodes: Nodes,
    /// For how long.
    pub duration: Duration,
}

/// A `pause` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    nodes: NodesFile,
    duration_s: f64,
}

impl Parse for Pause {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 10\nnodes = { fraction = 0.5 }\nduration_s = 3";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<Pause, ScenarioError> {
        Ok(Pause {
            at: input.seconds("at_s", file.at_s)?,
            nodes: input.nodes("nodes", &file.nodes)?,
            duration: input.seconds("duration_s", file.duration_s)?,
        })
    }
}

impl Kind for Pause {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let picked = resolution.pick(&self.nodes);
        resolution.push(self.at, Action::Pause(picked.clone()));
        resolution.push(self.at + self.duration, Action::Resume(picked));
    }

    fn vary(&mut self, variation: &Variation) {
        self.at = variation.moved(self.at);
        self.nodes = variation.nodes(&self.nodes);
        self.duration = self.duration.mul_f64(variation.factor);
    }

    fn write_back(&self, entry: &mut Table) {
        write::seconds(entry, "at_s", self.at);
        write::seconds(entry, "duration_s", self.duration);
        write::nodes_field(entry, &self.nodes);
    }

    fn period(&self, _end: f64) -> Period {
        let at = self.at.as_secs_f64();
        let label = format!("pause {}", self.nodes.label());
        Period::new(at, at + self.duration.as_secs_f64(), "pause", label)
    }
}
