//! `rotate-root`: the next trust document replaces the root key with a new
//! one, signed by the old root and the new.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::operators::TrustChange;
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;

/// The root key is replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct RotateRoot {
    /// When.
    pub at: Duration,
    /// Agents it may be handed to (one running agent is picked).
    pub via: Nodes,
}

/// A `rotate-root` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    #[serde(default)]
    via: NodesFile,
}

impl Parse for RotateRoot {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 30\nvia = { select = \"role=db\" }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<RotateRoot, ScenarioError> {
        Ok(RotateRoot {
            at: input.seconds("at_s", file.at_s)?,
            via: input.nodes("via", &file.via)?,
        })
    }
}

impl Kind for RotateRoot {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        resolution.hand(self.at, &self.via, |via| {
            Action::Trust(TrustChange::RotateRoot, via)
        });
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "trust change")
    }

    fn touches_config(&self) -> bool {
        true
    }
}
