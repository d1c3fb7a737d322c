//! The remediation ledger: the fleet's audit trail of what was planned,
//! started, finished, skipped, escalated and approved.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::keys::{Digest, Keypair, PublicKey, Signature, SignatureCheck, domain};
use crate::replica::{
    Ctx, Merge, Rejected, Replica, Verified, check_admitted, check_text, merge_one,
};
use crate::trust::Role;

/// Bounds on ledger records.
pub mod ledger_limits {
    /// Longest rule name, scope or action name, in bytes.
    pub const NAME_MAX: usize = 64;
    /// Longest incident id, in bytes.
    pub const INCIDENT_MAX: usize = 128;
    /// Longest free text (outcome detail, reasons), in bytes.
    pub const TEXT_MAX: usize = 1_024;
    /// Most records kept; the oldest by (`at`, digest) are evicted past it.
    pub const RECORDS_MAX: usize = 100_000;
}

/// Bounds on stop records.
pub mod stop_limits {
    /// Most stop and resume records a ledger keeps; past it the oldest by
    /// (`at`, digest) are evicted (and counted), whatever ordinary records
    /// do.
    pub const STOPS_MAX: usize = 64;
    /// Most `key=value` pairs in a stop's selector.
    pub const SELECTOR_PAIRS_MAX: usize = 16;
    /// Longest a stop may last from when it was signed: a stop is a
    /// standing order, and an operator should look again within a week.
    pub const STOP_FOR_MAX_MILLIS: u64 = 7 * 24 * 3_600_000;
    /// The `rule` of every stop and resume record's ledger key.
    pub const STOP_RULE: &str = "emergency-stop";
}

/// Bounds on rollout attestations.
pub mod attest_limits {
    /// The `rule` of every attestation's ledger key; its incident is
    /// `<doc>@<version>` of the release attested.
    pub const ROLLOUT_RULE: &str = "rollout";

    use super::IdempotencyKey;
    use crate::keys::PublicKey;

    /// The key of `host`'s attestations about release `version` of `doc`.
    pub fn attestation_key(host: PublicKey, doc: &str, version: u64) -> IdempotencyKey {
        IdempotencyKey {
            rule: ROLLOUT_RULE.to_owned(),
            target: host,
            incident: format!("{doc}@{version}"),
        }
    }
}

/// Names one remediation of one incident on one target: every record about
/// it carries this key, and duplicate intents (say from two holders after a
/// partition heals) collapse on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    /// The remediation rule, from config.
    pub rule: String,
    /// The node the action runs on.
    pub target: PublicKey,
    /// The incident, as the planner names it (e.g. the check and when it
    /// first failed).
    pub incident: String,
}

/// What a record states.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKind {
    /// A lease holder plans an action; the target runs it only if `epoch`
    /// is the highest it has seen for `scope`.
    Intent {
        /// The lease scope the planner holds.
        scope: String,
        /// The planner's lease epoch: the fencing token.
        epoch: u64,
        /// The action's name, from config.
        action: String,
        /// The planner, who must be the record's author.
        planner: PublicKey,
        /// Record what would be done, do nothing.
        dry_run: bool,
        /// The target starts the action only if it can finish by then
        /// (HLC milliseconds): the planner's lease runs out at this time, and
        /// no voter grants the next epoch until a ttl plus lock-delay later.
        deadline_millis: u64,
    },
    /// The target asks its scope's lease holder to plan a disruptive step:
    /// its own local steps did not fix the incident.
    Request {
        /// The lease scope whose holder is asked.
        scope: String,
        /// The step's action, from config.
        action: String,
    },
    /// The target started the action of the intent with `epoch`.
    Started {
        /// The intent's epoch.
        epoch: u64,
    },
    /// The action finished.
    Outcome {
        /// Whether it succeeded.
        success: bool,
        /// The process exit code, if it ran a process to completion.
        exit_code: Option<i32>,
        /// Output or error, shortened.
        detail: String,
    },
    /// A safety rail stopped the remediation.
    Skipped {
        /// Which rail, for operators.
        reason: String,
    },
    /// The rule gave up on the target and escalates to a human.
    NeedsHuman {
        /// Why.
        reason: String,
    },
    /// An operator approves a risky action.
    Approval {
        /// The approving operator key, who must be the record's author.
        approver: PublicKey,
        /// When the approval lapses, in HLC milliseconds.
        expires_millis: u64,
        /// The trust version under which the approver holds `approve`.
        trust_version: u64,
    },
    /// An operator pauses all automation on the agents whose tags carry
    /// `selector` ([`crate::stop`]).
    Stop {
        /// The operator key holding `stop`, who must be the record's author.
        stopper: PublicKey,
        /// Tags an agent must carry to be stopped; empty: every agent.
        selector: BTreeMap<String, String>,
        /// When the stop lapses, in HLC milliseconds.
        expires_millis: u64,
        /// Why, for the operators who read `remediations`.
        reason: String,
        /// The trust version under which the stopper holds `stop`.
        trust_version: u64,
    },
    /// A host of a staged rollout states how the release ran on it
    /// ([`crate::config::rollout`]): the evidence later waves open on, and
    /// the evidence that halts the rollout and reverts it.
    Attest {
        /// The digest of the release attested.
        release: crate::keys::Digest,
        /// The host's wave in the release's plan.
        wave: u32,
        /// How many hosts the author counts in its wave: an agent holding
        /// fewer certificates counts at least these, so it opens no wave
        /// early for not knowing the fleet.
        wave_hosts: u32,
        /// The host ran the release through its bake with the gate's checks
        /// healthy (true), or it failed the gate (false).
        passed: bool,
        /// For a failure, why: the checks that failed, safe mode or
        /// needs-human.
        reason: String,
    },
    /// An operator lifts the stops signed before this record whose
    /// selector is `selector` (every stop when it is empty).
    Resume {
        /// The operator key holding `stop`, who must be the record's author.
        stopper: PublicKey,
        /// The selector of the stops it lifts; empty: every stop.
        selector: BTreeMap<String, String>,
        /// The trust version under which the stopper holds `stop`.
        trust_version: u64,
    },
}

impl RecordKind {
    /// The epoch of an intent; `None` for every other kind.
    pub fn intent_epoch(&self) -> Option<u64> {
        let RecordKind::Intent { epoch, .. } = self else {
            return None;
        };
        Some(*epoch)
    }
}

/// One signed statement in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// The remediation it is about.
    pub key: IdempotencyKey,
    /// What it states.
    pub kind: RecordKind,
    /// The signer: an admitted node, or for an approval, a stop or a
    /// resume an operator key.
    pub author: PublicKey,
    /// When, on the author's HLC.
    pub at: Hlc,
}

/// A record signed by its author: the entry the ledger replicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// The record.
    pub record: LedgerRecord,
    /// `record.author`'s signature over the record (domain LEDGER).
    pub signature: Signature,
}

impl SignedRecord {
    /// Signs `record` with `author`, which must be the key named in
    /// `record.author`.
    pub fn sign(record: LedgerRecord, author: &Keypair) -> SignedRecord {
        let signature = author.sign(domain::LEDGER, &record);
        SignedRecord { record, signature }
    }

    /// The record's content address: its key and version in the ledger.
    pub fn digest(&self) -> Digest {
        Digest::of(domain::CONTENT, self)
    }
}

/// The fleet's remediation ledger: a grow-only set of signed records.
///
/// Past `max_records`, the oldest records by (`at`, digest) are evicted, so
/// the state is the newest `max_records` of the union of everything seen.
/// That is still a join-semilattice: the join of two states is the newest
/// `max_records` of their union, and a record evicted once is older than
/// `max_records` held ones and stays evicted, whatever arrives later.
/// Stops and resumes are bounded the same way but apart
/// ([`stop_limits::STOPS_MAX`]): the product of two such sets is a
/// semilattice too, and a storm of ordinary records never evicts a stop.
#[derive(Clone, Debug)]
pub struct Ledger {
    records: BTreeMap<Digest, SignedRecord>,
    by_age: BTreeSet<(Hlc, Digest)>,
    by_key: BTreeMap<IdempotencyKey, BTreeSet<Digest>>,
    /// The stop and resume records among `records`, by age.
    stops: BTreeSet<(Hlc, Digest)>,
    /// Stop and resume records evicted or refused at their bound.
    stops_evicted: u64,
    max_records: usize,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::with_max_records(ledger_limits::RECORDS_MAX)
    }
}

impl Ledger {
    /// An empty ledger keeping up to [`ledger_limits::RECORDS_MAX`]
    /// records.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// An empty ledger keeping up to `max_records` records.
    pub fn with_max_records(max_records: usize) -> Ledger {
        Ledger {
            records: BTreeMap::new(),
            by_age: BTreeSet::new(),
            by_key: BTreeMap::new(),
            stops: BTreeSet::new(),
            stops_evicted: 0,
            max_records,
        }
    }

    /// The record with `digest`.
    pub fn get(&self, digest: &Digest) -> Option<&SignedRecord> {
        self.records.get(digest)
    }

    /// Every record about `key`, in digest order.
    pub fn records_for<'a>(
        &'a self,
        key: &IdempotencyKey,
    ) -> impl Iterator<Item = &'a SignedRecord> + use<'a> {
        self.by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|digest| self.records.get(digest))
    }

    /// The intents about `key`, in digest order.
    pub fn intents_for<'a>(
        &'a self,
        key: &IdempotencyKey,
    ) -> impl Iterator<Item = &'a SignedRecord> + use<'a> {
        self.records_for(key)
            .filter(|signed| signed.record.kind.intent_epoch().is_some())
    }

    /// The intent that counts for `key`: highest epoch, then lowest digest.
    /// Duplicate intents from two holders collapse onto it.
    pub fn winning_intent(&self, key: &IdempotencyKey) -> Option<&SignedRecord> {
        self.records_for(key)
            .filter_map(|signed| {
                let epoch = signed.record.kind.intent_epoch()?;
                Some(((epoch, Reverse(signed.digest())), signed))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, signed)| signed)
    }

    /// Every record, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &SignedRecord> {
        self.by_age
            .iter()
            .filter_map(|(_, digest)| self.records.get(digest))
    }

    /// The stop and resume records, oldest first.
    pub fn stop_records(&self) -> impl Iterator<Item = &SignedRecord> {
        self.stops
            .iter()
            .filter_map(|(_, digest)| self.records.get(digest))
    }

    /// Stop and resume records evicted, or refused as older than every one
    /// held, at [`stop_limits::STOPS_MAX`].
    pub fn stops_evicted(&self) -> u64 {
        self.stops_evicted
    }

    /// How many records are held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records held under the bound of stops (`stop`) or of the rest.
    fn held(&self, stop: bool) -> usize {
        if stop {
            self.stops.len()
        } else {
            self.records.len() - self.stops.len()
        }
    }

    fn bound(&self, stop: bool) -> usize {
        if stop {
            stop_limits::STOPS_MAX
        } else {
            self.max_records
        }
    }

    /// The oldest record under the bound of stops (`stop`) or of the rest;
    /// finding the latter skips at most [`stop_limits::STOPS_MAX`] stops.
    fn oldest(&self, stop: bool) -> Option<(Hlc, Digest)> {
        if stop {
            return self.stops.first().copied();
        }
        self.by_age
            .iter()
            .find(|age| !self.stops.contains(age))
            .copied()
    }

    fn remove(&mut self, digest: &Digest) {
        let Some(signed) = self.records.remove(digest) else {
            return;
        };
        self.by_age.remove(&(signed.record.at, *digest));
        self.stops.remove(&(signed.record.at, *digest));
        if let Some(digests) = self.by_key.get_mut(&signed.record.key) {
            digests.remove(digest);
            if digests.is_empty() {
                self.by_key.remove(&signed.record.key);
            }
        }
    }
}

/// Whether a record is a stop or a resume: operator statements about all
/// automation, bounded apart from the rest of the ledger.
pub fn is_stop_record(kind: &RecordKind) -> bool {
    matches!(kind, RecordKind::Stop { .. } | RecordKind::Resume { .. })
}

/// Checks a stop or resume record: signed by its `stopper`, who held
/// `stop` under the trust version it names and is not revoked now, with a
/// bounded selector and lifetime. Any other record passes untouched.
fn admit_stop(record: &LedgerRecord, ctx: &Ctx<'_>) -> Result<(), Rejected> {
    use stop_limits::*;
    let (stopper, selector, trust_version) = match &record.kind {
        RecordKind::Stop {
            stopper,
            selector,
            expires_millis,
            reason,
            trust_version,
        } => {
            check_text("reason", reason, true, ledger_limits::TEXT_MAX)?;
            if expires_millis.saturating_sub(record.at.millis) > STOP_FOR_MAX_MILLIS {
                return Err(Rejected::Malformed(format!(
                    "a stop lasts at most {} days",
                    STOP_FOR_MAX_MILLIS / 86_400_000
                )));
            }
            (stopper, selector, trust_version)
        }
        RecordKind::Resume {
            stopper,
            selector,
            trust_version,
        } => (stopper, selector, trust_version),
        _ => return Ok(()),
    };
    if record.key.rule != STOP_RULE || record.key.target != *stopper || record.author != *stopper {
        return Err(Rejected::Unauthorized(format!(
            "a stop's stopper must be its author and its key's target, under rule {STOP_RULE}"
        )));
    }
    if selector.len() > SELECTOR_PAIRS_MAX {
        return Err(Rejected::Malformed(format!(
            "a stop's selector has at most {SELECTOR_PAIRS_MAX} pairs"
        )));
    }
    for (key, value) in selector {
        check_text("selector key", key, true, ledger_limits::NAME_MAX)?;
        check_text("selector value", value, true, ledger_limits::NAME_MAX)?;
    }
    if !ctx.trust.authorizes(stopper, Role::Stop, *trust_version) {
        return Err(Rejected::Unauthorized(format!(
            "{stopper:?} may not stop automation under trust version {trust_version}"
        )));
    }
    Ok(())
}

/// Checks a record's text fields and who may have written it.
fn admit_record(record: &LedgerRecord, ctx: &Ctx<'_>) -> Result<(), Rejected> {
    use ledger_limits::*;
    check_text("rule", &record.key.rule, true, NAME_MAX)?;
    check_text("incident", &record.key.incident, true, INCIDENT_MAX)?;
    let not_author = |field: &str| {
        Err(Rejected::Unauthorized(format!(
            "the {field} must be the record's author"
        )))
    };
    match &record.kind {
        RecordKind::Intent {
            scope,
            action,
            planner,
            ..
        } => {
            check_text("scope", scope, true, NAME_MAX)?;
            check_text("action", action, true, NAME_MAX)?;
            if *planner != record.author {
                return not_author("planner");
            }
        }
        RecordKind::Request { scope, action } => {
            check_text("scope", scope, true, NAME_MAX)?;
            check_text("action", action, true, NAME_MAX)?;
            if record.key.target != record.author {
                return not_author("target");
            }
        }
        RecordKind::Started { .. } => {
            if record.key.target != record.author {
                return not_author("target");
            }
        }
        RecordKind::Outcome { detail, .. } => {
            check_text("detail", detail, false, TEXT_MAX)?;
            if record.key.target != record.author {
                return not_author("target");
            }
        }
        RecordKind::Skipped { reason } | RecordKind::NeedsHuman { reason } => {
            check_text("reason", reason, false, TEXT_MAX)?;
        }
        RecordKind::Stop { .. } | RecordKind::Resume { .. } => return admit_stop(record, ctx),
        RecordKind::Attest { reason, .. } => {
            check_text("reason", reason, false, TEXT_MAX)?;
            if record.key.rule != attest_limits::ROLLOUT_RULE {
                return Err(Rejected::Malformed(format!(
                    "an attestation's rule must be {}",
                    attest_limits::ROLLOUT_RULE
                )));
            }
            if record.key.target != record.author {
                return not_author("target");
            }
        }
        RecordKind::Approval {
            approver,
            trust_version,
            ..
        } => {
            if *approver != record.author {
                return not_author("approver");
            }
            if !ctx
                .trust
                .authorizes(approver, Role::Approve, *trust_version)
            {
                return Err(Rejected::Unauthorized(format!(
                    "{approver:?} may not approve under trust version {trust_version}"
                )));
            }
            return Ok(());
        }
    }
    check_admitted(&record.author, "author", ctx)
}

impl Verified for Ledger {
    fn admit(signed: &SignedRecord, ctx: &Ctx<'_>) -> Result<Vec<SignatureCheck>, Rejected> {
        admit_record(&signed.record, ctx)?;
        Ok(vec![SignatureCheck::of(
            signed.record.author,
            domain::LEDGER,
            &signed.record,
            signed.signature,
        )])
    }

    fn apply(&mut self, signed: SignedRecord) -> Merge {
        let digest = signed.digest();
        let age = (signed.record.at, digest);
        if self.records.contains_key(&digest) {
            return Merge::Unchanged;
        }
        let stop = is_stop_record(&signed.record.kind);
        // Older than everything held at the bound: it would be evicted at
        // once.
        if self.held(stop) >= self.bound(stop)
            && self.oldest(stop).is_none_or(|oldest| age < oldest)
        {
            self.stops_evicted += u64::from(stop);
            return Merge::Unchanged;
        }
        self.by_key
            .entry(signed.record.key.clone())
            .or_default()
            .insert(digest);
        self.by_age.insert(age);
        if stop {
            self.stops.insert(age);
        }
        self.records.insert(digest, signed);
        while self.held(stop) > self.bound(stop) {
            let Some((_, oldest)) = self.oldest(stop) else {
                break;
            };
            self.stops_evicted += u64::from(stop);
            self.remove(&oldest);
        }
        Merge::Changed {
            key: digest,
            version: digest,
            replaced: None,
        }
    }
}

impl Replica for Ledger {
    type Entry = SignedRecord;

    fn versions(&self) -> Vec<(Digest, Digest)> {
        self.records
            .keys()
            .map(|digest| (*digest, *digest))
            .collect()
    }

    fn entry(&self, key: &Digest) -> Option<SignedRecord> {
        self.records.get(key).cloned()
    }

    fn merge(&mut self, entry: SignedRecord, ctx: &Ctx<'_>) -> Result<Merge, Rejected> {
        merge_one(self, entry, ctx)
    }

    fn trust_changed(&mut self, ctx: &Ctx<'_>) {
        let dropped: Vec<Digest> = self
            .records
            .iter()
            .filter(|(_, signed)| admit_record(&signed.record, ctx).is_err())
            .map(|(digest, _)| *digest)
            .collect();
        for digest in &dropped {
            self.remove(digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fleet, Pooled, check_crdt_laws};
    use crate::trust::tests::key;

    fn incident(target: &Keypair) -> IdempotencyKey {
        IdempotencyKey {
            rule: "restart-web".into(),
            target: target.public(),
            incident: "http-down@1000".into(),
        }
    }

    fn record(
        author: &Keypair,
        key: IdempotencyKey,
        kind: RecordKind,
        millis: u64,
    ) -> SignedRecord {
        let record = LedgerRecord {
            key,
            kind,
            author: author.public(),
            at: Hlc { millis, counter: 0 },
        };
        SignedRecord::sign(record, author)
    }

    fn intent(planner: &Keypair, epoch: u64) -> RecordKind {
        RecordKind::Intent {
            scope: "remediate:web".into(),
            epoch,
            action: "restart".into(),
            planner: planner.public(),
            dry_run: false,
            deadline_millis: 60_000,
        }
    }

    fn request() -> RecordKind {
        RecordKind::Request {
            scope: "remediate:web".into(),
            action: "reboot".into(),
        }
    }

    struct World {
        fleet: Fleet,
        first: Keypair,
        second: Keypair,
        target: Keypair,
    }

    fn world() -> World {
        let (first, second, target) = (key(20), key(21), key(22));
        World {
            fleet: Fleet::new(&[&first, &second, &target]),
            first,
            second,
            target,
        }
    }

    fn pool(world: &World) -> Vec<Pooled<SignedRecord>> {
        let (first, second, target) = (&world.first, &world.second, &world.target);
        let about = incident(target);
        let approver = key(100);
        let approval = |trust_version| RecordKind::Approval {
            approver: approver.public(),
            expires_millis: 5_000,
            trust_version,
        };
        let mut forged = record(first, about.clone(), intent(first, 9), 30);
        forged.signature = record(second, about.clone(), intent(first, 9), 30).signature;
        vec![
            (record(first, about.clone(), intent(first, 1), 10), true),
            (record(second, about.clone(), intent(second, 2), 11), true),
            (record(second, about.clone(), intent(second, 2), 12), true),
            (
                record(target, about.clone(), RecordKind::Started { epoch: 2 }, 13),
                true,
            ),
            (
                record(
                    target,
                    about.clone(),
                    RecordKind::Outcome {
                        success: true,
                        exit_code: Some(0),
                        detail: "ok".into(),
                    },
                    14,
                ),
                true,
            ),
            (record(&approver, about.clone(), approval(1), 9), true),
            // Not a trust version this replica knows.
            (record(&approver, about.clone(), approval(7), 9), false),
            // Only an approver may approve, and only as itself.
            (record(first, about.clone(), approval(1), 9), false),
            // An intent signed for someone else's plan.
            (record(first, about.clone(), intent(second, 9), 30), false),
            (forged, false),
            (
                record(&key(30), about.clone(), intent(&key(30), 9), 30),
                false,
            ),
            (record(target, about.clone(), request(), 8), true),
            // Only the target asks for, and records, what runs on it.
            (record(first, about.clone(), request(), 8), false),
            (
                record(first, about.clone(), RecordKind::Started { epoch: 2 }, 13),
                false,
            ),
            (
                record(
                    target,
                    about,
                    RecordKind::Skipped {
                        reason: "x".repeat(2_000),
                    },
                    30,
                ),
                false,
            ),
        ]
    }

    #[test]
    fn ledger_is_a_crdt_and_duplicate_intents_collapse_on_their_key() {
        let world = world();
        let ledger = check_crdt_laws(&world.fleet, &Ledger::new(), &pool(&world));
        let about = incident(&world.target);
        assert_eq!(ledger.len(), 7);
        assert_eq!(ledger.records_for(&about).count(), 7);
        assert_eq!(ledger.intents_for(&about).count(), 3);
        let winner = ledger.winning_intent(&about).unwrap();
        assert_eq!(winner.record.kind.intent_epoch(), Some(2));
        assert_eq!(winner.record.author, world.second.public());
        let ages: Vec<u64> = ledger
            .iter()
            .map(|signed| signed.record.at.millis)
            .collect();
        assert!(ages.is_sorted());
    }

    #[test]
    fn the_bound_keeps_the_newest_records_whatever_the_order() {
        let world = world();
        let ledger = check_crdt_laws(&world.fleet, &Ledger::with_max_records(3), &pool(&world));
        let ages: Vec<u64> = ledger
            .iter()
            .map(|signed| signed.record.at.millis)
            .collect();
        assert_eq!(ages, [12, 13, 14]);
        assert_eq!(ledger.intents_for(&incident(&world.target)).count(), 1);
    }

    #[test]
    fn revoked_authors_records_are_dropped() {
        let mut world = world();
        let records: Vec<SignedRecord> = pool(&world)
            .into_iter()
            .filter(|(_, valid)| *valid)
            .map(|(signed, _)| signed)
            .collect();
        let mut ledger = Ledger::new();
        world.fleet.with_ctx(0, |ctx| {
            assert!(ledger.merge_batch(records, ctx).iter().all(Result::is_ok));
        });
        world.fleet.revoke(&[world.second.public()]);
        world.fleet.with_ctx(0, |ctx| ledger.trust_changed(ctx));
        let about = incident(&world.target);
        assert_eq!(ledger.len(), 5);
        assert_eq!(
            ledger
                .winning_intent(&about)
                .unwrap()
                .record
                .kind
                .intent_epoch(),
            Some(1)
        );
    }
}

#[cfg(test)]
mod attest_tests {
    use super::*;
    use crate::testing::Fleet;
    use crate::trust::tests::key;

    fn attest(author: &Keypair, target: PublicKey, rule: &str) -> SignedRecord {
        let mut key = attest_limits::attestation_key(target, "app", 2);
        key.rule = rule.to_owned();
        let record = LedgerRecord {
            key,
            kind: RecordKind::Attest {
                release: Digest([3; 32]),
                wave: 0,
                wave_hosts: 10,
                passed: false,
                reason: "unhealthy: web".into(),
            },
            author: author.public(),
            at: Hlc {
                millis: 5,
                counter: 0,
            },
        };
        SignedRecord::sign(record, author)
    }

    #[test]
    fn only_a_host_attests_about_itself_under_the_rollout_rule() {
        let host = key(40);
        let other = key(41);
        let fleet = Fleet::new(&[&host, &other]);
        let mut ledger = Ledger::new();
        fleet.with_ctx(0, |ctx| {
            let own = attest(&host, host.public(), attest_limits::ROLLOUT_RULE);
            assert!(ledger.merge(own, ctx).is_ok());
            let forged = attest(&other, host.public(), attest_limits::ROLLOUT_RULE);
            assert!(matches!(
                ledger.merge(forged, ctx),
                Err(Rejected::Unauthorized(_))
            ));
            let misfiled = attest(&host, host.public(), "restart-web");
            assert!(matches!(
                ledger.merge(misfiled, ctx),
                Err(Rejected::Malformed(_))
            ));
        });
        assert_eq!(ledger.len(), 1);
        let stranger = key(42);
        fleet.with_ctx(0, |ctx| {
            let unadmitted = attest(&stranger, stranger.public(), attest_limits::ROLLOUT_RULE);
            assert!(
                ledger.merge(unadmitted, ctx).is_err(),
                "authors are admitted nodes"
            );
        });
    }
}
