//! `emergency-stop`: an operator holding `stop` signs an emergency stop of
//! all automation on the agents a selector names (every agent without
//! one), lasting `for_s`, and optionally lifts it at `resume_at_s`; each is
//! handed to one running agent of `via`, which rushes it to the fleet.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::{Action, StopOrder};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// An `emergency-stop` fault.
#[derive(Clone, Debug, PartialEq)]
pub struct EmergencyStop {
    /// When the stop is handed to an agent.
    pub at: Duration,
    /// How long it lasts from then.
    pub lasting: Duration,
    /// Tags an agent must carry to be stopped; empty: every agent.
    pub select: BTreeMap<String, String>,
    /// When a resume lifts it, if one does.
    pub resume_at: Option<Duration>,
    /// The agents the operator may hand the stop to (one running agent is
    /// picked).
    pub via: Nodes,
}

/// An `emergency-stop` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    for_s: f64,
    #[serde(default)]
    select: BTreeMap<String, String>,
    #[serde(default)]
    resume_at_s: Option<f64>,
    #[serde(default)]
    via: NodesFile,
}

impl Parse for EmergencyStop {
    type File = File;
    const EXAMPLE: &'static str =
        "at_s = 20\nfor_s = 60\nselect = { zone = \"a\" }\nresume_at_s = 50\nvia = { count = 2 }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<EmergencyStop, ScenarioError> {
        let at = input.seconds("at_s", file.at_s)?;
        let lasting = input.seconds("for_s", file.for_s)?;
        if lasting.is_zero() {
            return Err(input.invalid("for_s", "must be positive"));
        }
        let resume_at = input.optional_seconds("resume_at_s", file.resume_at_s)?;
        if resume_at.is_some_and(|resume| resume <= at) {
            return Err(input.invalid("resume_at_s", "must be after at_s"));
        }
        Ok(EmergencyStop {
            at,
            lasting,
            select: file.select.clone(),
            resume_at,
            via: input.nodes("via", &file.via)?,
        })
    }
}

impl Kind for EmergencyStop {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let via = resolution.pick(&self.via);
        let stop = StopOrder {
            selector: self.select.clone(),
            lasting: Some(self.lasting),
        };
        resolution.push(self.at, Action::EmergencyStop(Box::new(stop), via.clone()));
        if let Some(resume_at) = self.resume_at {
            let resume = StopOrder {
                selector: self.select.clone(),
                lasting: None,
            };
            resolution.push(resume_at, Action::EmergencyStop(Box::new(resume), via));
        }
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "emergency stop")
    }
}
