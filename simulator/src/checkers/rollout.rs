//! Staged rollouts (issue 17 item 8), judged against the ground truth of
//! every attestation signed anywhere:
//!
//! - **open waves only**: no agent applies a staged release before enough
//!   hosts of every earlier wave have signed that they passed (its wave
//!   cannot have been open anywhere);
//! - **halted where the failure is known**: no agent applies a staged
//!   release while its own ledger shows a wave's gate failed;
//! - **stops hold waves**: no agent applies a staged release while it holds
//!   an emergency stop that selects it;
//! - **failed releases revert**: at the end, every running host that ran a
//!   release whose gate failed anywhere runs something else.
//!
//! It also measures what `sim bench` reports: the hosts that ran each
//! release, the time from the first failure to each revert, and the time
//! for a release that passed to reach every running agent.

use super::stop::CLOCK_SLACK_MILLIS;
use super::{Kind, Violation};
use fleetmesh_node::crdt::config::rollout::{Rollout, Tally, Verdict};
use fleetmesh_node::crdt::{
    AppliedRelease, Digest, Ledger, NodeMeta, PublicKey, RecordKind, active_stops,
};
use std::collections::{BTreeMap, BTreeSet};

/// One staged release as the ground truth knows it.
#[derive(Debug)]
struct Staged {
    doc: String,
    version: u64,
    plan: Rollout,
    published: u64,
    /// Each agent's wave, by index.
    wave_of: Vec<usize>,
    /// Each agent's index, by key.
    index_of: BTreeMap<PublicKey, usize>,
    /// Hosts per wave.
    hosts: Vec<u32>,
    passed: Vec<BTreeSet<u32>>,
    failed: Vec<BTreeSet<u32>>,
    /// When the first failure was signed.
    first_failure: Option<u64>,
    /// Agents that ran it, with when they applied it.
    ran: BTreeMap<u32, u64>,
    /// When each agent that ran it went back.
    reverted: BTreeMap<u32, u64>,
}

impl Staged {
    fn tally(&self, wave: usize) -> Tally {
        Tally {
            hosts: self.hosts[wave],
            passed: self.passed[wave].len() as u32,
            failed: self.failed[wave].len() as u32,
        }
    }

    /// Whether a wave's gate failed on the evidence signed anywhere.
    fn failed_anywhere(&self) -> bool {
        (0..self.hosts.len())
            .any(|wave| self.plan.gate.verdict(self.tally(wave)) == Verdict::Failed)
    }
}

/// What a run's staged rollouts came to, for reports and `sim bench`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutOutcome {
    /// Per staged release, in publication order: document and version,
    /// hosts in the first wave, hosts that ran it, whether its gate failed,
    /// hosts that reverted, seconds from the first failure to each revert,
    /// and seconds from publication until every running agent ran it (for
    /// a release that reached them all).
    pub releases: Vec<ReleaseOutcome>,
}

/// One staged release's outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReleaseOutcome {
    /// `doc@version`.
    pub name: String,
    /// Hosts in wave 0.
    pub first_wave: u32,
    /// Hosts that ever ran it.
    pub ran: usize,
    /// A gate failed.
    pub failed: bool,
    /// Seconds from the first failure to each host's revert.
    pub revert_s: Vec<f64>,
    /// Seconds from publication until every running agent ran it.
    pub complete_s: Option<f64>,
}

/// The rollout checker of one run.
#[derive(Debug, Default)]
pub struct RolloutCheck {
    staged: BTreeMap<Digest, Staged>,
    order: Vec<Digest>,
    /// When each release reached every running agent.
    complete: BTreeMap<Digest, u64>,
}

impl RolloutCheck {
    /// A staged release was published at true time `now`; `hosts` are
    /// every agent's key and certificate tags, by index.
    pub fn published<'a>(
        &mut self,
        now: u64,
        digest: Digest,
        (doc, version): (&str, u64),
        plan: &Rollout,
        hosts: impl Iterator<Item = (PublicKey, &'a BTreeMap<String, String>)>,
    ) {
        let mut wave_of = Vec::new();
        let mut index_of = BTreeMap::new();
        for (index, (key, tags)) in hosts.enumerate() {
            wave_of.push(plan.wave_of(&digest, &key, tags));
            index_of.insert(key, index);
        }
        let mut counts = vec![0u32; plan.waves.len()];
        for &wave in &wave_of {
            counts[wave] += 1;
        }
        let waves = plan.waves.len();
        self.order.push(digest);
        self.staged.insert(
            digest,
            Staged {
                doc: doc.to_owned(),
                version,
                plan: plan.clone(),
                published: now,
                wave_of,
                index_of,
                hosts: counts,
                passed: vec![BTreeSet::new(); waves],
                failed: vec![BTreeSet::new(); waves],
                first_failure: None,
                ran: BTreeMap::new(),
                reverted: BTreeMap::new(),
            },
        );
    }

    fn find(&mut self, doc: &str, version: u64) -> Option<&mut Staged> {
        self.staged
            .values_mut()
            .find(|staged| staged.doc == doc && staged.version == version)
    }

    /// Agent `agent` signed that it passed or failed release `version` of
    /// `doc` in `wave`.
    pub fn attested(
        &mut self,
        now: u64,
        agent: u32,
        (doc, version): (&str, u64),
        wave: u32,
        passed: bool,
    ) {
        let Some(staged) = self.find(doc, version) else {
            return;
        };
        let wave = wave as usize;
        if staged.wave_of.get(agent as usize) != Some(&wave) {
            return;
        }
        if passed {
            staged.passed[wave].insert(agent);
        } else {
            staged.failed[wave].insert(agent);
            staged.first_failure.get_or_insert(now);
        }
    }

    /// Agent `agent` went back from release `version` of `doc`.
    pub fn reverted(&mut self, now: u64, agent: u32, (doc, version): (&str, u64)) {
        if let Some(staged) = self.find(doc, version)
            && staged.ran.contains_key(&agent)
        {
            staged.reverted.entry(agent).or_insert(now);
        }
    }

    /// Agent `agent`, tagged `meta`, applied release `digest` at true time
    /// `now` (local millis `local_millis`), holding `ledger`.
    pub fn applied(
        &mut self,
        now: u64,
        agent: u32,
        digest: Digest,
        ledger: &Ledger,
        (meta, local_millis): (&NodeMeta, u64),
    ) -> Vec<Violation> {
        let Some(staged) = self.staged.get_mut(&digest) else {
            return Vec::new();
        };
        staged.ran.entry(agent).or_insert(now);
        let mut violations = Vec::new();
        let wave = staged.wave_of[agent as usize];
        let violation = |invariant, details: String| Violation {
            invariant,
            kind: Kind::Safety,
            at: now,
            details,
            agents: vec![agent],
        };
        for earlier in 0..wave {
            if staged.plan.gate.verdict(staged.tally(earlier)) != Verdict::Passed {
                violations.push(violation(
                    "no agent runs a release outside an open wave",
                    format!(
                        "agent {agent} (wave {wave}) applied {}@{} while wave {earlier} had {} of {} passes signed anywhere",
                        staged.doc,
                        staged.version,
                        staged.passed[earlier].len(),
                        staged.hosts[earlier]
                    ),
                ));
                break;
            }
        }
        let mut held = vec![0u32; staged.hosts.len()];
        for signed in ledger.iter() {
            if let RecordKind::Attest {
                release,
                passed: false,
                ..
            } = &signed.record.kind
                && *release == digest
                && let Some(&index) = staged.index_of.get(&signed.record.author)
            {
                held[staged.wave_of[index]] += 1;
            }
        }
        if let Some(failed) = (0..held.len()).find(|&wave| {
            let tally = Tally {
                failed: held[wave],
                ..staged.tally(wave)
            };
            staged.plan.gate.verdict(tally) == Verdict::Failed
        }) {
            violations.push(violation(
                "after a gate fails no wave opens where the evidence reached",
                format!(
                    "agent {agent} applied {}@{} holding {} failures of wave {failed}",
                    staged.doc, staged.version, held[failed]
                ),
            ));
        }
        let judged_at = local_millis.saturating_add(CLOCK_SLACK_MILLIS);
        if let Some(stop) = active_stops(ledger, judged_at)
            .into_iter()
            .find(|stop| stop.applies_to(meta))
        {
            violations.push(violation(
                "a stop is honoured by every agent that holds it",
                format!(
                    "agent {agent} applied {}@{} (a rollout wave) while it held stop {:?}",
                    staged.doc, staged.version, stop.digest
                ),
            ));
        }
        violations
    }

    /// Every running agent runs release `digest` now (`now`, true time).
    pub fn reached_all(&mut self, now: u64, digest: Digest) {
        self.complete.entry(digest).or_insert(now);
    }

    /// The staged releases not yet run by every running agent, for the
    /// world to ask about; a release whose gate failed never will be.
    pub fn incomplete(&self) -> impl Iterator<Item = (&Digest, &str)> {
        self.staged
            .iter()
            .filter(|(digest, staged)| {
                !self.complete.contains_key(*digest) && !staged.failed_anywhere()
            })
            .map(|(digest, staged)| (digest, staged.doc.as_str()))
    }

    /// At the end of the run: every running agent that ran a release whose
    /// gate failed runs something else. `running` gives each running agent
    /// with the release it records for a document.
    pub fn finish(
        &self,
        now: u64,
        running: &[(u32, BTreeMap<String, AppliedRelease>)],
    ) -> Vec<Violation> {
        let mut violations = Vec::new();
        for (digest, staged) in &self.staged {
            if !staged.failed_anywhere() {
                continue;
            }
            for (agent, releases) in running {
                if !staged.ran.contains_key(agent) {
                    continue;
                }
                let stuck = releases
                    .get(&staged.doc)
                    .is_some_and(|applied| applied.content_digest() == *digest);
                if stuck {
                    violations.push(Violation {
                        invariant: "every host that ran a failed release reverts",
                        kind: Kind::Liveness,
                        at: now,
                        details: format!(
                            "agent {agent} still runs {}@{}, whose gate failed",
                            staged.doc, staged.version
                        ),
                        agents: vec![*agent],
                    });
                }
            }
        }
        violations
    }

    /// What the run's rollouts came to.
    pub fn outcome(&self) -> RolloutOutcome {
        let seconds = |nanos: u64| nanos as f64 / 1e9;
        let releases = self
            .order
            .iter()
            .filter_map(|digest| Some((digest, self.staged.get(digest)?)))
            .map(|(digest, staged)| ReleaseOutcome {
                name: format!("{}@{}", staged.doc, staged.version),
                first_wave: staged.hosts.first().copied().unwrap_or(0),
                ran: staged.ran.len(),
                failed: staged.failed_anywhere(),
                revert_s: staged
                    .first_failure
                    .map(|first| {
                        staged
                            .reverted
                            .values()
                            .map(|&at| seconds(at.saturating_sub(first)))
                            .collect()
                    })
                    .unwrap_or_default(),
                complete_s: self
                    .complete
                    .get(digest)
                    .map(|&at| seconds(at - staged.published)),
            })
            .collect();
        RolloutOutcome { releases }
    }
}
