//! The releases this agent runs: moving forward to the newest valid release
//! of each document, voiding those whose signers were revoked, and safe mode
//! while a release it runs is expired or void.

use super::Agent;
use super::rollouts::Gate;
use crate::event::Event;
use crate::persist::Persist;
use crate::time::Instant;
use fleetmesh_crdt::config::limits::RELEASE_VERSIONS_MAX;
use fleetmesh_crdt::{AppliedRelease, Digest, ReleaseError, Replica, SignedRelease};
use std::collections::BTreeMap;

/// The release this agent runs of each document, the signed release behind
/// it, and whether it is in safe mode. A document only ever moves forward
/// (rollback protection, [`AppliedRelease::advance`]).
#[derive(Default)]
pub(super) struct Releases {
    /// The release run per document, as persisted.
    applied: BTreeMap<String, AppliedRelease>,
    /// The signed releases behind `applied`, re-verified when the trust
    /// chain changes; a restarted agent finds them again in the log.
    running: BTreeMap<String, SignedRelease>,
    safe_mode: bool,
}

impl Releases {
    /// The release run per document.
    pub(super) fn applied(&self) -> &BTreeMap<String, AppliedRelease> {
        &self.applied
    }

    /// The signed release run per document, once the log holds it.
    pub(super) fn running(&self) -> &BTreeMap<String, SignedRelease> {
        &self.running
    }

    /// Takes back what was persisted before a restart; the signed releases
    /// are found again with [`Releases::find_running`].
    pub(super) fn restore(&mut self, applied: BTreeMap<String, AppliedRelease>) {
        self.applied = applied;
        self.running.clear();
    }

    /// Moves the release's document to `next`: the record to persist, or
    /// why not (not newer, expired), changing nothing.
    pub(super) fn advance(
        &mut self,
        next: &SignedRelease,
        now_millis: u64,
    ) -> Result<AppliedRelease, ReleaseError> {
        let doc = &next.release.doc;
        let applied = AppliedRelease::advance(self.applied.get(doc), next, now_millis)?;
        self.running.insert(doc.clone(), next.clone());
        self.applied.insert(doc.clone(), applied.clone());
        Ok(applied)
    }

    /// Goes back from the staged release run for `doc` to `predecessor`
    /// (its gate failed): the record to persist, or why not.
    pub(super) fn revert(
        &mut self,
        doc: &str,
        predecessor: &SignedRelease,
    ) -> Result<AppliedRelease, ReleaseError> {
        let applied = self
            .applied
            .get(doc)
            .ok_or_else(|| ReleaseError::OtherDocument(doc.to_owned()))?
            .revert(predecessor)?;
        self.running.insert(doc.to_owned(), predecessor.clone());
        self.applied.insert(doc.to_owned(), applied.clone());
        Ok(applied)
    }

    /// Marks void the release run of `doc` (a signer was revoked): the
    /// record to persist, if one was run.
    pub(super) fn void(&mut self, doc: &str) -> Option<AppliedRelease> {
        self.running.remove(doc);
        let applied = self.applied.get_mut(doc)?;
        *applied = applied.voided();
        Some(applied.clone())
    }

    /// Picks up the signed release behind a restored record of `doc`,
    /// looked up by digest in the release log.
    pub(super) fn find_running(
        &mut self,
        doc: &str,
        lookup: impl FnOnce(&Digest) -> Option<SignedRelease>,
    ) {
        if self.running.contains_key(doc) {
            return;
        }
        let Some(applied) = self.applied.get(doc).filter(|applied| !applied.void) else {
            return;
        };
        if let Some(release) = lookup(&applied.content_digest()) {
            self.running.insert(doc.to_owned(), release);
        }
    }

    /// Records whether the agent is in safe mode: whether that changed.
    pub(super) fn set_safe_mode(&mut self, safe_mode: bool) -> bool {
        std::mem::replace(&mut self.safe_mode, safe_mode) != safe_mode
    }

    /// Asserts that each record is filed under its document, and that a
    /// signed release run is the one its record names (its predecessor
    /// after a revert), never a void one.
    pub(super) fn check_invariants(&self) {
        for (doc, applied) in &self.applied {
            assert_eq!(&applied.doc, doc, "release filed under another document");
        }
        for (doc, release) in &self.running {
            let applied = self
                .applied
                .get(doc)
                .expect("a release runs only with its record");
            assert!(!applied.void, "a void release still runs");
            assert_eq!(
                applied.content_digest(),
                release.release.digest(),
                "the release run is not the one recorded"
            );
        }
    }
}

impl Agent {
    /// Marks void every release run whose signatures no longer reach the
    /// threshold under the new trust: a revoked key signed it. A void
    /// release may be replaced by another of its version (see
    /// [`AppliedRelease::void`]).
    pub(super) fn void_revoked_releases(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        let revoked: Vec<String> = self
            .releases
            .running()
            .iter()
            .filter(|(_, release)| !self.replicas.release_holds(release, now_millis))
            .map(|(doc, _)| doc.clone())
            .collect();
        for doc in revoked {
            if let Some(void) = self.releases.void(&doc) {
                self.stats.releases_voided += 1;
                self.outbox.persist(Persist::Release(void));
            }
        }
    }

    /// Moves each document to its next release while that release's
    /// changes have all arrived, one version at a time.
    pub(super) fn advance_releases(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        let docs: Vec<String> = self
            .replicas
            .releases()
            .documents()
            .map(str::to_owned)
            .collect();
        for doc in docs {
            let log = self.replicas.releases();
            self.releases.find_running(&doc, |digest| log.entry(digest));
            for _ in 0..RELEASE_VERSIONS_MAX {
                let current = self.releases.applied().get(&doc);
                let fresh = current.is_none();
                let Some(next) = self.replicas.releases().next_after(&doc, current) else {
                    break;
                };
                if !self.replicas.config().has_all(&doc, &next.release.heads) {
                    break;
                }
                let next = next.clone();
                let next = match self.rollout_gate(now, &next) {
                    Gate::Unstaged | Gate::Open => next,
                    // Recorded as reverted without running it, so later
                    // releases can follow.
                    Gate::Halted => {
                        if !self.go_back(&doc, &next, false, now_millis) {
                            break;
                        }
                        continue;
                    }
                    // A fresh agent runs the predecessor meanwhile, when
                    // that one's own rollout (if staged) lets it.
                    Gate::Waiting => match self.predecessor(&next) {
                        Some(predecessor)
                            if fresh
                                && matches!(
                                    self.rollout_gate(now, &predecessor),
                                    Gate::Unstaged | Gate::Open
                                ) =>
                        {
                            predecessor
                        }
                        _ => break,
                    },
                };
                let Ok(applied) = self.releases.advance(&next, now_millis) else {
                    self.stats.releases_refused += 1;
                    break;
                };
                self.stats.releases_applied += 1;
                self.outbox.persist(Persist::Release(applied.clone()));
                self.push_event(Event::ReleaseApplied {
                    doc: doc.clone(),
                    version: applied.version,
                    digest: applied.digest,
                });
            }
        }
        self.update_safe_mode(now);
        self.refresh_policy(now);
    }

    /// Announces entering or leaving safe mode.
    pub(super) fn update_safe_mode(&mut self, now: Instant) {
        let safe_mode = self.is_safe_mode(now);
        if self.releases.set_safe_mode(safe_mode) {
            if safe_mode {
                self.stats.safe_mode_entered += 1;
            }
            self.push_event(Event::SafeMode { entered: safe_mode });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::Release;

    fn release(version: u64, expires_millis: Option<u64>) -> SignedRelease {
        SignedRelease::new(Release {
            rollout: None,
            doc: "app".to_owned(),
            version,
            heads: Vec::new(),
            expires_millis,
            trust_version: 1,
        })
    }

    #[test]
    fn moves_forward_only_and_runs_what_it_recorded() {
        let mut releases = Releases::default();
        let first = releases.advance(&release(1, None), 0).unwrap();
        assert_eq!((first.version, first.void), (1, false));
        releases.advance(&release(2, None), 0).unwrap();
        assert!(releases.advance(&release(2, None), 0).is_err(), "not newer");
        assert!(releases.advance(&release(1, None), 0).is_err(), "rollback");
        assert!(
            releases.advance(&release(3, Some(5)), 10).is_err(),
            "expired"
        );
        assert_eq!(releases.applied()["app"].version, 2);
        assert_eq!(releases.running()["app"], release(2, None));
        releases.check_invariants();
    }

    #[test]
    fn a_void_release_stops_running_and_may_be_replaced_at_its_version() {
        let mut releases = Releases::default();
        releases.advance(&release(2, None), 0).unwrap();
        let void = releases.void("app").unwrap();
        assert!(void.void && void.version == 2);
        assert!(releases.running().is_empty());
        assert!(releases.void("other").is_none());
        releases.check_invariants();
        let mut other = release(2, None);
        other.release.trust_version = 2;
        assert!(releases.advance(&other, 0).is_ok(), "another release of v2");
        releases.check_invariants();
    }

    #[test]
    fn a_restored_record_finds_its_signed_release_by_digest_unless_void() {
        let signed = release(4, None);
        let mut source = Releases::default();
        let record = source.advance(&signed, 0).unwrap();
        let mut releases = Releases::default();
        releases.restore(BTreeMap::from([("app".to_owned(), record.clone())]));
        releases.find_running("app", |_| None);
        assert!(releases.running().is_empty(), "not in the log yet");
        releases.find_running("app", |digest| {
            (*digest == record.digest).then(|| signed.clone())
        });
        assert_eq!(releases.running()["app"], signed);
        releases.check_invariants();
        let mut voided = Releases::default();
        voided.restore(BTreeMap::from([("app".to_owned(), record.voided())]));
        voided.find_running("app", |_| Some(signed.clone()));
        assert!(voided.running().is_empty(), "a void record runs nothing");
    }

    #[test]
    fn a_revert_runs_the_predecessor_and_still_refuses_the_failed_version() {
        let mut releases = Releases::default();
        releases.advance(&release(1, None), 0).unwrap();
        let failed = release(2, Some(99));
        releases.advance(&failed, 0).unwrap();
        let back = releases.revert("app", &release(1, None)).unwrap();
        assert_eq!(back.version, 2, "the version stays");
        assert_eq!(back.digest, failed.release.digest());
        assert_eq!(back.content_digest(), release(1, None).release.digest());
        assert_eq!(back.expires_millis, None, "the predecessor's expiry");
        assert_eq!(releases.running()["app"], release(1, None));
        releases.check_invariants();
        assert!(releases.advance(&failed, 0).is_err(), "never again");
        assert!(
            releases.revert("app", &release(3, None)).is_err(),
            "not forward"
        );
        assert!(releases.revert("other", &release(1, None)).is_err());
        releases.advance(&release(3, None), 0).unwrap();
        assert_eq!(releases.applied()["app"].reverted_to, None, "moved on");
        releases.check_invariants();
    }

    #[test]
    fn a_restored_revert_finds_the_predecessor() {
        let mut source = Releases::default();
        source.advance(&release(2, None), 0).unwrap();
        let record = source.revert("app", &release(1, None)).unwrap();
        let mut releases = Releases::default();
        releases.restore(BTreeMap::from([("app".to_owned(), record)]));
        releases.find_running("app", |digest| {
            (*digest == release(1, None).release.digest()).then(|| release(1, None))
        });
        assert_eq!(releases.running()["app"], release(1, None));
        releases.check_invariants();
    }

    #[test]
    fn safe_mode_reports_only_changes() {
        let mut releases = Releases::default();
        assert!(!releases.set_safe_mode(false));
        assert!(releases.set_safe_mode(true));
        assert!(!releases.set_safe_mode(true));
        assert!(releases.set_safe_mode(false));
    }

    #[test]
    #[should_panic(expected = "the release run is not the one recorded")]
    fn running_another_release_than_recorded_fails_the_invariants() {
        let mut releases = Releases::default();
        let record = releases.advance(&release(1, None), 0).unwrap();
        releases.restore(BTreeMap::from([("app".to_owned(), record)]));
        releases.find_running("app", |_| Some(release(9, None)));
        releases.check_invariants();
    }
}
