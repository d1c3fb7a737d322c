//! `config`: an operator writes a config document (inline content, or
//! generated keys and values of about a given size) and, usually, releases
//! it; one running agent of `via` is handed both.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::NodesFile;
use crate::scenario::operators::{Content, Publication, default_author, default_doc};
use crate::scenario::schedule::Action;
use fleetmesh_node::crdt::config::rollout::RolloutSpec;
use serde::Deserialize;
use std::time::Duration;

/// Largest generated config document, in KiB: a change must stay under the
/// store's per-change bound.
const CONTENT_KB_MAX: u32 = 200;

/// An operator writes a config document and (usually) releases it.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// When.
    pub at: Duration,
    /// What is written.
    pub publication: Publication,
}

/// A `config` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    #[serde(default = "default_doc")]
    doc: String,
    #[serde(default = "default_author")]
    author: String,
    content: Option<toml::Table>,
    size_kb: Option<u32>,
    #[serde(default = "default_true")]
    release: bool,
    expires_after_s: Option<f64>,
    #[serde(default)]
    via: NodesFile,
    /// The release's staged rollout, as operators write it.
    rollout: Option<RolloutSpec>,
    /// Checks that fail on every host running this release.
    #[serde(default)]
    breaks: Vec<String>,
}

fn default_true() -> bool {
    true
}

impl Parse for Config {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 3\ndoc = \"app\"\nauthor = \"operator-2\"\ncontent = { version = \"1.2\", replicas = 3 }\nexpires_after_s = 50\nvia = { select = \"role=web\" }";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Config, ScenarioError> {
        input.doc_id("doc", &file.doc)?;
        let author = input.operator_key("author", &file.author)?;
        let content = match (&file.content, file.size_kb) {
            (Some(table), None) => {
                let value = toml::Value::Table(table.clone()).try_into().map_err(
                    |error: toml::de::Error| input.invalid("content", error.to_string()),
                )?;
                Content::Inline(value)
            }
            (None, Some(kb)) if (1..=CONTENT_KB_MAX).contains(&kb) => Content::Generated {
                bytes: kb as usize * 1024,
            },
            (None, Some(_)) => {
                return Err(input.invalid("size_kb", format!("must be 1 to {CONTENT_KB_MAX}")));
            }
            _ => {
                return Err(input.invalid(
                    "content",
                    "give exactly one of content (a table) or size_kb",
                ));
            }
        };
        let expires_after = input.optional_seconds("expires_after_s", file.expires_after_s)?;
        if let Some(spec) = &file.rollout {
            if !file.release {
                return Err(input.invalid("rollout", "a rollout needs release = true"));
            }
            // The version is known only when the release is made; the
            // plan's own shape is checked now.
            spec.plan(spec.revert_to.saturating_add(1))
                .map_err(|error| input.invalid("rollout", error.to_string()))?;
        }
        for check in &file.breaks {
            input
                .declared
                .check(check)
                .map_err(|message| input.invalid("breaks", message))?;
        }
        Ok(Config {
            at: input.seconds("at_s", file.at_s)?,
            publication: Publication {
                doc: file.doc.clone(),
                author,
                content,
                release: file.release,
                expires_after,
                via: input.nodes("via", &file.via)?,
                rollout: file.rollout.clone(),
                breaks: file.breaks.clone(),
            },
        })
    }
}

impl Kind for Config {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let publication = &self.publication;
        resolution.hand(self.at, &publication.via, |via| {
            Action::Publish(Box::new(publication.clone()), via)
        });
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "config release")
    }

    fn touches_config(&self) -> bool {
        true
    }
}
