//! Staged rollouts on this agent (`docs/rollouts.md`): whether its wave of
//! a staged release is open, the attestation it signs about a staged
//! release it bakes, and the revert when a gate failed.
//!
//! The arithmetic is in [`fleetmesh_crdt::config::rollout`]; this module
//! gathers what it needs: the waves of the admitted hosts (from the
//! certificates held), the attestations (from the ledger), and this host's
//! own checks, safe mode and needs-human records.

use super::Agent;
use super::effects::{By, Effect};
use crate::event::Event;
use crate::persist::Persist;
use crate::state::Entry;
use crate::time::Instant;
use fleetmesh_crdt::config::rollout::{Progress, Rollout, Tally, Verdict};
use fleetmesh_crdt::{
    CertTable, Digest, HealthState, Ledger, LedgerRecord, PublicKey, RecordKind, Replica,
    SignedRecord, SignedRelease, active_stops, attest_limits,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Most staged releases whose attestations the index keeps. Only releases
/// the release log holds are indexed, so only the config threshold can
/// fill it; past it the oldest indexed is dropped, and rebuilt from the
/// ledger if it is needed again.
const EVIDENCE_RELEASES_MAX: usize = 256;
/// Most wave assignments cached; they are rebuilt when certificates change.
const ASSIGNMENTS_MAX: usize = 16;

/// One host's word on one release: failure dominates a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word {
    wave: u32,
    wave_hosts: u32,
    failed: bool,
}

/// Which wave each certified host is in for one release.
#[derive(Debug)]
struct Assignment {
    wave: BTreeMap<PublicKey, usize>,
    hosts: Vec<u32>,
}

impl Assignment {
    fn of(certs: &CertTable, release: &Digest, plan: &Rollout) -> Assignment {
        let mut wave = BTreeMap::new();
        let mut hosts = vec![0u32; plan.waves.len()];
        for cert in certs.iter() {
            let at = plan.wave_of(release, &cert.body.node_key, &cert.body.tags);
            wave.insert(cert.body.node_key, at);
            if let Some(count) = hosts.get_mut(at) {
                *count += 1;
            }
        }
        Assignment { wave, hosts }
    }

    /// The evidence per wave: attestations of hosts in the wave they name,
    /// against the larger of the count here and the attesters' counts.
    fn tallies(&self, words: &BTreeMap<PublicKey, Word>) -> Vec<Tally> {
        let mut tallies: Vec<Tally> = self
            .hosts
            .iter()
            .map(|&hosts| Tally {
                hosts,
                ..Tally::default()
            })
            .collect();
        for (host, word) in words {
            let Some(&wave) = self.wave.get(host) else {
                continue;
            };
            if word.wave as usize != wave {
                continue;
            }
            let tally = &mut tallies[wave];
            tally.hosts = tally.hosts.max(word.wave_hosts);
            if word.failed {
                tally.failed += 1;
            } else {
                tally.passed += 1;
            }
        }
        tallies
    }
}

/// A staged release this host runs, from when it started running it.
#[derive(Clone, Debug)]
struct Baking {
    release: Digest,
    version: u64,
    wave: usize,
    wave_hosts: u32,
    last_wave: bool,
    since: Instant,
    since_millis: u64,
    until: Instant,
    attested: bool,
}

/// What this agent knows and does about staged rollouts.
#[derive(Default)]
pub(super) struct Rollouts {
    /// Attestations by release, then by host.
    evidence: BTreeMap<Digest, BTreeMap<PublicKey, Word>>,
    /// The releases in `evidence`, oldest indexed first.
    indexed: VecDeque<Digest>,
    /// Wave assignments by release.
    assignments: BTreeMap<Digest, Arc<Assignment>>,
    /// The staged release run per document.
    baking: BTreeMap<String, Baking>,
    /// The newest needs-human record about this host (HLC milliseconds).
    needs_human_millis: Option<u64>,
    /// Staged releases this agent waited for, counted once each.
    waited: VecDeque<Digest>,
    /// The evidence, the certificates or the config changed since the
    /// staged releases run were last weighed.
    dirty: bool,
    /// The last look at the releases found one this agent's wave waits
    /// for. A stop that lapses by itself brings no record, so the reconnect
    /// timer looks again while this holds.
    waiting: bool,
}

impl Rollouts {
    /// Notes a ledger record new here: an attestation about an indexed
    /// release, or a needs-human record about `me`. Whether it bears on
    /// rollouts (an attestation, a stop or a resume).
    pub(super) fn note(&mut self, signed: &SignedRecord, me: &PublicKey) -> bool {
        let record = &signed.record;
        match &record.kind {
            RecordKind::Attest {
                release,
                wave,
                wave_hosts,
                passed,
                ..
            } => {
                if let Some(words) = self.evidence.get_mut(release) {
                    add_word(words, record.author, *wave, *wave_hosts, *passed);
                }
                self.dirty = true;
                true
            }
            RecordKind::NeedsHuman { .. } if record.key.target == *me => {
                let at = record.at.millis;
                self.needs_human_millis = Some(self.needs_human_millis.map_or(at, |m| m.max(at)));
                false
            }
            RecordKind::Stop { .. } | RecordKind::Resume { .. } => {
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Certificates changed: the waves must be assigned again.
    pub(super) fn forget_waves(&mut self) {
        self.assignments.clear();
        self.dirty = true;
    }

    /// Config changed: a revert waiting for its predecessor's content may
    /// go ahead.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Whether a staged release waits for this agent's wave (or a stop),
    /// as of the last look; clears it, since each look sets it again.
    pub(super) fn take_waiting(&mut self) -> bool {
        std::mem::take(&mut self.waiting)
    }

    /// Whether the staged releases run must be weighed again; clears it.
    fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// When a bake ends next.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.baking
            .values()
            .filter(|baking| !baking.attested)
            .map(|baking| baking.until)
            .min()
    }

    /// Whether `release` is newly waited for (to count it once).
    fn first_wait(&mut self, release: Digest) -> bool {
        if self.waited.contains(&release) {
            return false;
        }
        if self.waited.len() >= EVIDENCE_RELEASES_MAX {
            self.waited.pop_front();
        }
        self.waited.push_back(release);
        true
    }

    /// Indexes the attestations about `release`, scanning the ledger once;
    /// whether it had to.
    fn ensure_indexed(&mut self, release: Digest, ledger: &Ledger) -> bool {
        if self.evidence.contains_key(&release) {
            return false;
        }
        if self.indexed.len() >= EVIDENCE_RELEASES_MAX
            && let Some(oldest) = self.indexed.pop_front()
        {
            self.evidence.remove(&oldest);
        }
        self.evidence.insert(release, scan(ledger, &release));
        self.indexed.push_back(release);
        true
    }

    /// Asserts the bounds and that the index lists what it holds.
    pub(super) fn check_invariants(&self) {
        assert!(self.indexed.len() <= EVIDENCE_RELEASES_MAX);
        assert_eq!(self.indexed.len(), self.evidence.len(), "index out of step");
        assert!(self.assignments.len() <= ASSIGNMENTS_MAX);
        for baking in self.baking.values() {
            assert!(baking.since <= baking.until, "a bake ends before it starts");
        }
    }
}

fn add_word(
    words: &mut BTreeMap<PublicKey, Word>,
    host: PublicKey,
    wave: u32,
    hosts: u32,
    passed: bool,
) {
    let word = words.entry(host).or_insert(Word {
        wave,
        wave_hosts: hosts,
        failed: !passed,
    });
    word.failed |= !passed;
    word.wave_hosts = word.wave_hosts.max(hosts);
}

/// Every attestation about `release` the ledger holds.
fn scan(ledger: &Ledger, release: &Digest) -> BTreeMap<PublicKey, Word> {
    let mut words = BTreeMap::new();
    for signed in ledger.iter() {
        if let RecordKind::Attest {
            release: about,
            wave,
            wave_hosts,
            passed,
            ..
        } = &signed.record.kind
            && about == release
        {
            add_word(
                &mut words,
                signed.record.author,
                *wave,
                *wave_hosts,
                *passed,
            );
        }
    }
    words
}

/// How a staged release stands for this agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Not staged: it reaches every agent at once.
    Unstaged,
    /// This agent's wave is open.
    Open,
    /// This agent's wave is not open yet, or automation is stopped here.
    Waiting,
    /// A wave's gate failed: nobody runs it any more.
    Halted,
}

/// One wave as an agent sees it, for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveView {
    /// The evidence about it.
    pub tally: Tally,
    /// What the evidence says.
    pub verdict: Verdict,
    /// The wave's bake, in milliseconds.
    pub bake_millis: u64,
}

/// Where the rollout of a staged release stands at one agent, for
/// operators (`fleetmesh config rollout status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutView {
    /// The document.
    pub doc: String,
    /// The release version.
    pub version: u64,
    /// The release's digest.
    pub digest: Digest,
    /// The version hosts go back to when a gate fails.
    pub revert_to: u64,
    /// Each wave.
    pub waves: Vec<WaveView>,
    /// Waves open, and the first failed.
    pub progress: Progress,
    /// This host's wave.
    pub own_wave: usize,
    /// Milliseconds of this host's bake left, while it bakes the release.
    pub bake_left_millis: Option<u64>,
}

impl Agent {
    fn assignment(&mut self, release: &Digest, plan: &Rollout) -> Arc<Assignment> {
        if let Some(assignment) = self.rollouts.assignments.get(release) {
            return Arc::clone(assignment);
        }
        if self.rollouts.assignments.len() >= ASSIGNMENTS_MAX {
            self.rollouts.assignments.clear();
        }
        let assignment = Arc::new(Assignment::of(self.replicas.certs(), release, plan));
        self.rollouts
            .assignments
            .insert(*release, Arc::clone(&assignment));
        assignment
    }

    /// The progress of `release`'s rollout, this host's wave and how many
    /// hosts it counts in that wave; `None` for an unstaged release.
    fn rollout_state(&mut self, release: &SignedRelease) -> Option<(Progress, usize, u32)> {
        let plan = release.release.rollout.as_ref()?;
        let digest = release.release.digest();
        let assignment = self.assignment(&digest, plan);
        if self.rollouts.ensure_indexed(digest, self.replicas.ledger()) {
            self.stats.rollout.evidence_rebuilt += 1;
        }
        let tallies = assignment.tallies(&self.rollouts.evidence[&digest]);
        let progress = plan.progress(&tallies);
        let me = self.keypair.public();
        let wave = assignment
            .wave
            .get(&me)
            .copied()
            .unwrap_or(plan.waves.len().saturating_sub(1));
        Some((
            progress,
            wave,
            tallies.get(wave).map_or(0, |tally| tally.hosts),
        ))
    }

    /// Whether this agent may run `release` now.
    pub(super) fn rollout_gate(&mut self, now: Instant, release: &SignedRelease) -> Gate {
        let Some((progress, wave, _)) = self.rollout_state(release) else {
            return Gate::Unstaged;
        };
        if progress.failed.is_some() {
            return Gate::Halted;
        }
        if progress.admits(wave) && !self.is_stopped(now) {
            return Gate::Open;
        }
        if self.rollouts.first_wait(release.release.digest()) {
            self.stats.rollout.waits += 1;
        }
        self.rollouts.waiting = true;
        Gate::Waiting
    }

    /// Whether an emergency stop in force holds this agent's automation,
    /// rollout waves included.
    fn is_stopped(&self, now: Instant) -> bool {
        active_stops(self.replicas.ledger(), self.now_millis(now))
            .iter()
            .any(|stop| stop.applies_to(&self.meta))
    }

    /// The predecessor a staged release names, if this agent holds it and
    /// all of its content.
    pub(super) fn predecessor(&self, release: &SignedRelease) -> Option<SignedRelease> {
        let plan = release.release.rollout.as_ref()?;
        let doc = &release.release.doc;
        let predecessor = self.replicas.releases().at(doc, plan.revert_to)?;
        self.replicas
            .config()
            .has_all(doc, &predecessor.release.heads)
            .then(|| predecessor.clone())
    }

    /// Goes back from the staged release `release` of `doc` to its
    /// predecessor: its gate failed. `ran`: this agent runs it; else it
    /// records it as reverted without ever running it, so that later
    /// releases can follow. Whether it could; while the predecessor is not
    /// here it is retried (at the next tick, or the next release move).
    pub(super) fn go_back(
        &mut self,
        doc: &str,
        release: &SignedRelease,
        ran: bool,
        now_millis: u64,
    ) -> bool {
        let Some(predecessor) = self.predecessor(release) else {
            self.stats.rollout.revert_blocked += 1;
            return false;
        };
        if !ran && self.releases.advance(release, now_millis).is_err() {
            self.stats.releases_refused += 1;
            return false;
        }
        // The predecessor is older than the release by the plan's shape,
        // so this refuses nothing `advance` took.
        let Ok(reverted) = self.releases.revert(doc, &predecessor) else {
            self.stats.rollout.revert_blocked += 1;
            return false;
        };
        if ran {
            self.stats.rollout.reverted += 1;
        } else {
            self.stats.rollout.halted += 1;
        }
        self.outbox.persist(Persist::Release(reverted.clone()));
        self.push_event(Event::ReleaseReverted {
            doc: doc.to_owned(),
            version: reverted.version,
            to_version: predecessor.release.version,
            ran,
        });
        true
    }

    /// Reverts what failed, and attests about the staged releases this
    /// host bakes: failed as soon as the gate is broken here, passed once
    /// the bake is over with the gate's checks healthy.
    pub(super) fn rollout_tick(&mut self, now: Instant) {
        if self.left {
            return;
        }
        // The staged releases run (not reverted), by document, with their
        // digests as recorded (the signed release run is the one recorded,
        // `Releases::check_invariants`): nothing is encoded or hashed per
        // tick.
        let staged: Vec<(String, Digest)> = self
            .releases
            .running()
            .iter()
            .filter(|(_, release)| release.release.rollout.is_some())
            .filter_map(|(doc, _)| {
                let applied = self.releases.applied().get(doc)?;
                applied
                    .reverted_to
                    .is_none()
                    .then(|| (doc.clone(), applied.digest))
            })
            .collect();
        self.rollouts.baking.retain(|doc, baking| {
            staged
                .iter()
                .any(|(run, digest)| run == doc && *digest == baking.release)
        });
        // The evidence is weighed again only when it may have changed, not
        // at every tick of a rollout long finished.
        let weigh = self.rollouts.take_dirty();
        let mut reverted = false;
        for (doc, _) in &staged {
            if weigh || !self.rollouts.baking.contains_key(doc) {
                let Some(release) = self.releases.running().get(doc).cloned() else {
                    continue;
                };
                let Some((progress, wave, wave_hosts)) = self.rollout_state(&release) else {
                    continue;
                };
                if progress.failed.is_some() {
                    let now_millis = self.now_millis(now);
                    reverted |= self.go_back(doc, &release, true, now_millis);
                    continue;
                }
                if !self.rollouts.baking.contains_key(doc) {
                    self.start_bake(now, doc, &release, wave, wave_hosts);
                }
            }
            self.judge_bake(now, doc);
        }
        if reverted {
            self.rollouts.baking.retain(|doc, _| {
                self.releases
                    .applied()
                    .get(doc)
                    .is_some_and(|applied| applied.reverted_to.is_none())
            });
            self.update_safe_mode(now);
            self.refresh_policy(now);
        }
    }

    fn start_bake(
        &mut self,
        now: Instant,
        doc: &str,
        release: &SignedRelease,
        wave: usize,
        wave_hosts: u32,
    ) {
        let Some(plan) = &release.release.rollout else {
            return;
        };
        let digest = release.release.digest();
        let version = release.release.version;
        let me = self.keypair.public();
        let key = attest_limits::attestation_key(me, doc, version);
        // A restarted agent bakes again, unless it already attested.
        let attested = self.replicas.ledger().records_for(&key).any(|signed| {
            matches!(&signed.record.kind, RecordKind::Attest { release, .. } if *release == digest)
        });
        let bake = std::time::Duration::from_millis(plan.waves[wave].bake_millis);
        self.rollouts.baking.insert(
            doc.to_owned(),
            Baking {
                release: digest,
                version,
                wave,
                wave_hosts,
                last_wave: wave + 1 == plan.waves.len(),
                since: now,
                since_millis: self.now_millis(now),
                until: now + bake,
                attested,
            },
        );
    }

    /// Signs this host's attestation about the release it bakes for `doc`
    /// once there is something to say.
    fn judge_bake(&mut self, now: Instant, doc: &str) {
        // Checked first: a bake attested (every bake, soon after it ends)
        // costs a tick nothing.
        let Some(baking) = self
            .rollouts
            .baking
            .get(doc)
            .filter(|baking| !baking.attested)
            .cloned()
        else {
            return;
        };
        let Some(plan) = self
            .releases
            .running()
            .get(doc)
            .and_then(|release| release.release.rollout.clone())
        else {
            return;
        };
        let verdict = match self.gate_failure(now, &plan, &baking) {
            Some(reason) => Some((false, reason)),
            None if now >= baking.until && self.gate_passed(&plan, &baking) => {
                Some((true, String::new()))
            }
            None => None,
        };
        let Some((passed, reason)) = verdict else {
            return;
        };
        if let Some(baking) = self.rollouts.baking.get_mut(doc) {
            baking.attested = true;
        }
        // Nothing waits on the last wave's passes: only its failures count.
        if passed && baking.last_wave {
            return;
        }
        self.attest(now, doc, &baking, passed, reason);
    }

    /// Why this host fails the gate now, if it does.
    fn gate_failure(&self, now: Instant, plan: &Rollout, baking: &Baking) -> Option<String> {
        let unhealthy: Vec<&str> = plan
            .gate
            .checks
            .iter()
            .filter(|check| {
                matches!(
                    self.remedy.check_health(check),
                    Some((HealthState::Unhealthy, _))
                )
            })
            .map(String::as_str)
            .collect();
        if !unhealthy.is_empty() {
            return Some(format!("unhealthy: {}", unhealthy.join(", ")));
        }
        if plan.gate.no_safe_mode && self.is_safe_mode(now) {
            return Some("safe mode".to_owned());
        }
        if plan.gate.no_needs_human
            && self
                .rollouts
                .needs_human_millis
                .is_some_and(|at| at >= baking.since_millis)
        {
            return Some("needs-human".to_owned());
        }
        None
    }

    /// Whether every gate check this host runs is healthy with a result
    /// since the bake began.
    fn gate_passed(&self, plan: &Rollout, baking: &Baking) -> bool {
        plan.gate
            .checks
            .iter()
            .all(|check| match self.remedy.check_health(check) {
                None => true,
                Some((state, last)) => {
                    state == HealthState::Healthy && last.is_some_and(|at| at >= baking.since)
                }
            })
    }

    fn attest(&mut self, now: Instant, doc: &str, baking: &Baking, passed: bool, reason: String) {
        let me = self.keypair.public();
        let record = LedgerRecord {
            key: attest_limits::attestation_key(me, doc, baking.version),
            kind: RecordKind::Attest {
                release: baking.release,
                wave: baking.wave as u32,
                wave_hosts: baking.wave_hosts,
                passed,
                reason: reason.clone(),
            },
            author: me,
            at: self.hlc.now(self.now_millis(now)),
        };
        if passed {
            self.stats.rollout.attested_passed += 1;
        } else {
            self.stats.rollout.attested_failed += 1;
        }
        self.push_event(Event::RolloutAttested {
            doc: doc.to_owned(),
            version: baking.version,
            wave: baking.wave as u32,
            passed,
            reason,
        });
        let entry = Entry::Ledger(Box::new(SignedRecord::sign(record, &self.keypair)));
        self.defer(Effect::Publish(entry, By::Rollout));
        self.settle(now);
    }

    /// Where the rollout of the staged release of `doc` this agent runs or
    /// waits for stands here; `None` when neither is staged.
    pub fn rollout_view(&self, now: Instant, doc: &str) -> Option<RolloutView> {
        let log = self.replicas.releases();
        let applied = self.releases.applied().get(doc);
        // The staged release this agent waits for, else the one it runs
        // (or reverted).
        let release = log
            .next_after(doc, applied)
            .filter(|next| next.release.rollout.is_some())
            .cloned()
            .or_else(|| {
                log.entry(&applied?.digest)
                    .filter(|run| run.release.rollout.is_some())
            })?;
        let plan = release.release.rollout.as_ref()?;
        let digest = release.release.digest();
        let assignment = Assignment::of(self.replicas.certs(), &digest, plan);
        let words = match self.rollouts.evidence.get(&digest) {
            Some(words) => words.clone(),
            None => scan(self.replicas.ledger(), &digest),
        };
        let tallies = assignment.tallies(&words);
        let me = self.keypair.public();
        let bake_left_millis = self
            .rollouts
            .baking
            .get(doc)
            .filter(|baking| baking.release == digest && !baking.attested)
            .map(|baking| baking.until.0.saturating_sub(now.0) / 1_000_000);
        Some(RolloutView {
            doc: doc.to_owned(),
            version: release.release.version,
            digest,
            revert_to: plan.revert_to,
            waves: plan
                .waves
                .iter()
                .zip(&tallies)
                .map(|(wave, tally)| WaveView {
                    tally: *tally,
                    verdict: plan.gate.verdict(*tally),
                    bake_millis: wave.bake_millis,
                })
                .collect(),
            progress: plan.progress(&tallies),
            own_wave: assignment.wave.get(&me).copied().unwrap_or(0),
            bake_left_millis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::config::rollout::{Gate as Plan, Wave};
    use fleetmesh_crdt::{Hlc, IdempotencyKey, Keypair};

    fn key(seed: u8) -> PublicKey {
        Keypair::from_seed([seed; 32]).public()
    }

    fn attest(author: u8, release: Digest, wave: u32, passed: bool) -> SignedRecord {
        SignedRecord::sign(
            LedgerRecord {
                key: attest_limits::attestation_key(key(author), "app", 2),
                kind: RecordKind::Attest {
                    release,
                    wave,
                    wave_hosts: 3,
                    passed,
                    reason: String::new(),
                },
                author: key(author),
                at: Hlc::default(),
            },
            &Keypair::from_seed([author; 32]),
        )
    }

    #[test]
    fn attestations_count_once_per_host_in_its_own_wave_and_failures_dominate() {
        let release = Digest([7; 32]);
        let assignment = Assignment {
            wave: BTreeMap::from([(key(1), 0), (key(2), 0), (key(3), 1)]),
            hosts: vec![2, 1],
        };
        let mut rollouts = Rollouts::default();
        rollouts.ensure_indexed(release, &Ledger::new());
        for signed in [
            attest(1, release, 0, true),
            attest(1, release, 0, false),
            attest(2, release, 0, true),
            attest(3, release, 0, true),
            attest(9, release, 0, true),
            attest(2, Digest([8; 32]), 0, false),
        ] {
            assert!(rollouts.note(&signed, &key(1)));
        }
        let tallies = assignment.tallies(&rollouts.evidence[&release]);
        // Host 1 passed then failed: a failure. Host 3 claims the wrong
        // wave and host 9 is unknown: neither counts. The claimed wave
        // size (3) is above the count here (2).
        assert_eq!(
            tallies[0],
            Tally {
                hosts: 3,
                passed: 1,
                failed: 1
            }
        );
        assert_eq!(
            tallies[1],
            Tally {
                hosts: 1,
                ..Tally::default()
            }
        );
        rollouts.check_invariants();
    }

    #[test]
    fn attestations_about_an_unindexed_release_are_left_to_the_ledger_and_the_index_is_bounded() {
        let release = Digest([7; 32]);
        let ledger = Ledger::new();
        let mut rollouts = Rollouts::default();
        // Noted before the release is indexed: not kept...
        assert!(rollouts.note(&attest(1, release, 0, false), &key(1)));
        assert!(!rollouts.evidence.contains_key(&release));
        // ...and the index is bounded, oldest first.
        for seed in 0..=EVIDENCE_RELEASES_MAX as u32 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&seed.to_le_bytes());
            rollouts.ensure_indexed(Digest(bytes), &ledger);
        }
        assert_eq!(rollouts.evidence.len(), EVIDENCE_RELEASES_MAX);
        assert!(
            !rollouts.evidence.contains_key(&Digest([0; 32])),
            "the oldest went"
        );
        rollouts.check_invariants();
    }

    #[test]
    fn needs_human_about_this_host_is_remembered_and_the_waves_recomputed() {
        let mut rollouts = Rollouts::default();
        let mut record = attest(1, Digest([1; 32]), 0, true);
        record.record.key = IdempotencyKey {
            rule: "web".into(),
            target: key(1),
            incident: "i".into(),
        };
        record.record.kind = RecordKind::NeedsHuman {
            reason: "limit".into(),
        };
        record.record.at = Hlc {
            millis: 40,
            counter: 0,
        };
        assert!(!rollouts.note(&record, &key(2)), "about another host");
        assert_eq!(rollouts.needs_human_millis, None);
        assert!(!rollouts.note(&record, &key(1)));
        assert_eq!(rollouts.needs_human_millis, Some(40));
        let plan = Rollout {
            revert_to: 1,
            gate: Plan::default(),
            waves: vec![Wave {
                fraction_ppm: 1_000_000,
                ..Wave::default()
            }],
        };
        let assignment = Assignment::of(&CertTable::default(), &Digest([1; 32]), &plan);
        assert_eq!(assignment.hosts, vec![0]);
        rollouts.forget_waves();
        assert!(rollouts.assignments.is_empty());
    }
}
