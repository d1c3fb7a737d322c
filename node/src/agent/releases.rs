//! The releases this agent runs: moving forward to the newest valid release
//! of each document, voiding those whose signers were revoked, and safe mode
//! while a release it runs is expired or void.

use super::Agent;
use crate::event::Event;
use crate::persist::Persist;
use crate::time::Instant;
use fleetmesh_crdt::config::limits::RELEASE_VERSIONS_MAX;
use fleetmesh_crdt::{AppliedRelease, Replica};

impl Agent {
    /// Marks void every release run whose signatures no longer reach the
    /// threshold under the new trust: a revoked key signed it. A void
    /// release may be replaced by another of its version (see
    /// [`AppliedRelease::void`]).
    pub(super) fn void_revoked_releases(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        let revoked: Vec<String> = self
            .running
            .iter()
            .filter(|(_, release)| !self.replicas.release_holds(release, now_millis))
            .map(|(doc, _)| doc.clone())
            .collect();
        for doc in revoked {
            self.running.remove(&doc);
            let Some(applied) = self.applied.get(&doc) else {
                continue;
            };
            let void = applied.voided();
            self.stats.releases_voided += 1;
            self.outbox.persist(Persist::Release(void.clone()));
            self.applied.insert(doc, void);
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
            self.find_running(&doc);
            for _ in 0..RELEASE_VERSIONS_MAX {
                let current = self.applied.get(&doc);
                let releases = self.replicas.releases();
                let Some(next) = releases.next_after(&doc, current) else {
                    break;
                };
                if !self.replicas.config().has_all(&doc, &next.release.heads) {
                    break;
                }
                let applied = match AppliedRelease::advance(current, next, now_millis) {
                    Ok(applied) => applied,
                    Err(_) => {
                        self.stats.releases_refused += 1;
                        break;
                    }
                };
                self.stats.releases_applied += 1;
                self.running.insert(doc.clone(), next.clone());
                self.outbox.persist(Persist::Release(applied.clone()));
                self.push_event(Event::ReleaseApplied {
                    doc: doc.clone(),
                    version: applied.version,
                    digest: applied.digest,
                });
                self.applied.insert(doc.clone(), applied);
            }
        }
        self.update_safe_mode(now);
        self.refresh_policy(now);
    }

    /// Picks up the signed release behind a restored record once the log
    /// holds it again.
    fn find_running(&mut self, doc: &str) {
        if self.running.contains_key(doc) {
            return;
        }
        let Some(applied) = self.applied.get(doc).filter(|applied| !applied.void) else {
            return;
        };
        if let Some(release) = self.replicas.releases().entry(&applied.digest) {
            self.running.insert(doc.to_owned(), release);
        }
    }

    /// Announces entering or leaving safe mode.
    pub(super) fn update_safe_mode(&mut self, now: Instant) {
        let safe_mode = self.is_safe_mode(now);
        if safe_mode != self.safe_mode {
            self.safe_mode = safe_mode;
            if safe_mode {
                self.stats.safe_mode_entered += 1;
            }
            self.push_event(Event::SafeMode { entered: safe_mode });
        }
    }
}
