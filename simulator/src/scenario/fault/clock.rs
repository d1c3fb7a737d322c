//! `clock`: agents' clocks are skewed and drift, each by its own random
//! offset and rate within the fault's bounds.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::schedule::Action;
use rand::RngExt;
use serde::Deserialize;
use std::time::Duration;
use toml::{Table, Value};

/// Largest skew a scenario may give, in milliseconds (one hour).
const SKEW_MS_MAX: f64 = 3_600_000.0;
/// Drifts must stay below this, in ppm (10%).
const DRIFT_PPM_LIMIT: u32 = 100_000;

/// Skew and drift the clocks of agents.
#[derive(Clone, Debug, PartialEq)]
pub struct Clock {
    /// When.
    pub at: Duration,
    /// Which agents.
    pub nodes: Nodes,
    /// Each agent's offset is uniform in `[-skew, +skew]`.
    pub skew: Duration,
    /// Each agent's drift is uniform in `[-drift, +drift]` ppm.
    pub drift_ppm: u32,
}

/// A `clock` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    at_s: f64,
    nodes: NodesFile,
    skew_ms: f64,
    #[serde(default)]
    drift_ppm: u32,
}

impl Parse for Clock {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 4\nnodes = { count = 3 }\nskew_ms = 250\ndrift_ppm = 300";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<Clock, ScenarioError> {
        if !(file.skew_ms.is_finite() && (0.0..=SKEW_MS_MAX).contains(&file.skew_ms)) {
            return Err(input.invalid("skew_ms", "must be 0 to 3600000"));
        }
        if file.drift_ppm >= DRIFT_PPM_LIMIT {
            return Err(input.invalid("drift_ppm", "must be below 100000 (10%)"));
        }
        Ok(Clock {
            at: input.seconds("at_s", file.at_s)?,
            nodes: input.nodes("nodes", &file.nodes)?,
            skew: Duration::from_secs_f64(file.skew_ms / 1000.0),
            drift_ppm: file.drift_ppm,
        })
    }
}

impl Kind for Clock {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let skew = i64::try_from(self.skew.as_nanos()).unwrap_or(i64::MAX);
        let drift = i64::from(self.drift_ppm);
        for agent in resolution.pick(&self.nodes) {
            let offset = if skew == 0 {
                0
            } else {
                resolution.rng.random_range(-skew..=skew)
            };
            let drift = if drift == 0 {
                0
            } else {
                resolution.rng.random_range(-drift..=drift)
            };
            resolution.push(self.at, Action::Clock(agent, offset, drift));
        }
    }

    fn vary(&mut self, variation: &Variation) {
        self.at = variation.moved(self.at);
        self.nodes = variation.nodes(&self.nodes);
        // Within what a scenario file may say, so that a mix can be
        // written down as one (`sim shrink --swarm`).
        self.skew = self
            .skew
            .mul_f64(variation.factor)
            .min(Duration::from_secs(3_600));
        self.drift_ppm = ((f64::from(self.drift_ppm) * variation.factor).round() as u32)
            .min(DRIFT_PPM_LIMIT - 1);
    }

    fn write_back(&self, entry: &mut Table) {
        write::seconds(entry, "at_s", self.at);
        write::millis(entry, "skew_ms", self.skew);
        entry.insert(
            "drift_ppm".into(),
            Value::Integer(i64::from(self.drift_ppm)),
        );
        write::nodes_field(entry, &self.nodes);
    }

    fn period(&self, end: f64) -> Period {
        let label = format!(
            "clock {} skew {:.0} ms",
            self.nodes.label(),
            self.skew.as_secs_f64() * 1000.0
        );
        Period::new(self.at.as_secs_f64(), end, "clock", label)
    }
}
