//! The fleet every target runs against, built from one short simulated run.
//!
//! The simulator runs `seed-fleet.toml` (8 agents, a remediation policy,
//! config releases, a reboot under a budget lease, an approval, a hostile
//! agent, a revocation) and a tap keeps every message it delivers. From
//! that traffic come the seed corpora ([`crate::corpus`]) and the state the
//! targets start from: the fleet's keys are derived from the run's seed,
//! so [`Fixture::fleet`] is the run's fleet, and entries the run signed
//! verify in a target's agent. A mutated input therefore gets past
//! decoding into verification and merging, where the bugs worth finding
//! are.
//!
//! The run is deterministic, so every process (libFuzzer, the smoke run,
//! the corpus generator) builds the same fixture.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::OnceLock;

use fleetmesh_node::crdt::{ConfigEntry, Ctx, Digest, PublicKey, TrustChain};
use fleetmesh_node::wire::{self, Message, StateMessage};
use fleetmesh_node::{Agent, Instant, NodeMeta, snapshot};
use fleetmesh_node::{Entry, Kind};
use fleetmesh_simulator::clock::Clock;
use fleetmesh_simulator::fleet::Fleet;
use fleetmesh_simulator::rng::Seeds;
use fleetmesh_simulator::{RunOptions, Scenario, World};

/// The seed run's scenario.
pub const SEED_FLEET: &str = include_str!("../seed-fleet.toml");

/// Domain tag of the digests that tell corpus items apart (never signed).
pub const ITEM_DOMAIN: &str = "fleetmesh fuzzing corpus item";

/// The agent the targets play, and the peer their messages come from.
pub const AGENT: u32 = 0;
/// An admitted peer of [`AGENT`].
pub const PEER: u32 = 1;

/// What the seed run left: its fleet, its traffic and the state it built.
pub struct Fixture {
    /// The seed run's scenario.
    pub scenario: Scenario,
    /// The run's keys (operators, root, nodes), rebuilt from its seed.
    pub fleet: Fleet,
    /// The run's root seed.
    pub seed: u64,
    /// When the run ended, on an agent's clock: targets run their agents
    /// at this time.
    pub now: Instant,
    /// Whether the run met its scenario's expectations.
    pub passed: bool,
    /// Distinct messages delivered in the run, in the order first seen.
    pub messages: Vec<Vec<u8>>,
    /// Distinct entries those messages carried, in the order first seen
    /// (including the hostile agent's forgeries).
    pub entries: Vec<Entry>,
    /// The trust chain an agent that took every entry holds.
    pub trust: TrustChain,
    /// What that agent saves in its snapshot ([`Kind::SAVED`]).
    pub state: Vec<Entry>,
}

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::build)
}

impl Fixture {
    fn build() -> Fixture {
        let scenario = Scenario::parse("fuzzing/seed-fleet.toml", SEED_FLEET)
            .expect("the seed fleet scenario parses");
        let seed = scenario.seed;
        let seen: Rc<RefCell<Traffic>> = Rc::default();
        let tap = Rc::clone(&seen);
        let options = RunOptions {
            tap: Some(Box::new(move |bytes: &[u8]| tap.borrow_mut().add(bytes))),
            ..RunOptions::seeded(seed)
        };
        let outcome = World::new(&scenario, options).run();
        let traffic = seen.take();
        let fleet = Fleet::new(
            &Seeds::new(seed),
            &scenario.fleet.tags,
            scenario.has_emergency_stop(),
        );
        let entries = carried_entries(&traffic.messages);
        let trust = TrustChain::new(fleet.genesis.clone(), fleet.verifier.as_ref())
            .expect("the seed run's genesis verifies");
        let mut fixture = Fixture {
            // Agents' clocks read the simulator's base time plus true time:
            // a perfect one at the end of the run.
            now: Clock::default()
                .local(u64::try_from(scenario.duration.as_nanos()).unwrap_or(u64::MAX)),
            passed: outcome.violations.is_empty(),
            scenario,
            fleet,
            seed,
            messages: traffic.messages,
            entries,
            trust,
            state: Vec::new(),
        };
        let mut agent = fixture.agent(AGENT);
        let everything = snapshot::encode(&fixture.entries).expect("the run's entries encode");
        agent
            .load_replicas(fixture.now, &everything)
            .expect("the run's entries decode");
        fixture.trust = agent.replicas().trust().clone();
        fixture.state = agent.replicas().saved();
        let peer = fixture.fleet.node_id(PEER);
        assert!(
            agent.replicas().certs().admits(peer, fixture.now_millis()),
            "the seed run's traffic carries the certificate of node {PEER}"
        );
        fixture
    }

    /// A fresh agent of the fleet's node `index`, at [`Fixture::now`],
    /// knowing only itself and the genesis.
    pub fn agent(&self, index: u32) -> Agent {
        let meta = NodeMeta {
            tags: self.scenario.fleet.tags[index as usize].clone(),
            addrs: Vec::new(),
        };
        Agent::new(
            self.scenario.config.clone(),
            self.fleet.identity(index),
            meta,
            self.seed,
            self.now,
            self.fleet.verifier.clone(),
        )
        .expect("the seed fleet's agents start")
    }

    /// A fresh agent of node [`AGENT`] holding the fleet's trust and
    /// state, as after a restart.
    pub fn agent_with_state(&self) -> Agent {
        let state = snapshot::encode(&self.state).expect("the fixture's state encodes");
        self.restarted(&self.trust, &state)
    }

    /// A fresh agent of node [`AGENT`] started as the runtime restarts
    /// one: given the trust documents it had saved (`trust.json`), then
    /// its replica snapshot (`replicas.bin`), which may not decode.
    pub fn restarted(&self, trust: &TrustChain, snapshot: &[u8]) -> Agent {
        let mut agent = self.agent(AGENT);
        for doc in trust.chain().skip(1) {
            let _ = agent.publish(self.now, Entry::Trust(Box::new(doc.clone())));
        }
        let _ = agent.load_replicas(self.now, snapshot);
        agent
    }

    /// The config changes of the fleet's state.
    pub fn config_changes(&self) -> Vec<ConfigEntry> {
        self.state
            .iter()
            .filter_map(|entry| match entry {
                Entry::Config(change) => Some(change.as_ref().clone()),
                _ => None,
            })
            .collect()
    }

    /// Runs `body` with a merge context of `trust` at [`Fixture::now`]
    /// that admits every key, as an operator's tools do.
    pub fn with_ctx<T>(&self, trust: &TrustChain, body: impl FnOnce(&Ctx<'_>) -> T) -> T {
        let admitted = |_: &PublicKey| true;
        body(&Ctx {
            trust,
            admitted: &admitted,
            verifier: self.fleet.verifier.as_ref(),
            now_millis: self.now_millis(),
        })
    }

    /// [`Fixture::now`] in milliseconds.
    pub fn now_millis(&self) -> u64 {
        self.now.0 / 1_000_000
    }

    /// The fleet's keys holding the `config` role, in a fixed order.
    pub fn config_keys(&self) -> [&fleetmesh_node::crdt::Keypair; 2] {
        [&self.fleet.operator, &self.fleet.operator_2]
    }
}

/// The distinct messages seen, in order.
#[derive(Default)]
struct Traffic {
    messages: Vec<Vec<u8>>,
    seen: BTreeSet<Digest>,
}

impl Traffic {
    fn add(&mut self, bytes: &[u8]) {
        if self.seen.insert(Digest::of_bytes(ITEM_DOMAIN, bytes)) {
            self.messages.push(bytes.to_vec());
        }
    }
}

/// The distinct entries the messages carry (certificates in `Hello`s
/// too), in the order first seen.
fn carried_entries(messages: &[Vec<u8>]) -> Vec<Entry> {
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for message in messages {
        let carried = match wire::decode(message) {
            Ok(Message::State(StateMessage::Push { entries, .. }))
            | Ok(Message::State(StateMessage::Entries { entries })) => entries,
            Ok(Message::Hello { cert, .. }) => vec![Entry::Cert(cert)],
            _ => continue,
        };
        for entry in carried {
            let digest = Digest::of(ITEM_DOMAIN, &entry);
            if seen.insert(digest) {
                entries.push(entry);
            }
        }
    }
    entries
}

/// The kinds the fleet's state holds, for tests and reports.
pub fn kinds(entries: &[Entry]) -> BTreeSet<Kind> {
    entries.iter().map(Entry::kind).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_builds_are_the_same_fixture() {
        let (one, two) = (Fixture::build(), Fixture::build());
        assert_eq!(one.messages, two.messages);
        assert_eq!(one.entries, two.entries);
        assert_eq!(one.state, two.state);
        assert_eq!(one.trust.digest(), two.trust.digest());
    }
}
