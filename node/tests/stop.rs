//! Emergency stops on bare agents (issue 17 item 5): a stop signed by a
//! `stop` key halts new local and disruptive actions on the agents its
//! selector matches, holds on an agent cut off from the fleet, lifts by
//! itself on expiry or on a resume, and is refused from any other key.
//! The world is the remediation tests' ([`common::site`]).

mod common;

use common::mesh::Mesh;
use common::site::{Site, fleet, policy, step};
use common::{FLEET, key, stopper};
use fleetmesh_node::Entry;
use fleetmesh_node::crdt::{Hlc, Keypair, RecordKind, active_stops, sign_resume, sign_stop};
use std::collections::BTreeMap;
use std::time::Duration;

/// The selector of the agents in zone `zone` (even nodes are in zone a).
fn zone(zone: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("zone".to_owned(), zone.to_owned())])
}

impl Mesh<Site> {
    fn now_millis(&self) -> u64 {
        self.now().0 / 1_000_000
    }

    /// A stop of the agents `selector` matches for `lasting`, signed by
    /// `signer` now.
    fn stop_entry(
        &self,
        signer: &Keypair,
        selector: BTreeMap<String, String>,
        lasting: Duration,
    ) -> Entry {
        let at = Hlc {
            millis: self.now_millis(),
            counter: 0,
        };
        let reason = "bad push at 03:00".to_owned();
        let stop = sign_stop(signer, selector, at, lasting.as_millis() as u64, reason, 1);
        Entry::Ledger(Box::new(stop))
    }

    /// Whether agent `n` holds a stop in force now.
    fn holds_stop(&self, n: u64) -> bool {
        !active_stops(self.agent(n).replicas().ledger(), self.now_millis()).is_empty()
    }

    /// How many actions ran on node `n`.
    fn ran_on(&self, n: u64) -> usize {
        self.world.ran.iter().filter(|ran| ran.node == n).count()
    }

    /// The skips node `n` recorded because of a stop.
    fn stop_skips(&self, n: u64) -> usize {
        self.agent(n)
            .replicas()
            .ledger()
            .iter()
            .filter(|signed| signed.record.key.target == key(n).public())
            .filter(|signed| {
                matches!(&signed.record.kind, RecordKind::Skipped { reason } if reason.starts_with("emergency stop"))
            })
            .count()
    }
}

#[test]
fn a_stop_halts_local_actions_on_the_agents_it_selects_only_until_it_expires() {
    let mut harness = fleet(6, 3);
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, vec![]));
    let stop = harness.stop_entry(&stopper(), zone("a"), Duration::from_secs(20));
    harness.publish(0, vec![stop]);
    harness.run_for(Duration::from_secs(1));
    // Node 4 is in zone a, node 5 in zone b; both web, both fail.
    harness.world.healthy.insert(4, false);
    harness.world.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(8));
    assert_eq!(harness.ran_on(5), 1, "zone b is not stopped");
    assert_eq!(harness.ran_on(4), 0, "zone a is stopped");
    let stats = &harness.agent(4).stats().remedy;
    assert_eq!(
        stats.incidents, 1,
        "checks run and incidents open under a stop"
    );
    assert_eq!(stats.skipped_stopped, 1, "{stats:?}");
    assert_eq!(harness.stop_skips(4), 1, "the held step is recorded once");
    // The stop lapses 20 s after it was signed: node 4 heals itself.
    harness.run_for(Duration::from_secs(14));
    assert!(!harness.holds_stop(4));
    assert_eq!(harness.ran_on(4), 1);
    assert!(harness.world.healthy[&4]);
}

#[test]
fn a_stop_holds_disruptive_steps_unplanned_and_a_resume_lifts_it() {
    let mut harness = fleet(7, 3);
    harness.world.fixes = ["reboot".to_owned()].into();
    harness.release(&policy(
        vec![step("reboot", "disruptive", 3_000)],
        3,
        vec![],
    ));
    harness.run_for(Duration::from_secs(5));
    let stop = harness.stop_entry(&stopper(), BTreeMap::new(), Duration::from_secs(3_600));
    harness.publish(1, vec![stop]);
    harness.run_for(Duration::from_secs(1));
    harness.world.healthy.insert(5, false);
    harness.run_for(Duration::from_secs(15));
    assert_eq!(harness.ran_on(5), 0);
    let planned: u64 = harness
        .agents()
        .map(|(_, agent)| agent.stats().remedy.intents_planned)
        .sum();
    assert_eq!(planned, 0, "no holder plans for a stopped target");
    let at = Hlc {
        millis: harness.now_millis(),
        counter: 0,
    };
    let resume = sign_resume(&stopper(), BTreeMap::new(), at, 1);
    harness.publish(2, vec![Entry::Ledger(Box::new(resume))]);
    harness.run_for(Duration::from_secs(10));
    assert!(!harness.holds_stop(5));
    assert_eq!(
        harness.ran_on(5),
        1,
        "the reboot runs once the stop is lifted"
    );
    assert!(harness.world.healthy[&5]);
}

#[test]
fn a_stop_holds_on_an_agent_cut_off_from_the_fleet_and_lapses_there_too() {
    let mut harness = fleet(6, 3);
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, vec![]));
    let stop = harness.stop_entry(&stopper(), BTreeMap::new(), Duration::from_secs(30));
    harness.publish(0, vec![stop]);
    harness.run_for(Duration::from_secs(1));
    harness.links.isolate(4);
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(20));
    assert!(harness.holds_stop(4));
    assert_eq!(harness.ran_on(4), 0, "the stop holds on the isolated agent");
    harness.run_for(Duration::from_secs(15));
    assert!(!harness.holds_stop(4));
    assert_eq!(harness.ran_on(4), 1, "and lapses there by itself");
}

#[test]
fn a_stop_reaches_every_agent_before_the_next_gossip_round() {
    let mut harness = fleet(30, 3);
    let stop = harness.stop_entry(&stopper(), BTreeMap::new(), Duration::from_secs(60));
    harness.publish(0, vec![stop]);
    // Links take 1 ms; the gossip round is 200 ms.
    harness.run_for(Duration::from_millis(30));
    let missing: Vec<u64> = (0..30).filter(|&n| !harness.holds_stop(n)).collect();
    assert!(missing.is_empty(), "agents without the stop: {missing:?}");
    let received: u64 = harness
        .agents()
        .map(|(_, agent)| agent.stats().remedy.stops_received)
        .sum();
    assert_eq!(received, 30, "each agent rushed it on once");
}

#[test]
fn a_stop_signed_without_the_stop_role_is_refused_and_counted() {
    let mut harness = fleet(6, 3);
    harness.release(&policy(vec![step("restart", "local", 3_000)], 3, vec![]));
    // The operator holds root, config, admit and approve: not stop.
    let (operator, _) = &*FLEET;
    let forged = harness.stop_entry(operator, BTreeMap::new(), Duration::from_secs(60));
    let refused = harness.input(0, |agent, now| agent.publish(now, forged));
    assert!(refused.is_err());
    assert_eq!(harness.agent(0).replicas().stats().stops_refused, 1);
    harness.world.healthy.insert(4, false);
    harness.run_for(Duration::from_secs(8));
    assert!(!harness.holds_stop(4));
    assert_eq!(harness.ran_on(4), 1, "automation goes on");
}
