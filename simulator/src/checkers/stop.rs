//! "A stop is honoured by every agent that holds it" (issue 17 item 8): no
//! agent starts an action while its own ledger holds an emergency stop in
//! force that selects it. Judged when the agent hands out the action, from
//! the agent's own records and clock, since holding a stop is what obliges
//! it; an agent that never received the stop is not at fault.

use super::{Kind, Violation};
use fleetmesh_node::crdt::{Ledger, NodeMeta, active_stops};

/// How much later than its local clock an agent's HLC may read (a peer's
/// timestamp a little ahead): a stop lapsing within this of the local clock
/// may already have lapsed for the agent, and is not held against it.
pub const CLOCK_SLACK_MILLIS: u64 = 1_000;

/// The violation when agent `agent`, tagged `meta`, starts an action at
/// true time `now` and local millis `local_millis` while `ledger` holds a
/// stop in force that selects it.
pub fn started(
    agent: u32,
    ledger: &Ledger,
    meta: &NodeMeta,
    local_millis: u64,
    now: u64,
) -> Option<Violation> {
    let judged_at = local_millis.saturating_add(CLOCK_SLACK_MILLIS);
    let stop = active_stops(ledger, judged_at)
        .into_iter()
        .find(|stop| stop.applies_to(meta))?;
    Some(Violation {
        invariant: "a stop is honoured by every agent that holds it",
        kind: Kind::Safety,
        at: now,
        details: format!(
            "agent {agent} started an action at local {local_millis} ms while it held stop {:?} (selector {:?}) lasting until {} ms",
            stop.digest, stop.selector, stop.expires_millis
        ),
        agents: vec![agent],
    })
}
