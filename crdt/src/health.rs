//! Health reports: each node's last word on each of its checks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::keys::{Digest, Keypair, PublicKey, Signature, SignatureCheck, domain};
use crate::register::{Held, Registers};
use crate::replica::{
    Ctx, Merge, Rejected, Replica, Verified, check_admitted, check_text, merge_one,
};

/// Bounds on health reports.
pub mod health_limits {
    /// Longest check name, in bytes.
    pub const CHECK_MAX: usize = 64;
    /// Longest detail text, in bytes.
    pub const DETAIL_MAX: usize = 256;
    /// Most checks kept per node.
    pub const CHECKS_PER_NODE_MAX: usize = 64;
    /// Most reports kept in all.
    pub const REPORTS_MAX: usize = 65_536;

    // One node's checks fit in the table.
    const _: () = assert!(CHECKS_PER_NODE_MAX <= REPORTS_MAX);
}

/// A check's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthState {
    /// The check passes.
    Healthy,
    /// The check fails.
    Unhealthy,
    /// The check could not run or has no result yet.
    Unknown,
}

/// What a node reports about one of its own checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The reporting node, which signs.
    pub node: PublicKey,
    /// The check's name, from config.
    pub check: String,
    /// Its state.
    pub state: HealthState,
    /// When the node observed it, on its HLC.
    pub at: Hlc,
    /// Free text for operators (the check's output, shortened).
    pub detail: String,
    /// The causal id of the action that led to this state (a ledger record
    /// digest), so a recovery can be traced to the remediation.
    pub cause: Option<Digest>,
}

impl HealthReport {
    /// The key a node's check is held under.
    pub fn key(node: &PublicKey, check: &str) -> Digest {
        Digest::of(domain::CONTENT, &(node, check))
    }
}

/// A health report signed by its node: the entry the health table
/// replicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHealth {
    /// The report.
    pub report: HealthReport,
    /// `report.node`'s signature over the report (domain HEALTH).
    pub signature: Signature,
}

impl SignedHealth {
    /// Signs `report` with `node`, which must be the key named in
    /// `report.node`.
    pub fn sign(report: HealthReport, node: &Keypair) -> SignedHealth {
        let signature = node.sign(domain::HEALTH, &report);
        SignedHealth { report, signature }
    }
}

/// Later `at`, then lowest version digest.
type HealthRank = (Hlc, Reverse<Digest>);

/// The fleet's health reports: a last-writer-wins register per (node,
/// check).
///
/// Bounds keep the merge a CRDT by evicting deterministically instead of
/// refusing: the table holds the reports whose keys a greedy pass over all
/// keys seen, lowest key digest first, keeps under both bounds (per node,
/// then in all). Seeing more keys only adds lower competitors, so a key
/// evicted once stays evicted, and the state is a function of the set of
/// reports seen, whatever their order.
#[derive(Clone, Debug)]
pub struct HealthTable {
    registers: Registers<HealthRank, SignedHealth>,
    by_node: BTreeMap<PublicKey, BTreeSet<Digest>>,
    checks_per_node_max: usize,
    reports_max: usize,
}

impl Default for HealthTable {
    fn default() -> Self {
        HealthTable::with_limits(
            health_limits::CHECKS_PER_NODE_MAX,
            health_limits::REPORTS_MAX,
        )
    }
}

impl HealthTable {
    /// An empty table with the default bounds ([`health_limits`]).
    pub fn new() -> HealthTable {
        HealthTable::default()
    }

    /// An empty table keeping at most `checks_per_node_max` checks per node
    /// and `reports_max` reports in all.
    pub fn with_limits(checks_per_node_max: usize, reports_max: usize) -> HealthTable {
        HealthTable {
            registers: Registers::default(),
            by_node: BTreeMap::new(),
            checks_per_node_max,
            reports_max,
        }
    }

    /// The last report of `node`'s `check`.
    pub fn get(&self, node: &PublicKey, check: &str) -> Option<&SignedHealth> {
        self.registers.get(&HealthReport::key(node, check))
    }

    /// Every report, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &SignedHealth> {
        self.registers.entries().map(|(_, signed)| signed)
    }

    /// `node`'s reports, in key order.
    pub fn for_node(&self, node: &PublicKey) -> impl Iterator<Item = &SignedHealth> {
        self.by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|key| self.registers.get(key))
    }

    /// How many reports are held.
    pub fn len(&self) -> usize {
        self.registers.len()
    }

    /// Whether no report is held.
    pub fn is_empty(&self) -> bool {
        self.registers.len() == 0
    }

    /// Forgets `key` of `node` everywhere.
    fn evict(&mut self, node: &PublicKey, key: &Digest) {
        self.registers.remove(key);
        if let Some(keys) = self.by_node.get_mut(node) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_node.remove(node);
            }
        }
    }

    /// Applies both bounds after `key` of `node` was added; returns whether
    /// `key` itself was evicted.
    fn enforce_bounds(&mut self, node: PublicKey, key: Digest) -> bool {
        let mut evicted = Vec::new();
        if let Some(keys) = self.by_node.get_mut(&node)
            && keys.len() > self.checks_per_node_max
            && let Some(last) = keys.pop_last()
        {
            self.registers.remove(&last);
            evicted.push(last);
        }
        if self.registers.len() > self.reports_max
            && let Some((last, signed)) = self.registers.pop_last()
        {
            self.evict(&signed.report.node, &last);
            evicted.push(last);
        }
        evicted.contains(&key)
    }
}

impl Verified for HealthTable {
    fn admit(signed: &SignedHealth, ctx: &Ctx<'_>) -> Result<Vec<SignatureCheck>, Rejected> {
        let report = &signed.report;
        check_text("check", &report.check, true, health_limits::CHECK_MAX)?;
        check_text("detail", &report.detail, false, health_limits::DETAIL_MAX)?;
        check_admitted(&report.node, "reporting node", ctx)?;
        Ok(vec![SignatureCheck::of(
            report.node,
            domain::HEALTH,
            report,
            signed.signature,
        )])
    }

    fn apply(&mut self, signed: SignedHealth) -> Merge {
        let node = signed.report.node;
        let key = HealthReport::key(&node, &signed.report.check);
        let version = Digest::of(domain::CONTENT, &signed);
        let rank = (signed.report.at, Reverse(version));
        let merge = self.registers.offer(
            key,
            Held {
                rank,
                version,
                entry: signed,
            },
        );
        if merge == Merge::Unchanged {
            return merge;
        }
        self.by_node.entry(node).or_default().insert(key);
        if self.enforce_bounds(node, key) {
            return Merge::Unchanged;
        }
        merge
    }
}

impl Replica for HealthTable {
    type Entry = SignedHealth;

    fn versions(&self) -> Vec<(Digest, Digest)> {
        self.registers.versions()
    }

    fn entry(&self, key: &Digest) -> Option<SignedHealth> {
        self.registers.get(key).cloned()
    }

    fn merge(&mut self, entry: SignedHealth, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        merge_one(self, entry, ctx)
    }

    fn trust_changed(&mut self, ctx: &Ctx<'_>) {
        let dropped = self
            .registers
            .retain(|signed| HealthTable::admit(signed, ctx).is_ok());
        let dropped: BTreeSet<Digest> = dropped.into_iter().collect();
        self.by_node.retain(|_, keys| {
            keys.retain(|key| !dropped.contains(key));
            !keys.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fleet, Pooled, check_crdt_laws};
    use crate::trust::tests::key;

    fn report(node: &Keypair, check: &str, millis: u64, state: HealthState) -> SignedHealth {
        let report = HealthReport {
            node: node.public(),
            check: check.into(),
            state,
            at: Hlc { millis, counter: 0 },
            detail: String::new(),
            cause: None,
        };
        SignedHealth::sign(report, node)
    }

    fn pool(nodes: &[Keypair], outsider: &Keypair) -> Vec<Pooled<SignedHealth>> {
        let mut pool = Vec::new();
        for node in nodes {
            for (check, millis) in [("disk", 10), ("disk", 20), ("http", 10), ("tcp", 5)] {
                pool.push((report(node, check, millis, HealthState::Healthy), true));
            }
            // Same instant, another state: the digest breaks the tie.
            pool.push((report(node, "http", 10, HealthState::Unhealthy), true));
        }
        let mut forged = report(&nodes[0], "disk", 99, HealthState::Unhealthy);
        forged.signature = report(&nodes[1], "disk", 99, HealthState::Unhealthy).signature;
        let mut long = report(&nodes[0], "disk", 99, HealthState::Unknown);
        long.report.detail = "x".repeat(health_limits::DETAIL_MAX + 1);
        let long = SignedHealth::sign(long.report, &nodes[0]);
        pool.extend([
            (forged, false),
            (report(outsider, "disk", 99, HealthState::Unhealthy), false),
            (long, false),
        ]);
        pool
    }

    #[test]
    fn health_table_is_a_crdt_where_the_latest_report_wins() {
        let nodes: Vec<Keypair> = (20..23).map(key).collect();
        let fleet = Fleet::new(&nodes.iter().collect::<Vec<_>>());
        let table = check_crdt_laws(&fleet, &HealthTable::new(), &pool(&nodes, &key(30)));
        assert_eq!(table.len(), 9);
        let disk = table.get(&nodes[0].public(), "disk").unwrap();
        assert_eq!(disk.report.at.millis, 20);
        assert_eq!(table.for_node(&nodes[1].public()).count(), 3);
        assert_eq!(table.iter().count(), 9);
    }

    #[test]
    fn bounds_evict_by_key_whatever_the_order() {
        let nodes: Vec<Keypair> = (20..23).map(key).collect();
        let fleet = Fleet::new(&nodes.iter().collect::<Vec<_>>());
        let bounded = HealthTable::with_limits(2, 5);
        let table = check_crdt_laws(&fleet, &bounded, &pool(&nodes, &key(30)));
        assert_eq!(table.len(), 5);
        for node in &nodes {
            assert!(table.for_node(&node.public()).count() <= 2);
        }
    }

    #[test]
    fn revoked_nodes_reports_are_dropped() {
        let nodes: Vec<Keypair> = (20..23).map(key).collect();
        let mut fleet = Fleet::new(&nodes.iter().collect::<Vec<_>>());
        let mut table = HealthTable::new();
        fleet.with_ctx(0, |ctx| {
            let reports = nodes
                .iter()
                .map(|node| report(node, "disk", 1, HealthState::Healthy))
                .collect();
            assert!(table.merge_batch(reports, ctx).iter().all(Result::is_ok));
        });
        fleet.revoke(&[nodes[0].public()]);
        fleet.with_ctx(0, |ctx| table.trust_changed(ctx));
        assert_eq!(table.len(), 2);
        assert_eq!(table.for_node(&nodes[0].public()).count(), 0);
    }
}
