//! The `[[leases]]` section: scopes the simulated fleet runs the quorum
//! lease protocol for, with their voters and candidates as tag selectors.

use crate::scenario::context::{Context, ScenarioError, seconds};
use crate::scenario::fleet::{Fleet, parse_selector, selected};
use fleetmesh_node::Config;
use fleetmesh_node::crdt::lease_limits;
use fleetmesh_node::limits::TTL_MAX;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

/// One scope the fleet runs the lease protocol for.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseSpec {
    /// The scope, e.g. `singleton:backup`.
    pub scope: String,
    /// Agents carrying all these tags vote. Every candidate is given this
    /// same voter set (in a real fleet it would come from released config).
    pub voters: BTreeMap<String, String>,
    /// Agents carrying all these tags ask for the lease once they join.
    pub candidates: BTreeMap<String, String>,
    /// The lease's ttl.
    pub ttl: Duration,
}

impl LeaseSpec {
    /// Indices of the voters in `fleet`.
    pub fn voter_indices(&self, fleet: &Fleet) -> Vec<u32> {
        selected(&fleet.tags, &self.voters)
    }

    /// Indices of the candidates in `fleet`.
    pub fn candidate_indices(&self, fleet: &Fleet) -> Vec<u32> {
        selected(&fleet.tags, &self.candidates)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseFile {
    scope: String,
    voters: String,
    candidates: String,
    ttl_s: f64,
}

/// Validates the `[[leases]]` tables against the fleet and the protocol.
pub(crate) fn leases(
    context: &Context<'_>,
    files: &[Spanned<LeaseFile>],
    fleet: &Fleet,
    config: &Config,
) -> Result<Vec<LeaseSpec>, ScenarioError> {
    let mut specs: Vec<LeaseSpec> = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let span = file.span();
        let lease = file.get_ref();
        let field = |name: &str| format!("leases[{index}].{name}");
        if lease.scope.is_empty() || lease.scope.len() > lease_limits::SCOPE_MAX {
            return Err(context.invalid(
                span,
                field("scope"),
                format!("must be 1 to {} bytes", lease_limits::SCOPE_MAX),
            ));
        }
        if specs.iter().any(|spec| spec.scope == lease.scope) {
            return Err(context.invalid(span, field("scope"), "declared twice"));
        }
        let ttl = seconds(context, span.clone(), &field("ttl_s"), lease.ttl_s)?;
        if ttl <= config.lease_drift_bound || ttl > TTL_MAX {
            return Err(context.invalid(
                span,
                field("ttl_s"),
                format!(
                    "must exceed protocol.lease_drift_bound_ms ({} ms) and be at most {} s",
                    config.lease_drift_bound.as_millis(),
                    TTL_MAX.as_secs()
                ),
            ));
        }
        let selector = |name: &str, text: &str| {
            parse_selector(text)
                .map_err(|message| context.invalid(span.clone(), field(name), message))
        };
        let spec = LeaseSpec {
            scope: lease.scope.clone(),
            voters: selector("voters", &lease.voters)?,
            candidates: selector("candidates", &lease.candidates)?,
            ttl,
        };
        let voters = spec.voter_indices(fleet).len();
        if voters == 0 || voters > lease_limits::VOTERS_MAX {
            return Err(context.invalid(
                span,
                field("voters"),
                format!(
                    "selects {voters} agents; a lease has 1 to {} voters",
                    lease_limits::VOTERS_MAX
                ),
            ));
        }
        if spec.candidate_indices(fleet).is_empty() {
            return Err(context.invalid(span, field("candidates"), "selects no agent"));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;

    const FLEET: &str = "name = \"t\"\nduration_s = 10\n[fleet]\nagents = 4\n[[fleet.groups]]\ncount = 3\ntags = { role = \"db\" }\n[[fleet.groups]]\ncount = 1\ntags = { role = \"web\" }\n";

    #[test]
    fn leases_and_crash_holder_load() {
        let text = format!(
            "{FLEET}[[leases]]\nscope = \"s\"\nvoters = \"role=db\"\ncandidates = \"role=db\"\nttl_s = 10\n[[faults]]\nkind = \"crash-holder\"\nat_s = 5\nscope = \"s\"\n[expect]\nlease_held_within_s = 20\n"
        );
        let scenario = Scenario::parse("t.toml", &text).unwrap();
        let lease = &scenario.leases[0];
        assert_eq!(lease.voter_indices(&scenario.fleet), vec![0, 1, 2]);
        assert_eq!(lease.candidate_indices(&scenario.fleet), vec![0, 1, 2]);
        assert!(scenario.expect.lease_held_within.is_some());
    }

    #[test]
    fn lease_errors_name_file_line_and_field() {
        let cases = [
            (
                "voters = \"role=none\"\ncandidates = \"role=db\"\nttl_s = 10",
                "leases[0].voters",
            ),
            (
                "voters = \"role=db\"\ncandidates = \"role\"\nttl_s = 10",
                "leases[0].candidates",
            ),
            (
                "voters = \"role=db\"\ncandidates = \"role=db\"\nttl_s = 0.1",
                "leases[0].ttl_s",
            ),
        ];
        for (body, field) in cases {
            let text = format!("{FLEET}[[leases]]\nscope = \"s\"\n{body}\n");
            let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
            assert!(error.starts_with("t.toml:11:"), "{error}");
            assert!(error.contains(field), "{error}");
        }
        let text = format!("{FLEET}[[faults]]\nkind = \"crash-holder\"\nat_s = 5\nscope = \"x\"\n");
        let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
        assert!(error.contains("faults[0].scope"), "{error}");
    }
}
