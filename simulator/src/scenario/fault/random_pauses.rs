//! `random-pauses`: every agent pauses as a Poisson process inside a
//! window; one agent's pauses never overlap.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::rate::RateWindow;
use crate::scenario::fault::vary::Variation;
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Pause random agents, as a Poisson process per agent.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomPauses {
    /// The window, and the pauses per agent per hour.
    pub window: RateWindow,
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
        let window = input.window(file.from_s, file.until_s)?;
        Ok(RandomPauses {
            window: RateWindow::new(input, window, file.per_agent_hour)?,
            duration: input.seconds("duration_s", file.duration_s)?,
        })
    }
}

impl Kind for RandomPauses {
    fn start(&self) -> Duration {
        self.window.from
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        if self.window.is_idle() {
            return;
        }
        for agent in 0..resolution.fleet.agents {
            let mut at = self.window.from.as_secs_f64();
            while let Some(next) = self.window.next_after(resolution.rng, at) {
                at = next;
                let start = Duration::from_secs_f64(at);
                resolution.push(start, Action::Pause(vec![agent]));
                resolution.push(start + self.duration, Action::Resume(vec![agent]));
                // Pauses of one agent never overlap.
                at += self.duration.as_secs_f64();
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
        let label = format!("random pauses {:.1}/agent-h", window.per_agent_hour);
        Period::window(window.from, window.until, "pause", label)
    }
}
