//! The operators' vocabulary the operator faults share (`config`,
//! `policy`, `revoke`, `rotate-root`, `equivocate`, `attack`): the
//! simulated fleet's operator keys by name, what a publication carries,
//! and trust changes. A leaf: the fault kinds and the schedule's actions
//! both use it.

use crate::scenario::context::{Context, ScenarioError};
use crate::scenario::fleet::Nodes;
use fleetmesh_node::crdt::config::rollout::RolloutSpec;
use std::ops::Range;
use std::time::Duration;

/// The simulated fleet's operator keys, by the names scenarios use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorKey {
    /// `operator`: holds config, admit and approve.
    Operator,
    /// `operator-2`: holds config.
    Operator2,
}

impl OperatorKey {
    /// Both keys.
    pub const ALL: [OperatorKey; 2] = [OperatorKey::Operator, OperatorKey::Operator2];

    /// The key's name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            OperatorKey::Operator => "operator",
            OperatorKey::Operator2 => "operator-2",
        }
    }

    fn parse(text: &str) -> Option<OperatorKey> {
        OperatorKey::ALL.into_iter().find(|key| key.name() == text)
    }
}

/// The content of a published config document.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Given in the scenario file.
    Inline(fleetmesh_node::crdt::Value),
    /// About this many bytes of generated keys and values, new each time.
    Generated {
        /// Approximate size.
        bytes: usize,
    },
}

/// One config write by an operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// The document.
    pub doc: String,
    /// Who writes (and signs the release).
    pub author: OperatorKey,
    /// The document's new content.
    pub content: Content,
    /// Whether a release of the new heads follows.
    pub release: bool,
    /// The release expires this long after it is published.
    pub expires_after: Option<Duration>,
    /// Agents it may be handed to (one running agent is picked).
    pub via: Nodes,
    /// The release's staged rollout, if any.
    pub rollout: Option<RolloutSpec>,
    /// Checks whose modelled service fails on every host that runs this
    /// release's content: a bad release, for rollout experiments.
    pub breaks: Vec<String>,
}

/// A change of the trust document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustChange {
    /// Revoke an operator key.
    Revoke(OperatorKey),
    /// Revoke an agent's node key: the fleet expels it.
    RevokeNode(u32),
    /// Replace the root key with a new one (signed by old and new).
    RotateRoot,
}

/// The key named by `name`, or the error for `field`.
pub(crate) fn operator_key(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    name: &str,
) -> Result<OperatorKey, ScenarioError> {
    OperatorKey::parse(name).ok_or_else(|| {
        context.invalid(
            span,
            field,
            format!("unknown key {name:?}; use \"operator\" or \"operator-2\""),
        )
    })
}

/// Checks a document id: `must be 1 to 64 bytes`.
pub(crate) fn doc_id(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    doc: &str,
) -> Result<(), ScenarioError> {
    if doc.is_empty() || doc.len() > fleetmesh_node::crdt::config::limits::DOC_ID_MAX {
        return Err(context.invalid(span, field, "must be 1 to 64 bytes"));
    }
    Ok(())
}

/// The document a `config` or `equivocate` fault writes unless it says.
pub(crate) fn default_doc() -> String {
    "fleet".into()
}

/// The key that signs unless a fault says.
pub(crate) fn default_author() -> String {
    "operator".into()
}
