//! What the driver keeps on disk besides the core's durable state: the
//! replica snapshot (loaded at start, written at intervals and when the
//! journal grows past its bound), the journal replayed after it, and the
//! trust chain file.

use super::Driver;
use crate::journal::Replayed;
use crate::state::REPLICAS_SAVE_INTERVAL;

impl Driver {
    /// Takes back the replica snapshot of the previous process, if any. A
    /// damaged one is reported and set aside: all it held is the fleet's,
    /// and the agent catches up from its peers instead.
    pub(super) fn load_replicas(&mut self) {
        let path = self.state.replicas_path();
        let snapshot = match self.state.load_replicas() {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return,
            Err(error) => return self.set_aside_replicas(&format!("{error:#}")),
        };
        let now = self.clock.now();
        match self.agent.load_replicas(now, &snapshot) {
            Ok(loaded) => {
                self.stats.replicas_loaded += loaded.merged;
                self.stats.replicas_refused += loaded.refused;
                self.replicas_saved = self.agent.saved_roots();
                tracing::info!(
                    path = %path.display(),
                    merged = loaded.merged,
                    known = loaded.known,
                    refused = loaded.refused,
                    "replicas loaded"
                );
            }
            Err(error) => self.set_aside_replicas(&format!("{}: {error}", path.display())),
        }
    }

    fn set_aside_replicas(&mut self, why: &str) {
        self.stats.replicas_damaged += 1;
        match self.state.set_aside_replicas() {
            Ok(aside) => tracing::error!(
                error = why,
                moved_to = %aside.display(),
                "replica snapshot damaged: not used, set aside; the agent catches up from its peers"
            ),
            Err(error) => tracing::error!(
                error = why,
                set_aside = format!("{error:#}"),
                "replica snapshot damaged: not used; the agent catches up from its peers"
            ),
        }
    }

    /// Takes back the entries journaled since that snapshot, after it: a
    /// damaged tail was cut off as the journal opened, and is reported
    /// here; the agent starts with every record before it.
    pub(super) fn replay_journal(&mut self, replayed: Replayed) {
        let path = self.state.journal_path();
        if let Some(damage) = &replayed.damage {
            self.stats.journal_damaged += 1;
            tracing::warn!(
                path = %path.display(),
                damage,
                cut_bytes = replayed.cut_bytes,
                kept = replayed.entries.len(),
                "replica journal cut at its last whole record: a write torn by a crash (never acknowledged) or damaged on disk; anything lost comes back from peers"
            );
        }
        if replayed.undecodable > 0 {
            tracing::warn!(
                path = %path.display(),
                records = replayed.undecodable,
                "journal records skipped: whole, but not entries this fleetmesh reads"
            );
        }
        if replayed.entries.is_empty() {
            return;
        }
        let records = replayed.entries.len();
        let now = self.clock.now();
        let loaded = self.agent.load_journal(now, replayed.entries);
        self.stats.journal_replayed += loaded.merged;
        self.stats.replicas_refused += loaded.refused;
        tracing::info!(
            path = %path.display(),
            records,
            merged = loaded.merged,
            known = loaded.known,
            refused = loaded.refused,
            "replica journal replayed"
        );
    }

    /// Writes a replica snapshot if the saved collections changed since the
    /// last one or the journal holds anything. A failure is retried at the
    /// next interval and reported once per streak of failures; the journal
    /// still holds what the snapshot would have.
    pub(super) fn save_replicas(&mut self) {
        if self.agent.saved_roots() == self.replicas_saved && self.journal.is_empty() {
            return;
        }
        match self.write_snapshot() {
            Ok(()) => self.replicas_failing = false,
            Err(error) => {
                if !self.replicas_failing {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "cannot save the replica snapshot; retrying every {REPLICAS_SAVE_INTERVAL:?}"
                    );
                }
                self.replicas_failing = true;
            }
        }
    }

    /// Writes a replica snapshot (synced and renamed into place), then
    /// empties the journal, which the snapshot now holds.
    pub(super) fn write_snapshot(&mut self) -> anyhow::Result<()> {
        let roots = self.agent.saved_roots();
        let written = self
            .agent
            .save_replicas()
            .map_err(anyhow::Error::from)
            .and_then(|snapshot| self.state.save_replicas(&snapshot));
        if let Err(error) = written {
            self.stats.replicas_write_errors += 1;
            return Err(error);
        }
        self.stats.replicas_writes += 1;
        self.replicas_saved = roots;
        if let Err(error) = self.journal.clear() {
            // It holds only what the snapshot does: harmless, retried.
            tracing::warn!(
                error = format!("{error:#}"),
                "cannot empty the replica journal after a snapshot"
            );
        }
        Ok(())
    }

    /// Saves the trust chain when the core holds a newer version than the
    /// file, so a restart begins from the newest verified trust.
    pub(super) fn save_trust(&mut self) {
        let chain = self.agent.replicas().trust();
        let version = chain.head().doc.version;
        if version <= self.trust_version_saved {
            return;
        }
        match self.state.save_trust(chain) {
            Ok(()) => {
                self.stats.trust_writes += 1;
                tracing::info!(version, "saved trust version");
            }
            Err(error) => {
                self.stats.trust_write_errors += 1;
                tracing::warn!(
                    version,
                    error = format!("{error:#}"),
                    "cannot save the trust chain"
                );
            }
        }
        // Tried once per version: a failing disk is reported, not hammered.
        self.trust_version_saved = version;
    }
}
