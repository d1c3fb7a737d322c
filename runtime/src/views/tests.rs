//! Unit tests of the admin API views: built from a lone agent.
use super::*;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fleetmesh_crdt::Value as ConfigValue;
use fleetmesh_crdt::{
    CertBody, Ed25519, Hlc, Keypair, LedgerRecord, NodeCert, NodeMeta, Role, SignedTrust, TrustDoc,
};
use fleetmesh_node::{Config, Identity};

/// The test fleet's operator (every role) and its genesis.
fn fleet() -> (Keypair, SignedTrust) {
    let operator = Keypair::from_seed([9; 32]);
    let doc = TrustDoc::genesis(
        "views",
        BTreeMap::from([(operator.public(), BTreeSet::from(Role::ALL))]),
    );
    let genesis = SignedTrust::sign(doc, &[&operator]);
    (operator, genesis)
}

/// A lone agent named `node-1` in the test fleet, at time 0.
fn agent() -> Agent {
    let (operator, genesis) = fleet();
    let keypair = Keypair::from_seed([1; 32]);
    let body = CertBody {
        fleet: genesis.digest(),
        node_key: keypair.public(),
        name: "node-1".into(),
        tags: BTreeMap::new(),
        expires_millis: None,
        issuer: operator.public(),
        trust_version: 1,
    };
    let identity = Identity {
        keypair,
        cert: NodeCert::issue(body, &operator),
        genesis,
    };
    let meta = NodeMeta {
        tags: BTreeMap::from([("zone".into(), "a".into())]),
        addrs: Vec::new(),
    };
    Agent::new(
        Config::lan(),
        identity,
        meta,
        7,
        Instant(0),
        Arc::new(Ed25519),
    )
    .expect("a valid agent")
}

fn record(kind: RecordKind, at_millis: u64) -> SignedRecord {
    let author = Keypair::from_seed([1; 32]);
    let record = LedgerRecord {
        key: IdempotencyKey {
            rule: "restart-web".into(),
            target: author.public(),
            incident: "web down".into(),
        },
        kind,
        author: author.public(),
        at: Hlc {
            millis: at_millis,
            counter: 0,
        },
    };
    SignedRecord::sign(record, &author)
}

fn intent() -> RecordKind {
    RecordKind::Intent {
        scope: "remediate:web".into(),
        epoch: 3,
        action: "restart".into(),
        planner: Keypair::from_seed([1; 32]).public(),
        dry_run: false,
        deadline_millis: 10_000,
    }
}

fn approval(expires_millis: u64) -> RecordKind {
    RecordKind::Approval {
        approver: fleet().0.public(),
        expires_millis,
        trust_version: 1,
    }
}

/// The remediation `records` make at `now_millis`, with no policy
/// loaded.
fn remediation(records: &[SignedRecord], now_millis: u64) -> Remediation {
    let key = records[0].record.key.clone();
    let records: Vec<&SignedRecord> = records.iter().collect();
    Remediation::of(&key, Some("node-1".into()), &records, now_millis, None)
}

#[test]
fn the_agent_view_shows_the_core_and_the_runtime_around_it() {
    let agent = agent();
    let peer = PeerId::random();
    let listening: Vec<Multiaddr> = vec!["/ip4/127.0.0.1/udp/7000/quic-v1".parse().unwrap()];
    let local = Local {
        peer: &peer,
        listening: &listening,
        leaving: true,
        uptime_millis: 1_500,
        now_millis: 86_400_000,
        state_dir: Path::new("/var/lib/fleetmesh"),
    };
    let info = info(&agent, Instant(0), &local);
    assert_eq!(info["id"], agent.id().to_string());
    assert_eq!(info["name"], "node-1");
    assert_eq!(info["fleet_name"], "views");
    assert_eq!(info["trust_version"], 1);
    assert_eq!(info["tags"]["zone"], "a");
    assert_eq!(info["peer"], peer.to_string());
    assert_eq!(info["listening"][0], "/ip4/127.0.0.1/udp/7000/quic-v1");
    assert_eq!(info["leaving"], true);
    assert_eq!(info["policy_loaded"], false);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["protocol"], fleetmesh_node::wire::PROTOCOL_VERSION);
    assert_eq!(info["members"]["alive"], 1);
    assert_eq!(info["members"]["dead"], 0);
    assert_eq!(info["releases"], serde_json::json!({}));
    assert_eq!(info["stops_applying"], 0);
    assert_eq!(info["now"], "1970-01-02T00:00:00.000Z");
    assert_eq!(info["state_dir"], "/var/lib/fleetmesh");
}

#[test]
fn members_list_the_agent_itself_and_ask_who_is_connected() {
    let agent = agent();
    let me = agent.id();
    let view = members(&agent, |node| node == me);
    let listed = view["members"].as_array().expect("a list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "node-1");
    assert_eq!(listed[0]["state"], "alive");
    assert_eq!(listed[0]["self"], true);
    assert_eq!(listed[0]["connected"], true);
    assert_eq!(members(&agent, |_| false)["members"][0]["connected"], false);
    assert_eq!(
        member_counts(&agent),
        [("alive", 1), ("suspect", 0), ("dead", 0), ("left", 0)]
    );
}

#[test]
fn the_trust_view_is_a_chain_file_that_reads_back() {
    let agent = agent();
    let chain = trust(&agent).expect("the genesis writes out");
    let read = formats::parse_chain(&chain.to_string()).expect("a chain file");
    assert_eq!(read.head().doc.fleet, "views");
    assert_eq!(read.head().doc.version, 1);
}

#[test]
fn a_fresh_agent_shows_empty_tables() {
    let agent = agent();
    assert_eq!(health(&agent), json!({ "reports": [] }));
    assert_eq!(ledger(&agent), json!({ "records": [] }));
    assert_eq!(leases(&agent, Instant(0)), json!({ "leases": [] }));
    assert_eq!(
        remediations(&agent, 5),
        json!({ "stops": [], "remediations": [] })
    );
    assert_eq!(
        approvals(&agent, 5),
        json!({ "approvals": [], "now_millis": 5 })
    );
    assert_eq!(
        config_history(&agent),
        json!({ "releases": [], "quarantined": [] })
    );
    assert!(budgets_in_use(&agent, Instant(0)).is_empty());
    assert_eq!(
        stale(&agent, &Entry::Ledger(Box::new(record(intent(), 1)))),
        None
    );
}

#[test]
fn an_intent_awaits_approval_until_an_unexpired_approval_answers_it() {
    let planned = [record(intent(), 100)];
    let waiting = remediation(&planned, 1_000);
    // No policy loaded: the step may need an approval, so it is listed.
    assert_eq!(waiting.status, "awaiting-approval");
    assert_eq!(waiting.awaits_approval, Some(planned[0].digest()));
    let json = waiting.json();
    assert_eq!(json["id"], planned[0].digest().to_hex());
    assert_eq!(json["action"], "restart");
    assert_eq!(json["target_name"], "node-1");

    let approved = [record(intent(), 100), record(approval(2_000), 200)];
    let answered = remediation(&approved, 1_000);
    assert_eq!(
        (answered.status, answered.awaits_approval),
        ("planned", None)
    );
    assert_eq!((answered.first_millis, answered.last_millis), (100, 200));
    assert_eq!(
        remediation(&approved, 2_000).status,
        "awaiting-approval",
        "an approval lapses at its expiry"
    );
}

#[test]
fn a_remediation_takes_the_status_of_its_furthest_record() {
    let outcome = RecordKind::Outcome {
        success: false,
        exit_code: Some(1),
        detail: "exit 1".into(),
    };
    let records = [
        record(intent(), 1),
        record(RecordKind::Started { epoch: 3 }, 2),
        record(outcome, 3),
    ];
    let failed = remediation(&records, 10);
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.detail.as_deref(), Some("exit 1"));
    assert_eq!(remediation(&records[..2], 10).status, "running");
    let stuck = [record(
        RecordKind::NeedsHuman {
            reason: "flapping".into(),
        },
        1,
    )];
    let needs_human = remediation(&stuck, 10);
    assert_eq!(needs_human.status, "needs-human");
    assert_eq!(needs_human.awaits_approval, Some(stuck[0].digest()));
    assert_eq!(record_json(&stuck[0].record.kind)["kind"], "needs-human");
    // Approved after the incident was over: the target's answer decides.
    let skip = RecordKind::Skipped {
        reason: "nothing ran".into(),
    };
    let late = [stuck[0].clone(), record(approval(20), 2), record(skip, 3)];
    let answered = remediation(&late, 10);
    assert_eq!(answered.status, "skipped");
    assert_eq!(answered.detail.as_deref(), Some("nothing ran"));
}

/// Hands `agent` a release, signed by the test operator, of the policy
/// document holding `content`, as `fleetmesh config publish` would.
fn release_policy(agent: &mut Agent, content: &ConfigValue) {
    use fleetmesh_crdt::{ConfigEntry, ConfigStore, Ctx, Release, SignedRelease, TrustChain};
    use fleetmesh_node::POLICY_DOC;
    let (operator, genesis) = fleet();
    let chain = TrustChain::new(genesis, &Ed25519).expect("a valid genesis");
    let admitted = |_: &PublicKey| false;
    let ctx = Ctx {
        trust: &chain,
        admitted: &admitted,
        verifier: &Ed25519,
        now_millis: 0,
    };
    let mut store = ConfigStore::new();
    let change = store
        .author(POLICY_DOC, &operator, 1, content, &ctx)
        .expect("the change is made")
        .expect("the content is new");
    let mut release = SignedRelease::new(Release {
        rollout: None,
        doc: POLICY_DOC.into(),
        version: 1,
        heads: store.heads(POLICY_DOC),
        expires_millis: None,
        trust_version: 1,
    });
    release.sign(&operator);
    let entries = [
        Entry::Config(Box::new(ConfigEntry::Change(change))),
        Entry::Release(Box::new(release)),
    ];
    for entry in entries {
        agent
            .publish(Instant(0), entry)
            .expect("the agent takes it");
    }
}

#[test]
fn the_agent_view_says_why_a_released_policy_was_refused_and_never_calls_it_loaded() {
    let mut agent = agent();
    // The check runs every 50 ms, under the 100 ms floor.
    let check = ConfigValue::Map(BTreeMap::from([
        ("kind".into(), ConfigValue::Str("tcp".into())),
        ("addr".into(), ConfigValue::Str("127.0.0.1:1".into())),
        ("select".into(), ConfigValue::Str("zone=a".into())),
        ("interval_ms".into(), ConfigValue::Int(50)),
    ]));
    let content = ConfigValue::Map(BTreeMap::from([(
        "checks".into(),
        ConfigValue::Map(BTreeMap::from([("web".into(), check)])),
    )]));
    release_policy(&mut agent, &content);
    let peer = PeerId::random();
    let local = Local {
        peer: &peer,
        listening: &[],
        leaving: false,
        uptime_millis: 0,
        now_millis: 0,
        state_dir: Path::new("/var/lib/fleetmesh"),
    };
    let info = info(&agent, Instant(0), &local);
    assert_eq!(info["policy_loaded"], false);
    assert_eq!(
        info["policy_refused"],
        "checks.web.interval_ms: an integer in 100..=604800000"
    );
    let releases = releases(&agent, Instant(0));
    assert_eq!(releases["releases"][0]["doc"], "remediation");
    assert!(
        releases["releases"][0]["rollout"].is_null(),
        "an unstaged release has no rollout"
    );
    assert_eq!(
        releases["releases"][0]["policy_refused"],
        info["policy_refused"]
    );
}
