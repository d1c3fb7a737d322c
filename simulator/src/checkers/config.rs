//! Config and trust: agents run only what operators released, never go
//! back, and every running agent gets each release and trust document.
//!
//! Safety is judged against the operators' ground truth
//! ([`crate::operator::Truth`]) each time an agent's config or release
//! changes, so a forged, revoked or rolled-back entry is caught on the
//! event that let it in. Liveness is judged against the network's ground
//! truth: a release published while the network is cut must arrive within
//! the bound of the heal.

use std::collections::BTreeMap;

use fleetmesh_node::Agent;
use fleetmesh_node::crdt::{Digest, PublicKey};

use super::{Kind, Violation};
use crate::operator::Truth;

/// What a release spread waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Awaited {
    /// Every running agent runs `doc` at `version` or later.
    Release {
        /// The document.
        doc: String,
        /// The version.
        version: u64,
    },
    /// Every running agent holds trust `version` or later.
    Trust {
        /// The version.
        version: u64,
    },
    /// Every running agent quarantines `key`.
    Quarantine {
        /// The equivocating key.
        key: PublicKey,
    },
}

impl Awaited {
    /// Whether `agent` has it.
    pub fn is_held_by(&self, agent: &Agent) -> bool {
        match self {
            Awaited::Release { doc, version } => agent
                .applied_release(doc)
                .is_some_and(|applied| applied.version >= *version),
            Awaited::Trust { version } => agent.replicas().trust().head().doc.version >= *version,
            Awaited::Quarantine { key } => agent
                .replicas()
                .config()
                .quarantined()
                .any(|held| held == key),
        }
    }
}

/// One agent's config state, as the store checker sees it.
pub struct AgentConfig<'a> {
    /// Its trust head's version.
    pub trust_version: u64,
    /// The changes it holds applied.
    pub held: Vec<&'a Digest>,
    /// The digests of the releases it runs (not void).
    pub running: Vec<&'a Digest>,
    /// The keys it quarantines.
    pub quarantined: Vec<&'a PublicKey>,
}

/// The release an agent last moved to.
#[derive(Clone, Copy)]
struct Ran {
    version: u64,
    digest: Digest,
}

struct Pending {
    awaited: Awaited,
    published_at: u64,
    reached_all: bool,
}

/// The config checkers of one run.
pub struct ConfigChecks {
    /// The release each agent last moved to, per document, over all its
    /// restarts.
    highest: Vec<BTreeMap<String, Ran>>,
    bound: u64,
    pending: Vec<Pending>,
    reach_times: Vec<u64>,
    /// When the network last healed: what was published before it is due
    /// a bound after it.
    last_heal: u64,
}

impl ConfigChecks {
    /// Checkers for `agents` agents; publications must reach everyone
    /// within `bound` nanoseconds.
    pub fn new(agents: usize, bound: u64) -> ConfigChecks {
        ConfigChecks {
            highest: vec![BTreeMap::new(); agents],
            bound,
            pending: Vec::new(),
            reach_times: Vec::new(),
            last_heal: 0,
        }
    }

    /// The bound in force.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Times from each release's publication until every running agent
    /// ran it, in nanoseconds.
    pub fn reach_times(&self) -> &[u64] {
        &self.reach_times
    }

    /// Agent `agent`, holding trust `trust_version`, moved to `version` of
    /// `doc`, whose digest is `digest`.
    ///
    /// An agent may run a revoked key's release only while it has not heard
    /// of the revocation (nothing can do better: that is the freeze TUF
    /// describes), and may then replace it by another release of the same
    /// version; anything else not newer is a rollback.
    pub fn release_applied(
        &mut self,
        now: u64,
        agent: u32,
        trust_version: u64,
        (doc, version, digest): (&str, u64, Digest),
        truth: &Truth,
    ) -> Option<Violation> {
        let ran = self.highest[agent as usize].get(doc).copied();
        if let Some(ran) = ran {
            let replaces_rogue = version == ran.version
                && digest != ran.digest
                && truth.rogue_releases.contains_key(&ran.digest);
            if version <= ran.version && !replaces_rogue {
                return Some(safety(
                    now,
                    agent,
                    "release-rollback",
                    format!(
                        "agent {agent} moved {doc} to version {version} after running {}",
                        ran.version
                    ),
                ));
            }
        }
        self.highest[agent as usize].insert(doc.to_owned(), Ran { version, digest });
        if let Some(signer) = truth.rogue_releases.get(&digest) {
            let revoked_at = truth.revoked.get(signer).copied().unwrap_or(0);
            if trust_version >= revoked_at {
                return Some(safety(
                    now,
                    agent,
                    "release-revoked",
                    format!(
                        "agent {agent} holds trust version {trust_version}, which revokes the \
                         signer of {doc} version {version}, and moved to it"
                    ),
                ));
            }
            return None;
        }
        match truth.legit_releases.get(&digest) {
            Some((released_doc, released)) if released_doc == doc && *released == version => None,
            _ => Some(safety(
                now,
                agent,
                "release-forged",
                format!(
                    "agent {agent} runs {doc} version {version}, which no trusted operator signed"
                ),
            )),
        }
    }

    /// Agent `agent`'s config state changed to `state`.
    pub fn store_changed(
        &self,
        now: u64,
        agent: u32,
        state: &AgentConfig<'_>,
        truth: &Truth,
    ) -> Option<Violation> {
        let trust_version = state.trust_version;
        let runs_revoked = state.running.iter().any(|digest| {
            truth
                .rogue_releases
                .get(digest)
                .and_then(|signer| truth.revoked.get(signer))
                .is_some_and(|&revoked_at| trust_version >= revoked_at)
        });
        if runs_revoked {
            return Some(safety(
                now,
                agent,
                "release-revoked",
                format!(
                    "agent {agent} holds trust version {trust_version} and still runs a release \
                     its signer's revocation voids"
                ),
            ));
        }
        for &hash in &state.held {
            if !truth.legit_changes.contains(hash) && !truth.rogue_changes.contains(hash) {
                return Some(safety(
                    now,
                    agent,
                    "change-forged",
                    format!("agent {agent} applied a change no trusted operator wrote"),
                ));
            }
            let author = truth.authors.get(hash);
            if author.is_some_and(|author| state.quarantined.contains(&author)) {
                return Some(safety(
                    now,
                    agent,
                    "change-quarantined",
                    format!("agent {agent} quarantines a key and still applies its change"),
                ));
            }
            let revoked_at = author.and_then(|author| truth.revoked.get(author));
            if let Some(&revoked_at) = revoked_at
                && trust_version >= revoked_at
            {
                return Some(safety(
                    now,
                    agent,
                    "change-revoked",
                    format!(
                        "agent {agent} holds trust version {trust_version}, which revokes an \
                         author, and still applies that author's change"
                    ),
                ));
            }
        }
        None
    }

    /// `awaited` was published at `now`; returns when to check it.
    pub fn published(&mut self, now: u64, awaited: Awaited) -> u64 {
        self.pending.push(Pending {
            awaited,
            published_at: now,
            reached_all: false,
        });
        now + self.bound
    }

    /// The network healed at `now`: when to check what is still spreading.
    pub fn healed(&mut self, now: u64) -> Option<u64> {
        self.last_heal = now;
        self.pending
            .iter()
            .any(|pending| !pending.reached_all)
            .then_some(now + self.bound)
    }

    /// Records a release reaching everyone once `has(awaited)` says every
    /// running agent has it.
    pub fn note_reach(&mut self, now: u64, mut everyone_has: impl FnMut(&Awaited) -> bool) {
        for pending in &mut self.pending {
            if !pending.reached_all && everyone_has(&pending.awaited) {
                pending.reached_all = true;
                if matches!(pending.awaited, Awaited::Release { .. }) {
                    self.reach_times.push(now - pending.published_at);
                }
            }
        }
    }

    /// Judges whatever was published at least a bound ago, and a bound
    /// after the last heal: `missing(awaited)` names the running agents
    /// (that ran all along) still without it. Not called while the network
    /// is cut.
    pub fn check(
        &mut self,
        now: u64,
        mut missing: impl FnMut(&Awaited) -> Vec<u32>,
    ) -> Option<Violation> {
        for pending in &mut self.pending {
            let due = pending.published_at.max(self.last_heal) + self.bound;
            if pending.reached_all || now < due {
                continue;
            }
            let lacking = missing(&pending.awaited);
            if lacking.is_empty() {
                continue;
            }
            let shown: Vec<String> = lacking.iter().take(8).map(u32::to_string).collect();
            return Some(Violation {
                invariant: "publication-spread",
                kind: Kind::Liveness,
                at: now,
                details: format!(
                    "{:?} published at t={:.3}s is missing on {} running agents (first: {}) \
                     {:.1}s later",
                    pending.awaited,
                    pending.published_at as f64 / 1e9,
                    lacking.len(),
                    shown.join(", "),
                    (now - pending.published_at) as f64 / 1e9
                ),
                agents: lacking.iter().copied().take(5).collect(),
            });
        }
        None
    }
}

fn safety(now: u64, agent: u32, invariant: &'static str, details: String) -> Violation {
    Violation {
        invariant,
        kind: Kind::Safety,
        at: now,
        details,
        agents: vec![agent],
    }
}
