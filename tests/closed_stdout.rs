//! Commands that print, run with standard output a pipe whose reader has
//! gone (`fleetmesh members --json | head -1`): each ends quietly, as
//! `cat` does (SIGPIPE, or status 0), never with a panic and its
//! backtrace hint (status 101).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::running;

/// Runs `fleetmesh ARGS` in `dir` with its standard output's reader closed
/// as it starts, and asserts that it ended quietly.
fn quiet_into_a_closed_pipe(dir: &Path, args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the fleetmesh binary runs");
    // The only reader goes before the command has printed anything.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("its status");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_ne!(output.status.code(), Some(101), "{args:?}: {stderr}");
    assert!(
        output.status.success() || output.status.signal() == Some(libc::SIGPIPE),
        "{args:?} ended {:?}: {stderr}",
        output.status
    );
}

#[test]
fn offline_commands_end_quietly_when_their_reader_has_gone() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let dir = scratch.path();
    std::fs::write(
        dir.join("tiny.toml"),
        "name = \"tiny\"\nduration_s = 5\n[fleet]\nagents = 3\n",
    )
    .expect("a scenario");
    quiet_into_a_closed_pipe(dir, &["sim", "run", "tiny.toml"]);
    quiet_into_a_closed_pipe(dir, &["keygen", "--out", "a.key"]);
}

#[test]
fn the_views_of_a_running_agent_end_quietly_when_their_reader_has_gone() {
    let (fleet, scratch, _) = running(1);
    let admin = fleet.nodes[0].admin.endpoint.to_string();
    for view in [
        &["members", "--json"][..],
        &["members"],
        &["health"],
        &["leases"],
        &["remediations"],
        &["config", "release"],
        &["config", "history"],
    ] {
        let args = [view, &["--admin", admin.as_str()]].concat();
        quiet_into_a_closed_pipe(scratch.path(), &args);
    }
}
