//! `random-pauses`: every agent pauses as a Poisson process inside a
//! window; one agent's pauses never overlap.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::schedule::Action;
use rand::RngExt;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Pause random agents, as a Poisson process per agent.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomPauses {
    /// Window start.
    pub from: Duration,
    /// Window end.
    pub until: Duration,
    /// Pauses per agent per hour.
    pub per_agent_hour: f64,
    /// Length of each pause.
    pub duration: Duration,
}

/// A `random-pauses` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    from_s: f64,
    until_s: f64,
    per_agent_hour: f64,
    duration_s: f64,
}

impl Parse for RandomPauses {
    type File = File;
    const EXAMPLE: &'static str = "from_s = 5\nuntil_s = 40\nper_agent_hour = 60\nduration_s = 2";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<RandomPauses, ScenarioError> {
        let (from, until) = input.window(file.from_s, file.until_s)?;
        if !(file.per_agent_hour.is_finite() && (0.0..=3600.0).contains(&file.per_agent_hour)) {
            return Err(input.invalid("per_agent_hour", "must be 0 to 3600"));
        }
        Ok(RandomPauses {
            from,
            until,
            per_agent_hour: file.per_agent_hour,
            duration: input.seconds("duration_s", file.duration_s)?,
        })
    }
}

impl Kind for RandomPauses {
    fn start(&self) -> Duration {
        self.from
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        if self.per_agent_hour <= 0.0 {
            return;
        }
        let mean_gap_s = 3600.0 / self.per_agent_hour;
        for agent in 0..resolution.fleet.agents {
            let mut at = self.from.as_secs_f64();
            loop {
                let uniform: f64 = resolution.rng.random();
                at += -mean_gap_s * (1.0 - uniform).ln();
                if at >= self.until.as_secs_f64() {
                    break;
                }
                let start = Duration::from_secs_f64(at);
                resolution.push(start, Action::Pause(vec![agent]));
                resolution.push(start + self.duration, Action::Resume(vec![agent]));
                // Pauses of one agent never overlap.
                at += self.duration.as_secs_f64();
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
        let label = format!("random pauses {:.1}/agent-h", self.per_agent_hour);
        let (from, until) = (self.from.as_secs_f64(), self.until.as_secs_f64());
        Period::new(from, until, "pause", label)
    }
}
