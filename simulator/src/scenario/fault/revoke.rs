//! `revoke`: the root signs the next trust document, revoking an operator
//! key or an agent's node key (the fleet then expels the agent).

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::operators::TrustChange;
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;

/// The root revokes a key.
#[derive(Clone, Debug, PartialEq)]
pub struct Revoke {
    /// When.
    pub at: Duration,
    /// The revocation: [`TrustChange::Revoke`] or
    /// [`TrustChange::RevokeNode`].
    pub change: TrustChange,
    /// Agents it may be handed to (one running agent is picked).
    pub via: Nodes,
}

/// A `revoke` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    key: Option<String>,
    node: Option<u32>,
    #[serde(default)]
    via: NodesFile,
}

impl Parse for Revoke {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 25\nnode = 4\nvia = { ids = [0, 1] }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Revoke, ScenarioError> {
        let agents = input.fleet.agents;
        let change = match (&file.key, file.node) {
            (Some(key), None) => TrustChange::Revoke(input.operator_key("key", key)?),
            (None, Some(node)) if node < agents => TrustChange::RevokeNode(node),
            (None, Some(node)) => {
                return Err(input.invalid(
                    "node",
                    format!("agent {node} does not exist (fleet has {agents})"),
                ));
            }
            _ => {
                return Err(input.invalid(
                    "key",
                    "give exactly one of key (an operator) or node (an agent index)",
                ));
            }
        };
        Ok(Revoke {
            at: input.seconds("at_s", file.at_s)?,
            change,
            via: input.nodes("via", &file.via)?,
        })
    }
}

impl Kind for Revoke {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        resolution.hand(self.at, &self.via, |via| Action::Trust(self.change, via));
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "trust change")
    }

    fn touches_config(&self) -> bool {
        true
    }
}
