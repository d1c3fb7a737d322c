//! Policy lint: the remediation document is read with the agents' own
//! parser ([`Policy::parse`]) before anything about it is signed or
//! declared OK, so a policy every agent would refuse never leaves the
//! operator's machine (issue 17, item 4).

use anyhow::bail;
use fleetmesh_crdt::Value;
use fleetmesh_node::{POLICY_DOC, Policy};

/// Refuses `content` as document `doc` when `doc` is the remediation
/// policy and agents would refuse it, naming the first bad field; any
/// other document passes.
pub(super) fn check(doc: &str, content: &Value) -> anyhow::Result<()> {
    if doc != POLICY_DOC {
        return Ok(());
    }
    if let Err(error) = Policy::parse(content) {
        bail!(
            "document {POLICY_DOC} would be refused by every agent (they would keep the policy they run): {}: {}; fix that field (docs/remediation.md lists every field and its bounds) and try again",
            error.field,
            error.problem
        );
    }
    Ok(())
}
