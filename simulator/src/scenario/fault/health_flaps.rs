//! `health-flaps`: every agent reports its health checks healthy at the
//! window's start, then each check flips between unhealthy and healthy as
//! a Poisson process.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::rate::RateWindow;
use crate::scenario::fault::vary::Variation;
use crate::scenario::schedule::Action;
use fleetmesh_node::crdt::health_limits::CHECKS_PER_NODE_MAX;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Agents report health checks: every check healthy at `from`, then each
/// check flips between unhealthy and healthy as a Poisson process.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthFlaps {
    /// The window, and the flips per check per agent per hour.
    pub window: RateWindow,
    /// Checks per agent.
    pub checks: u8,
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
        let window = input.window(file.from_s, file.until_s)?;
        if file.checks == 0 || usize::from(file.checks) > CHECKS_PER_NODE_MAX {
            return Err(input.invalid("checks", format!("must be 1 to {CHECKS_PER_NODE_MAX}")));
        }
        Ok(HealthFlaps {
            window: RateWindow::new(input, window, file.per_agent_hour)?,
            checks: file.checks,
        })
    }
}

impl Kind for HealthFlaps {
    fn start(&self) -> Duration {
        self.window.from
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        for agent in 0..resolution.fleet.agents {
            for check in 0..self.checks {
                let healthy = true;
                resolution.push(
                    self.window.from,
                    Action::Health {
                        agent,
                        check,
                        healthy,
                    },
                );
                if self.window.is_idle() {
                    continue;
                }
                self.flips(resolution, agent, check);
            }
        }
    }

    fn vary(&mut self, variation: &Variation) {
        self.window.vary(variation);
    }

    fn write_back(&self, entry: &mut Table) {
        self.window.write_back(entry);
    }

    fn period(&self, _end: f64) -> Period {
        let window = &self.window;
        Period::window(window.from, window.until, "flaps", "health flaps")
    }
}

impl HealthFlaps {
    /// The flips of one agent's check after the window's start.
    fn flips(&self, resolution: &mut Resolution<'_>, agent: u32, check: u8) {
        let mut at = self.window.from.as_secs_f64();
        let mut healthy = true;
        while let Some(next) = self.window.next_after(resolution.rng, at) {
            at = next;
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
