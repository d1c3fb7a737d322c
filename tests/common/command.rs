//! The built `fleetmesh` binary run as an operator runs it, in a directory,
//! asserting on its exit status and on what it says.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `fleetmesh` with `args` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the fleetmesh binary runs")
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let output = run(dir, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a command that must be refused (exit 1, no panic) with an error
/// holding every one of `expected`; returns its stderr.
pub fn refused(dir: &Path, args: &[&str], expected: &[&str]) -> String {
    let output = run(dir, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{args:?} should be refused: {}{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{args:?}: {stderr:?} lacks {text:?}");
    }
    stderr
}

/// Runs a command that must succeed and print JSON; returns the JSON.
pub fn json(dir: &Path, args: &[&str]) -> Value {
    let stdout = ok(dir, args);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{args:?}: {error}: {stdout}"))
}
