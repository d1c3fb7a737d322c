//! `release_apply`: releases as config keys sign them, merged into the
//! release log and walked forward by an agent's rollback protection.

use std::sync::OnceLock;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use fleetmesh_node::crdt::{
    AppliedRelease, Keypair, Release, ReleaseLog, Replica, SignedRelease, SignedTrust, TrustChain,
};
use serde::{Deserialize, Serialize};

use crate::fixture::{AGENT, Fixture, fixture};

/// Longest input decoded.
pub const INPUT_BYTES_MAX: usize = 64 * 1024;

/// Most releases an agent is walked through per document.
pub const WALK_MAX: usize = 16;

const BINCODE: Configuration<LittleEndian, Varint, Limit<INPUT_BYTES_MAX>> =
    bincode::config::standard().with_limit::<INPUT_BYTES_MAX>();

/// What one input states, bincode-encoded (standard configuration).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReleaseInput {
    /// The agent's HLC time, in milliseconds.
    pub now_millis: u64,
    /// The release the agent runs, as its durable state records it.
    pub current: Option<AppliedRelease>,
    /// Whether each release the agent moves to is then voided (a signer
    /// revoked), so that another of its version may replace it.
    pub void: bool,
    /// The releases, each with the keys that sign it ([`SIGNERS`] bits).
    pub releases: Vec<(u8, Release)>,
}

impl ReleaseInput {
    /// The input's bytes.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, BINCODE).unwrap_or_default()
    }
}

/// The keys an input's signer bits name, lowest bit first: the two config
/// keys, the root key and an agent's node key (neither holds `config`).
pub const SIGNERS: usize = 4;

/// Decodes `data` as a [`ReleaseInput`]; signs each release by the keys
/// its bits name and merges them into two release logs, in input order and
/// reversed, under the fixture fleet's trust chain plus one more version
/// that raises the config threshold to 2. Checks that nothing panics, that
/// both logs hold the same releases, and that walking an agent forward from
/// `current` (`ReleaseLog::next_after`, `AppliedRelease::advance`) only
/// moves to releases that verify, of the document it runs, at a higher
/// version (or, from a void one, another of the same version).
pub fn release_apply(data: &[u8]) {
    let Ok((input, _)) = bincode::serde::decode_from_slice::<ReleaseInput, _>(data, BINCODE) else {
        return;
    };
    let fixture = fixture();
    let trust = trust();
    let signers = signers(fixture);
    let signed: Vec<SignedRelease> = input
        .releases
        .iter()
        .map(|(bits, release)| {
            let mut signed = SignedRelease::new(release.clone());
            for (index, key) in signers.iter().enumerate() {
                if bits & (1 << index) != 0 {
                    signed.sign(key);
                }
            }
            signed
        })
        .collect();
    let mut forward = ReleaseLog::new();
    let mut backward = ReleaseLog::new();
    fixture.with_ctx(trust, |ctx| {
        for release in &signed {
            let _ = forward.merge(release.clone(), ctx);
        }
        for release in signed.iter().rev() {
            let _ = backward.merge(release.clone(), ctx);
        }
    });
    let mut held = forward.versions();
    held.sort_unstable();
    let mut other = backward.versions();
    other.sort_unstable();
    assert_eq!(held, other, "two orders of one set of releases diverged");
    let documents: Vec<String> = forward.documents().map(str::to_owned).collect();
    for doc in documents {
        let current = input.current.clone().filter(|current| current.doc == doc);
        walk(fixture, trust, &forward, &doc, current, &input);
    }
}

fn walk(
    fixture: &Fixture,
    trust: &TrustChain,
    log: &ReleaseLog,
    doc: &str,
    mut current: Option<AppliedRelease>,
    input: &ReleaseInput,
) {
    for _ in 0..WALK_MAX {
        let Some(next) = log.next_after(doc, current.as_ref()) else {
            return;
        };
        let Ok(applied) = AppliedRelease::advance(current.as_ref(), next, input.now_millis) else {
            return;
        };
        let verified = fixture.with_ctx(trust, |ctx| next.verify(ctx));
        assert!(
            verified.is_ok(),
            "the log offered a release that does not verify"
        );
        assert_eq!(applied.doc, doc, "moved to a release of another document");
        if let Some(current) = &current {
            let forward = applied.version > current.version
                || (current.void
                    && applied.version == current.version
                    && applied.digest != current.digest);
            assert!(forward, "moved from {current:?} back to {applied:?}");
        }
        current = Some(if input.void {
            applied.voided()
        } else {
            applied
        });
    }
}

/// The fixture's trust chain and one more version with a config
/// threshold of 2.
fn trust() -> &'static TrustChain {
    static TRUST: OnceLock<TrustChain> = OnceLock::new();
    TRUST.get_or_init(|| {
        let fixture = fixture();
        let mut chain = fixture.trust.clone();
        let mut doc = chain.head().doc.clone();
        doc.version += 1;
        doc.config_threshold = 2;
        let next = SignedTrust::sign(doc, &[&fixture.fleet.root]);
        chain
            .insert(next, fixture.fleet.verifier.as_ref())
            .expect("the root raises the config threshold");
        chain
    })
}

fn signers(fixture: &Fixture) -> [Keypair; SIGNERS] {
    [
        fixture.fleet.operator.clone(),
        fixture.fleet.operator_2.clone(),
        fixture.fleet.root.clone(),
        fixture.fleet.identity(AGENT).keypair,
    ]
}
