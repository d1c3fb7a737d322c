//! fleetmesh's deterministic network simulator.
//!
//! It hosts many [`fleetmesh_node::Agent`]s (the very code the real runtime
//! drives) on one virtual clock and one event queue, with a network and
//! fault model ([`network`], [`schedule`]), invariant checkers that judge
//! every event against the simulator's ground truth ([`checkers`]), and
//! scenario files ([`scenario`]). One root seed determines everything: the
//! same seed gives the same trace hash. [`race`] runs fleetmesh's
//! membership and the `foca` crate's through the same network, faults and
//! seeds, for the side-by-side benchmark.
//!
//! No wall clock is read except to report how long a run took, no thread is
//! spawned, and only ordered collections are iterated.

pub mod checkers;
pub mod clock;
pub mod event;
pub mod expect;
pub mod explain;
pub mod fingerprint;
pub mod fleet;
pub mod footprint;
pub mod network;
pub mod operator;
pub mod outcome;
pub mod queue;
pub mod race;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod shrink;
pub mod swarm;
pub mod timeline;
pub mod trace;
pub mod world;

pub use outcome::Outcome;
pub use scenario::{Scenario, ScenarioError};
pub use world::{RunOptions, World};

/// Runs `scenario` with `options` to the end.
pub fn run(scenario: &Scenario, options: RunOptions) -> Outcome {
    World::new(scenario, options).run()
}

/// Runs `scenario` at `seed` twice, fingerprinting every step; returns the
/// first run's outcome and where the second part from it, if it does.
pub fn check_determinism(
    scenario: &Scenario,
    seed: u64,
) -> (Outcome, Option<fingerprint::Divergence>) {
    let options = || RunOptions {
        fingerprint: true,
        ..RunOptions::seeded(seed)
    };
    let mut first = run(scenario, options());
    let second = run(scenario, options());
    let divergence = fingerprint::first_divergence(&first.steps, &second.steps);
    first.steps = Vec::new();
    (first, divergence)
}
