//! `policy`: an operator releases the remediation policy (document
//! [`fleetmesh_node::POLICY_DOC`]); its rules' voter selectors are
//! resolved to keys when it is published. What the policies declare
//! (checks, rules, actions, budget scopes) is what the `service`,
//! `approve` and `crash-holder` faults may name.

use crate::scenario::context::ScenarioError;
use crate::scenario::fault::kind::{Input, Kind, Parse, Period, Resolution};
use crate::scenario::fleet::{NodesFile, selected};
use crate::scenario::operators::{Content, Publication, default_author};
use crate::scenario::schedule::Action;
use crate::scenario::services::resolve_voters;
use fleetmesh_node::crdt::{PublicKey, Value, lease_limits};
use fleetmesh_node::{POLICY_DOC, Policy as RemedyPolicy};
use serde::Deserialize;
use std::time::Duration;

/// An operator releases the remediation policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// When.
    pub at: Duration,
    /// The document, released by its author.
    pub publication: Publication,
}

/// A `policy` entry as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    at_s: f64,
    #[serde(default = "default_author")]
    author: String,
    content: toml::Table,
    expires_after_s: Option<f64>,
    #[serde(default)]
    via: NodesFile,
}

impl Parse for Policy {
    type File = File;
    const EXAMPLE: &'static str = "at_s = 2\nexpires_after_s = 90\nvia = { ids = [0] }\n[content.checks.db]\nkind = \"tcp\"\naddr = \"127.0.0.1:5432\"\nselect = \"role=db\"\ninterval_ms = 1000\n[content.rules.heal]\ncheck = \"db\"\nselect = \"role=db\"\nsteps = [{ action = \"restart\", class = \"local\", timeout_ms = 5000 }]";
    const CHAOS: bool = false;

    fn parse(file: &File, input: &Input<'_>) -> Result<Policy, ScenarioError> {
        Policy::read(file, input).map(|(fault, _)| fault)
    }
}

impl Policy {
    /// Validates `file`: its content must be a policy the agents accept
    /// once its voter selectors are resolved. Returns the fault and the
    /// policy as the agents will read it.
    pub(crate) fn read(
        file: &File,
        input: &Input<'_>,
    ) -> Result<(Policy, RemedyPolicy), ScenarioError> {
        let author = input.operator_key("author", &file.author)?;
        let value: Value = toml::Value::Table(file.content.clone())
            .try_into()
            .map_err(|error: toml::de::Error| input.invalid("content", error.to_string()))?;
        // Placeholder keys, one per agent: the real ones depend on the seed.
        let mut counts = Vec::new();
        let placeholder = resolve_voters(&value, |select| {
            let agents = selected(&input.fleet.tags, select);
            counts.push(agents.len());
            agents
                .into_iter()
                .map(|agent| {
                    let mut key = [0u8; 32];
                    key[..4].copy_from_slice(&agent.to_le_bytes());
                    PublicKey(key)
                })
                .collect()
        })
        .map_err(|(rule, problem)| {
            input.invalid(&format!("content.rules.{rule}.voters"), problem)
        })?;
        if let Some(&count) = counts
            .iter()
            .find(|&&count| count == 0 || count > lease_limits::VOTERS_MAX)
        {
            return Err(input.invalid(
                "content.rules",
                format!(
                    "a voters selector selects {count} agents; a rule has 1 to {} voters",
                    lease_limits::VOTERS_MAX
                ),
            ));
        }
        let policy = RemedyPolicy::parse(&placeholder)
            .map_err(|error| input.invalid(&format!("content.{}", error.field), error.problem))?;
        let expires_after = input.optional_seconds("expires_after_s", file.expires_after_s)?;
        let fault = Policy {
            at: input.seconds("at_s", file.at_s)?,
            publication: Publication {
                doc: POLICY_DOC.to_owned(),
                author,
                content: Content::Inline(value),
                release: true,
                expires_after,
                via: input.nodes("via", &file.via)?,
                rollout: None,
                breaks: Vec::new(),
            },
        };
        Ok((fault, policy))
    }
}

impl Kind for Policy {
    fn start(&self) -> Duration {
        self.at
    }

    fn resolve(&self, resolution: &mut Resolution<'_>) {
        let publication = &self.publication;
        resolution.hand(self.at, &publication.via, |via| {
            Action::Policy(Box::new(publication.clone()), via)
        });
    }

    fn period(&self, _end: f64) -> Period {
        Period::mark(self.at, "policy release")
    }

    fn touches_config(&self) -> bool {
        true
    }
}
