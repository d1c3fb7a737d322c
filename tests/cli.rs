//! The operator CLI end to end: the built `fleetmesh` binary run on files
//! in temporary directories, asserting on exit status and on what it says.

/// The CLI runner the tests of running agents use too.
#[allow(dead_code, reason = "each test file uses its own part of the helpers")]
#[path = "common/command.rs"]
mod command;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use tempfile::TempDir;

/// A scratch directory the commands run in.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        command::run(self.dir.path(), args)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        command::ok(self.dir.path(), args)
    }

    /// Runs a command that must be refused (exit 1, no panic) with an error
    /// containing every one of `expected`; returns its stderr.
    fn refused(&self, args: &[&str], expected: &[&str]) -> String {
        command::refused(self.dir.path(), args, expected)
    }

    /// Makes a key file `name.key`; returns its public key in hex.
    fn keygen(&self, name: &str) -> String {
        let out = format!("{name}.key");
        let stdout = self.ok(&["keygen", "--out", &out]);
        let public = stdout
            .lines()
            .find_map(|line| line.strip_prefix("public key "))
            .expect("keygen prints the public key");
        assert_eq!(public.len(), 64);
        public.to_owned()
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.path(name), text).expect("write");
    }

    /// Writes a key file as `keygen` would: readable by its owner only.
    fn write_key(&self, name: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write(name, text);
        fs::set_permissions(self.path(name), fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).expect("read")
    }
}

/// A fleet with root key `root`, config keys `alice` (also admit) and
/// `bob`, config threshold 2, and document `app` drafted by alice into
/// `store`.
struct Fleet {
    scratch: Scratch,
    alice: String,
    bob: String,
}

impl Fleet {
    fn new() -> Fleet {
        let scratch = Scratch::new();
        scratch.keygen("root");
        let alice = scratch.keygen("alice");
        let bob = scratch.keygen("bob");
        let stdout = scratch.ok(&init(&[
            "--root-key",
            "root.key",
            "--key",
            &format!("{alice}=config,admit"),
            "--key",
            &format!("{bob}=config"),
            "--config-threshold",
            "2",
        ]));
        assert!(stdout.contains("version 1"), "{stdout}");
        scratch.write("app.toml", "[web]\nport = 8080\nhosts = [\"a\", \"b\"]\n");
        let stdout = scratch.ok(&draft("alice.key", "app.toml"));
        assert!(stdout.contains("wrote change"), "{stdout}");
        Fleet {
            scratch,
            alice,
            bob,
        }
    }

    /// Releases `app` signed by alice; returns the release file's path.
    fn release(&self, extra: &[&str]) -> String {
        release_file(&self.scratch.ok(&release_by_alice(extra)))
    }

    fn sign(&self, release: &str, key: &str) -> String {
        self.scratch.ok(&[
            "config",
            "sign",
            "--release",
            release,
            "--trust",
            "trust.json",
            "--key",
            key,
        ])
    }
}

fn draft<'a>(key: &'a str, from: &'a str) -> [&'a str; 12] {
    [
        "config",
        "draft",
        "--trust",
        "trust.json",
        "--key",
        key,
        "--doc",
        "app",
        "--from",
        from,
        "--store",
        "store",
    ]
}

/// The release file a `config release` or `config revert` by one of two
/// required signers wrote, from its output.
fn release_file(stdout: &str) -> String {
    assert!(
        stdout.contains("signatures: 1 of the 2 required"),
        "{stdout}"
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("wrote release "))
        .and_then(|rest| rest.split(' ').next())
        .expect("a release prints its file")
        .to_owned()
}

/// `config VERB` of `app` in `store`, signed by alice, with `extra`
/// arguments.
fn by_alice<'a>(verb: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "config",
        verb,
        "--trust",
        "trust.json",
        "--key",
        "alice.key",
        "--doc",
        "app",
        "--store",
        "store",
    ];
    args.extend(extra);
    args
}

/// `config revert` of `app` to version `to`, signed by alice.
fn revert_by_alice(to: &str) -> Vec<&str> {
    by_alice("revert", &["--to", to])
}

/// `config release` of `app` signed by alice, with `extra` arguments.
fn release_by_alice<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    by_alice("release", extra)
}

fn verify(release: &str) -> [&str; 8] {
    [
        "config",
        "verify",
        "--release",
        release,
        "--trust",
        "trust.json",
        "--store",
        "store",
    ]
}

/// `fleet init` of fleet `prod` into `trust.json`, with `args` (its keys
/// and thresholds).
fn init<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [
        &["fleet", "init", "--name", "prod"][..],
        args,
        &["--out", "trust.json"],
    ]
    .concat()
}

/// `fleet update` of `trust.json` with `args`, written back to it.
fn update<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [
        &["fleet", "update", "--trust", "trust.json"][..],
        args,
        &["--out", "trust.json"],
    ]
    .concat()
}

/// `config show` of `app` in `store`, with `extra` arguments.
fn show<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let app = [
        "config",
        "show",
        "--store",
        "store",
        "--trust",
        "trust.json",
        "--doc",
        "app",
    ];
    [&app[..], extra].concat()
}

/// Replaces the first hex digit of the value of `field` in a JSON file
/// (the first occurrence of `"field": {"key": "…"}` or `"field": "…"`).
fn flip_after(path: &Path, marker: &str) {
    let text = fs::read_to_string(path).expect("read");
    let start = text.find(marker).expect("marker present") + marker.len();
    let quote = start + text[start..].find(": \"").expect("a string value") + 3;
    let digit = text.as_bytes()[quote];
    let flipped = if digit == b'0' { '1' } else { '0' };
    let mut changed = text.clone();
    changed.replace_range(quote..quote + 1, &flipped.to_string());
    fs::write(path, changed).expect("write");
}

#[test]
fn keygen_to_admitted_node_and_released_config() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let node = scratch.keygen("node");
    let stdout = scratch.ok(&[
        "fleet",
        "admit",
        "--trust",
        "trust.json",
        "--admit-key",
        "alice.key",
        "--node",
        &node,
        "--name",
        "web-1",
        "--tag",
        "zone=a",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--out",
        "web-1.cert.json",
    ]);
    assert!(stdout.contains("wrote certificate"), "{stdout}");
    assert!(scratch.read("web-1.cert.json").contains(&node));

    let release = fleet.release(&["--expires", "2099-01-01T00:00:00Z"]);
    scratch.refused(
        &verify(&release),
        &["has 1 valid config signature(s) but trust version 1 requires 2"],
    );
    let stdout = fleet.sign(&release, "bob.key");
    assert!(
        stdout.contains("signatures: 2 of the 2 required"),
        "{stdout}"
    );
    let stdout = scratch.ok(&verify(&release));
    assert!(stdout.contains("OK: the release reaches the config threshold"));
    assert!(stdout.contains("port = 8080"), "{stdout}");
    assert!(
        stdout.contains("expires 2099-01-01T00:00:00.000Z"),
        "{stdout}"
    );

    let stdout = scratch.ok(&show(&["--release", &release, "--format", "json"]));
    assert!(stdout.contains("\"port\": 8080"), "{stdout}");

    // A second draft on top of the first, then release 2 by default.
    scratch.write("app.json", r#"{"web": {"port": 9090, "hosts": ["a"]}}"#);
    scratch.ok(&draft("bob.key", "app.json"));
    let second = fleet.release(&[]);
    assert!(second.contains("-v2-"), "{second}");
}

#[test]
fn a_key_without_the_role_is_refused() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let carol = scratch.keygen("carol");
    scratch.refused(
        &draft("carol.key", "app.toml"),
        &[
            "lacks the `config` role in trust version 1",
            "fleetmesh fleet update --add",
            &format!("{}…", &carol[..16]),
        ],
    );
    scratch.refused(
        &[
            "fleet",
            "admit",
            "--trust",
            "trust.json",
            "--admit-key",
            "bob.key",
            "--node",
            &carol,
            "--name",
            "web-2",
            "--out",
            "web-2.cert.json",
        ],
        &["lacks the `admit` role in trust version 1"],
    );
}

#[test]
fn a_stale_or_skipping_release_version_is_refused() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let release = fleet.release(&[]);
    fleet.sign(&release, "bob.key");
    let args = |version: &'static str| release_by_alice(&["--version", version]);
    scratch.refused(
        &args("1"),
        &["release version 1 is stale: version 1 is already released in store"],
    );
    scratch.refused(&args("3"), &["release version 3 would skip version 2"]);
}

#[test]
fn tampered_files_are_refused() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let release = fleet.release(&[]);
    fleet.sign(&release, "bob.key");
    flip_after(&scratch.path(&release), &fleet.bob);
    scratch.refused(
        &verify(&release),
        &[
            "signature by key",
            "on release app version 1 does not verify",
        ],
    );

    // A change passed off as bob's: its automerge actor is still alice.
    let change = fs::read_dir(scratch.path("store"))
        .expect("store")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.to_string_lossy().contains("change-"))
        .expect("a change file");
    let text = fs::read_to_string(&change).expect("change");
    let forged = text.replace(
        &format!("\"author\": \"{}\"", fleet.alice),
        &format!("\"author\": \"{}\"", fleet.bob),
    );
    assert_ne!(forged, text);
    fs::write(&change, forged).expect("write");
    scratch.refused(
        &draft("bob.key", "app.toml"),
        &["is refused", "change actor is not the envelope's author"],
    );
    fs::write(&change, &text).expect("write");

    flip_after(&scratch.path("trust.json"), "\"signatures\": {\n        \"");
    scratch.refused(
        &draft("alice.key", "app.toml"),
        &["signature by key", "on trust version 1 does not verify"],
    );
}

#[test]
fn damaged_files_give_clear_errors() {
    let scratch = Scratch::new();
    scratch.keygen("root");
    scratch.write_key("broken.key", "{\"format\": \"fleetmesh-key\", \"vers");
    let init_with = |key: &'static str| init(&["--root-key", key]);
    scratch.refused(
        &init_with("broken.key"),
        &["is not a fleetmesh key", "invalid JSON"],
    );
    scratch.write_key(
        "other.key",
        "{\"format\": \"fleetmesh-trust-chain\", \"version\": 1}",
    );
    scratch.refused(
        &init_with("other.key"),
        &["is not a fleetmesh key (expected \"format\": \"fleetmesh-key\""],
    );
    let good = scratch.read("root.key");
    scratch.write_key(
        "future.key",
        &good.replace("\"version\": 1", "\"version\": 2"),
    );
    scratch.refused(
        &init_with("future.key"),
        &["has key format version 2, which this fleetmesh does not read"],
    );
    let seed_at = good.find("\"seed\": \"").expect("seed") + 9;
    let mut truncated = good.clone();
    truncated.replace_range(seed_at..seed_at + 3, "");
    scratch.write_key("truncated.key", &truncated);
    scratch.refused(
        &init_with("truncated.key"),
        &["the seed is not whole hex bytes"],
    );
    let mut swapped = good.clone();
    let digit = if &good[seed_at..=seed_at] == "0" {
        "1"
    } else {
        "0"
    };
    swapped.replace_range(seed_at..=seed_at, digit);
    scratch.write_key("swapped.key", &swapped);
    scratch.refused(
        &init_with("swapped.key"),
        &["the seed does not match the public key"],
    );
    scratch.refused(&init_with("missing.key"), &["cannot read key file"]);
}

#[test]
fn key_files_are_private_and_never_overwritten_by_default() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let first = scratch.keygen("op");
    let mode = fs::metadata(scratch.path("op.key"))
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    scratch.refused(
        &["keygen", "--out", "op.key"],
        &["op.key already exists", "--force"],
    );
    assert!(scratch.read("op.key").contains(&first));
    let stdout = scratch.ok(&["keygen", "--out", "op.key", "--force"]);
    assert!(!stdout.contains(&first));
    assert!(!scratch.read("op.key").contains(&first));

    // A key others may read is refused by every command that signs, with
    // the chmod to run, as the agent refuses such a node key.
    let public = stdout
        .lines()
        .find_map(|line| line.strip_prefix("public key "))
        .expect("keygen prints the public key");
    let roles = format!("{public}=config");
    let init_op = init(&["--root-key", "op.key", "--key", &roles]);
    for loose in [0o640, 0o604] {
        fs::set_permissions(scratch.path("op.key"), fs::Permissions::from_mode(loose))
            .expect("chmod");
        scratch.refused(
            &init_op,
            &[
                &format!("key file op.key has mode {loose:o}, readable by others than its owner"),
                "run `chmod 600 op.key`",
            ],
        );
    }
    assert!(!scratch.path("trust.json").exists());
    fs::set_permissions(scratch.path("op.key"), fs::Permissions::from_mode(0o600)).expect("chmod");
    scratch.ok(&init_op);
}

#[test]
fn a_rotated_out_root_can_no_longer_sign() {
    let scratch = Scratch::new();
    let old = scratch.keygen("old-root");
    let new = scratch.keygen("new-root");
    let config = scratch.keygen("config");
    scratch.ok(&init(&[
        "--root-key",
        "old-root.key",
        "--key",
        &format!("{config}=config"),
    ]));
    // Only the old root: the new root must sign the version naming it.
    scratch.refused(
        &update(&[
            "--root-key",
            "old-root.key",
            "--add",
            &format!("{new}=root"),
            "--remove",
            &old,
        ]),
        &["trust version 2 needs 1 signatures by the new root keys"],
    );
    let stdout = scratch.ok(&update(&[
        "--root-key",
        "old-root.key",
        "--root-key",
        "new-root.key",
        "--add",
        &format!("{new}=root"),
        "--remove",
        &old,
    ]));
    assert!(stdout.contains("version 2"), "{stdout}");
    scratch.refused(
        &update(&["--root-key", "old-root.key", "--config-threshold", "1"]),
        &[&format!(
            "key {}… is not a root key of trust version 2",
            &old[..16]
        )],
    );
    let stdout = scratch.ok(&update(&[
        "--root-key",
        "new-root.key",
        "--config-threshold",
        "1",
    ]));
    assert!(stdout.contains("version 3"), "{stdout}");
}

#[test]
fn a_revoked_config_key_cannot_draft() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    scratch.ok(&update(&[
        "--root-key",
        "root.key",
        "--revoke",
        &fleet.alice,
        "--add",
        &format!("{}=config", scratch.keygen("carol")),
    ]));
    scratch.write("app.toml", "[web]\nport = 1\n");
    scratch.refused(
        &draft("alice.key", "app.toml"),
        &["is revoked in trust version 2"],
    );
    // Alice's earlier change no longer counts: bob's draft is built
    // without it, and the store says so.
    let output = scratch.run(&draft("bob.key", "app.toml"));
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warning: leaving out change"), "{stderr}");
    let stdout = scratch.ok(&show(&[]));
    assert!(
        stdout.contains("port = 1") && !stdout.contains("hosts"),
        "{stdout}"
    );
}

#[test]
fn roots_sign_a_pending_update_one_at_a_time() {
    let scratch = Scratch::new();
    scratch.keygen("root-1");
    scratch.keygen("root-2");
    let config = scratch.keygen("config");
    scratch.ok(&init(&[
        "--root-key",
        "root-1.key",
        "--root-key",
        "root-2.key",
        "--key",
        &format!("{config}=config"),
    ]));
    let threshold_update = |pending: bool| {
        let mut args = vec![
            "fleet",
            "update",
            "--trust",
            "trust.json",
            "--root-key",
            "root-1.key",
            "--config-threshold",
            "1",
            "--out",
            "next.json",
        ];
        if pending {
            args.push("--pending");
        }
        args
    };
    scratch.refused(
        &threshold_update(false),
        &[
            "trust version 2 needs 2 signatures by the current root keys",
            "has 1",
            "--pending",
        ],
    );
    let stdout = scratch.ok(&threshold_update(true));
    assert!(stdout.contains("wrote pending trust version 2"), "{stdout}");
    assert!(!scratch.read("trust.json").contains("\"version\": 2"));
    let sign = [
        "fleet",
        "sign",
        "--trust",
        "trust.json",
        "--pending",
        "next.json",
        "--root-key",
        "root-2.key",
        "--out",
        "trust.json",
    ];
    let stdout = scratch.ok(&sign);
    assert!(
        stdout.contains("wrote trust chain trust.json (version 2)"),
        "{stdout}"
    );
    // The chain moved on: the pending update no longer follows it.
    scratch.refused(
        &sign,
        &["pending trust version 2 does not follow the chain"],
    );
}

#[test]
fn damaged_chains_stores_and_past_expiries_are_refused() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let release = fleet.release(&[]);
    let past = release_by_alice(&["--expires", "2020-01-01T00:00:00Z"]);
    scratch.refused(&past, &["--expires is in the past"]);

    let text = scratch.read(&release);
    let head_at = text.find("\"heads\": [\n    \"").expect("heads") + 16;
    let mut truncated = text.clone();
    truncated.replace_range(head_at..head_at + 1, "");
    scratch.write(&release, &truncated);
    scratch.refused(
        &verify(&release),
        &["a head is not whole hex bytes (63 digits, an odd number)"],
    );
    scratch.refused(
        &show(&[]),
        &[
            "in store store holds bad data: a head is not whole hex bytes",
            "remove it or restore an intact copy",
        ],
    );
    scratch.write(&release, &text);

    let chain = scratch.read("trust.json");
    let signatures = chain.find("\"signatures\": {").expect("signatures");
    let end = signatures + chain[signatures..].find('}').expect("closing brace");
    let mut unsigned = chain.clone();
    unsigned.replace_range(signatures..=end, "\"signatures\": {}");
    scratch.write("trust.json", &unsigned);
    scratch.refused(
        &verify(&release),
        &["trust version 1 lacks the root signatures it needs (1 by its own root keys)"],
    );
    scratch.write("trust.json", &chain[..chain.len() / 2]);
    scratch.refused(
        &verify(&release),
        &[
            "file trust.json is not a fleetmesh trust chain",
            "invalid JSON",
        ],
    );
}

#[test]
fn a_seed_range_runs_every_seed_and_a_bad_range_says_how_to_write_one() {
    let scratch = Scratch::new();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/lease-takeover.toml");
    let out = scratch.ok(&["sim", "run", scenario, "--seeds", "1..=2", "--jobs", "2"]);
    assert!(out.contains("2 seeds in"), "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    let output = scratch.run(&["sim", "run", scenario, "--seeds", "9..3"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("names no seed"), "{stderr}");
}

#[test]
fn a_scenario_too_large_for_the_machine_is_refused_before_it_runs() {
    let scratch = Scratch::new();
    // 100,000 agents for a week: once accepted, it died of "memory
    // allocation failed" after minutes of silence. Its estimate (several
    // TiB) exceeds any machine.
    scratch.write(
        "huge.toml",
        "name = \"huge\"\nduration_s = 604800\n[fleet]\nagents = 100000\n",
    );
    for args in [
        &["sim", "run", "huge.toml"][..],
        &["sim", "run", "huge.toml", "--seeds", "1..=2"],
        &["sim", "swarm", "huge.toml", "--seeds", "1..=2"],
    ] {
        let started = std::time::Instant::now();
        let output = scratch.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for part in [
            "estimated peak memory",
            "available",
            "at most about",
            "--force",
        ] {
            assert!(
                stderr.contains(part),
                "{args:?}: {part:?} missing: {stderr}"
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "refused at once"
        );
    }
}

#[test]
fn a_swarm_reports_invariants_probes_and_replays_a_seed_with_its_mix() {
    let scratch = Scratch::new();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/lease-takeover.toml");
    let out = scratch.ok(&["sim", "swarm", scenario, "--seeds", "1..=4", "--jobs", "2"]);
    assert!(out.contains("4 passed, 0 failed"), "{out}");
    assert!(out.contains("(none broken)"), "{out}");
    // Every mix keeps at least one crash of the holder, and another
    // candidate takes over: the probes must have seen it.
    let probe = |name: &str| {
        out.lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
    };
    assert!(
        probe("lease-taken-over").is_some_and(|seeds| seeds >= 1),
        "{out}"
    );
    assert!(out.contains("never hit:"), "{out}");
    assert!(out.contains("short-circuit"), "no remediation here: {out}");

    // The replay plays the same mix, and prints it.
    let replay = scratch.ok(&["sim", "run", scenario, "--seed", "3", "--swarm"]);
    assert!(replay.contains("swarm mix: "), "{replay}");
    assert!(replay.contains("PASS"), "{replay}");
    let again = scratch.ok(&["sim", "run", scenario, "--seed", "3", "--swarm"]);
    let hash = |text: &str| {
        text.lines()
            .find(|line| line.trim_start().starts_with("trace hash"))
            .map(str::to_owned)
    };
    assert_eq!(hash(&replay), hash(&again));
    let plain = scratch.ok(&["sim", "run", scenario, "--seed", "3"]);
    assert_ne!(hash(&replay), hash(&plain), "the mix changed nothing");

    let checked = scratch.ok(&["sim", "run", scenario, "--seed", "3", "--check-determinism"]);
    assert!(
        checked.contains("deterministic: two runs agree on all"),
        "{checked}"
    );
}

#[test]
fn a_failing_swarm_seed_shrinks_to_a_file_that_replays_it() {
    let scratch = Scratch::new();
    // chaos-mix-50 with a detection bound no fleet meets (detection takes
    // about 6 s): the swarm's seed 2 breaks `crash-detected`.
    let original = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/chaos-mix-50.toml"
    ))
    .expect("scenario");
    let tight = original.replacen("[expect]", "[expect]\ndetect_within_s = 5", 1);
    fs::write(scratch.path("tight.toml"), tight).expect("write");
    let out = scratch.ok(&[
        "sim",
        "shrink",
        "tight.toml",
        "--seed",
        "2",
        "--swarm",
        "--out",
        "small.toml",
    ]);
    assert!(out.contains("crash-detected"), "{out}");
    assert!(
        out.contains("replay: fleetmesh sim run small.toml"),
        "{out}"
    );
    let small = fs::read_to_string(scratch.path("small.toml")).expect("the shrunk file");
    let faults = small.matches("[[faults]]").count();
    assert!((1..=3).contains(&faults), "{faults} faults left:\n{small}");
    assert!(small.starts_with("# Shrunk by"), "{small}");
    // It replays on its own: no --seed, no --swarm.
    let replay = scratch.run(&["sim", "run", "small.toml"]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("crash-detected"), "{stdout}");

    // A seed that holds every invariant is refused with the reason.
    let output = scratch.run(&[
        "sim",
        "shrink",
        concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/lease-takeover.toml"),
        "--seed",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("breaks no invariant"), "{stderr}");
}

/// The inputs of `shared/repro/automerge-panics.md` as change files in an
/// operator's store: `config show` used to panic on a store holding the
/// second. Now the unparsable one is named and refused, and the
/// unappliable one, signed by bob, quarantines bob and leaves the rest
/// readable.
#[test]
fn a_store_holding_changes_that_panic_automerge_is_read_without_a_panic() {
    use fleetmesh_crdt::SignedChange;
    use fleetmesh_crdt::config::hostile;
    use fleetmesh_runtime::files;
    use fleetmesh_runtime::formats::{self, CHANGE_FORMAT, ChangeJson};
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let show = show(&[]);
    let bob = formats::load_key(&scratch.path("bob.key")).expect("bob's key");
    let write = |name: &str, change: &SignedChange| {
        let json = files::to_json(CHANGE_FORMAT, &ChangeJson::new(change)).expect("json");
        fs::write(scratch.path(&format!("store/{name}.json")), json).expect("write");
    };
    let bomb = SignedChange::sign("boom", 1, &bob, hostile::apply_panic(&bob.public()))
        .expect("it parses, so bob can sign it");
    write("change-bomb", &bomb);
    let output = scratch.run(&show);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("quarantined"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("8080"));

    let unparsable = hostile::unparsable_change("app", 1, bob.public());
    write("change-unparsable", &unparsable);
    scratch.refused(&show, &["change-unparsable.json", "refused before parsing"]);
}

#[test]
fn a_staged_release_carries_its_plan_and_a_revert_releases_old_content_again() {
    let fleet = Fleet::new();
    let scratch = &fleet.scratch;
    let first = fleet.release(&[]);
    fleet.sign(&first, "bob.key");
    scratch.write("app.toml", "[web]\nport = 9090\nhosts = [\"a\"]\n");
    scratch.ok(&draft("alice.key", "app.toml"));
    scratch.write(
        "plan.toml",
        "[rollout]\nrevert_to = 1\ngate = { checks = [\"web\"], max_unhealthy = 0.1 }\n\
         [[rollout.wave]]\nselect = \"role=canary\"\nfraction = 0.05\nbake_s = 30\n\
         [[rollout.wave]]\nfraction = 1.0\nbake_s = 0\n",
    );
    let staged = fleet.release(&["--rollout", "plan.toml"]);
    let text = fs::read_to_string(scratch.path(&staged)).expect("release file");
    assert!(text.contains("\"revert_to\": 1"), "{text}");
    assert!(text.contains("role=canary"), "{text}");
    fleet.sign(&staged, "bob.key");
    let stdout = scratch.ok(&verify(&staged));
    assert!(stdout.contains("OK"), "{stdout}");
    // A plan agents would refuse is refused here, naming the field.
    scratch.write(
        "bad.toml",
        "[rollout]\nrevert_to = 1\n[[rollout.wave]]\nfraction = 1.5\n",
    );
    scratch.refused(
        &release_by_alice(&["--rollout", "bad.toml"]),
        &[
            "bad.toml: agents would refuse this plan",
            "wave 0: fraction",
        ],
    );
    scratch.write(
        "forward.toml",
        "[rollout]\nrevert_to = 9\n[[rollout.wave]]\nfraction = 1.0\n",
    );
    scratch.refused(
        &release_by_alice(&["--rollout", "forward.toml"]),
        &["revert_to must name an earlier version"],
    );
    // Going back: version 3 carries version 1's heads.
    let reverted = release_file(&scratch.ok(&revert_by_alice("1")));
    let heads = |path: &str| {
        let text = fs::read_to_string(scratch.path(path)).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        (json["release"].clone(), json["heads"].clone())
    };
    let (version, reverted_heads) = heads(&reverted);
    assert_eq!(version, 3);
    assert_eq!(reverted_heads, heads(&first).1, "the content of version 1");
    scratch.refused(
        &revert_by_alice("7"),
        &["holds no complete release 7 of document app"],
    );
}
