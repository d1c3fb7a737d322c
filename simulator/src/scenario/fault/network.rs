//! `network`: the default link model changes for a while; at `until_s`
//! the scenario's `[network]` model returns, whatever other network faults
//! did meanwhile.

use crate::network::LinkModel;
use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::write;
use crate::scenario::network::{LinkFile, link_model};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;
use toml::Table;

/// Change the default link model for a while.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// When.
    pub at: Duration,
    /// Until when (the previous model is restored), if ever.
    pub until: Option<Duration>,
    /// The model in force meanwhile.
    pub model: LinkModel,
}

/// A `network` entry as serde reads it: link fields unset come from
/// `[network]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    until_s: Option<f64>,
    #[serde(flatten)]
    link: LinkFile,
}

impl Parse for Network {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 10\nuntil_s = 30\nloss = 0.2\nduplicate = 0.1\nreorder = 0.05\nlatency_mean_ms = 20";
    const CHAOS: bool = true;

    fn parse(file: &File, input: &Input<'_>) -> Result<Network, ScenarioError> {
        let at = input.seconds("at_s", file.at_s)?;
        let until = input.optional_after(at, "until_s", file.until_s)?;
        let model = link_model(
            input.context,
            input.span.clone(),
            &input.prefix(),
            input.link,
            file.link,
        )?;
        Ok(Network { at, until, model })
    }
}

impl Kind for Network {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        resolution.push(self.at, Action::Network(self.model));
        if let Some(until) = self.until {
            // Back to the scenario's [network] model, whatever other
            // network faults did meanwhile.
            let default = resolution.default_link;
            resolution.push(until, Action::Network(default));
        }
    }

    fn vary(&mut self, variation: &Variation) {
        (self.at, self.until) = variation.span(self.at, self.until);
        self.model.loss = variation.probability(self.model.loss);
        self.model.duplicate = variation.probability(self.model.duplicate);
        self.model.reorder = variation.probability(self.model.reorder);
    }

    fn write_back(&self, entry: &mut Table) {
        write::span(entry, self.at, "until_s", self.until);
        write::loss(entry, &self.model);
    }

    fn period(&self, end: f64) -> Period {
        let label = format!("network, loss {:.0}%", self.model.loss * 100.0);
        Period::until(self.at, self.until, end, "network", label)
    }
}
