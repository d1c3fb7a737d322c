//! A window in which something happens to every agent as a Poisson
//! process at a rate per agent-hour: what `random-pauses` and
//! `health-flaps` share, from reading the rate to varying it, writing it
//! back and drawing the arrivals.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::Input;
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use toml::{Table, Value};

/// Highest rate a scenario may give, per agent-hour: once a second.
const PER_AGENT_HOUR_MAX: f64 = 3600.0;

/// From `from` until `until`, events at `per_agent_hour` per agent.
#[derive(Clone, Debug, PartialEq)]
pub struct RateWindow {
    /// Window start.
    pub from: Duration,
    /// Window end.
    pub until: Duration,
    /// Events per agent per hour.
    pub per_agent_hour: f64,
}

impl RateWindow {
    /// The window `from`..`until` (read with [`Input::window`]) at rate
    /// `per_agent_hour`, which must be 0 to 3600.
    pub fn new(
        input: &Input<'_>,
        (from, until): (Duration, Duration),
        per_agent_hour: f64,
    ) -> Result<RateWindow, ScenarioError> {
        if !(per_agent_hour.is_finite() && (0.0..=PER_AGENT_HOUR_MAX).contains(&per_agent_hour)) {
            return Err(input.invalid("per_agent_hour", "must be 0 to 3600"));
        }
        Ok(RateWindow {
            from,
            until,
            per_agent_hour,
        })
    }

    /// True when nothing happens: the rate is zero.
    pub fn is_idle(&self) -> bool {
        self.per_agent_hour <= 0.0
    }

    /// The next arrival after `at` (seconds), drawn from `rng`; `None` once
    /// it falls at or after the window's end. The rate must not be zero.
    pub fn next_after(&self, rng: &mut ChaCha8Rng, at: f64) -> Option<f64> {
        let mean_gap_s = 3600.0 / self.per_agent_hour;
        let uniform: f64 = rng.random();
        let next = at - mean_gap_s * (1.0 - uniform).ln();
        (next < self.until.as_secs_f64()).then_some(next)
    }

    /// The window moved by a swarm seed, its rate scaled.
    pub fn vary(&mut self, variation: &Variation) {
        (self.from, self.until) = variation.window(self.from, self.until);
        self.per_agent_hour *= variation.factor;
    }

    /// Writes `from_s`, `until_s` and `per_agent_hour` into `entry`.
    pub fn write_back(&self, entry: &mut Table) {
        write::seconds(entry, "from_s", self.from);
        write::seconds(entry, "until_s", self.until);
        entry.insert("per_agent_hour".into(), Value::Float(self.per_agent_hour));
    }
}
