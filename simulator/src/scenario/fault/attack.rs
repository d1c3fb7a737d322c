//! `attack`: an admitted agent turns hostile, sending forged, replayed and
//! malformed input to random agents while it still runs the protocol.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::operators::OperatorKey;
use crate::scenario::schedule::Action;
use rand::RngExt;
use serde::Deserialize;
use std::time::Duration;

/// Most attack attempts one fault may ask for.
const ATTEMPTS_MAX: u32 = 1_000_000;

/// An admitted agent turns hostile.
#[derive(Clone, Debug, PartialEq)]
pub struct Attack {
    /// Window start.
    pub from: Duration,
    /// Window end.
    pub until: Duration,
    /// Attempts in all, spread evenly over the window.
    pub attempts: u32,
    /// The attacking agent.
    pub attacker: u32,
    /// A config key the attacker holds: it signs the change that panics
    /// automerge when applied. `None`: the attacker's own node key signs
    /// it, and every agent refuses it unapplied.
    pub config_key: Option<OperatorKey>,
}

/// An `attack` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    from_s: f64,
    until_s: f64,
    attempts: u32,
    attacker: u32,
    config_key: Option<String>,
}

impl Parse for Attack {
    type File = File;
    const EXAMPLE: &'static str =
        "from_s = 5\nuntil_s = 45\nattempts = 20\nattacker = 3\nconfig_key = \"operator-2\"";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Attack, ScenarioError> {
        let (from, until) = input.window(file.from_s, file.until_s)?;
        if file.attempts == 0 || file.attempts > ATTEMPTS_MAX {
            return Err(input.invalid("attempts", format!("must be 1 to {ATTEMPTS_MAX}")));
        }
        let (attacker, agents) = (file.attacker, input.fleet.agents);
        if attacker >= agents {
            return Err(input.invalid(
                "attacker",
                format!("agent {attacker} does not exist (fleet has {agents})"),
            ));
        }
        let config_key = file
            .config_key
            .as_deref()
            .map(|key| input.operator_key("config_key", key))
            .transpose()?;
        Ok(Attack {
            from,
            until,
            attempts: file.attempts,
            attacker,
            config_key,
        })
    }
}

impl Kind for Attack {
    fn start(&self) -> Duration {
        self.from
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let agents = resolution.fleet.agents;
        let step = (self.until - self.from) / self.attempts;
        for attempt in 0..self.attempts {
            let mut target = resolution.rng.random_range(0..agents.max(2) - 1);
            if target >= self.attacker {
                target += 1;
            }
            let action = Action::Attack {
                attacker: self.attacker,
                target: target.min(agents - 1),
                attempt,
                attempts: self.attempts,
                config_key: self.config_key,
            };
            resolution.push(self.from + step * attempt, action);
        }
    }

    fn period(&self, _end: f64) -> Period {
        let label = match self.config_key {
            Some(key) => format!("attack holding {}'s config key", key.name()),
            None => "attack".into(),
        };
        Period::window(self.from, self.until, "mark", label)
    }

    fn touches_config(&self) -> bool {
        true
    }
}
