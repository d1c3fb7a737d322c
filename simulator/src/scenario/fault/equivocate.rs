//! `equivocate`: an operator key signs two different changes with one
//! sequence number and hands each to a different agent; the fleet must
//! quarantine the key.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{Nodes, NodesFile};
use crate::scenario::operators::{OperatorKey, default_author, default_doc};
use crate::scenario::schedule::Action;
use serde::Deserialize;
use std::time::Duration;

/// An operator key equivocates.
#[derive(Clone, Debug, PartialEq)]
pub struct Equivocate {
    /// When.
    pub at: Duration,
    /// The misbehaving key.
    pub author: OperatorKey,
    /// The document.
    pub doc: String,
    /// Agents the two changes may be handed to (two running ones are
    /// picked).
    pub via: Nodes,
}

/// An `equivocate` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    #[serde(default = "default_doc")]
    doc: String,
    #[serde(default = "default_author")]
    author: String,
    #[serde(default)]
    via: NodesFile,
}

impl Parse for Equivocate {
    type File = File;
    const EXAMPLE: &'static str =
        "at_s = 8\ndoc = \"app\"\nauthor = \"operator-2\"\nvia = { ids = [1, 4] }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Equivocate, ScenarioError> {
        input.doc_id("doc", &file.doc)?;
        Ok(Equivocate {
            at: input.seconds("at_s", file.at_s)?,
            author: input.operator_key("author", &file.author)?,
            doc: file.doc.clone(),
            via: input.nodes("via", &file.via)?,
        })
    }
}

impl Kind for Equivocate {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        resolution.hand(self.at, &self.via, |via| {
            Action::Equivocate(self.author, self.doc.clone(), via)
        });
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "equivocation")
    }

    fn touches_config(&self) -> bool {
        true
    }
}
