//! `service`: the modelled service of a policy's check fails on some
//! agents' hosts, as a crash (until an action fixes it or it heals) or a
//! flap.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Misfit, Parse, Period, Resolution, starts_by};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;

/// How a `service` fault breaks its service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceMode {
    /// Unhealthy from `at` until an action of `fixed_by` or `heal` fixes it.
    Crash,
    /// Unhealthy at `at`, healthy `period` later, unhealthy again after
    /// another `period`, and so on until `until`, when it stays healthy. An
    /// action of `fixed_by` makes it healthy until its next unhealthy turn.
    Flap {
        /// Length of each half.
        period: Duration,
        /// When the flapping stops.
        until: Duration,
    },
}

/// A `service` fault: the modelled service of `check` fails on `nodes`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceFault {
    /// When it fails.
    pub at: Duration,
    /// On which agents' hosts.
    pub nodes: Nodes,
    /// The check (of a published policy) whose service fails.
    pub check: String,
    /// Crash or flap.
    pub mode: ServiceMode,
    /// Actions that fix it when they complete; none fixes it if empty.
    pub fixed_by: Vec<String>,
    /// It recovers by itself then, if still failing.
    pub heal: Option<Duration>,
    /// Liveness: each failure is healthy again within this long.
    pub expect_fixed_within: Option<Duration>,
}

/// A `service` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    nodes: NodesFile,
    check: String,
    #[serde(default = "default_mode")]
    mode: String,
    period_s: Option<f64>,
    until_s: Option<f64>,
    #[serde(default)]
    fixed_by: Vec<String>,
    heal_s: Option<f64>,
    expect_fixed_within_s: Option<f64>,
}

fn default_mode() -> String {
    "crash".into()
}

impl Parse for ServiceFault {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 5\nnodes = { ids = [4] }\ncheck = \"web\"\nmode = \"flap\"\nperiod_s = 10\nuntil_s = 50\nfixed_by = [\"reboot\"]\nheal_s = 70\nexpect_fixed_within_s = 30";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<ServiceFault, ScenarioError> {
        let at = input.seconds("at_s", file.at_s)?;
        let declared = input.declared;
        declared
            .check(&file.check)
            .map_err(|message| input.invalid("check", message))?;
        for action in &file.fixed_by {
            declared
                .action(action)
                .map_err(|message| input.invalid("fixed_by", message))?;
        }
        let mode = match (file.mode.as_str(), file.period_s, file.until_s) {
            ("crash", None, None) => ServiceMode::Crash,
            ("crash", _, _) => {
                return Err(
                    input.invalid("period_s", "period_s and until_s are for mode = \"flap\"")
                );
            }
            ("flap", Some(period_s), Some(until_s)) => {
                let period = input.seconds("period_s", period_s)?;
                let until = input.seconds("until_s", until_s)?;
                if period.is_zero() {
                    return Err(input.invalid("period_s", "must be positive"));
                }
                if until <= at {
                    return Err(input.invalid("until_s", "must be after at_s"));
                }
                ServiceMode::Flap { period, until }
            }
            ("flap", _, _) => {
                return Err(input.invalid("period_s", "mode = \"flap\" needs period_s and until_s"));
            }
            (other, _, _) => {
                return Err(input.invalid(
                    "mode",
                    format!("unknown mode {other:?}; use \"crash\" or \"flap\""),
                ));
            }
        };
        let heal = input.optional_after(at, "heal_s", file.heal_s)?;
        let expect_fixed_within =
            input.optional_seconds("expect_fixed_within_s", file.expect_fixed_within_s)?;
        if expect_fixed_within.is_some_and(|bound| bound.is_zero()) {
            return Err(input.invalid("expect_fixed_within_s", "must be positive"));
        }
        Ok(ServiceFault {
            at,
            nodes: input.nodes("nodes", &file.nodes)?,
            check: file.check.clone(),
            mode,
            fixed_by: file.fixed_by.clone(),
            heal,
            expect_fixed_within,
        })
    }
}

impl Kind for ServiceFault {
    fn start(&self) -> Duration {
        self.at
    }

    fn fits(&self, end: Duration) -> Result<(), Misfit> {
        starts_by(self.at, end)?;
        if self
            .expect_fixed_within
            .is_some_and(|bound| self.at + bound > end)
        {
            // A deadline after the end would never be checked.
            return Err(Misfit {
                field: Some("expect_fixed_within_s"),
                message: "the first failure's deadline falls after the scenario ends".into(),
            });
        }
        Ok(())
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let nodes = resolution.pick(&self.nodes);
        let fault = resolution.services;
        let mut turn = |at: Duration, failing: bool| {
            let action = Action::Service {
                fault,
                nodes: nodes.clone(),
                failing,
            };
            resolution.push(at, action);
        };
        match self.mode {
            ServiceMode::Crash => turn(self.at, true),
            ServiceMode::Flap { period, until } => {
                let mut at = self.at;
                let mut failing = true;
                while at < until {
                    turn(at, failing);
                    failing = !failing;
                    at += period;
                }
                turn(until, false);
            }
        }
        if let Some(heal) = self.heal {
            turn(heal, false);
        }
        resolution.services += 1;
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "service failure")
    }
}
