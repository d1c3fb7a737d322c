//! The commands a Serf or Consul user looks for that need no running
//! agent: `fleetmesh validate`, `key show`, `completions` and `man`, run
//! as the built binary in temporary directories.

/// The CLI runner the other CLI tests use.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
#[path = "common/command.rs"]
mod command;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use command::{json, ok, refused, run};
use serde_json::Value;

/// The scenario files the repository ships.
fn shipped_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(files.len() > 10, "{files:?}");
    files
}

#[test]
fn validate_tells_agent_configs_from_scenarios_and_names_the_bad_field() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let at = dir.path();
    // A state directory that must not appear: validating starts nothing.
    fs::write(
        at.join("agent.toml"),
        "state_dir = \"state\"\nlisten = [\"/ip4/127.0.0.1/udp/0/quic-v1\"]\n",
    )
    .expect("write");
    fs::write(at.join("bad.toml"), "state_dir = \"state\"\nlisten = []\n").expect("write");

    let stdout = ok(at, &["validate", "agent.toml"]);
    assert_eq!(stdout, "agent.toml: OK (agent config)\n");
    assert!(!at.join("state").exists(), "validate created the state dir");

    // Every scenario shipped is recognised as one and passes, by content.
    let scenarios = shipped_scenarios();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|path| path.to_str().expect("UTF-8 path"))
        .collect();
    let stdout = ok(at, &[&["validate"][..], &names].concat());
    assert_eq!(
        stdout.matches(": OK (scenario)\n").count(),
        scenarios.len(),
        "{stdout}"
    );

    // One bad file among good ones: the good are still checked, the bad
    // names its field, the status is 1.
    let output = run(at, &["validate", "agent.toml", "bad.toml", names[0]]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("agent.toml: OK (agent config)"), "{stdout}");
    assert!(stdout.contains(": OK (scenario)"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml: agent config: field `listen`"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 3 files failed"), "{stderr}");

    // --kind overrides the content: an agent config is no scenario.
    refused(
        at,
        &["validate", "--kind", "scenario", "agent.toml"],
        &["agent.toml:2:", "unknown field `listen`"],
    );
    refused(
        at,
        &["validate", "missing.toml"],
        &["missing.toml", "check the path"],
    );
    let usage = run(at, &["validate", "--kind", "policy", "agent.toml"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "an unknown kind is a usage error"
    );
}

#[test]
fn key_show_prints_the_public_half_only_and_refuses_a_readable_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let at = dir.path();
    let made = ok(at, &["keygen", "--out", "node.key"]);
    let stored: Value =
        serde_json::from_str(&fs::read_to_string(at.join("node.key")).expect("read"))
            .expect("a JSON key file");
    let seed = stored["seed"].as_str().expect("the seed");

    let shown = ok(at, &["key", "show", "--key", "node.key"]);
    assert!(
        made.ends_with(&shown),
        "keygen said {made:?}, key show {shown:?}"
    );
    assert!(shown.contains(stored["public"].as_str().expect("the public key")));
    assert!(!shown.contains(seed), "the seed was printed");
    let shown = json(at, &["key", "show", "--key", "node.key", "--json"]);
    assert_eq!(shown["public_key"], stored["public"]);
    assert_eq!(shown["node_id"].as_str().map(str::len), Some(16));
    assert!(!shown.to_string().contains(seed), "the seed was printed");

    fs::set_permissions(at.join("node.key"), fs::Permissions::from_mode(0o644)).expect("chmod");
    refused(
        at,
        &["key", "show", "--key", "node.key"],
        &["readable by others", "chmod 600 node.key"],
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let at = dir.path();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(at, &["completions", shell]);
        // fish names long options without their dashes.
        for word in ["members", "validate", "detailed", "kind"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    assert_eq!(run(at, &["completions", "tcsh"]).status.code(), Some(2));

    ok(at, &["man", "--out", "man/man1"]);
    let pages = at.join("man/man1");
    for page in [
        "fleetmesh.1",
        "fleetmesh-validate.1",
        "fleetmesh-key-show.1",
        "fleetmesh-members.1",
        "fleetmesh-info.1",
        "fleetmesh-sim-run.1",
        "fleetmesh-config-rollout-status.1",
    ] {
        assert!(pages.join(page).is_file(), "no {page}");
    }
    let members = fs::read_to_string(pages.join("fleetmesh-members.1")).expect("read");
    assert!(members.starts_with(".ie"), "not roff: {members:.80}");
    assert!(members.contains(r"\-\-detailed"), "{members}");
    // One page per command: the top one and every subcommand, nested
    // ones included; no `help` pseudo-command.
    let help = ok(at, &["--help"]);
    let commands = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| !line.trim_start().starts_with("help "))
        .count();
    let top_pages = fs::read_dir(&pages)
        .expect("the man directory")
        .filter(|entry| {
            let name = entry.as_ref().expect("an entry").file_name();
            let name = name.to_string_lossy().into_owned();
            name.strip_prefix("fleetmesh-")
                .is_some_and(|rest| !rest.contains('-'))
        })
        .count();
    assert!(
        commands > 15 && top_pages == commands,
        "{top_pages} pages for {commands} commands"
    );
}
