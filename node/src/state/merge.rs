//! Merging: verifying entries into the collections, whether a peer sent
//! them or the driver loaded them back from disk, and what a trust change
//! drops. Apart from the exchange because it is the one place entries
//! enter the replica; the exchange only decides what to ask and send.

use std::collections::BTreeSet;

use fleetmesh_crdt::{
    ConfigEntry, Ctx, Digest, HealthTable, LeaseTable, Ledger, Merge, PublicKey, Rejected, Replica,
    is_stop_record,
};

use super::trust;
use super::{
    Digests, Entry, Kind, Loaded, Merged, PushQueue, Replicas, StateStats, governs, with_ctx,
};
use crate::limits::AHEAD_MAX_MILLIS;

impl Replicas {
    /// Takes back entries [`Replicas::saved`] returned before a restart.
    /// Each is verified and merged as if a peer had sent it (certificates
    /// first, so their holders' entries are admitted), so a file altered
    /// or signed under revoked keys adds nothing; none is pushed, since
    /// none is news to the fleet.
    pub fn load(&mut self, entries: Vec<Entry>, now_millis: u64) -> (Loaded, Merged) {
        let before = self.stats.clone();
        let (certs, rest): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|entry| entry.kind() == Kind::Cert);
        let mut effects = self.merge_entries(certs, now_millis);
        effects.absorb(self.merge_entries(rest, now_millis));
        // They came from the driver's own files: nothing to journal again.
        effects.journal.clear();
        self.push = PushQueue::default();
        self.stats.push_dropped = before.push_dropped;
        let after = &self.stats;
        let refused = |stats: &StateStats| {
            stats.bad_signatures + stats.unauthorized + stats.malformed + stats.future_dated
        };
        let loaded = Loaded {
            merged: after.merged - before.merged,
            known: (after.redundant - before.redundant) + (after.pending - before.pending),
            refused: refused(after) - refused(&before),
        };
        (loaded, effects)
    }

    /// Verifies and merges one entry; new entries are queued for pushing.
    pub fn merge(&mut self, entry: Entry, now_millis: u64) -> (Result<Merge, Rejected>, Merged) {
        let kind = entry.kind();
        if let Some(dated) = entry.dated_millis()
            && dated > now_millis.saturating_add(AHEAD_MAX_MILLIS)
        {
            self.stats.future_dated += 1;
            let ahead = dated - now_millis;
            let refused = Rejected::Malformed(format!("dated {ahead} ms ahead of this clock"));
            return (Err(refused), Merged::default());
        }
        if let Entry::Lease(lease) = &entry
            && let Err(refused) = governs(&self.governed, lease)
        {
            let refused = Err(refused);
            self.stats.count(&refused);
            return (refused, Merged::default());
        }
        let stop = matches!(&entry, Entry::Ledger(signed) if is_stop_record(&signed.record.kind));
        let mut effects = Merged::default();
        // A release held back for a newer trust version is journaled and
        // kept aside as it came: it is in no collection to read back from.
        let waiting = matches!(entry, Entry::Release(_)).then(|| entry.clone());
        let Replicas {
            trust: chain,
            certs,
            leases,
            health,
            ledger,
            releases,
            verifier,
            ..
        } = self;
        let verifier = verifier.as_ref();
        let (result, evicted) = match entry {
            Entry::Trust(doc) => (trust::merge_trust(chain, *doc, verifier), false),
            Entry::Cert(cert) => {
                let id = cert.node_id();
                let result = with_ctx(chain, None, verifier, now_millis, |ctx| {
                    certs.merge(*cert, ctx)
                });
                if matches!(result, Ok(Merge::Changed { .. })) {
                    effects.admitted.push(id);
                }
                (result, false)
            }
            Entry::Lease(lease) => with_ctx(chain, Some(certs), verifier, now_millis, |ctx| {
                merge_counted(leases, *lease, ctx, LeaseTable::len)
            }),
            Entry::Health(report) => with_ctx(chain, Some(certs), verifier, now_millis, |ctx| {
                merge_counted(health, *report, ctx, HealthTable::len)
            }),
            Entry::Ledger(record) => with_ctx(chain, Some(certs), verifier, now_millis, |ctx| {
                merge_counted(ledger, *record, ctx, Ledger::len)
            }),
            Entry::Config(change) => {
                let (mut results, effects) = self.merge_config(vec![*change], now_millis);
                return (results.pop().unwrap_or(Ok(Merge::Unchanged)), effects);
            }
            // A release can prune older versions or candidates: the digest
            // is rebuilt rather than patched (releases are rare).
            Entry::Release(release) => (
                with_ctx(chain, Some(certs), verifier, now_millis, |ctx| {
                    releases.merge(*release, ctx)
                }),
                true,
            ),
        };
        self.stats.count(&result);
        if stop && result.is_err() {
            self.stats.stops_refused += 1;
        }
        if let Ok(merge @ Merge::Changed { key, .. }) = &result {
            self.fetching.remove(&(kind, *key));
            // A trust change can revoke config authors and release signers.
            effects.config_changed = matches!(kind, Kind::Trust | Kind::Release);
            effects.remedy_changed = matches!(kind, Kind::Health | Kind::Lease | Kind::Ledger);
            if kind == Kind::Ledger {
                effects.records.push(*key);
            }
            if kind == Kind::Trust {
                effects.trust_changed = true;
                // Rebuilds every digest.
                self.after_trust_change(now_millis);
            } else if evicted {
                // A collection at its bound dropped another entry.
                self.digests[kind.index()] = Digests::of(&self.versions(kind));
            } else {
                self.digests[kind.index()].apply(merge);
            }
            if kind.pushed() && !self.push.push(kind, *key) {
                self.stats.push_dropped += 1;
            }
            if kind.saved() {
                effects.journal.extend(self.entry(kind, key));
            }
        }
        if result == Ok(Merge::Pending)
            && let Some(waiting) = waiting
        {
            effects.journal.push(waiting);
        }
        (result, effects)
    }

    /// Merges config entries in one batch: signatures are checked one by
    /// one, and each document's ready changes are applied by one automerge
    /// call, which is what makes a large document's history cheap to catch
    /// up on.
    fn merge_config(
        &mut self,
        entries: Vec<ConfigEntry>,
        now_millis: u64,
    ) -> (Vec<Result<Merge, Rejected>>, Merged) {
        // Kept to journal: a change held back for its parent is in no
        // collection to read it back from, and reading the merged ones back
        // one by one would cost more than this copy.
        let copies = entries.clone();
        let Replicas {
            trust,
            certs,
            config,
            verifier,
            ..
        } = self;
        let results = with_ctx(trust, Some(certs), verifier.as_ref(), now_millis, |ctx| {
            config.merge_batch(entries, ctx)
        });
        let mut effects = Merged::default();
        for (result, copy) in results.iter().zip(copies) {
            self.stats.count(result);
            if let Ok(Merge::Changed { key, .. }) = result {
                effects.config_changed = true;
                self.fetching.remove(&(Kind::Config, *key));
                if !self.push.push(Kind::Config, *key) {
                    self.stats.push_dropped += 1;
                }
            }
            let copy = Entry::Config(Box::new(copy));
            match result {
                Ok(Merge::Changed { .. }) => effects.journal.push(copy),
                Ok(Merge::Pending) => effects.journal.push(copy),
                Ok(Merge::Unchanged) | Err(_) => {}
            }
        }
        // Results do not show everything a batch did: changes waiting for
        // a parent are applied along with it, and a quarantine rebuilds
        // documents without the equivocator's changes.
        let quarantined = results
            .iter()
            .any(|result| matches!(result, Err(Rejected::Quarantined)));
        if effects.config_changed || quarantined {
            effects.config_changed = true;
            self.digests[Kind::Config.index()] = Digests::of(&self.config.versions());
        }
        if quarantined {
            // Evidence found here is news the results do not name: every
            // replica must quarantine the key, so it is pushed at once.
            let evidence: Vec<Digest> = self.config.evidence_keys().copied().collect();
            for key in evidence {
                if !self.push.push(Kind::Config, key) {
                    self.stats.push_dropped += 1;
                }
                effects.journal.extend(self.entry(Kind::Config, &key));
            }
        }
        (results, effects)
    }

    /// Merges entries as they arrived in one message, config changes in one
    /// batch.
    pub(super) fn merge_entries(&mut self, entries: Vec<Entry>, now_millis: u64) -> Merged {
        let mut effects = Merged::default();
        let mut changes = Vec::new();
        for entry in entries {
            match entry {
                Entry::Config(change) => changes.push(*change),
                other => effects.absorb(self.merge(other, now_millis).1),
            }
        }
        if !changes.is_empty() {
            effects.absorb(self.merge_config(changes, now_millis).1);
        }
        effects
    }

    /// Drops whatever the trust chain no longer vouches for: the
    /// certificates first, since the other collections' writers must hold
    /// one.
    pub(super) fn after_trust_change(&mut self, now_millis: u64) {
        // Entries signed under a trust version this replica lacked were
        // held back; the ones the new trust admits are pushed like any
        // other news, not left to anti-entropy.
        let waiting = [Kind::Config, Kind::Release];
        let before = waiting.map(|kind| {
            self.versions(kind)
                .into_iter()
                .map(|(key, _)| key)
                .collect::<BTreeSet<Digest>>()
        });
        let verifier = self.verifier.as_ref();
        with_ctx(&self.trust, None, verifier, now_millis, |ctx| {
            self.certs.trust_changed(ctx)
        });
        with_ctx(
            &self.trust,
            Some(&self.certs),
            verifier,
            now_millis,
            |ctx| {
                self.leases.trust_changed(ctx);
                self.health.trust_changed(ctx);
                self.ledger.trust_changed(ctx);
                self.config.trust_changed(ctx);
                self.releases.trust_changed(ctx);
            },
        );
        self.revoked_ids = self
            .trust
            .head()
            .doc
            .revoked
            .iter()
            .map(PublicKey::node_id)
            .collect();
        self.rebuild_digests();
        for (kind, before) in waiting.into_iter().zip(before) {
            for (key, _) in self.versions(kind) {
                if !before.contains(&key) && !self.push.push(kind, key) {
                    self.stats.push_dropped += 1;
                }
            }
        }
    }
}

/// Merges `entry` into `collection`; also says whether the merge evicted
/// some other entry (the collection did not grow by the new key).
fn merge_counted<R: Replica>(
    collection: &mut R,
    entry: R::Entry,
    ctx: &Ctx<'_>,
    len: impl Fn(&R) -> usize,
) -> (Result<Merge, Rejected>, bool) {
    let before = len(collection);
    let result = collection.merge(entry, ctx);
    let grew = usize::from(matches!(result, Ok(Merge::Changed { replaced: None, .. })));
    (result, len(collection) != before + grew)
}
