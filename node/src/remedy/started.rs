//! What this node started, kept across restarts: the remediation keys (a
//! key never runs twice) and when each ran (the rule's cooldown and limit
//! hold across a crash loop too).

use super::STARTED_MAX;
use fleetmesh_crdt::IdempotencyKey;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The bounded log of action starts on this node, oldest first.
#[derive(Default)]
pub(crate) struct StartedLog {
    order: VecDeque<(IdempotencyKey, u64)>,
    keys: BTreeSet<IdempotencyKey>,
    /// Starts of a rule before this HLC time no longer count toward its
    /// limit: an operator re-armed it.
    rearmed: BTreeMap<String, u64>,
}

impl StartedLog {
    /// Takes back a persisted snapshot.
    pub(crate) fn restore(&mut self, entries: Vec<(IdempotencyKey, u64)>) {
        for (key, millis) in entries {
            self.record(key, millis);
        }
    }

    /// Whether `key` was started.
    pub(crate) fn contains(&self, key: &IdempotencyKey) -> bool {
        self.keys.contains(key)
    }

    /// Notes that `key` started at HLC time `millis`.
    pub(crate) fn record(&mut self, key: IdempotencyKey, millis: u64) {
        if self.keys.insert(key.clone()) {
            self.order.push_back((key, millis));
        }
        while self.order.len() > STARTED_MAX {
            if let Some((old, _)) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }

    /// The snapshot to persist.
    pub(crate) fn snapshot(&self) -> Vec<(IdempotencyKey, u64)> {
        self.order.iter().cloned().collect()
    }

    /// Starts of `rule` that count: at or after `since` and the last
    /// re-arm. Returns how many, and the latest.
    pub(crate) fn of_rule(&self, rule: &str, since: u64) -> (usize, Option<u64>) {
        let floor = since.max(self.rearmed.get(rule).copied().unwrap_or(0));
        let mut count = 0;
        let mut latest = None;
        for (key, millis) in &self.order {
            if key.rule == rule {
                latest = Some(latest.map_or(*millis, |latest: u64| latest.max(*millis)));
                if *millis >= floor {
                    count += 1;
                }
            }
        }
        (count, latest)
    }

    /// Panics unless the log is within [`STARTED_MAX`] and its order and
    /// key set hold the same keys once each.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.order.len() <= STARTED_MAX,
            "started log: {} keys over its bound {STARTED_MAX}",
            self.order.len()
        );
        assert!(
            self.order.len() == self.keys.len()
                && self.order.iter().all(|(key, _)| self.keys.contains(key)),
            "started log: order and key set disagree"
        );
    }

    /// An operator re-armed `rule` at HLC time `millis`.
    pub(crate) fn rearm(&mut self, rule: &str, millis: u64) {
        self.rearmed.insert(rule.to_owned(), millis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::Keypair;

    fn key(incident: &str) -> IdempotencyKey {
        IdempotencyKey {
            rule: "restart".to_owned(),
            target: Keypair::from_seed([1; 32]).public(),
            incident: incident.to_owned(),
        }
    }

    #[test]
    #[should_panic(expected = "order and key set disagree")]
    fn check_invariants_fires_when_order_and_keys_disagree() {
        let mut log = StartedLog::default();
        log.record(key("a"), 1);
        log.record(key("a"), 2);
        log.check_invariants();
        log.keys.insert(key("b"));
        log.check_invariants();
    }
}
