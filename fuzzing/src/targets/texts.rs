//! Targets whose input is text a person or a program writes: the agent's
//! config file, scenario files and the admin API's request bodies.

use fleetmesh_runtime::AgentConfig;
use fleetmesh_runtime::driver::entries_of;
use fleetmesh_runtime::formats::{self, DraftsJson};
use fleetmesh_simulator::Scenario;

use crate::fixture::fixture;

/// Parses and validates `data` as an agent config file
/// ([`AgentConfig::parse`]), then derives its protocol parameters. Checks
/// that no text panics the parser or its validation; invalid UTF-8 is
/// refused before, as reading the file refuses it.
pub fn agent_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = AgentConfig::parse(text) {
        config.protocol();
    }
}

/// Parses and validates `data` as a scenario file ([`Scenario::parse`]),
/// without running it. Checks that no text panics the parser or its
/// validation.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Scenario::parse("fuzz.toml", text);
}

/// Parses `data` as a rollout plan file ([`formats::parse_plan`], given to
/// `fleetmesh config release --rollout`) for a release of a version the
/// input's first byte picks. Checks that no text panics the parser or the
/// plan's checks, and that a plan accepted for a version passes the same
/// checks agents make on a release carrying it.
pub fn rollout_plan(data: &[u8]) {
    let Some((&version, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(plan) = formats::parse_plan(text, u64::from(version)) {
        assert!(
            plan.check_shape(u64::from(version)).is_ok(),
            "a plan the CLI accepts is one agents accept"
        );
    }
}

/// The key whose draft journals [`drafts_journal`] reads.
pub fn drafts_author() -> fleetmesh_node::crdt::PublicKey {
    fleetmesh_node::crdt::Keypair::from_seed([7; 32]).public()
}

/// Parses `data` as a config key's draft journal (`KEY.drafts.json`,
/// [`DraftsJson::parse`]) for the key [`drafts_author`]. Checks that no
/// text panics the parser, and that a journal it accepts names a change
/// hash for every document and belongs to that key.
pub fn drafts_journal(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let author = drafts_author();
    if let Ok(journal) = DraftsJson::parse(text, &author) {
        assert_eq!(journal.author, author.to_hex(), "another key's journal");
        for drafted in journal.docs.values() {
            assert!(
                fleetmesh_runtime::files::parse_digest(&drafted.change, "change").is_ok(),
                "a journal naming no change hash"
            );
        }
    }
}

/// Reads `data` as a `POST /v1/publish` body ([`entries_of`]: a trust
/// chain, config change, config release or approval file) and publishes
/// the entries it holds to an agent holding the fixture fleet's state, as
/// the admin API does. Checks that no body panics the agent.
pub fn admin_body(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entries) = entries_of(text) else {
        return;
    };
    let fixture = fixture();
    let mut agent = fixture.agent_with_state();
    for entry in entries {
        let _ = agent.publish(fixture.now, entry);
    }
}
