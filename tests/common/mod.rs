//! What the namespace test and the runtime benchmarks share: a
//! [`LocalFleet`] (the library's, as `tests/mesh.rs` and `fleetmesh demo`
//! use it) placed on loopback or, with [`netns`], each agent in a network
//! namespace of its own; and bounded waits that fail with the agents' logs.

/// Network namespaces for partition tests.
pub mod netns;

use std::path::Path;
use std::time::{Duration, Instant};

use fleetmesh_runtime::local::{self, LocalFleet, Placement};
use tempfile::TempDir;

/// Longest any one wait may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// A fleet of one node per placement, and the directory holding its files
/// (removed when dropped).
pub fn fleet_at(places: Vec<Placement>) -> (LocalFleet, TempDir) {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let fleet = LocalFleet::create_at(
        Path::new(env!("CARGO_BIN_EXE_fleetmesh")),
        scratch.path(),
        places,
    )
    .expect("the fleet's files");
    (fleet, scratch)
}

/// Polls `done` every `poll` until it returns `Some`, at most [`WAIT`],
/// and says how long it took; panics with `what` and the agents' logs
/// otherwise.
pub fn wait_every<T>(
    fleet: &LocalFleet,
    what: &str,
    poll: Duration,
    done: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    match local::wait_every(what, WAIT, poll, done) {
        Ok(value) => {
            eprintln!("{what}: after {:.1}s", start.elapsed().as_secs_f64());
            value
        }
        Err(error) => panic!("{error}\n{}", fleet.logs()),
    }
}

/// [`wait_every`] at the library's usual [`local::POLL`].
pub fn wait_for<T>(fleet: &LocalFleet, what: &str, done: impl FnMut() -> Option<T>) -> T {
    wait_every(fleet, what, local::POLL, done)
}

/// Starts every agent and waits until each sees all alive; returns their
/// ids, by index.
pub fn form(fleet: &mut LocalFleet) -> Vec<String> {
    let count = fleet.nodes.len();
    for index in 0..count {
        fleet.start(index).expect("the agent starts");
    }
    let all: Vec<usize> = (0..count).collect();
    let ids: Vec<String> = wait_for(fleet, "every admin API answers", || {
        all.iter().map(|&index| fleet.id(index)).collect()
    });
    wait_for(fleet, "all agents see all alive", || {
        fleet.all_see_alive(&all, &ids).then_some(())
    });
    ids
}
