//! What the tests of real agents share: a [`LocalFleet`] (the library's,
//! as `fleetmesh demo` uses it) placed on loopback or, with [`netns`], each
//! agent in a network namespace of its own; bounded waits that fail with
//! the agents' logs; the checks their remediation policies run; and, in
//! [`command`], the operator CLI run against them.

/// The `fleetmesh` binary run as an operator runs it.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
pub mod command;
/// Network namespaces for partition tests.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
pub mod netns;

use std::path::Path;
use std::time::{Duration, Instant};

use fleetmesh_runtime::local::{self, LocalFleet, Placement, TAG};
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

/// A fleet of `count` nodes on loopback, and the directory holding its
/// files (removed when dropped).
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
pub fn loopback_fleet(count: usize) -> (LocalFleet, TempDir) {
    let places = (0..count)
        .map(|_| Placement::loopback().expect("free loopback ports"))
        .collect();
    fleet_at(places)
}

/// A [`loopback_fleet`] of `count` agents, [`form`]ed: its directory and
/// the agents' ids, by index.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
pub fn running(count: usize) -> (LocalFleet, TempDir, Vec<String>) {
    let (mut fleet, scratch) = loopback_fleet(count);
    let ids = form(&mut fleet);
    (fleet, scratch, ids)
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

/// A policy's exec check `name` on every node of a [`LocalFleet`]: it
/// fails while a file `marker` exists in the node's directory, is run
/// every 200 ms and changes state after two failures or one success.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
pub fn exec_check(name: &str, marker: &str) -> String {
    format!(
        r#"
[checks.{name}]
kind = "exec"
command = ["sh", "-c", "test ! -e {marker}"]
select = "{}={}"
interval_ms = 200
timeout_ms = 150
fall = 2
rise = 1
"#,
        TAG.0, TAG.1
    )
}

/// A policy's rule `name` remediating `check` on every node of a
/// [`LocalFleet`], one unhealthy node at most (the tests break one or two
/// of several, which is not a systemic fault); `steps` holds the rest of
/// its fields, its steps last.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
pub fn rule(name: &str, check: &str, steps: &str) -> String {
    format!(
        r#"
[rules.{name}]
check = "{check}"
select = "{}={}"
max_unhealthy = 1
{steps}"#,
        TAG.0, TAG.1
    )
}
