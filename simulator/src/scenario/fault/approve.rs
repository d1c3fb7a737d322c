//! `approve`: an operator holding `approve` signs an approval of every
//! pending remediation of a rule on some targets that an agent's ledger
//! shows, possibly late (so it may arrive expired).

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::{Action, Approval};
use serde::Deserialize;
use std::time::Duration;

/// An `approve` fault: an operator holding `approve` signs an approval for
/// every pending remediation of `rule` on `nodes` an agent's ledger shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ApproveFault {
    /// When the approvals arrive.
    pub at: Duration,
    /// The rule.
    pub rule: String,
    /// The targets whose remediations are approved.
    pub nodes: Nodes,
    /// How long each approval lasts from its signature.
    pub ttl: Duration,
    /// Signed this long before it arrives (so it may arrive expired).
    pub late_by: Duration,
    /// The agents the operator may read the ledger of and hand the
    /// approvals to (one running agent is picked).
    pub via: Nodes,
}

/// An `approve` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    rule: String,
    nodes: NodesFile,
    ttl_s: f64,
    #[serde(default)]
    late_by_s: f64,
    #[serde(default)]
    via: NodesFile,
}

impl Parse for ApproveFault {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 20\nrule = \"fix\"\nnodes = { select = \"role=web\" }\nttl_s = 30\nlate_by_s = 5\nvia = { count = 2 }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<ApproveFault, ScenarioError> {
        input
            .declared
            .rule(&file.rule)
            .map_err(|message| input.invalid("rule", message))?;
        let ttl = input.seconds("ttl_s", file.ttl_s)?;
        if ttl.is_zero() {
            return Err(input.invalid("ttl_s", "must be positive"));
        }
        Ok(ApproveFault {
            at: input.seconds("at_s", file.at_s)?,
            rule: file.rule.clone(),
            nodes: input.nodes("nodes", &file.nodes)?,
            ttl,
            late_by: input.seconds("late_by_s", file.late_by_s)?,
            via: input.nodes("via", &file.via)?,
        })
    }
}

impl Kind for ApproveFault {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let targets = resolution.pick(&self.nodes);
        let approval = Approval {
            rule: self.rule.clone(),
            ttl: self.ttl,
            late_by: self.late_by,
        };
        resolution.hand(self.at, &self.via, |via| {
            Action::Approve(Box::new(approval), targets, via)
        });
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "approval")
    }
}
