//! `snapshot_decode`: what a damaged or hostile `replicas.bin` can make a
//! starting agent do.

use fleetmesh_node::snapshot;
use fleetmesh_runtime::state::{frame_replicas, unframe_replicas};

use crate::fixture::{AGENT, fixture};

/// Takes `data` as a replica snapshot ([`snapshot::decode`]) and loads it
/// into a fresh agent of the fixture fleet ([`fleetmesh_node::Agent::load_replicas`]),
/// after a trip through `replicas.bin`'s framing; `data` is also tried as a
/// whole file, framing included. Checks that nothing panics, that the
/// framing gives back what it framed, that every decoded entry is counted
/// once (merged, known or refused), and that the agent restarted from
/// what it then saves (trust chain, snapshot) holds the same state.
pub fn snapshot_decode(data: &[u8]) {
    if let Ok(payload) = unframe_replicas(data) {
        load(payload);
    }
    let framed = frame_replicas(data);
    let payload = unframe_replicas(&framed).expect("a framed snapshot unframes");
    assert_eq!(payload, data, "the framing changed the snapshot");
    load(data);
}

fn load(payload: &[u8]) {
    let Ok(entries) = snapshot::decode(payload) else {
        return;
    };
    let fixture = fixture();
    let mut agent = fixture.agent(AGENT);
    let loaded = agent
        .load_replicas(fixture.now, payload)
        .expect("a snapshot that decodes loads");
    let counted = loaded.merged + loaded.known + loaded.refused;
    assert_eq!(
        counted,
        entries.len() as u64,
        "{} entries decoded but {loaded:?} counted",
        entries.len()
    );
    if loaded.merged == 0 {
        return;
    }
    let saved = agent.save_replicas().expect("an agent saves what it holds");
    let restarted = fixture.restarted(agent.replicas().trust(), &saved);
    assert_eq!(
        restarted.saved_roots(),
        agent.saved_roots(),
        "an agent's own trust and snapshot restart it with another state"
    );
}
