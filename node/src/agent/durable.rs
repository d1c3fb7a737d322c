//! What survives a restart: restoring the durable state the driver kept, and
//! saving and loading the replicated collections (snapshot and journal).

use super::{Agent, millis};
use crate::persist::Durable;
use crate::snapshot::{self, SnapshotError};
use crate::state::{Entry, Kind, Loaded};
use crate::time::Instant;
use fleetmesh_crdt::Digest;

impl Agent {
    /// Restores what this agent persisted before a restart (see
    /// [`Output::Persist`]); call before any other input. The voter
    /// treats each restored grant as made now, its clock reading across the
    /// restart being moot, and grants no new epoch of that scope for a full
    /// ttl plus lock-delay from `now`. Releases are never taken back: an
    /// agent restored at version 5 refuses every release up to 5, whatever
    /// the mesh offers.
    pub fn restore(&mut self, now: Instant, durable: Durable) {
        self.leases.restore(durable.voter_records, millis(now));
        self.remedy.restore(durable.remediations);
        self.releases.restore(durable.releases);
        self.advance_releases(now);
    }

    /// The replicated collections worth saving ([`Kind::SAVED`]), encoded
    /// as a snapshot for the driver to write to disk; a restarted agent
    /// takes them back with [`Agent::load_replicas`]. Unlike
    /// [`Output::Persist`] nothing depends on it being current: what a
    /// snapshot misses comes by anti-entropy.
    pub fn save_replicas(&self) -> Result<Vec<u8>, SnapshotError> {
        snapshot::encode(&self.replicas.saved())
    }

    /// The roots of the collections [`Agent::save_replicas`] saves: while
    /// they are unchanged there is nothing new to save.
    pub fn saved_roots(&self) -> [Digest; Kind::SAVED.len()] {
        self.replicas.saved_roots()
    }

    /// Takes back a snapshot [`Agent::save_replicas`] wrote before a
    /// restart, after [`Agent::restore`]: every entry is verified and merged
    /// as if a peer had sent it, and the release to run moves on if the
    /// snapshot holds a newer one. A snapshot that does not decode changes
    /// nothing.
    pub fn load_replicas(&mut self, now: Instant, bytes: &[u8]) -> Result<Loaded, SnapshotError> {
        let entries = snapshot::decode(bytes)?;
        Ok(self.load_journal(now, entries))
    }

    /// Takes back entries [`Output::Journal`] handed out before a
    /// restart, after [`Agent::load_replicas`]: verified and merged like a
    /// snapshot's, and not handed out to journal again. Entries the
    /// snapshot already holds are merged again harmlessly.
    pub fn load_journal(&mut self, now: Instant, entries: Vec<Entry>) -> Loaded {
        let now_millis = self.now_millis(now);
        let (loaded, effects) = self.replicas.load(entries, now_millis);
        self.apply_state_effects(now, effects);
        loaded
    }
}
