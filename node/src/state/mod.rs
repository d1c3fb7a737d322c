//! The fleet's replicated state as one agent holds it, and how it travels.
//!
//! Every collection (trust chain, certificates, and the collections of
//! `fleetmesh-crdt`) is carried the same way:
//!
//! - **Push.** An entry this agent authors or merges for the first time is
//!   queued and sent to `gossip_fanout` random peers on each gossip round,
//!   `retransmit_limit` times in all. Small entries travel whole; large
//!   ones (config changes) are *announced* by key, and a peer that lacks
//!   one fetches it from the announcer (from the next announcer if that
//!   goes unanswered), so a 100 KB change crosses each link at most about
//!   once instead of being flooded.
//! - **Anti-entropy.** On each sync the initiator sends one root digest per
//!   collection; the peer answers with the bucket digests of the
//!   collections that differ; the initiator sends its `(key, version)`
//!   pairs of the differing buckets; the peer pushes what the initiator
//!   lacks and asks for what it lacks itself. Everything is verified on
//!   merge, whoever sent it.
//!
//! Message and queue sizes are bounded; see the constants.

mod digests;
mod exchange;
mod fetch;
mod merge;
mod message;
mod push;
mod trust;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fleetmesh_crdt::{
    ConfigEntry, ConfigStore, Ctx, Digest, HealthTable, LeaseKind, LeaseTable, Ledger, Merge,
    NodeCert, NodeId, PublicKey, Rejected, ReleaseLog, Replica, SignedHealth, SignedLease,
    SignedRecord, SignedRelease, SignedTrust, TrustChain, Verifier,
};
use serde::{Deserialize, Serialize};

pub(crate) use fleetmesh_crdt::{CertTable, cert_key};
pub use message::StateMessage;

use digests::Digests;
use push::PushQueue;

use crate::encoding::encoded_len;
use crate::limits::{ENTRIES_BYTES_MAX, INLINE_ENTRY_BYTES_MAX};

/// Most fetches in flight; a fetch not answered within its deadline is
/// retried from another announcer.
pub(crate) const FETCHES_MAX: usize = 4_096;

// Constant relationships of the exchange's budgets.
const _: () = {
    use fleetmesh_crdt::config::limits::{CHANGE_BYTES_MAX, EVIDENCE_HISTORY_BYTES_MAX};
    // Malformed-change evidence (the change and its history) fits in the
    // entries of one message, so it can always travel.
    assert!(CHANGE_BYTES_MAX + EVIDENCE_HISTORY_BYTES_MAX <= ENTRIES_BYTES_MAX);
    // An entry small enough to push whole fits in any message.
    assert!(INLINE_ENTRY_BYTES_MAX <= ENTRIES_BYTES_MAX);
};

/// Most other announcers remembered per fetch, to retry from: a lost
/// request or answer then costs one timeout, not a wait for anti-entropy.
pub(crate) const ANNOUNCERS_MAX: usize = 4;

/// The replicated collections, in the order their digests travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Trust documents.
    Trust,
    /// Node certificates.
    Cert,
    /// Leases, one per scope.
    Lease,
    /// Health reports, one per (node, check).
    Health,
    /// The remediation ledger.
    Ledger,
    /// Config document changes and equivocation evidence.
    Config,
    /// Config releases.
    Release,
}

impl Kind {
    /// The collections a restarted agent takes back from its own disk
    /// rather than wait for its peers: certificates, config changes and
    /// releases, leases and the ledger. Not trust (the runtime keeps the
    /// chain in a file of its own) nor health (a report is of a moment, and
    /// its writer renews it).
    pub const SAVED: [Kind; 5] = [
        Kind::Cert,
        Kind::Config,
        Kind::Release,
        Kind::Lease,
        Kind::Ledger,
    ];

    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::Trust,
        Kind::Cert,
        Kind::Lease,
        Kind::Health,
        Kind::Ledger,
        Kind::Config,
        Kind::Release,
    ];

    /// Whether new entries are pushed. Certificates are not: every agent
    /// learns every other's in a fleet's formation, and pushing them would
    /// cost O(N² log N) transfers of a few hundred bytes; they come by
    /// anti-entropy and on demand (a claim about an unknown member fetches
    /// its certificate from the claimer).
    fn pushed(self) -> bool {
        self != Kind::Cert
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the collection is one of [`Kind::SAVED`].
    fn saved(self) -> bool {
        Kind::SAVED.contains(&self)
    }
}

/// One replicated entry of any collection, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A trust document.
    Trust(Box<SignedTrust>),
    /// A node certificate.
    Cert(Box<NodeCert>),
    /// A lease.
    Lease(Box<SignedLease>),
    /// A health report.
    Health(Box<SignedHealth>),
    /// A ledger record.
    Ledger(Box<SignedRecord>),
    /// A config change or equivocation evidence.
    Config(Box<ConfigEntry>),
    /// A config release.
    Release(Box<SignedRelease>),
}

impl Entry {
    /// The writer's HLC time the entry carries and that decides how it
    /// ranks, if any.
    fn dated_millis(&self) -> Option<u64> {
        match self {
            Entry::Lease(lease) => Some(lease.lease.granted_at.millis),
            Entry::Health(report) => Some(report.report.at.millis),
            Entry::Ledger(record) => Some(record.record.at.millis),
            Entry::Trust(_) | Entry::Cert(_) | Entry::Config(_) | Entry::Release(_) => None,
        }
    }

    /// The collection the entry belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Entry::Trust(_) => Kind::Trust,
            Entry::Cert(_) => Kind::Cert,
            Entry::Lease(_) => Kind::Lease,
            Entry::Health(_) => Kind::Health,
            Entry::Ledger(_) => Kind::Ledger,
            Entry::Config(_) => Kind::Config,
            Entry::Release(_) => Kind::Release,
        }
    }
}

/// Counters of the replicated state's traffic and refusals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Entries merged that changed something.
    pub merged: u64,
    /// Entries that were already known or older.
    pub redundant: u64,
    /// Entries held back waiting for something.
    pub pending: u64,
    /// Entries refused: bad signature.
    pub bad_signatures: u64,
    /// Entries refused: signer not authorized (or revoked, quarantined).
    pub unauthorized: u64,
    /// Entries refused: malformed or over a bound.
    pub malformed: u64,
    /// Pushes dropped because the push queue was full.
    pub push_dropped: u64,
    /// Fetches not started because too many were in flight.
    pub fetches_refused: u64,
    /// Entries refused for a timestamp more than [`crate::limits::AHEAD_MAX_MILLIS`]
    /// ahead of this replica's clock.
    pub future_dated: u64,
    /// Panics automerge raised on config changes (malformed ones) that the
    /// config store's guard caught; each such change was refused and its
    /// document rebuilt without it.
    pub automerge_panics: u64,
    /// Emergency stops and resumes refused (signed by a key without the
    /// `stop` role, a revoked one, or malformed); counted in the refusals
    /// above too.
    pub stops_refused: u64,
}

/// Sums counters, e.g. over the agents of a simulated fleet.
impl std::ops::AddAssign<&StateStats> for StateStats {
    fn add_assign(&mut self, other: &StateStats) {
        self.merged += other.merged;
        self.redundant += other.redundant;
        self.pending += other.pending;
        self.bad_signatures += other.bad_signatures;
        self.unauthorized += other.unauthorized;
        self.malformed += other.malformed;
        self.push_dropped += other.push_dropped;
        self.fetches_refused += other.fetches_refused;
        self.future_dated += other.future_dated;
        self.automerge_panics += other.automerge_panics;
        self.stops_refused += other.stops_refused;
    }
}

impl StateStats {
    fn count(&mut self, result: &Result<Merge, Rejected>) {
        match result {
            Ok(Merge::Changed { .. }) => self.merged += 1,
            Ok(Merge::Unchanged) => self.redundant += 1,
            Ok(Merge::Pending) => self.pending += 1,
            Err(Rejected::BadSignature) => self.bad_signatures += 1,
            Err(Rejected::Unauthorized(_) | Rejected::Quarantined) => self.unauthorized += 1,
            Err(Rejected::Malformed(_) | Rejected::QueueFull(_)) => self.malformed += 1,
        }
    }
}

/// What [`Replicas::load`] did with the entries it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Entries merged.
    pub merged: u64,
    /// Entries already known, superseded, or held back for a missing
    /// parent.
    pub known: u64,
    /// Entries refused: bad signature, unauthorized signer, malformed or
    /// dated ahead.
    pub refused: u64,
}

/// What one replica holds, in encoded bytes: the size of the replicated
/// state as it would be saved or sent, per collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateBytes {
    /// Entries held per collection, in [`Kind::ALL`] order.
    pub counts: [usize; Kind::ALL.len()],
    /// Their encoded bytes per collection, in [`Kind::ALL`] order (config:
    /// the signed changes, kept to hand out and to rebuild from).
    pub entries: [usize; Kind::ALL.len()],
    /// The config documents' automerge state, as saved.
    pub documents: usize,
    /// Config changes waiting for their parents or a newer trust version.
    pub pending: usize,
}

impl StateBytes {
    /// Everything together.
    pub fn total(&self) -> usize {
        self.entries.iter().sum::<usize>() + self.documents + self.pending
    }
}

/// What merging some entries did that the agent must act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// The trust chain changed: revocations must be enforced.
    pub trust_changed: bool,
    /// Nodes newly admitted (or re-admitted with a new certificate).
    pub admitted: Vec<NodeId>,
    /// Config documents or releases changed: the release to run may have
    /// moved.
    pub config_changed: bool,
    /// Ledger records new to this replica, by digest.
    pub records: Vec<Digest>,
    /// Health reports, leases or ledger records changed: remediation may
    /// have something to do.
    pub remedy_changed: bool,
    /// Entries of the [`Kind::SAVED`] collections that merged, or that
    /// are held back waiting for a parent or a newer trust version: what a
    /// driver journals so that a restart finds them without a peer
    /// (`Output::Journal`). Merging them again is idempotent.
    pub journal: Vec<Entry>,
}

/// One agent's replica of the fleet's state.
pub struct Replicas {
    trust: TrustChain,
    certs: CertTable,
    leases: LeaseTable,
    health: HealthTable,
    ledger: Ledger,
    config: ConfigStore,
    releases: ReleaseLog,
    digests: [Digests; Kind::ALL.len()],
    push: PushQueue,
    fetching: BTreeMap<(Kind, Digest), Fetch>,
    fetch_timeout_millis: u64,
    revoked_ids: BTreeSet<NodeId>,
    /// Lease scopes whose voter set the released policy names: a lease of
    /// one of them must be a quorum lease of exactly those voters.
    governed: BTreeMap<String, BTreeSet<PublicKey>>,
    verifier: Arc<dyn Verifier>,
    stats: StateStats,
}

/// A fetch in flight.
struct Fetch {
    /// When the peer asked counts as having failed to answer.
    deadline: u64,
    /// The peer asked.
    asked: NodeId,
    /// Other peers that announced the entry meanwhile, oldest first, at
    /// most [`ANNOUNCERS_MAX`]: each holds it, so each can be asked next.
    announcers: Vec<NodeId>,
}

impl Replicas {
    /// A replica trusting `trust`, admitting `own` (this agent's
    /// certificate, checked by the caller). A fetch unanswered for
    /// `fetch_timeout_millis` is asked of another announcer.
    pub fn new(
        trust: TrustChain,
        own: NodeCert,
        verifier: Arc<dyn Verifier>,
        now_millis: u64,
        fetch_timeout_millis: u64,
    ) -> Replicas {
        let mut replicas = Replicas {
            trust,
            certs: CertTable::default(),
            leases: LeaseTable::new(),
            health: HealthTable::new(),
            ledger: Ledger::new(),
            config: ConfigStore::new(),
            releases: ReleaseLog::new(),
            digests: Default::default(),
            push: PushQueue::default(),
            fetching: BTreeMap::new(),
            fetch_timeout_millis,
            revoked_ids: BTreeSet::new(),
            governed: BTreeMap::new(),
            verifier,
            stats: StateStats::default(),
        };
        replicas.after_trust_change(now_millis);
        let _ = replicas.merge(Entry::Cert(Box::new(own)), now_millis);
        replicas
    }

    /// The trust chain.
    pub fn trust(&self) -> &TrustChain {
        &self.trust
    }

    /// Whether the trust chain revokes the key whose id is `id`.
    pub fn is_revoked_id(&self, id: NodeId) -> bool {
        self.revoked_ids.contains(&id)
    }

    /// The admitted nodes.
    pub fn certs(&self) -> &CertTable {
        &self.certs
    }

    /// The leases.
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// The health reports.
    pub fn health(&self) -> &HealthTable {
        &self.health
    }

    /// The remediation ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The config documents.
    pub fn config(&self) -> &ConfigStore {
        &self.config
    }

    /// The config releases.
    pub fn releases(&self) -> &ReleaseLog {
        &self.releases
    }

    /// Sets the lease scopes whose voters the released policy names
    /// (`remediate:<rule>` and its voters): from now on a lease of such a
    /// scope is admitted only as a quorum lease of exactly those voters,
    /// so a node that signs a lease naming itself sole voter at a huge
    /// epoch cannot take a budget scope's fencing token. Leases held that
    /// break the new rule are dropped.
    pub fn govern_leases(&mut self, governed: BTreeMap<String, BTreeSet<PublicKey>>) {
        if self.governed == governed {
            return;
        }
        self.governed = governed;
        let governed = &self.governed;
        let dropped = self
            .leases
            .retain(|signed| governs(governed, signed).is_ok());
        if dropped > 0 {
            self.digests[Kind::Lease.index()] = Digests::of(&self.versions(Kind::Lease));
        }
    }

    /// Counters.
    pub fn stats(&self) -> StateStats {
        StateStats {
            automerge_panics: self.config.panics_caught(),
            ..self.stats.clone()
        }
    }

    /// What this replica holds, per collection. Encodes every entry: for
    /// measuring, not for every tick.
    pub fn approx_bytes(&self) -> StateBytes {
        let mut bytes = StateBytes {
            documents: self.config.saved_bytes(),
            pending: self.config.pending_bytes(),
            ..StateBytes::default()
        };
        for kind in Kind::ALL {
            for (key, _) in self.versions(kind) {
                if let Some(entry) = self.entry(kind, &key) {
                    bytes.counts[kind.index()] += 1;
                    bytes.entries[kind.index()] += encoded_len(&entry);
                }
            }
        }
        bytes
    }

    /// Entries waiting to be pushed.
    pub fn push_len(&self) -> usize {
        self.push.len()
    }

    /// Every entry of the [`Kind::SAVED`] collections, as they travel,
    /// and the config changes and releases still held back for a parent
    /// or a newer trust version (merged again, they wait again).
    pub fn saved(&self) -> Vec<Entry> {
        let held = Kind::SAVED.iter().flat_map(|&kind| {
            self.versions(kind)
                .into_iter()
                .filter_map(move |(key, _)| self.entry(kind, &key))
        });
        let changes = self
            .config
            .held_back()
            .map(|change| Entry::Config(Box::new(ConfigEntry::Change(change.clone()))));
        let releases = self
            .releases
            .held_back()
            .map(|release| Entry::Release(Box::new(release.clone())));
        held.chain(changes).chain(releases).collect()
    }

    /// The roots of the [`Kind::SAVED`] collections: unchanged roots
    /// mean there is nothing new to save.
    pub fn saved_roots(&self) -> [Digest; Kind::SAVED.len()] {
        Kind::SAVED.map(|kind| self.root(kind))
    }

    fn rebuild_digests(&mut self) {
        for kind in Kind::ALL {
            self.digests[kind.index()] = Digests::of(&self.versions(kind));
        }
    }

    fn versions(&self, kind: Kind) -> Vec<(Digest, Digest)> {
        match kind {
            Kind::Trust => trust::trust_versions(&self.trust),
            Kind::Cert => self.certs.versions(),
            Kind::Lease => self.leases.versions(),
            Kind::Health => self.health.versions(),
            Kind::Ledger => self.ledger.versions(),
            Kind::Config => self.config.versions(),
            Kind::Release => self.releases.versions(),
        }
    }

    /// The entry of `kind` held under `key`.
    pub fn entry(&self, kind: Kind, key: &Digest) -> Option<Entry> {
        match kind {
            Kind::Trust => {
                trust::trust_entry(&self.trust, key).map(|doc| Entry::Trust(Box::new(doc)))
            }
            Kind::Cert => self
                .certs
                .entry(key)
                .map(|cert| Entry::Cert(Box::new(cert))),
            Kind::Lease => self
                .leases
                .entry(key)
                .map(|lease| Entry::Lease(Box::new(lease))),
            Kind::Health => self
                .health
                .entry(key)
                .map(|report| Entry::Health(Box::new(report))),
            Kind::Ledger => self
                .ledger
                .entry(key)
                .map(|record| Entry::Ledger(Box::new(record))),
            Kind::Config => self
                .config
                .entry(key)
                .map(|change| Entry::Config(Box::new(change))),
            Kind::Release => self
                .releases
                .entry(key)
                .map(|release| Entry::Release(Box::new(release))),
        }
    }

    /// Whether `release` still verifies under the trust chain now: it
    /// stops once a signer is revoked and the rest miss the threshold.
    pub fn release_holds(&self, release: &SignedRelease, now_millis: u64) -> bool {
        with_ctx(
            &self.trust,
            Some(&self.certs),
            self.verifier.as_ref(),
            now_millis,
            |ctx| release.verify(ctx).is_ok(),
        )
    }

    /// The root digest of one collection: equal on two replicas holding
    /// the same entries.
    pub fn root(&self, kind: Kind) -> Digest {
        self.digests[kind.index()].root()
    }
}

impl Merged {
    pub(super) fn absorb(&mut self, other: Merged) {
        self.trust_changed |= other.trust_changed;
        self.admitted.extend(other.admitted);
        self.config_changed |= other.config_changed;
        self.records.extend(other.records);
        self.remedy_changed |= other.remedy_changed;
        self.journal.extend(other.journal);
    }
}

/// Whether `lease` may be held under the governed scopes' voter sets.
fn governs(
    governed: &BTreeMap<String, BTreeSet<PublicKey>>,
    lease: &SignedLease,
) -> Result<(), Rejected> {
    let Some(voters) = governed.get(&lease.lease.scope) else {
        return Ok(());
    };
    match &lease.lease.kind {
        LeaseKind::Quorum { voters: named, .. } if named == voters => Ok(()),
        _ => Err(Rejected::Unauthorized(format!(
            "scope {} takes only a quorum lease of the voters the released policy names",
            lease.lease.scope
        ))),
    }
}

/// Runs `f` with a merge context. `certs` says who is admitted; `None`
/// admits everybody, for merging the certificates themselves.
fn with_ctx<T>(
    trust: &TrustChain,
    certs: Option<&CertTable>,
    verifier: &dyn Verifier,
    now_millis: u64,
    f: impl FnOnce(&Ctx<'_>) -> T,
) -> T {
    let admitted = |key: &PublicKey| certs.is_none_or(|certs| certs.admits_key(key, now_millis));
    f(&Ctx {
        trust,
        admitted: &admitted,
        verifier,
        now_millis,
    })
}
