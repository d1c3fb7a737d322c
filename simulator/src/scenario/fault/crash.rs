//! `crash`: agents stop and lose their volatile state; a restart, if the
//! fault asks for one, is a fresh process.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Crash agents (volatile state lost), optionally restarting them.
#[derive(Clone, Debug, PartialEq)]
pub struct Crash {
    /// When.
    pub at: Duration,
    /// Which agents.
    pub nodes: Nodes,
    /// Restart after this long, if at all.
    pub restart_after: Option<Duration>,
}

/// A `crash` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    nodes: NodesFile,
    restart_after_s: Option<f64>,
}

impl Parse for Crash {
    type File = File;
    const EXAMPLE: &'static str =
        "at_s = 10\nnodes = { count = 2, select = \"role=db\" }\nrestart_after_s = 5";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<Crash, ScenarioError> {
        Ok(Crash {
            at: input.seconds("at_s", file.at_s)?,
            nodes: input.nodes("nodes", &file.nodes)?,
            restart_after: input.optional_seconds("restart_after_s", file.restart_after_s)?,
        })
    }
}

impl Kind for Crash {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let picked = resolution.pick(&self.nodes);
        resolution.push(self.at, Action::Crash(picked.clone()));
        if let Some(after) = self.restart_after {
            resolution.push(self.at + after, Action::Restart(picked));
        }
    }

    fn vary(&mut self, variation: &Variation) {
        self.at = variation.moved(self.at);
        self.nodes = variation.nodes(&self.nodes);
    }

    fn write_back(&self, entry: &mut Table) {
        write::seconds(entry, "at_s", self.at);
        write::nodes_field(entry, &self.nodes);
    }

    fn period(&self, end: f64) -> Period {
        let label = format!("crash {}", self.nodes.label());
        Period::lasting(self.at, self.restart_after, end, "crash", label)
    }
}
