//! What an agent's log says to an operator reading it: plain text when it
//! goes to a file (no colour codes), no start-up safe-mode warning for a
//! release whose changes it still has to load, and a member's return to
//! alive at INFO, named as `fleetmesh members` names it, its id in a field.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{running, wait_for};

/// Longest wait for an agent to exit after SIGTERM (it leaves for 2 s).
const EXIT_WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_restarted_agent_logs_plainly_and_its_peer_logs_it_alive_again_by_name() {
    let (mut fleet, _scratch, ids) = running(2);
    fleet
        .publish_release(0, "app", "greeting = \"hello\"\n")
        .expect("a release is published");
    wait_for(&fleet, "both agents run the release", || {
        (0..2)
            .all(|index| fleet.release(index, "app") == Some(1))
            .then_some(())
    });

    // Node 1 stops (leaves), and comes back logging in the human format
    // to its log file: not a terminal.
    let mut child = fleet.terminate(1).expect("node 1 runs");
    let start = Instant::now();
    while child.try_wait().expect("its status").is_none() {
        assert!(start.elapsed() < EXIT_WAIT, "node 1 did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(&fleet, "node 0 sees node 1 gone", || {
        (fleet.state_of(0, &ids[1]).as_deref() == Some("left")).then_some(())
    });
    let dir = fleet.nodes[1].dir.clone();
    let config = fs::read_to_string(dir.join("agent.toml")).expect("its config");
    let human = config.replace("log_format = \"json\"", "log_format = \"human\"");
    assert_ne!(config, human, "{config}");
    fs::write(dir.join("agent.toml"), human).expect("its config");
    let before = fs::read(dir.join("agent.log")).expect("its log").len();
    fleet.start(1).expect("node 1 starts again");
    wait_for(&fleet, "node 0 sees node 1 alive again", || {
        (fleet.state_of(0, &ids[1]).as_deref() == Some("alive")).then_some(())
    });
    wait_for(&fleet, "node 1 runs the release again", || {
        (fleet.release(1, "app") == Some(1)).then_some(())
    });

    let log = fs::read(dir.join("agent.log")).expect("its log");
    let log = String::from_utf8_lossy(&log[before..]);
    assert!(
        log.contains(" INFO ") && log.contains("agent started"),
        "{log}"
    );
    assert!(
        !log.contains("\u{1b}["),
        "colour codes in a log file:\n{log}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("safe mode"))
        .collect();
    assert!(warnings.is_empty(), "a start-up safe-mode warning:\n{log}");

    // Node 0 logs (JSON) node 1 leaving and coming back, by name and id.
    let peer_log = fs::read_to_string(fleet.nodes[0].dir.join("agent.log")).expect("its log");
    let about_node_1 = |message: &str| {
        peer_log.lines().any(|line| {
            line.contains(&format!("\"message\":\"{message}\""))
                && line.contains("\"level\":\"INFO\"")
                && line.contains("\"member\":\"node-1\"")
                && line.contains(&format!("\"id\":\"{}\"", ids[1]))
        })
    };
    assert!(
        about_node_1("member changed"),
        "no INFO line of node-1 leaving:\n{peer_log}"
    );
    assert!(
        about_node_1("member alive again"),
        "no INFO line of node-1 back:\n{peer_log}"
    );
}
