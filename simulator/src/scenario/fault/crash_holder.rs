//! `crash-holder`: whichever agent holds a lease scope when the fault
//! fires crashes (no one does if nobody holds it then), restarting later
//! if the fault says so.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Known, Misfit, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Crash whichever agent holds a lease's scope when the fault fires.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashHolder {
    /// When.
    pub at: Duration,
    /// The scope, one of the scenario's `[[leases]]` or the budget scope
    /// of a disruptive rule.
    pub scope: String,
    /// Restart after this long, if at all.
    pub restart_after: Option<Duration>,
}

/// A `crash-holder` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    scope: String,
    restart_after_s: Option<f64>,
}

impl Parse for CrashHolder {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 12\nscope = \"s\"\nrestart_after_s = 4";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<CrashHolder, ScenarioError> {
        Ok(CrashHolder {
            at: input.seconds("at_s", file.at_s)?,
            scope: file.scope.clone(),
            restart_after: input.optional_seconds("restart_after_s", file.restart_after_s)?,
        })
    }
}

impl Kind for CrashHolder {
    fn start(&self) -> Duration {
        self.at
    }

    fn check_known(&self, known: &Known<'_>) -> Result<(), Misfit> {
        let scope = &self.scope;
        if known.leases.iter().any(|lease| &lease.scope == scope)
            || known.declared.scopes.contains(scope)
        {
            return Ok(());
        }
        Err(Misfit {
            field: Some("scope"),
            message: format!(
                "{scope:?} is not a scope of [[leases]] nor the budget scope of a disruptive rule (remediate:<rule>)"
            ),
        })
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let action = Action::CrashHolder(self.scope.clone(), self.restart_after);
        resolution.push(self.at, action);
    }

    fn vary(&mut self, variation: &Variation) {
        self.at = variation.moved(self.at);
    }

    fn write_back(&self, entry: &mut Table) {
        write::seconds(entry, "at_s", self.at);
    }

    fn period(&self, end: f64) -> Period {
        let label = format!("crash holder of {}", self.scope);
        Period::lasting(self.at, self.restart_after, end, "crash", label)
    }
}
