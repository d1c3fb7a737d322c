//! The seed corpora: real inputs of every target, made deterministically
//! from the seed run ([`crate::fixture`]), operator flows on its fleet,
//! the two inputs that crashed agents in issue 15, the agent configs of
//! `docs/operations.md` and the scenario files.
//!
//! `fuzz-corpus` writes them into `fuzz/corpus/NAME/` for libFuzzer; the
//! smoke run mutates them in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fleetmesh_node::crdt::{
    AppliedRelease, ConfigEntry, Digest, Keypair, Release, SignedChange, Value,
};
use fleetmesh_node::snapshot;
use fleetmesh_node::wire::{self, Message, StateMessage};
use fleetmesh_node::{Entry, Kind};
use fleetmesh_runtime::files;
use fleetmesh_runtime::formats::{
    APPROVAL_FORMAT, ApprovalJson, CHANGE_FORMAT, ChangeJson, RELEASE_FORMAT, ReleaseJson,
    chain_json,
};
use fleetmesh_runtime::state::frame_replicas;
use fleetmesh_simulator::operator::Operators;
use fleetmesh_simulator::rng::Seeds;
use fleetmesh_simulator::scenario::{Content, Nodes, OperatorKey, Publication, TrustChange};

use crate::fixture::{Fixture, ITEM_DOMAIN, fixture};
use crate::targets::config_change::{FRESH_DOC, base_store};
use crate::targets::entries_verify::ENTRIES_PREFIX;
use crate::targets::release_apply::ReleaseInput;

/// Most messages kept per message kind, and entries per entry kind: the
/// run repeats itself, and a corpus of near-twins only slows libFuzzer.
pub const PER_KIND_MAX: usize = 12;

/// Issue 15's first crashing change (`shared/repro/automerge-panics.md`):
/// automerge 0.12 panicked parsing it, before any signature check.
pub const REPRO_PARSE_PANIC: &str = "856f4a83489cffab01840100201dd72d68fb519a99fe6a66b8ada89cdfb79f72879afff0bc68b446d8f049d0f701010000000a0108020811061309150a340342075609570a70026a66b8ada89cdfb79f72879afff0bc68b446d8f049d0f7010100000006150f340142025603570370027e04706f7274087265706c696361730202017e2414903f030200903f030200";

/// Issue 15's second crashing change: it parses, and automerge 0.12
/// panicked applying it once a `config` key had signed it.
pub const REPRO_APPLY_PANIC: &str = "856f4a830b9a10e0018401002000de1b002cfe7e189f3c3adee4b2d42315926c4b42040187a06c2dcf1aeb0aad01010000000a0108020811061309150a340342075609570a70020001040000017f000001044100017f0600020300000200017e0002020100027f016100047e016201630104027f0204017e00017b00141685010202000178000000000000f83f0700";

/// The agent config with every field set, at its documented default.
const FULL_AGENT_CONFIG: &str = r#"state_dir = "/var/lib/fleetmesh"
listen = ["/ip4/0.0.0.0/udp/7946/quic-v1", "[::1]:7946"]
advertise = ["10.0.0.4:7946"]
bootstrap = ["10.0.0.5:7946", "/ip4/10.0.0.6/udp/7946/quic-v1"]
mdns = true
tags = { zone = "a", role = "web" }
preset = "lan"
admin = "127.0.0.1:7947"
log_format = "human"
log_level = "info,fleetmesh_runtime=debug"

[limits]
connections_max = 512
connections_per_peer = 2
pending_incoming_max = 64
pending_outgoing_max = 64
queue_bytes_per_peer = 4194304
queue_messages_per_peer = 1024
queue_bytes_max = 67108864
streams_per_connection = 16
tasks_running_max = 64
output_bytes_max = 4096
"#;

/// An agent config as `fleetmesh demo` writes one: loopback, no mDNS,
/// JSON logs.
const DEMO_AGENT_CONFIG: &str = r#"state_dir = "."
listen = ["127.0.0.1:17946"]
bootstrap = ["127.0.0.1:17946", "127.0.0.1:17947"]
mdns = false
preset = "wan"
admin = "off"
log_format = "json"
log_level = "info"
"#;

/// The seed inputs of target `name`, in a fixed order; empty for an
/// unknown target.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let fixture = fixture();
    let seeds = match name {
        "wire_decode" => wire_seeds(fixture),
        "snapshot_decode" => snapshot_seeds(fixture),
        "entries_verify" => entries_seeds(fixture),
        "config_change" => change_seeds(fixture),
        "release_apply" => release_seeds(fixture),
        "agent_config" => agent_config_seeds(),
        "scenario" => scenario_seeds(),
        "admin_body" => admin_body_seeds(fixture),
        "rollout_plan" => rollout_plan_seeds(),
        "drafts_journal" => drafts_journal_seeds(),
        _ => Vec::new(),
    };
    distinct(seeds)
}

/// The seeds without repeats, in their first order.
fn distinct(seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut seen = BTreeSet::new();
    seeds
        .into_iter()
        .filter(|seed| seen.insert(name_of(seed)))
        .collect()
}

/// The file name of a corpus item: its digest, as libFuzzer names its own.
pub fn name_of(item: &[u8]) -> String {
    Digest::of_bytes(ITEM_DOMAIN, item).to_hex()
}

/// Writes every target's seeds into `dir/NAME/`; returns how many were
/// written per target.
pub fn write(dir: &Path, names: &[&str]) -> std::io::Result<BTreeMap<String, usize>> {
    let mut written = BTreeMap::new();
    for &name in names {
        let target_dir = dir.join(name);
        std::fs::create_dir_all(&target_dir)?;
        let seeds = seeds(name);
        for seed in &seeds {
            std::fs::write(target_dir.join(name_of(seed)), seed)?;
        }
        written.insert(name.to_owned(), seeds.len());
    }
    Ok(written)
}

/// Up to [`PER_KIND_MAX`] of the run's messages of each kind, the hostile
/// agent's undecodable ones included.
fn wire_seeds(fixture: &Fixture) -> Vec<Vec<u8>> {
    let mut kept: BTreeMap<&'static str, usize> = BTreeMap::new();
    fixture
        .messages
        .iter()
        .filter(|message| {
            let kind = wire::decode(message).map_or("undecodable", |message| kind_of(&message));
            let count = kept.entry(kind).or_default();
            *count += 1;
            *count <= PER_KIND_MAX
        })
        .cloned()
        .collect()
}

/// A message's kind, state messages by their own kind.
pub fn kind_of(message: &Message) -> &'static str {
    match message {
        Message::Ping { .. } => "ping",
        Message::Ack { .. } => "ack",
        Message::PingReq { .. } => "ping-req",
        Message::Nack { .. } => "nack",
        Message::Gossip { .. } => "gossip",
        Message::SyncRoot { .. } => "sync-root",
        Message::SyncBuckets { .. } => "sync-buckets",
        Message::SyncRecords { .. } => "sync-records",
        Message::Hello { .. } => "hello",
        Message::Lease(_) => "lease",
        Message::State(state) => match state {
            StateMessage::Roots { .. } => "state-roots",
            StateMessage::Buckets { .. } => "state-buckets",
            StateMessage::Versions { .. } => "state-versions",
            StateMessage::Want { .. } => "state-want",
            StateMessage::Entries { .. } => "state-entries",
            StateMessage::Push { .. } => "state-push",
        },
    }
}

/// The fleet's saved state as a snapshot, whole and one kind at a time,
/// and the whole one framed as `replicas.bin`.
fn snapshot_seeds(fixture: &Fixture) -> Vec<Vec<u8>> {
    let whole = snapshot::encode(&fixture.state).expect("the fixture's state encodes");
    let mut seeds = vec![frame_replicas(&whole), whole];
    for kind in Kind::SAVED {
        let entries: Vec<Entry> = fixture
            .state
            .iter()
            .filter(|entry| entry.kind() == kind)
            .cloned()
            .collect();
        seeds.push(snapshot::encode(&entries).expect("a part of the state encodes"));
    }
    seeds
}

/// Entry lists: up to [`PER_KIND_MAX`] single entries of each kind the
/// run carried (forgeries included), the fleet's whole state, and the
/// entries of operator flows the run did not have (equivocation
/// evidence, a root rotation).
fn entries_seeds(fixture: &Fixture) -> Vec<Vec<u8>> {
    let mut kept: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut lists: Vec<Vec<Entry>> = fixture
        .entries
        .iter()
        .filter(|entry| {
            let count = kept.entry(entry.kind()).or_default();
            *count += 1;
            *count <= PER_KIND_MAX
        })
        .map(|entry| vec![entry.clone()])
        .collect();
    lists.push(fixture.state.clone());
    let flows = operator_flows(fixture);
    lists.extend(flows.iter().map(|entry| vec![entry.clone()]));
    lists.push(flows);
    lists.into_iter().map(entries_body).collect()
}

/// The bytes [`crate::entries_verify`] takes for `entries`.
pub fn entries_body(entries: Vec<Entry>) -> Vec<u8> {
    let message = Message::State(StateMessage::Entries { entries });
    let bytes = wire::encode(&message).expect("seed entries fit a message");
    bytes
        .strip_prefix(&ENTRIES_PREFIX[..])
        .expect("an entries message starts with the prefix")
        .to_vec()
}

/// Entries of operator flows on the fixture's fleet that the seed run
/// did not have: `operator-2` forking its history (the two changes, then
/// the evidence an agent makes of them), the evidence of a change
/// automerge cannot apply, and a root rotation.
fn operator_flows(fixture: &Fixture) -> Vec<Entry> {
    let mut operators = Operators::new(&fixture.fleet, &Seeds::new(fixture.seed));
    let now_millis = fixture.now_millis();
    let publication = Publication {
        doc: "team-c".into(),
        author: OperatorKey::Operator2,
        content: Content::Inline(map_of(&[("owner", "team-c")])),
        release: true,
        expires_after: None,
        via: Nodes::default(),
        rollout: None,
        breaks: Vec::new(),
    };
    let mut entries = operators
        .publish(&publication, now_millis)
        .expect("operator-2 writes team-c");
    if let Some((a, b)) = operators.equivocate(OperatorKey::Operator2, "team-c", now_millis) {
        entries.push(a.clone());
        entries.push(b.clone());
        let mut agent = fixture.agent_with_state();
        let _ = agent.publish(fixture.now, a);
        let _ = agent.publish(fixture.now, b);
        let evidence = agent.replicas().config().evidence_keys().next().copied();
        entries.extend(evidence.and_then(|key| agent.replicas().entry(Kind::Config, &key)));
    }
    entries.extend(malformed_evidence(fixture));
    entries.push(operators.change_trust(TrustChange::RotateRoot, now_millis));
    entries
}

/// The evidence an agent makes of issue 15's second crashing change,
/// signed by the `operator` key: a change automerge cannot apply.
fn malformed_evidence(fixture: &Fixture) -> Option<Entry> {
    let operator = &fixture.fleet.operator;
    let bytes = with_actor(&unhex(REPRO_APPLY_PANIC), &operator.public().0);
    let trust_version = fixture.trust.head().doc.version;
    let change = SignedChange::sign("boom", trust_version, operator, bytes).ok()?;
    let mut agent = fixture.agent_with_state();
    let entry = Entry::Config(Box::new(ConfigEntry::Change(change)));
    let _ = agent.publish(fixture.now, entry);
    let key = agent.replicas().config().evidence_keys().next().copied()?;
    agent.replicas().entry(Kind::Config, &key)
}

/// Change chunks: every change of the run; new changes on the fleet's
/// documents by each config key (next in their history), a first change
/// of a fresh document, two changes end to end; and issue 15's crashing
/// changes with their actor made the `operator` key, so that they are
/// signed and reach automerge's apply.
fn change_seeds(fixture: &Fixture) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = fixture
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Config(change) => match change.as_ref() {
                ConfigEntry::Change(change) => Some(change.change.clone()),
                ConfigEntry::Evidence(_) | ConfigEntry::Malformed(_) => None,
            },
            _ => None,
        })
        .collect();
    let authored = authored_changes(fixture);
    seeds.extend(authored.iter().map(|change| change.change.clone()));
    seeds.extend(
        authored
            .windows(2)
            .map(|pair| [pair[0].change.clone(), pair[1].change.clone()].concat()),
    );
    let operator = fixture.fleet.operator.public().0;
    for repro in [REPRO_PARSE_PANIC, REPRO_APPLY_PANIC] {
        let bytes = unhex(repro);
        seeds.push(with_actor(&bytes, &operator));
        seeds.push(bytes);
    }
    seeds
}

/// Changes each config key makes on top of the config target's base
/// documents (new keys, a float, a list, a nested map), and the first
/// change of [`FRESH_DOC`].
fn authored_changes(fixture: &Fixture) -> Vec<SignedChange> {
    let mut store = base_store();
    let trust_version = fixture.trust.head().doc.version;
    let documents: Vec<String> = store.documents().map(str::to_owned).collect();
    let mut edits: Vec<(String, &Keypair, Value)> = Vec::new();
    for (index, doc) in documents.iter().enumerate() {
        for key in fixture.config_keys() {
            let mut content = store
                .value_at(doc, &store.heads(doc))
                .unwrap_or(Value::Map(BTreeMap::new()));
            if let Value::Map(map) = &mut content {
                map.insert("fuzz-seed".into(), Value::Int(index as i64));
                map.insert("by".into(), Value::Str(key.public().to_hex()));
                map.insert("ratio".into(), Value::Float(0.5));
                map.insert(
                    "list".into(),
                    Value::List(vec![Value::Null, Value::Bool(true)]),
                );
                map.insert("nested".into(), map_of(&[("depth", "1")]));
            }
            edits.push((doc.clone(), key, content));
        }
    }
    edits.push((
        FRESH_DOC.into(),
        &fixture.fleet.operator,
        map_of(&[("service", "db"), ("pager", "off")]),
    ));
    let mut changes = Vec::new();
    for (doc, key, content) in edits {
        let made = fixture.with_ctx(&fixture.trust, |ctx| {
            store.author(&doc, key, trust_version, &content, ctx)
        });
        if let Ok(Some(change)) = made {
            changes.push(change);
        }
    }
    changes
}

/// `change` with its author's actor id replaced wherever it occurs. The
/// header is automerge's: magic and checksum (8 bytes), chunk type, then
/// LEB128 numbers: the body's length, the dependencies (32 bytes each),
/// the actor id's length and its bytes.
fn with_actor(change: &[u8], actor: &[u8; 32]) -> Vec<u8> {
    let mut at = 9;
    let header = leb128(change, &mut at).and_then(|_| {
        let dependencies = usize::try_from(leb128(change, &mut at)?).ok()?;
        at = at.checked_add(dependencies.checked_mul(32)?)?;
        let length = leb128(change, &mut at)?;
        (length == 32).then_some(())?;
        change.get(at..at + 32)
    });
    let Some(old) = header.map(<[u8]>::to_vec) else {
        return change.to_vec();
    };
    let mut bytes = change.to_vec();
    let mut start = 0;
    while let Some(found) = bytes[start..]
        .windows(32)
        .position(|window| window == old.as_slice())
    {
        let from = start + found;
        bytes[from..from + 32].copy_from_slice(actor);
        start = from + 32;
    }
    bytes
}

/// The LEB128 number at `*at`, moving `*at` past it.
fn leb128(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Release inputs: each of the run's releases signed by one config key;
/// every release of a document signed by both, walked from its first;
/// releases under the threshold-2 trust version signed by one key and by
/// two; an expired release; a rollback; voided releases with rivals.
fn release_seeds(fixture: &Fixture) -> Vec<Vec<u8>> {
    let releases: Vec<Release> = fixture
        .state
        .iter()
        .filter_map(|entry| match entry {
            Entry::Release(signed) => Some(signed.release.clone()),
            _ => None,
        })
        .collect();
    let now_millis = fixture.now_millis();
    let both = 0b11;
    let input = |current: Option<AppliedRelease>, void: bool, releases: Vec<(u8, Release)>| {
        ReleaseInput {
            now_millis,
            current,
            void,
            releases,
        }
        .encode()
    };
    let mut seeds: Vec<Vec<u8>> = releases
        .iter()
        .map(|release| input(None, false, vec![(0b01, release.clone())]))
        .collect();
    let Some(first) = releases.first() else {
        return seeds;
    };
    let of_first_doc: Vec<(u8, Release)> = releases
        .iter()
        .filter(|release| release.doc == first.doc)
        .map(|release| (both, release.clone()))
        .collect();
    let applied = AppliedRelease {
        reverted_to: None,
        doc: first.doc.clone(),
        version: first.version,
        digest: first.digest(),
        expires_millis: first.expires_millis,
        void: false,
    };
    seeds.push(input(Some(applied.clone()), false, of_first_doc.clone()));
    seeds.push(input(Some(applied.voided()), true, of_first_doc));
    let threshold_two = fixture.trust.head().doc.version + 1;
    let raised = Release {
        version: first.version + 1,
        trust_version: threshold_two,
        ..first.clone()
    };
    let rival = Release {
        heads: Vec::new(),
        ..raised.clone()
    };
    seeds.push(input(
        Some(applied.clone()),
        false,
        vec![(0b01, raised.clone()), (both, raised.clone())],
    ));
    seeds.push(input(
        Some(applied.clone()),
        true,
        vec![(both, raised), (both, rival)],
    ));
    let expired = Release {
        version: first.version + 1,
        expires_millis: Some(now_millis / 2),
        ..first.clone()
    };
    seeds.push(input(Some(applied.clone()), false, vec![(both, expired)]));
    let rollback = Release {
        version: first.version,
        heads: Vec::new(),
        ..first.clone()
    };
    seeds.push(input(Some(applied), false, vec![(0b1111, rollback)]));
    seeds
}

/// Draft journals of the key `drafts_journal` reads: empty, one document,
/// two (one stored at a path with spaces and non-ASCII letters).
fn drafts_journal_seeds() -> Vec<Vec<u8>> {
    use fleetmesh_runtime::formats::{DRAFTS_FORMAT, Drafted, DraftsJson};
    let drafted = |byte: u8, store: &str| Drafted {
        change: fleetmesh_node::crdt::Digest([byte; 32]).to_hex(),
        store: store.to_owned(),
    };
    let author = crate::targets::texts::drafts_author().to_hex();
    [
        BTreeMap::new(),
        BTreeMap::from([("app".to_owned(), drafted(1, "/srv/fleet/store"))]),
        BTreeMap::from([
            ("app".to_owned(), drafted(2, "/srv/fleet/store")),
            ("remediation".to_owned(), drafted(3, "/home/opé/my store")),
        ]),
    ]
    .into_iter()
    .map(|docs| {
        let journal = DraftsJson {
            author: author.clone(),
            docs,
        };
        files::to_json(DRAFTS_FORMAT, &journal).expect("a journal encodes")
    })
    .collect()
}

/// The plan of `docs/rollouts.md` and the rollouts of two scenarios, each
/// for a release of version 7 (the first byte).
fn rollout_plan_seeds() -> Vec<Vec<u8>> {
    let guide = include_str!("../../docs/rollouts.md");
    let mut plans = toml_blocks(guide);
    for scenario in [
        include_str!("../../scenarios/bad-release.toml"),
        include_str!("../../scenarios/rollout-partition.toml"),
    ] {
        if let Some(start) = scenario.find("[faults.rollout]") {
            let rest = &scenario[start..];
            let end = rest
                .find("\n[[faults]]")
                .or_else(|| rest.find("\n[expect]"))
                .unwrap_or(rest.len());
            plans.push(rest[..end].replace("faults.rollout", "rollout"));
        }
    }
    plans
        .into_iter()
        .map(|plan| [&[7u8][..], plan.as_bytes()].concat())
        .collect()
}

/// The TOML examples of `docs/operations.md`, a config setting every
/// field and a demo agent's.
fn agent_config_seeds() -> Vec<Vec<u8>> {
    let guide = include_str!("../../docs/operations.md");
    let mut seeds: Vec<Vec<u8>> = toml_blocks(guide)
        .into_iter()
        .map(String::into_bytes)
        .collect();
    seeds.push(FULL_AGENT_CONFIG.as_bytes().to_vec());
    seeds.push(DEMO_AGENT_CONFIG.as_bytes().to_vec());
    seeds
}

/// The bodies of the ```toml blocks of a Markdown text.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == "```toml" => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(current.take());
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every scenario file of the repository and the seed fleet.
fn scenario_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| Some(entry.ok()?.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    let mut seeds: Vec<Vec<u8>> = paths
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect();
    seeds.push(crate::fixture::SEED_FLEET.as_bytes().to_vec());
    seeds
}

/// Files an operator publishes: the trust chain, changes, releases and
/// approvals of the run, and issue 15's first crashing change unsigned.
fn admin_body_seeds(fixture: &Fixture) -> Vec<Vec<u8>> {
    let mut seeds = vec![chain_json(&fixture.trust).expect("the chain encodes")];
    let mut kinds = BTreeSet::new();
    for entry in &fixture.state {
        let file = match entry {
            Entry::Config(change) => match change.as_ref() {
                ConfigEntry::Change(change) => {
                    files::to_json(CHANGE_FORMAT, &ChangeJson::new(change))
                }
                ConfigEntry::Evidence(_) | ConfigEntry::Malformed(_) => continue,
            },
            Entry::Release(release) => files::to_json(RELEASE_FORMAT, &ReleaseJson::new(release)),
            Entry::Ledger(record) => match ApprovalJson::new(record) {
                Some(approval) => files::to_json(APPROVAL_FORMAT, &approval),
                None => continue,
            },
            _ => continue,
        };
        // One file of each kind per document is variety enough.
        let key = (entry.kind(), first_doc(entry));
        if kinds.insert(key) {
            seeds.extend(file.ok());
        }
    }
    let unsigned = SignedChange {
        doc: "app".into(),
        trust_version: 1,
        author: fixture.fleet.operator.public(),
        change: unhex(REPRO_PARSE_PANIC),
        signature: fleetmesh_node::crdt::Signature::from_bytes([0; 64]),
    };
    seeds.extend(files::to_json(CHANGE_FORMAT, &ChangeJson::new(&unsigned)).ok());
    seeds
}

/// The document a change or release file is about.
fn first_doc(entry: &Entry) -> String {
    match entry {
        Entry::Config(change) => match change.as_ref() {
            ConfigEntry::Change(change) => change.doc.clone(),
            ConfigEntry::Evidence(_) | ConfigEntry::Malformed(_) => String::new(),
        },
        Entry::Release(release) => release.release.doc.clone(),
        _ => String::new(),
    }
}

fn map_of(pairs: &[(&str, &str)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::Str((*value).to_owned())))
            .collect(),
    )
}

/// Bytes of a hex constant of this module.
fn unhex(text: &str) -> Vec<u8> {
    files::unhex(text, "a repro constant").expect("the repro constants are hex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drafts_journal_seeds_are_journals_the_cli_accepts() {
        let author = crate::targets::texts::drafts_author();
        let seeds = drafts_journal_seeds();
        assert_eq!(seeds.len(), 3);
        for seed in seeds {
            let text = std::str::from_utf8(&seed).expect("text");
            let journal = fleetmesh_runtime::formats::DraftsJson::parse(text, &author)
                .unwrap_or_else(|error| panic!("{error:#}\n{text}"));
            assert_eq!(journal.author, author.to_hex());
        }
        let other = fleetmesh_node::crdt::Keypair::from_seed([8; 32]).public();
        let text = String::from_utf8(drafts_journal_seeds().remove(1)).expect("text");
        assert!(fleetmesh_runtime::formats::DraftsJson::parse(&text, &other).is_err());
        let broken = text.replace(&"01".repeat(32), "not a hash");
        assert!(
            fleetmesh_runtime::formats::DraftsJson::parse(
                &broken,
                &crate::targets::texts::drafts_author()
            )
            .is_err()
        );
    }

    #[test]
    fn the_rollout_plan_seeds_are_plans_the_cli_accepts() {
        let seeds = rollout_plan_seeds();
        assert_eq!(seeds.len(), 3, "the guide's plan and two scenarios'");
        for seed in seeds {
            let text = std::str::from_utf8(&seed[1..]).expect("text");
            if let Err(error) = fleetmesh_runtime::formats::parse_plan(text, 7) {
                panic!("{error:#}\n{text}");
            }
        }
    }

    #[test]
    fn a_repro_change_takes_the_operator_as_actor() {
        let actor = [7; 32];
        for repro in [REPRO_PARSE_PANIC, REPRO_APPLY_PANIC] {
            let bytes = unhex(repro);
            let old = bytes[13..45].to_vec();
            let rewritten = with_actor(&bytes, &actor);
            assert_eq!(rewritten.len(), bytes.len());
            assert_eq!(rewritten[13..45], actor);
            assert!(!rewritten.windows(32).any(|window| window == old.as_slice()));
        }
    }

    #[test]
    fn a_change_without_that_header_is_left_alone() {
        assert_eq!(with_actor(b"short", &[7; 32]), b"short");
    }

    #[test]
    fn the_operations_guide_examples_are_agent_config_seeds() {
        let seeds = agent_config_seeds();
        let smallest = "state_dir = \"/var/lib/fleetmesh\"\nbootstrap = [\"10.0.0.5:7946\", \"10.0.0.6:7946\"]\n";
        assert!(seeds.iter().any(|seed| seed == smallest.as_bytes()));
        for seed in &seeds {
            let text = std::str::from_utf8(seed).expect("UTF-8");
            fleetmesh_runtime::AgentConfig::parse(text).expect("the documented configs parse");
        }
    }

    #[test]
    fn every_scenario_file_is_a_scenario_seed() {
        let seeds = scenario_seeds();
        let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"))
            .expect("scenarios/")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "toml"))
            })
            .count();
        assert_eq!(seeds.len(), files + 1);
    }
}
