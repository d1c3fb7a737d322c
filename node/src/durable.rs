//! What an agent must keep across restarts, and how it asks its driver to.
//!
//! The core does no I/O, so it cannot write a file: it hands the driver a
//! [`Persist`] record through [`crate::Agent::poll_persist`], and the driver
//! makes it durable before it sends anything the agent queued in the same
//! step. On restart the driver folds every record it kept into a
//! [`Durable`] and gives it back with [`crate::Agent::restore`].

use std::collections::BTreeMap;

use fleetmesh_crdt::AppliedRelease;

/// One record for the driver to make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist {
    /// The release this agent now runs for a document; it must never go
    /// back to an older one, even after a restart (rollback protection).
    Release(AppliedRelease),
}

/// Everything an agent persisted, as a restart hands it back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The highest release applied, per document.
    pub releases: BTreeMap<String, AppliedRelease>,
}

impl Durable {
    /// Folds one persisted record in: a later record replaces an earlier
    /// one of the same document, and an older version never replaces a
    /// newer one, so a driver may replay its log in any order.
    pub fn absorb(&mut self, record: Persist) {
        match record {
            Persist::Release(applied) => {
                let newer = self
                    .releases
                    .get(&applied.doc)
                    .is_none_or(|held| held.version < applied.version);
                if newer {
                    self.releases.insert(applied.doc.clone(), applied);
                }
            }
        }
    }
}
