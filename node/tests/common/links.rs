//! The test mesh's network: every link delivers after a fixed delay unless
//! the test slowed it or cut it. Links are one-way, so a test can cut or
//! slow one direction only; isolating a node cuts every link to and from
//! it, including links to nodes started later. A test that wants a node
//! frozen rather than cut off pauses it ([`super::mesh::Mesh::pause`]).
//!
//! The fault model is deliberately small (no loss rate, no reordering
//! beyond what different delays make): these tests pin the protocol,
//! and the simulator owns the realistic faults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The delay of a link the test did not slow.
pub const LINK_DELAY: Duration = Duration::from_millis(1);

/// The state of every link between the mesh's nodes, named by their test
/// numbers.
#[derive(Debug, Default)]
pub struct Links {
    /// Links that deliver nothing, as (from, to).
    cut: BTreeSet<(u64, u64)>,
    /// Nodes cut off from every other node, in both directions.
    isolated: BTreeSet<u64>,
    /// Links slower (or faster) than [`LINK_DELAY`], as (from, to).
    delay: BTreeMap<(u64, u64), Duration>,
}

impl Links {
    /// Cuts the link from `from` to `to` only: `to` still reaches `from`.
    pub fn cut(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    /// Makes the link from `from` to `to` deliver after `delay`.
    pub fn slow(&mut self, from: u64, to: u64, delay: Duration) {
        self.delay.insert((from, to), delay);
    }

    /// Cuts node `n` off from every other node, both ways.
    pub fn isolate(&mut self, n: u64) {
        self.isolated.insert(n);
    }

    /// After how long a message from `from` reaches `to`; `None` when the
    /// link is cut.
    pub fn route(&self, from: u64, to: u64) -> Option<Duration> {
        let cut = self.cut.contains(&(from, to))
            || self.isolated.contains(&from)
            || self.isolated.contains(&to);
        if cut {
            return None;
        }
        Some(self.delay.get(&(from, to)).copied().unwrap_or(LINK_DELAY))
    }
}
