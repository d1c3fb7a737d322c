//! Issue 17 items 4 and 7 through the real `fleetmesh` binary: a
//! remediation policy agents would refuse is refused at `config draft` and
//! `config release`, naming the field; drafting from a copied store with a
//! key that already signed elsewhere is refused before signing; and the
//! recovery docs/operations.md gives for a quarantined key works.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// A fleet (root `root`, config keys `alice` and `bob`, threshold 1) in a
/// scratch directory the commands run in.
struct Fleet {
    dir: TempDir,
    alice: String,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut fleet = Fleet {
            dir,
            alice: String::new(),
        };
        fleet.keygen("root");
        fleet.alice = fleet.keygen("alice");
        let bob = fleet.keygen("bob");
        fleet.ok(&[
            "fleet",
            "init",
            "--name",
            "lint",
            "--root-key",
            "root.key",
            "--key",
            &format!("{}=config", fleet.alice),
            "--key",
            &format!("{bob}=config"),
            "--config-threshold",
            "1",
            "--out",
            "trust.json",
        ]);
        fleet
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the fleetmesh binary runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout + &String::from_utf8_lossy(&output.stderr)
    }

    /// Runs a command that must exit 1 (no panic) saying each of
    /// `expected`; returns its stderr.
    fn refused(&self, args: &[&str], expected: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?} should fail: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        for text in expected {
            assert!(stderr.contains(text), "{args:?}: {stderr:?} lacks {text:?}");
        }
        stderr
    }

    fn keygen(&self, name: &str) -> String {
        let stdout = self.ok(&["keygen", "--out", &format!("{name}.key")]);
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("public key "))
            .expect("keygen prints the public key")
            .to_owned()
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.path().join(name), text).expect("write");
    }

    fn draft(&self, key: &str, doc: &str, from: &str, store: &str) -> Output {
        self.run(&[
            "config",
            "draft",
            "--trust",
            "trust.json",
            "--key",
            key,
            "--doc",
            doc,
            "--from",
            from,
            "--store",
            store,
        ])
    }

    fn release(&self, key: &str, doc: &str, store: &str) -> Output {
        self.run(&[
            "config",
            "release",
            "--trust",
            "trust.json",
            "--key",
            key,
            "--doc",
            doc,
            "--store",
            store,
        ])
    }

    fn copy_store(&self, from: &str, to: &str) {
        let to = self.dir.path().join(to);
        fs::create_dir_all(&to).expect("mkdir");
        for entry in fs::read_dir(self.dir.path().join(from)).expect("read store") {
            let path = entry.expect("entry").path();
            fs::copy(&path, to.join(path.file_name().expect("a name"))).expect("copy");
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// Exit 1 and stderr naming every one of `expected`.
fn assert_refused(output: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "should fail: {stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{stderr:?} lacks {text:?}");
    }
}

fn assert_ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `config show` of document `app` in the store `store`.
const SHOW_APP: [&str; 8] = [
    "config",
    "show",
    "--store",
    "store",
    "--trust",
    "trust.json",
    "--doc",
    "app",
];

const CHECK_OK: &str = "[checks.web]\nkind = \"tcp\"\naddr = \"127.0.0.1:8080\"\nselect = \"role=web\"\ninterval_ms = 1000\n";
const RULE_OK: &str = "[rules.web-down]\ncheck = \"web\"\nselect = \"role=web\"\nsteps = [{ action = \"restart\", class = \"local\" }]\n";

#[test]
fn a_policy_agents_would_refuse_is_refused_at_draft_naming_each_field_in_turn() {
    let fleet = Fleet::new();
    // The policy; each fix uncovers the next bad field.
    let mut policy = "[checks.web]\nkind = \"tcp\"\naddr = \"127.0.0.1:8080\"\nselect = \"*\"\ninterval_ms = 50\n\n[rules.web-down]\ncheck = \"missing\"\nselect = \"role=web\"\nsteps = [{ action = \"restart\", class = \"lokal\" }]\n".to_owned();
    let fixes = [
        (
            "checks.web.interval_ms",
            "interval_ms = 50",
            "interval_ms = 1000",
        ),
        (
            "checks.web.select",
            "select = \"*\"",
            "select = \"role=web\"",
        ),
        ("rules.web-down.steps[0].class", "\"lokal\"", "\"local\""),
        ("rules.web-down.check", "\"missing\"", "\"web\""),
    ];
    for (field, bad, good) in fixes {
        fleet.write("policy.toml", &policy);
        let output = fleet.draft("alice.key", "remediation", "policy.toml", "store");
        assert_refused(
            &output,
            &[field, "would be refused by every agent", "policy.toml"],
        );
        policy = policy.replacen(bad, good, 1);
    }
    assert!(
        !fleet.path("store").exists() || fs::read_dir(fleet.path("store")).unwrap().count() == 0,
        "nothing was signed"
    );
    fleet.write("policy.toml", &policy);
    assert!(
        assert_ok(&fleet.draft("alice.key", "remediation", "policy.toml", "store"))
            .contains("wrote change")
    );
    assert!(
        assert_ok(&fleet.release("alice.key", "remediation", "store")).contains("wrote release")
    );
    // Another document is not a policy: no lint.
    fleet.write("app.toml", "select = \"*\"\n");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "store"));
}

#[test]
fn a_release_refuses_two_valid_drafts_that_merge_into_a_bad_policy() {
    let fleet = Fleet::new();
    fleet.write("policy.toml", CHECK_OK);
    assert_ok(&fleet.draft("alice.key", "remediation", "policy.toml", "store"));
    fleet.copy_store("store", "bobs");
    // Alice adds a rule on check `web`; Bob, concurrently, renames the
    // check. Each draft parses; their merge names a check that is gone.
    fleet.write("policy.toml", &format!("{CHECK_OK}\n{RULE_OK}"));
    assert_ok(&fleet.draft("alice.key", "remediation", "policy.toml", "store"));
    fleet.write(
        "renamed.toml",
        &CHECK_OK.replace("checks.web", "checks.api"),
    );
    assert_ok(&fleet.draft("bob.key", "remediation", "renamed.toml", "bobs"));
    fleet.copy_store("bobs", "store");
    let output = fleet.release("alice.key", "remediation", "store");
    assert_refused(&output, &["rules.web-down.check", "no check named `web`"]);
}

#[test]
fn drafting_in_a_copied_store_is_refused_before_signing_and_the_original_still_drafts() {
    let fleet = Fleet::new();
    fleet.write("app.toml", "port = 1\n");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "store"));
    fleet.copy_store("store", "copy");
    fleet.write("app.toml", "port = 2\n");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "copy"));
    // The original lacks the copy's change: signing there would reuse its
    // sequence number.
    fleet.write("app.toml", "port = 3\n");
    let files_before = fs::read_dir(fleet.path("store")).unwrap().count();
    let output = fleet.draft("alice.key", "app", "app.toml", "store");
    assert_refused(
        &output,
        &[
            "would reuse its sequence number",
            "Equivocation and quarantine",
            "cp ",
        ],
    );
    assert_eq!(
        fs::read_dir(fleet.path("store")).unwrap().count(),
        files_before,
        "nothing signed"
    );
    // Following the message: copy the changes in, then draft.
    fleet.copy_store("copy", "store");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "store"));
    let shown = fleet.ok(&SHOW_APP);
    assert!(
        shown.contains("port = 3") && !shown.contains("quarantined"),
        "{shown}"
    );
    // A fresh store is as stale as a copy.
    let output = fleet.draft("alice.key", "app", "app.toml", "fresh");
    assert_refused(&output, &["would reuse its sequence number"]);
}

#[test]
fn a_key_quarantined_by_an_old_cli_is_recovered_as_the_operations_guide_says() {
    let fleet = Fleet::new();
    fleet.write("app.toml", "port = 1\n");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "store"));
    // Version 1, signed by both keys: it still counts once alice is
    // revoked, so the recovered release must come after it.
    let stdout = assert_ok(&fleet.release("alice.key", "app", "store"));
    fleet.ok(&[
        "config",
        "sign",
        "--release",
        &release_path(&stdout),
        "--trust",
        "trust.json",
        "--key",
        "bob.key",
    ]);
    fleet.copy_store("store", "copy");
    // What an older CLI (or the key on a second laptop) did: no journal.
    let journal = fleet.path("alice.key.drafts.json");
    fs::remove_file(&journal).expect("the draft wrote a journal");
    fleet.write("app.toml", "port = 2\n");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "copy"));
    fs::remove_file(&journal).expect("journal");
    fleet.write("app.toml", "port = 3\n");
    assert_ok(&fleet.draft("alice.key", "app", "app.toml", "store"));
    // Both changes meet (as on every agent): the key equivocated, and
    // every change it signed is dropped, the released ones too.
    fleet.copy_store("copy", "store");
    fleet.refused(&SHOW_APP, &["its author is quarantined", "no changes"]);
    fleet.refused(
        &[
            "config",
            "draft",
            "--trust",
            "trust.json",
            "--key",
            "alice.key",
            "--doc",
            "app",
            "--from",
            "app.toml",
            "--store",
            "store",
        ],
        &["is quarantined", "--revoke"],
    );
    // Recovery, step by step (docs/operations.md): 1. revoke the key.
    fleet.ok(&[
        "fleet",
        "update",
        "--trust",
        "trust.json",
        "--root-key",
        "root.key",
        "--revoke",
        &fleet.alice,
        "--out",
        "trust.json",
    ]);
    // 2. Another config key drafts the content into a fresh store holding
    // the latest release file (for numbering), 3. releases it.
    fs::create_dir_all(fleet.path("recovered")).expect("mkdir");
    let release = fs::read_dir(fleet.path("store"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("release-app-v1")
        })
        .expect("the release file");
    fs::copy(
        &release,
        fleet.path("recovered").join(release.file_name().unwrap()),
    )
    .expect("copy");
    fleet.write("app.toml", "port = 4\n");
    assert_ok(&fleet.draft("bob.key", "app", "app.toml", "recovered"));
    let stdout = assert_ok(&fleet.release("bob.key", "app", "recovered"));
    assert!(stdout.contains("version 2"), "{stdout}");
    let verified = fleet.ok(&[
        "config",
        "verify",
        "--release",
        &release_path(&stdout),
        "--trust",
        "trust.json",
        "--store",
        "recovered",
    ]);
    assert!(
        verified.contains("port = 4") && verified.contains("OK"),
        "{verified}"
    );
}

/// The release file `config release` says it wrote.
fn release_path(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("wrote release "))
        .and_then(|rest| rest.split(' ').next())
        .map(|path| Path::new(path).display().to_string())
        .expect("release prints its file")
}
