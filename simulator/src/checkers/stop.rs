//! "A stop is honoured by every agent that holds it" (issue 17 item 8): no
//! agent starts an action while its own ledger holds an emergency stop in
//! force that selects it. Judged when the agent hands out the action, from
//! the agent's own records and clock, since holding a stop is what obliges
//! it; an agent that never received the stop is not at fault.

use super::{Kind, Violation};
use fleetmesh_node::crdt::{Digest, Ledger, NodeMeta, active_stops};
use std::collections::BTreeSet;

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

/// How long an emergency stop takes to reach every running agent: from
/// the moment the operator hands it to an agent until the last running
/// agent holds it (`sim bench emergency-stop`). One stop is followed at a
/// time; a stop issued while another is followed replaces it.
#[derive(Debug, Default)]
pub struct StopSpread {
    following: Option<(Digest, u64, BTreeSet<u32>)>,
    times: Vec<u64>,
}

impl StopSpread {
    /// The stop with `digest` was handed to an agent at true time `now`.
    pub fn issued(&mut self, digest: Digest, now: u64) {
        self.following = Some((digest, now, BTreeSet::new()));
    }

    /// The stop followed, if any: the world asks each agent it ran whether
    /// it holds it.
    pub fn following(&self) -> Option<Digest> {
        self.following.as_ref().map(|(digest, ..)| *digest)
    }

    /// Agent `agent` holds the stop at `now`; `running` counts the running
    /// agents (asked only when the holders grow).
    pub fn holds(&mut self, agent: u32, now: u64, running: impl FnOnce() -> usize) {
        let Some((_, issued, holders)) = &mut self.following else {
            return;
        };
        if !holders.insert(agent) {
            return;
        }
        if holders.len() >= running() {
            self.times.push(now - *issued);
            self.following = None;
        }
    }

    /// Time for each stop followed to reach every running agent, in
    /// nanoseconds.
    pub fn times(&self) -> &[u64] {
        &self.times
    }
}
