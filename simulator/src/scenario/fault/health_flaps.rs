//! `health-flaps`: every agent reports its health checks healthy at the
//! window's start, then each check flips between unhealthy and healthy as
//! a Poisson process.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::schedule::Action;
use fleetmesh_node::crdt::health_limits::CHECKS_PER_NODE_MAX;
use rand::RngExt;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Agents report health checks: every check healthy at `from`, then each
/// check flips between unhealthy and healthy as a Poisson process.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthFlaps {
    /// Window start.
    pub from: Duration,
    /// Window end.
    pub until: Duration,
    /// Checks per agent.
    pub checks: u8,
    /// Flips per check per agent per hour.
    pub per_agent_hour: f64,
}

/// A `health-flaps` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    from_s: f64,
    until_s: f64,
    checks: u8,
    per_agent_hour: f64,
}

impl Parse for HealthFlaps {
    type File = File;
    const EXAMPLE: &'static str = "from_s = 5\nuntil_s = 40\nchecks = 2\nper_agent_hour = 30";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<HealthFlaps, ScenarioError> {
        let (from, until) = input.window(file.from_s, file.until_s)?;
        if file.checks == 0 || usize::from(file.checks) > CHECKS_PER_NODE_MAX {
            return Err(input.invalid("checks", format!("must be 1 to {CHECKS_PER_NODE_MAX}")));
        }
        if !(file.per_agent_hour.is_finite() && (0.0..=3600.0).contains(&file.per_agent_hour)) {
            return Err(input.invalid("per_agent_hour", "must be 0 to 3600"));
        }
        Ok(HealthFlaps {
            from,
            until,
            checks: file.checks,
            per_agent_hour: file.per_agent_hour,
        })
    }
}

impl Kind for HealthFlaps {
    fn start(&self) -> Duration {
        self.from
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        for agent in 0..resolution.fleet.agents {
            for check in 0..self.checks {
                let healthy = true;
                resolution.push(
                    self.from,
                    Action::Health {
                        agent,
                        check,
                        healthy,
                    },
                );
                if self.per_agent_hour <= 0.0 {
                    continue;
                }
                self.flips(resolution, agent, check);
            }
        }
    }

    fn vary(&mut self, variation: &Variation) {
        (self.from, self.until) = variation.window(self.from, self.until);
        self.per_agent_hour *= variation.factor;
    }

    fn write_back(&self, entry: &mut Table) {
        write::rate_window(entry, self.from, self.until, self.per_agent_hour);
    }

    fn period(&self, _end: f64) -> Period {
        let (from, until) = (self.from.as_secs_f64(), self.until.as_secs_f64());
        Period::new(from, until, "flaps", "health flaps")
    }
}

impl HealthFlaps {
    /// The flips of one agent's check after the window's start.
    fn flips(&self, resolution: &mut Resolution<'_>, agent: u32, check: u8) {
        let mean_gap_s = 3600.0 / self.per_agent_hour;
        let mut at = self.from.as_secs_f64();
        let mut healthy = true;
        loop {
            let uniform: f64 = resolution.rng.random();
            at += -mean_gap_s * (1.0 - uniform).ln();
            if at >= self.until.as_secs_f64() {
                break;
            }
            healthy = !healthy;
            let action = Action::Health {
                agent,
                check,
                healthy,
            };
            resolution.push(Duration::from_secs_f64(at), action);
        }
    }
}
