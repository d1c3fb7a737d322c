//! The agent: SWIM membership with the Lifeguard refinements, piggybacked
//! gossip and push-pull anti-entropy, as one deterministic state machine.

use crate::broadcast::BroadcastQueue;
use crate::budget::{Budgets, Metered};
use crate::config::Config;
use crate::encoding::encoded_len;
use crate::error::AgentError;
use crate::event::{Event, Transmit};
use crate::health::LocalHealth;
use crate::identity::Identity;
use crate::lease::{Cx, LeaseMessage, Leases, Out};
use crate::members::{Change, Member, MemberTable};
use crate::output::Output;
use crate::persist::{Durable, Persist, PersistQueue};
use crate::probe::ProbeCursor;
use crate::remedy::policy::{POLICY_DOC, Policy};
use crate::remedy::task::{Task, TaskId, TaskResult};
use crate::remedy::{Cx as RemedyCx, Out as RemedyOut, Remedy};
use crate::snapshot::{self, SnapshotError};
use crate::state::StateMessage;
use crate::state::{Entry, Kind, Loaded, Merged, Replicas, cert_key};
use crate::stats::Stats;
use crate::suspicion::{Expired, Suspicions};
use crate::time::Instant;
use crate::wire::{self, Message, SyncRecord, Update};
use fleetmesh_crdt::config::limits::RELEASE_VERSIONS_MAX;
use fleetmesh_crdt::{
    AppliedRelease, Digest, HealthReport, HealthState, HlcClock, Incarnation, Keypair, Liveness,
    MemberState, NodeCert, NodeId, NodeMeta, PublicKey, Replica, SignedHealth, SignedRelease,
    Value, Verifier,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of a datagram reserved for the message around piggybacked updates.
const MESSAGE_OVERHEAD_BYTES: usize = 32;
/// Most anti-entropy exchanges this agent has in flight as initiator.
const SYNCS_IN_FLIGHT_MAX: usize = 8;
/// Most peers this agent is answering an anti-entropy exchange for at once.
const SYNCS_ANSWERED_MAX: usize = 64;
/// Last probes whose acks are remembered (the oldest is forgotten first).
const LAST_PROBES_MAX: usize = 1024;
/// Most peers remembered as recently introduced to (see `introduce`).
const INTRODUCTIONS_MAX: usize = 1024;
/// Most claims parked waiting for their member's certificate: a joiner's
/// first exchange names the whole fleet before it holds any certificate.
const PARKED_MAX: usize = 65_536;
/// How far ahead of the local clock a peer's HLC timestamp may be.
const HLC_MAX_AHEAD_MILLIS: u64 = 60_000;
/// Draws tried when picking random members; bounds the loop when few of the
/// table's members qualify.
const RANDOM_PICK_ATTEMPTS: usize = 32;
/// Tasks (check runs, actions) a driver may leave undrained; each check has
/// at most one run in flight, so this is only reached by a stalled driver.
const TASKS_MAX: usize = 1024;
/// Entries to journal a driver may leave undrained. One input merges at
/// most a message's entries (a few thousand at [`crate::limits::MESSAGE_BYTES_MAX`]),
/// so only a driver that does not drain [`Agent::poll_output`] reaches it; past it
/// entries are dropped and counted (`journal_dropped`), and the driver
/// saves a whole snapshot instead.
pub const JOURNAL_MAX: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Probe,
    Gossip,
    Sync,
    Reconnect,
}

const TIMERS: [Timer; 4] = [Timer::Probe, Timer::Gossip, Timer::Sync, Timer::Reconnect];

struct Probe {
    seq: u32,
    target: NodeId,
    direct_deadline: Instant,
    acked: bool,
    /// The direct phase is over and helpers were asked (if any could be).
    indirect: bool,
    helpers: u8,
    nacks: u8,
}

struct Relay {
    origin: NodeId,
    origin_seq: u32,
    deadline: Instant,
}

struct Sync {
    deadline: Instant,
    /// The exchange teaches a joiner the fleet: not re-gossiped.
    bootstrap: bool,
    /// Our request left records out.
    truncated: bool,
}

/// The payload of one `SyncRecords` message.
struct Batch<'a> {
    buckets: u64,
    metas: &'a [Arc<NodeMeta>],
    records: &'a [SyncRecord],
    truncated: bool,
}

/// Where a claim came from; decides how it is applied and whether it is
/// re-gossiped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Piggybacked or gossiped: re-gossip what is news.
    Gossip,
    /// Anti-entropy: a peer's view, not a fresh observation, so deaths are
    /// held as suspicions (memberlist does the same) and the first exchange
    /// of a joiner is not re-announced.
    Sync { bootstrap: bool },
    /// This agent's own observation.
    Local,
}

/// One claim about one member, whatever message carried it.
struct Claim<'a> {
    id: NodeId,
    liveness: Liveness,
    meta: Option<(Incarnation, &'a Arc<NodeMeta>)>,
    from: NodeId,
}

/// A claim about a member whose certificate has not arrived yet, held
/// until it does (or another claim about the member replaces it).
struct Parked {
    liveness: Liveness,
    meta: Option<(Incarnation, Arc<NodeMeta>)>,
    from: NodeId,
    source: Source,
}

/// The agent's protocol core. Deterministic: it reads no clock, spawns
/// nothing and draws randomness only from the seeded RNG it owns.
///
/// The API follows `quinn-proto`'s grammar. Getters ([`Agent::id`],
/// [`Agent::members`], [`Agent::stats`], ...) read state. Inputs are
/// `handle_*` and the operator's mutators ([`Agent::join`],
/// [`Agent::leave`], [`Agent::set_meta`]); all but `set_meta` take `now`.
/// A restarted agent gets its persisted state back with [`Agent::restore`]
/// before any other input. After any input the driver drains
/// [`Agent::poll_output`] until it returns [`Output::Timeout`] (or
/// [`Output::Idle`]), acting on each output in the order it comes out:
///
/// 1. [`Output::Journal`]: append the entry to a journal (one sync for a
///    run of them), then [`Output::Persist`]: make it durable (written and
///    synced). What the agent accepted or promised must survive a crash
///    before anyone hears of it (an entry an operator published, a voter's
///    grant, the release it moved to), so the core hands these out before
///    anything else, and the driver completes the sync before it acts on
///    the next output or on [`Agent::holds`]; the journal comes first so
///    that a release is never on disk without the changes it names;
/// 2. [`Output::Transmit`]: send the message;
/// 3. [`Output::Event`]: observe it;
/// 4. [`Output::Task`]: start the check or action off the core's thread
///    and report back with [`Agent::handle_task_result`];
/// 5. [`Output::Timeout`]: call [`Agent::handle_timeout`] once that instant
///    has passed (calling it early is harmless).
///
/// Leases ([`Agent::acquire`], [`Agent::holds`]; `docs/protocol.md`): every
/// agent votes on the grant requests it receives; a candidate names the
/// scope's voters itself. The lease table checks grants only against the
/// voter set a lease names, so the caller must pass the scope's real voter
/// set. Remediation's budget leases take theirs from the released policy
/// (`docs/remediation.md`), and targets check intents against it.
pub struct Agent {
    config: Config,
    id: NodeId,
    keypair: Keypair,
    cert: Arc<NodeCert>,
    hlc: HlcClock,
    replicas: Replicas,
    /// The release run per document: only ever moves forward.
    applied: BTreeMap<String, AppliedRelease>,
    /// The signed releases behind `applied`, re-verified when the trust
    /// chain changes; a restarted agent finds them again in the log.
    running: BTreeMap<String, SignedRelease>,
    safe_mode: bool,
    introduced: BTreeMap<NodeId, Instant>,
    missing_certs: Vec<NodeId>,
    parked: BTreeMap<NodeId, Parked>,
    incarnation: Incarnation,
    meta: Arc<NodeMeta>,
    left: bool,
    rng: ChaCha8Rng,
    members: MemberTable,
    broadcasts: BroadcastQueue,
    suspicions: Suspicions,
    health: LocalHealth,
    cursor: ProbeCursor,
    probe: Option<Probe>,
    relays: BTreeMap<u32, Relay>,
    /// Sequence numbers of last probes awaiting their ack.
    last_probes: BTreeSet<u32>,
    syncs: BTreeMap<NodeId, Sync>,
    /// Peers sent our bucket digests, who may now ask for records, with the
    /// deadline of that permission.
    answering: BTreeMap<NodeId, Instant>,
    seeds: Vec<NodeId>,
    /// Dead and departed members in the order they went down: reap deadline,
    /// member, incarnation. Also the candidates for reconnection attempts.
    downed: VecDeque<(Instant, NodeId, Incarnation)>,
    timers: BTreeMap<Timer, Instant>,
    next_seq: u32,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    leases: Leases,
    persists: PersistQueue,
    /// Entries merged since the driver last drained them, to journal
    /// (at most [`JOURNAL_MAX`]).
    journal: VecDeque<Entry>,
    remedy: Remedy,
    /// Ledger, health or lease state changed since remediation last ran.
    remedy_dirty: bool,
    tasks: VecDeque<Task>,
    /// The verifier every merge uses, counting its checks.
    metered: Arc<Metered>,
    /// What each peer may still cost in verifications.
    budgets: Budgets,
}

impl Agent {
    /// A new agent with `identity`, announcing `meta`, seeded with `seed`
    /// (the only source of randomness it will ever use), started at `now`;
    /// `verifier` checks every signature it receives.
    ///
    /// It knows only itself until [`Agent::join`] or a message from a peer.
    /// Fails, changing nothing, when `meta` breaks the limits receivers
    /// enforce or the identity does not verify.
    pub fn new(
        config: Config,
        identity: Identity,
        meta: NodeMeta,
        seed: u64,
        now: Instant,
        verifier: Arc<dyn Verifier>,
    ) -> Result<Agent, AgentError> {
        meta.validate()?;
        let hlc = HlcClock::new(HLC_MAX_AHEAD_MILLIS);
        let now_millis = millis(now);
        let trust = identity.verify(&verifier, now_millis)?;
        let id = identity.node_id();
        let metered = Arc::new(Metered::new(verifier));
        let verifier: Arc<dyn Verifier> = Arc::clone(&metered) as Arc<dyn Verifier>;
        let leases = Leases::new(Arc::clone(&verifier));
        // A fetch is one round trip, as a probe is; one answered late only
        // costs a second transfer from another announcer.
        let fetch_timeout_millis = config.probe_timeout.as_millis() as u64;
        let replicas = Replicas::new(
            trust,
            identity.cert.clone(),
            verifier,
            now_millis,
            fetch_timeout_millis,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut timers = BTreeMap::new();
        // Spread the periodic work of agents started together over a period.
        for timer in TIMERS {
            let period = match timer {
                Timer::Probe => config.probe_interval,
                Timer::Gossip => config.gossip_interval,
                Timer::Sync => config.sync_interval,
                Timer::Reconnect => config.reconnect_interval,
            };
            timers.insert(timer, now + jitter(&mut rng, period));
        }
        let budgets = Budgets::new(config.verify_per_peer, config.verify_unadmitted);
        let mut agent = Agent {
            metered,
            budgets,
            broadcasts: BroadcastQueue::new(
                config.broadcast_queue_max,
                config
                    .datagram_bytes_max
                    .saturating_sub(MESSAGE_OVERHEAD_BYTES),
            ),
            health: LocalHealth::new(config.local_health_max),
            config,
            id,
            keypair: identity.keypair,
            cert: Arc::new(identity.cert),
            hlc,
            replicas,
            applied: BTreeMap::new(),
            running: BTreeMap::new(),
            safe_mode: false,
            introduced: BTreeMap::new(),
            missing_certs: Vec::new(),
            parked: BTreeMap::new(),
            incarnation: 0,
            meta: Arc::new(meta),
            left: false,
            rng,
            members: MemberTable::default(),
            suspicions: Suspicions::default(),
            cursor: ProbeCursor::default(),
            probe: None,
            relays: BTreeMap::new(),
            last_probes: BTreeSet::new(),
            syncs: BTreeMap::new(),
            answering: BTreeMap::new(),
            seeds: Vec::new(),
            downed: VecDeque::new(),
            timers,
            next_seq: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            leases,
            persists: PersistQueue::default(),
            journal: VecDeque::new(),
            remedy: Remedy::default(),
            remedy_dirty: false,
            tasks: VecDeque::new(),
        };
        let alive = Liveness {
            incarnation: 0,
            state: MemberState::Alive,
        };
        agent.members.merge(id, alive, Some((0, &agent.meta)));
        Ok(agent)
    }

    // --- getters -----------------------------------------------------------

    /// This agent's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The fleet's replicated state as this agent holds it.
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// How far this agent's random stream has advanced (words drawn): a
    /// fingerprint of its randomness use, for the simulator's determinism
    /// check.
    pub fn draws(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// This agent's current incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The member table (this agent's view of the fleet).
    pub fn members(&self) -> &MemberTable {
        &self.members
    }

    /// The entry for `id` in this agent's view.
    pub fn member(&self, id: NodeId) -> Option<Member> {
        self.members.get(id)
    }

    /// Whether `node` holds a valid certificate at `now`: only then are its
    /// messages (other than a Hello) handled. Drivers use it to bound what
    /// peers not admitted may cost before the core sees their messages.
    pub fn admits(&self, now: Instant, node: NodeId) -> bool {
        self.replicas.certs().admits(node, self.now_millis(now))
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Updates waiting to be gossiped.
    pub fn queued_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// The release this agent runs for `doc`, if any.
    pub fn applied_release(&self, doc: &str) -> Option<&AppliedRelease> {
        self.applied.get(doc)
    }

    /// The releases this agent runs, per document.
    pub fn applied_releases(&self) -> &BTreeMap<String, AppliedRelease> {
        &self.applied
    }

    /// The content of `doc` at the release this agent runs; `None` with no
    /// release applied, or while the released changes have not all arrived
    /// (a restarted agent catching up).
    pub fn released_config(&self, doc: &str) -> Option<Value> {
        let applied = self.applied.get(doc).filter(|applied| !applied.void)?;
        let release = self.replicas.releases().entry(&applied.digest)?;
        self.replicas.config().value_at(doc, &release.release.heads)
    }

    /// Whether the agent is in safe mode: a release it runs has expired,
    /// turned void (a signer was revoked), or names changes it does not hold
    /// (a restart still catching up, or a quarantined author's changes), so
    /// it must start no new disruptive action until that is over.
    pub fn is_safe_mode(&self, now: Instant) -> bool {
        let now_millis = self.now_millis(now);
        self.applied.iter().any(|(doc, applied)| {
            let readable = self
                .running
                .get(doc)
                .is_some_and(|release| self.replicas.config().has_all(doc, &release.release.heads));
            applied.void || applied.is_expired(now_millis) || !readable
        })
    }

    /// The remediation policy in force: the one in the release of
    /// [`POLICY_DOC`] this agent runs (or ran last, if a later one did not
    /// parse).
    pub fn policy(&self) -> Option<&Policy> {
        self.remedy.policy().map(|policy| policy.as_ref())
    }

    /// Disruptive remediations of `scope` in flight as this agent sees
    /// them: intents planned and not yet past their deadline or finished.
    /// Only the scope's voters keep count.
    pub fn budget_in_use(&self, now: Instant, scope: &str) -> usize {
        self.remedy
            .budget_in_use(scope, self.now_millis(now), self.replicas.ledger())
    }

    // --- inputs --------------------------------------------------------------

    /// Joins the fleet through `seeds`: an anti-entropy exchange with each,
    /// which hands this agent the seed's full view. Seeds are remembered and
    /// retried by the reconnect timer while none of them is reachable.
    pub fn join(&mut self, now: Instant, seeds: &[NodeId]) {
        self.seeds = seeds
            .iter()
            .copied()
            .filter(|&seed| seed != self.id)
            .collect();
        self.seeds.sort_unstable();
        self.seeds.dedup();
        let bootstrap = self.members.len() <= 1;
        for seed in self.seeds.clone() {
            self.start_sync(now, seed, bootstrap);
        }
        // The seeds' views miss whoever joins at the same time as this agent,
        // and what a bootstrap exchange teaches is not re-gossiped: a second
        // exchange, with any member, soon after the first closes that gap.
        let soon = now + self.config.probe_interval * 2;
        self.pull_timer(Timer::Sync, soon);
    }

    /// Leaves the fleet gracefully: announces `Left` and stops probing. The
    /// driver should keep delivering for about a gossip round, then stop.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.left = true;
        // Nothing but the news of the departure goes out from now on.
        self.probe = None;
        self.suspicions = Suspicions::default();
        self.relays.clear();
        self.last_probes.clear();
        self.syncs.clear();
        self.answering.clear();
        self.timers.retain(|&timer, _| timer == Timer::Gossip);
        let liveness = Liveness {
            incarnation: self.incarnation,
            state: MemberState::Left,
        };
        self.members.merge(self.id, liveness, None);
        let update = self.update_for(self.id, self.id);
        self.queue_broadcast(update);
        let fanout = usize::from(self.config.gossip_fanout.get()) * 2;
        for peer in self.random_up_members(fanout, &[]) {
            self.send_gossip(peer);
        }
        self.timers
            .insert(Timer::Gossip, now + self.config.gossip_interval);
    }

    /// Changes this agent's metadata (tags, addresses) and announces it with
    /// a new incarnation. Refused, changing nothing, for invalid metadata or
    /// after [`Agent::leave`].
    pub fn set_meta(&mut self, meta: NodeMeta) -> Result<(), AgentError> {
        if self.left {
            return Err(AgentError::Left);
        }
        meta.validate()?;
        self.meta = Arc::new(meta);
        self.announce_alive(self.incarnation + 1);
        // Tags select checks.
        self.with_remedy(Instant(0), |remedy, cx, _| remedy.reload_checks(cx));
        Ok(())
    }

    /// Publishes this agent's health for `check`, signed with its key; the
    /// report replaces its previous one for the check everywhere.
    pub fn report_health(
        &mut self,
        now: Instant,
        check: &str,
        state: HealthState,
        detail: &str,
    ) -> Result<(), AgentError> {
        let report = HealthReport {
            node: self.keypair.public(),
            check: check.to_owned(),
            state,
            at: self.hlc.now(millis(now)),
            detail: detail.to_owned(),
            cause: None,
        };
        let entry = Entry::Health(Box::new(SignedHealth::sign(report, &self.keypair)));
        self.publish(now, entry)
    }

    /// Merges an entry signed elsewhere (an operator's trust document, a
    /// ledger record) and spreads it. Refused, changing nothing, when it
    /// does not verify.
    pub fn publish(&mut self, now: Instant, entry: Entry) -> Result<(), AgentError> {
        if self.left {
            return Err(AgentError::Left);
        }
        let now_millis = self.now_millis(now);
        let (result, effects) = self.replicas.merge(entry, now_millis);
        self.apply_state_effects(now, effects);
        match result {
            Ok(_) => Ok(()),
            Err(rejected) => Err(AgentError::Rejected(rejected)),
        }
    }

    /// Handles one message from `from`. The transport must authenticate
    /// `from` (QUIC with the peer's key in the runtime; by construction in the
    /// simulator); the contents are untrusted and fully validated.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        self.stats.bytes_received += bytes.len() as u64;
        let message = match wire::decode(bytes) {
            Ok(message) => message,
            Err(_) => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        self.stats.messages_received += 1;
        if self.left || from == self.id {
            self.stats.unexpected_messages += 1;
            return;
        }
        let introduction = matches!(message, Message::Hello { .. });
        let admitted = self.admits(now, from);
        if !introduction && !admitted {
            self.stats.unadmitted_messages += 1;
            self.introduce(now, from);
            return;
        }
        if may_verify(&message) && !self.budgets.allows(now, from, admitted) {
            self.stats.verify_budget_exceeded += 1;
            return;
        }
        let checks_before = self.metered.checks();
        match message {
            Message::Ping {
                seq,
                target,
                updates,
            } => self.on_ping(now, from, seq, target, &updates),
            Message::Ack { seq, updates } => self.on_ack(now, seq, &updates),
            Message::PingReq {
                seq,
                target,
                updates,
            } => self.on_ping_req(now, from, seq, target, &updates),
            Message::Nack { seq } => self.on_nack(seq),
            Message::Gossip { updates } => self.apply_updates(now, &updates),
            Message::SyncRoot { root } => self.on_sync_root(now, from, root),
            Message::SyncBuckets { digests } => self.on_sync_buckets(from, &digests),
            Message::SyncRecords {
                buckets,
                metas,
                records,
                reply,
                truncated,
            } => {
                let batch = Batch {
                    buckets,
                    metas: &metas,
                    records: &records,
                    truncated,
                };
                self.on_sync_records(now, from, batch, reply)
            }
            Message::State(message) => self.on_state(now, from, message),
            Message::Hello { cert, reply } => self.on_hello(now, from, *cert, reply),
            Message::Lease(message) => self.on_lease(now, from, message),
        }
        let checks = self.metered.checks().saturating_sub(checks_before);
        self.budgets.charge(now, from, admitted, checks);
        self.fetch_missing_certs(now, from);
        if self.remedy_dirty {
            self.remedy_tick(now);
        }
    }

    /// Hands in the result of a task from [`Output::Task`]. A result
    /// after the task's timeout, or for no task, is counted and ignored.
    pub fn handle_task_result(&mut self, now: Instant, id: TaskId, result: TaskResult) {
        if self.left {
            return;
        }
        self.with_remedy(now, |remedy, cx, out| remedy.result(cx, id, result, out));
        self.remedy_tick(now);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_direct_probe(now);
        let last_probe_timeout = self.health.scale(self.config.probe_timeout);
        while let Some(expired) = self.suspicions.pop_expired(now, last_probe_timeout) {
            match expired {
                Expired::LastProbe(member, _) => self.last_probe(member),
                Expired::Declare(member, incarnation) => {
                    self.declare_dead(now, member, incarnation)
                }
            }
        }
        self.expire_relays(now);
        self.update_safe_mode(now);
        self.syncs.retain(|_, sync| sync.deadline > now);
        self.answering.retain(|_, deadline| *deadline > now);
        self.reap(now);
        self.lease_timeout(now);
        self.remedy_tick(now);
        for timer in TIMERS {
            if self.timers.get(&timer).is_none_or(|&at| at > now) {
                continue;
            }
            match timer {
                Timer::Probe => {
                    self.finish_probe(now);
                    self.start_probe(now);
                    let period = self.health.scale(self.config.probe_interval);
                    self.timers.insert(timer, now + period);
                }
                Timer::Gossip => {
                    self.retry_fetches(now);
                    self.gossip_round();
                    self.timers.insert(timer, now + self.config.gossip_interval);
                }
                Timer::Sync => {
                    // A peer still in an exchange would refuse this one
                    // silently: a joiner's follow-up exchange, meant to
                    // catch what its bootstrap missed, could be lost to
                    // drawing its own seed again.
                    let busy: Vec<NodeId> = self.syncs.keys().copied().collect();
                    if let Some(&peer) = self.random_up_members(1, &busy).first() {
                        self.start_sync(now, peer, false);
                    }
                    self.timers.insert(timer, now + self.sync_period());
                }
                Timer::Reconnect => {
                    // Certificates also expire on their own, between
                    // trust changes.
                    self.expel_unadmitted(now);
                    self.budgets.forget_full(now);
                    self.reconnect(now);
                    self.members.shrink_slack();
                    self.timers
                        .insert(timer, now + self.config.reconnect_interval);
                }
            }
        }
    }

    // --- outputs -------------------------------------------------------------

    /// The next output, in the order the driver must act on them (see
    /// [`Output`]): after any input, call until it returns
    /// [`Output::Timeout`] or [`Output::Idle`]. Durable state comes first,
    /// so a driver that acts on each output as it comes out never sends
    /// what it has not made durable.
    pub fn poll_output(&mut self) -> Output {
        if let Some(entry) = self.journal.pop_front() {
            return Output::Journal(entry);
        }
        if let Some(persist) = self.persists.pop() {
            return Output::Persist(persist);
        }
        if let Some(transmit) = self.transmits.pop_front() {
            return Output::Transmit(transmit);
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        if let Some(task) = self.tasks.pop_front() {
            return Output::Task(task);
        }
        match self.next_deadline() {
            Some(at) => Output::Timeout(at),
            None => Output::Idle,
        }
    }

    /// When [`Agent::handle_timeout`] must next be called; `None` once the
    /// agent left and has nothing more to say.
    fn next_deadline(&self) -> Option<Instant> {
        let mut next = self
            .timers
            .iter()
            .filter(|&(&timer, _)| {
                timer != Timer::Gossip
                    || !self.broadcasts.is_empty()
                    || self.replicas.push_len() > 0
            })
            .map(|(_, &at)| at)
            .min();
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |next| next.min(at)));
            }
        };
        consider(self.suspicions.next_deadline());
        consider(self.relays.values().map(|relay| relay.deadline).min());
        consider(self.syncs.values().map(|sync| sync.deadline).min());
        consider(self.downed.front().map(|&(at, _, _)| at));
        consider(self.leases.next_deadline().filter(|_| !self.left));
        consider(self.remedy.next_deadline().filter(|_| !self.left));
        consider(
            self.probe
                .as_ref()
                .filter(|probe| !probe.acked && !probe.indirect)
                .map(|probe| probe.direct_deadline),
        );
        next
    }

    // --- leases -----------------------------------------------------------------

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
        self.applied = durable.releases;
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

    /// Starts asking `voters` for `scope`, for leases of `ttl`, and keeps it
    /// held (renewing every third of `ttl`) until [`Agent::release_lease`].
    /// Calling it again changes voters and ttl. Refused for a bad scope,
    /// voter set or ttl (which must exceed `lease_drift_bound`), past
    /// [`crate::limits::WANTED_MAX`] scopes, or after [`Agent::leave`].
    pub fn acquire(
        &mut self,
        now: Instant,
        scope: &str,
        voters: BTreeSet<PublicKey>,
        ttl: Duration,
    ) -> Result<(), AgentError> {
        if self.left {
            return Err(AgentError::Left);
        }
        let result = self.with_leases(now, |leases, cx, out| {
            leases.acquire(cx, scope, voters, ttl, out)
        });
        Ok(result?)
    }

    /// Stops wanting `scope`; a lease held is lost at once.
    pub fn release_lease(&mut self, now: Instant, scope: &str) {
        self.with_leases(now, |leases, cx, out| leases.release(cx, scope, out));
    }

    /// The epoch at which this agent holds `scope` at `now`: only until
    /// `asked + ttl - lease_drift_bound` on this agent's clock, counted from
    /// when it sent the requests that won, and never once its lease table
    /// shows a higher epoch. Act on it only after draining
    /// [`Output::Persist`].
    pub fn holds(&self, now: Instant, scope: &str) -> Option<u64> {
        if self.left {
            return None;
        }
        self.leases.holds(now, scope, self.replicas.leases())
    }

    /// Runs `input` on the lease logic, then carries out what it asked for.
    fn with_leases<R>(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Leases, &mut Cx<'_>, &mut Vec<Out>) -> R,
    ) -> R {
        let mut out = Vec::new();
        let mut cx = Cx {
            now,
            config: &self.config,
            keypair: &self.keypair,
            hlc: &mut self.hlc,
            rng: &mut self.rng,
            table: self.replicas.leases(),
            stats: &mut self.stats.leases,
        };
        let result = input(&mut self.leases, &mut cx, &mut out);
        self.apply_lease_outs(now, out);
        result
    }

    fn on_lease(&mut self, now: Instant, from: NodeId, message: LeaseMessage) {
        self.with_leases(now, |leases, cx, out| {
            leases.on_message(cx, from, message, out)
        });
    }

    fn lease_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.with_leases(now, |leases, cx, out| leases.tick(cx, out));
    }

    fn apply_lease_outs(&mut self, now: Instant, out: Vec<Out>) {
        for out in out {
            match out {
                Out::Persist(persist) => self.persists.push(persist),
                Out::Send(to, message) => self.send(to, &Message::Lease(message)),
                Out::Publish(lease) => {
                    if self.publish(now, Entry::Lease(lease)).is_err() {
                        self.stats.leases.publish_rejected += 1;
                    }
                }
                Out::Event(event) => self.push_event(event),
            }
        }
    }

    // --- remediation --------------------------------------------------------------

    /// Runs `input` on the remediation logic, then carries out what it
    /// asked for.
    fn with_remedy<R>(
        &mut self,
        now: Instant,
        input: impl FnOnce(&mut Remedy, &mut RemedyCx<'_>, &mut Vec<RemedyOut>) -> R,
    ) -> R {
        let safe_mode = self.is_safe_mode(now);
        let now_millis = self.now_millis(now);
        let mut out = Vec::new();
        let leases = &self.leases;
        let table = self.replicas.leases();
        let held = |scope: &str| leases.held(now, scope, table);
        let mut cx = RemedyCx {
            now,
            now_millis,
            keypair: &self.keypair,
            hlc: &mut self.hlc,
            meta: &self.meta,
            members: &self.members,
            replicas: &self.replicas,
            safe_mode,
            held: &held,
            stats: &mut self.stats.remedy,
        };
        let result = input(&mut self.remedy, &mut cx, &mut out);
        self.apply_remedy_outs(now, out);
        result
    }

    fn remedy_tick(&mut self, now: Instant) {
        self.remedy_dirty = false;
        if self.left {
            return;
        }
        self.with_remedy(now, |remedy, cx, out| remedy.tick(cx, out));
    }

    /// Loads the policy of the release of [`POLICY_DOC`] this agent runs,
    /// once its content is readable.
    fn refresh_policy(&mut self, now: Instant) {
        let Some(applied) = self.applied.get(POLICY_DOC) else {
            return;
        };
        let digest = applied.digest;
        let Some(value) = self.released_config(POLICY_DOC) else {
            return;
        };
        self.with_remedy(now, |remedy, cx, out| remedy.load(cx, digest, &value, out));
        if let Some(policy) = self.remedy.policy() {
            let governed = policy
                .rules
                .values()
                .flat_map(|rule| rule.budgets())
                .map(|(scope, budget)| (scope, budget.voters.clone()))
                .collect();
            self.replicas.govern_leases(governed);
        }
        self.remedy_dirty = true;
    }

    fn apply_remedy_outs(&mut self, now: Instant, out: Vec<RemedyOut>) {
        for out in out {
            match out {
                RemedyOut::Publish(entry) => {
                    if self.publish(now, entry).is_err() {
                        self.stats.remedy.publish_rejected += 1;
                    }
                }
                RemedyOut::Task(task) => {
                    if self.tasks.len() >= TASKS_MAX {
                        self.stats.remedy.tasks_dropped += 1;
                    } else {
                        self.tasks.push_back(task);
                    }
                }
                RemedyOut::Acquire { scope, voters, ttl } => {
                    let result = self.with_leases(now, |leases, cx, out| {
                        leases.acquire(cx, &scope, voters, ttl, out)
                    });
                    if result.is_err() {
                        self.stats.remedy.policies_refused += 1;
                    }
                }
                RemedyOut::Release(scope) => self.release_lease(now, &scope),
                RemedyOut::Persist(persist) => self.persists.push(persist),
                RemedyOut::Tell(to, entry) => {
                    let message = Message::State(StateMessage::Push {
                        entries: vec![entry],
                        announces: Vec::new(),
                    });
                    for key in to {
                        let id = key.node_id();
                        let up = self
                            .members
                            .get(id)
                            .is_some_and(|member| member.state().is_up());
                        if id != self.id && up {
                            self.send(id, &message);
                        }
                    }
                }
            }
        }
    }

    // --- probing ---------------------------------------------------------------

    fn start_probe(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let Some(target) = self.next_probe_target() else {
            return;
        };
        let seq = self.allocate_seq();
        self.stats.probes += 1;
        self.probe = Some(Probe {
            seq,
            target,
            direct_deadline: now + self.health.scale(self.config.probe_timeout),
            acked: false,
            indirect: false,
            helpers: 0,
            nacks: 0,
        });
        // Buddy system: a suspected member hears of it from its prober first.
        let first = self
            .members
            .get(target)
            .filter(|member| member.state() == MemberState::Suspect)
            .map(|_| self.update_for(target, self.id));
        let updates = self.piggyback(first);
        self.send(
            target,
            &Message::Ping {
                seq,
                target,
                updates,
            },
        );
    }

    /// Probes a member whose suspicion ran out, carrying the suspicion. A
    /// live member refutes on receipt, and its ack carries the refutation
    /// first (its newest update); that ack clears the suspicion before it
    /// turns into a death.
    fn last_probe(&mut self, target: NodeId) {
        self.stats.last_probes += 1;
        let seq = self.allocate_seq();
        if self.last_probes.len() >= LAST_PROBES_MAX {
            self.last_probes.pop_first();
        }
        self.last_probes.insert(seq);
        let claim = self.update_for(target, self.id);
        let updates = self.piggyback(Some(claim));
        self.send(
            target,
            &Message::Ping {
                seq,
                target,
                updates,
            },
        );
    }

    fn next_probe_target(&mut self) -> Option<NodeId> {
        for _ in 0..self.members.len() {
            let position = self.cursor.next(self.members.len(), &mut self.rng)?;
            let member = self.members.member_at(position);
            if member.id != self.id && member.state().is_up() {
                return Some(member.id);
            }
        }
        None
    }

    fn expire_direct_probe(&mut self, now: Instant) {
        let Some(probe) = &self.probe else {
            return;
        };
        if probe.acked || probe.indirect || probe.direct_deadline > now {
            return;
        }
        let (seq, target) = (probe.seq, probe.target);
        let helpers =
            self.random_up_members(usize::from(self.config.indirect_probes.get()), &[target]);
        for &helper in &helpers {
            let updates = self.piggyback(None);
            self.send(
                helper,
                &Message::PingReq {
                    seq,
                    target,
                    updates,
                },
            );
        }
        self.stats.indirect_probes += helpers.len() as u64;
        if let Some(probe) = &mut self.probe {
            probe.indirect = true;
            probe.helpers = u8::try_from(helpers.len()).unwrap_or(u8::MAX);
        }
    }

    fn finish_probe(&mut self, now: Instant) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        if probe.acked {
            self.health.improve();
            return;
        }
        self.stats.probes_failed += 1;
        if probe.nacks < probe.helpers {
            // Helpers that did not even nack point at our own connectivity.
            self.health.worsen();
        }
        let Some(member) = self.members.get(probe.target) else {
            return;
        };
        match member.state() {
            MemberState::Alive => {
                self.stats.suspicions_raised += 1;
                let liveness = Liveness {
                    incarnation: member.incarnation(),
                    state: MemberState::Suspect,
                };
                self.learn(
                    now,
                    Claim {
                        id: probe.target,
                        liveness,
                        meta: None,
                        from: self.id,
                    },
                    Source::Local,
                );
            }
            MemberState::Suspect => {
                // Our own failed probe of a member others suspect is an
                // independent confirmation: count it, and tell the others so
                // they can count it too (Lifeguard).
                let confirmations = self.config.suspicion_confirmations.get();
                if self.suspicions.confirm(
                    probe.target,
                    member.incarnation(),
                    self.id,
                    confirmations,
                ) {
                    self.queue_broadcast(self.update_for(probe.target, self.id));
                }
            }
            MemberState::Dead | MemberState::Left => {}
        }
    }

    fn on_ping(
        &mut self,
        now: Instant,
        from: NodeId,
        seq: u32,
        target: NodeId,
        updates: &[Update],
    ) {
        self.apply_updates(now, updates);
        if target != self.id {
            self.stats.unexpected_messages += 1;
            return;
        }
        // A prober that suspects us (the buddy system, or a last probe) gets
        // our current incarnation first in the ack, even when its claim is
        // stale and we refuted long ago: that ack is what saves us.
        let accused = updates
            .iter()
            .any(|update| update.id == self.id && update.state != MemberState::Alive);
        let first = accused.then(|| self.update_for(self.id, self.id));
        let updates = self.piggyback(first);
        self.send(from, &Message::Ack { seq, updates });
    }

    fn on_ack(&mut self, now: Instant, seq: u32, updates: &[Update]) {
        self.apply_updates(now, updates);
        if let Some(probe) = &mut self.probe
            && probe.seq == seq
        {
            probe.acked = true;
            return;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            let updates = self.piggyback(None);
            let ack = Message::Ack {
                seq: relay.origin_seq,
                updates,
            };
            self.send(relay.origin, &ack);
            return;
        }
        if self.last_probes.remove(&seq) {
            return;
        }
        self.stats.unexpected_messages += 1;
    }

    fn on_ping_req(
        &mut self,
        now: Instant,
        from: NodeId,
        seq: u32,
        target: NodeId,
        updates: &[Update],
    ) {
        self.apply_updates(now, updates);
        if self.relays.len() >= self.config.relayed_probes_max || target == self.id {
            self.stats.relays_refused += 1;
            return;
        }
        let own_seq = self.allocate_seq();
        // Nack before the asker's probe period ends, or it never counts.
        let window = self
            .config
            .probe_interval
            .saturating_sub(self.config.probe_timeout);
        let deadline = now + window.mul_f64(0.8);
        self.relays.insert(
            own_seq,
            Relay {
                origin: from,
                origin_seq: seq,
                deadline,
            },
        );
        let updates = self.piggyback(None);
        self.send(
            target,
            &Message::Ping {
                seq: own_seq,
                target,
                updates,
            },
        );
    }

    fn on_nack(&mut self, seq: u32) {
        match &mut self.probe {
            Some(probe) if probe.seq == seq => probe.nacks = probe.nacks.saturating_add(1),
            _ => self.stats.unexpected_messages += 1,
        }
    }

    fn expire_relays(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, relay)| relay.deadline <= now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in expired {
            let relay = self.relays.remove(&seq).expect("listed just above");
            self.send(
                relay.origin,
                &Message::Nack {
                    seq: relay.origin_seq,
                },
            );
        }
    }

    // --- membership changes -------------------------------------------------------

    fn apply_updates(&mut self, now: Instant, updates: &[Update]) {
        for update in updates {
            let claim = Claim {
                id: update.id,
                liveness: Liveness {
                    incarnation: update.incarnation,
                    state: update.state,
                },
                meta: update.meta.as_ref().map(|meta| (update.incarnation, meta)),
                from: update.from,
            };
            self.learn(now, claim, Source::Gossip);
        }
    }

    /// Applies one claim: the single place where the member table changes
    /// because of what someone said.
    fn learn(&mut self, now: Instant, mut claim: Claim<'_>, source: Source) {
        if claim.id == self.id {
            self.answer_claim_about_self(&claim);
            return;
        }
        let known = self.members.get(claim.id);
        if !self.replicas.certs().admits(claim.id, self.now_millis(now)) {
            self.stats.unadmitted_claims += 1;
            if known.is_none()
                && claim.liveness.state.is_up()
                && !self.replicas.is_revoked_id(claim.id)
            {
                self.park(claim, source);
            }
            return;
        }
        if known.is_none() && (!claim.liveness.state.is_up() || claim.meta.is_none()) {
            // A stranger enters the table only with its own metadata, from
            // its announcement or an anti-entropy record, and only while up:
            // news of the death of a stranger, or of a member already reaped,
            // is dropped so that reaped members stay forgotten.
            self.stats.claims_ignored += 1;
            return;
        }
        if claim.liveness.state == MemberState::Dead && matches!(source, Source::Sync { .. }) {
            claim.liveness.state = MemberState::Suspect;
        }
        if let Some(member) = known
            && claim.liveness.state == MemberState::Suspect
            && member.liveness == claim.liveness
        {
            if matches!(source, Source::Sync { .. }) {
                // A peer's table names no accuser: relaying it is not an
                // independent observation and must not shorten the timeout.
                return;
            }
            let confirmations = self.config.suspicion_confirmations.get();
            if self.suspicions.confirm(
                claim.id,
                claim.liveness.incarnation,
                claim.from,
                confirmations,
            ) && source == Source::Gossip
            {
                self.queue_broadcast(self.update_for(claim.id, claim.from));
            }
            return;
        }
        let Some(change) = self.members.merge(claim.id, claim.liveness, claim.meta) else {
            return;
        };
        self.on_change(now, claim.id, change, claim.from);
        let bootstrap = matches!(source, Source::Sync { bootstrap: true });
        if !bootstrap && (change.liveness_changed() || change.meta_changed) {
            self.queue_broadcast(self.update_for(claim.id, claim.from));
        }
    }

    fn on_change(&mut self, now: Instant, id: NodeId, change: Change, from: NodeId) {
        if !change.liveness_changed() {
            return;
        }
        let current = change.current;
        match current.state {
            MemberState::Alive => self.suspicions.clear(id),
            MemberState::Suspect => {
                let members = self.members.up_count();
                let timeout_min = self.config.suspicion_timeout_min(members);
                let timeout_max = timeout_min.mul_f64(self.config.suspicion_max_mult);
                self.suspicions
                    .start(now, id, current.incarnation, from, timeout_min, timeout_max);
                // Holding a suspicion now: exchange sooner (see sync_period).
                let sooner = now + self.sync_period();
                self.pull_timer(Timer::Sync, sooner);
            }
            MemberState::Dead | MemberState::Left => {
                self.suspicions.clear(id);
                self.downed
                    .push_back((now + self.config.reap_after, id, current.incarnation));
            }
        }
        self.push_event(Event::MemberChanged {
            id,
            previous: change.previous,
            current,
        });
    }

    fn answer_claim_about_self(&mut self, claim: &Claim<'_>) {
        if self.left {
            return;
        }
        let stale_meta = claim.meta.is_some_and(|(incarnation, meta)| {
            incarnation == self.incarnation && **meta != *self.meta
        });
        let accused = claim.liveness.state != MemberState::Alive;
        let refute = claim.liveness.incarnation > self.incarnation
            || (claim.liveness.incarnation == self.incarnation && (accused || stale_meta));
        if !refute {
            return;
        }
        if accused {
            // Lifeguard: being suspected is evidence of our own slowness.
            self.health.worsen();
        }
        self.stats.refutations += 1;
        let incarnation = claim.liveness.incarnation.max(self.incarnation) + 1;
        self.announce_alive(incarnation);
        self.push_event(Event::Refuted { incarnation });
        if accused && claim.from != self.id {
            // The accuser hears the refutation first-hand rather than
            // waiting for gossip to reach it.
            self.send_gossip(claim.from);
        }
    }

    fn announce_alive(&mut self, incarnation: Incarnation) {
        self.incarnation = incarnation;
        let liveness = Liveness {
            incarnation,
            state: MemberState::Alive,
        };
        let meta = self.meta.clone();
        self.members
            .merge(self.id, liveness, Some((incarnation, &meta)));
        self.queue_broadcast(self.update_for(self.id, self.id));
    }

    fn declare_dead(&mut self, now: Instant, id: NodeId, incarnation: Incarnation) {
        let Some(member) = self.members.get(id) else {
            return;
        };
        if member.liveness
            != (Liveness {
                incarnation,
                state: MemberState::Suspect,
            })
        {
            return;
        }
        self.stats.declared_dead += 1;
        let liveness = Liveness {
            incarnation,
            state: MemberState::Dead,
        };
        self.learn(
            now,
            Claim {
                id,
                liveness,
                meta: None,
                from: self.id,
            },
            Source::Local,
        );
    }

    fn reap(&mut self, now: Instant) {
        while let Some(&(deadline, id, incarnation)) = self.downed.front() {
            if deadline > now {
                return;
            }
            self.downed.pop_front();
            let still_down = self.members.get(id).is_some_and(|member| {
                !member.state().is_up() && member.incarnation() == incarnation
            });
            if still_down && self.members.remove(id) {
                self.stats.reaped += 1;
                self.push_event(Event::MemberReaped { id });
            }
        }
    }

    /// The update that tells others what this agent believes of `id`.
    fn update_for(&self, id: NodeId, from: NodeId) -> Update {
        let member = self
            .members
            .get(id)
            .expect("updates are built for known members");
        let meta = (member.state() == MemberState::Alive
            && member.meta_incarnation == Some(member.incarnation()))
        .then(|| self.members.meta(id).cloned())
        .flatten();
        let from = if member.state() == MemberState::Alive || member.state() == MemberState::Left {
            id
        } else {
            from
        };
        Update {
            id,
            incarnation: member.incarnation(),
            state: member.state(),
            from,
            meta,
        }
    }

    // --- dissemination --------------------------------------------------------

    fn gossip_round(&mut self) {
        if self.broadcasts.is_empty() && self.replicas.push_len() == 0 {
            return;
        }
        let fanout = usize::from(self.config.gossip_fanout.get());
        let limit = self.config.retransmit_limit(self.members.up_count());
        let budget = self
            .config
            .datagram_bytes_max
            .saturating_sub(MESSAGE_OVERHEAD_BYTES);
        for peer in self.random_up_members(fanout, &[]) {
            if !self.broadcasts.is_empty() {
                self.send_gossip(peer);
            }
            if let Some(push) = self.replicas.next_push(budget, limit as u32) {
                self.send(peer, &Message::State(push));
            }
        }
    }

    /// Asks other announcers for entries whose fetch went unanswered.
    fn retry_fetches(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        for (peer, want) in self.replicas.retry_fetches(now_millis) {
            self.send(peer, &Message::State(want));
        }
    }

    fn send_gossip(&mut self, peer: NodeId) {
        let updates = self.piggyback(None);
        if updates.is_empty() {
            return;
        }
        self.stats.gossip_messages += 1;
        self.send(peer, &Message::Gossip { updates });
    }

    fn piggyback(&mut self, first: Option<Update>) -> Vec<Update> {
        let mut updates = Vec::new();
        let mut budget = self
            .config
            .datagram_bytes_max
            .saturating_sub(MESSAGE_OVERHEAD_BYTES);
        let skip = first.as_ref().map(|update| update.id);
        if let Some(update) = first {
            budget = budget.saturating_sub(encoded_len(&update));
            updates.push(update);
        }
        let limit = self.config.retransmit_limit(self.members.up_count());
        self.broadcasts.fill(budget, limit, skip, &mut updates);
        updates
    }

    fn queue_broadcast(&mut self, update: Update) {
        let before = self.broadcasts.dropped();
        self.broadcasts.push(update);
        self.stats.broadcasts_dropped += self.broadcasts.dropped() - before;
    }

    /// Brings `timer` forward to `at` if it is set later.
    fn pull_timer(&mut self, timer: Timer, at: Instant) {
        if let Some(set) = self.timers.get_mut(&timer)
            && *set > at
        {
            *set = at;
        }
    }

    // --- anti-entropy -------------------------------------------------------------

    fn start_sync(&mut self, now: Instant, peer: NodeId, bootstrap: bool) {
        if self.syncs.contains_key(&peer) {
            return;
        }
        if self.syncs.len() >= SYNCS_IN_FLIGHT_MAX {
            self.stats.syncs_refused += 1;
            return;
        }
        let deadline = now + self.config.probe_interval * 4;
        self.syncs.insert(
            peer,
            Sync {
                deadline,
                bootstrap,
                truncated: false,
            },
        );
        self.stats.syncs_started += 1;
        // The peer may not hold our certificate (a joiner's seed, a member
        // back from a partition that outlived a revocation sweep): an
        // introduction first costs a few hundred bytes per exchange and
        // saves the exchange.
        let now_millis = self.now_millis(now);
        let known = self.replicas.certs().admits(peer, now_millis);
        self.send_hello(peer, !known);
        let root = self.members.root();
        self.send(peer, &Message::SyncRoot { root });
        self.send(peer, &Message::State(self.replicas.roots()));
    }

    /// Time to the next periodic exchange. While this agent holds
    /// suspicions it exchanges every two probe intervals instead: a
    /// suspicion may already be refuted elsewhere, and gossip of the
    /// refutation can miss an agent (loss, or it heard the suspicion after
    /// the refutation's wave passed). An exchange costs one bucket.
    fn sync_period(&self) -> Duration {
        if self.suspicions.is_empty() {
            self.config.sync_interval
        } else {
            self.config
                .sync_interval
                .min(self.config.probe_interval * 2)
        }
    }

    /// Answers step 1 and remembers the peer: only a peer answered here may
    /// ask for records (step 3), so nobody gets a table dump unprompted.
    fn on_sync_root(&mut self, now: Instant, from: NodeId, root: u64) {
        if root == self.members.root() {
            return;
        }
        if self.answering.len() >= SYNCS_ANSWERED_MAX && !self.answering.contains_key(&from) {
            self.stats.syncs_refused += 1;
            return;
        }
        self.answering
            .insert(from, now + self.config.probe_interval * 4);
        let digests = self.members.digests().to_vec();
        self.send(from, &Message::SyncBuckets { digests });
    }

    /// Sends our records of as many of `buckets` as fit in one message;
    /// returns whether some were left out.
    fn send_records(&mut self, to: NodeId, buckets: u64, reply: bool) -> bool {
        let batch = self
            .members
            .records_in(buckets, self.config.sync_records_max);
        let truncated = !batch.complete;
        self.stats.sync_truncated += u64::from(truncated);
        let message = Message::SyncRecords {
            buckets: batch.covered,
            metas: batch.metas,
            records: batch.records,
            reply,
            truncated,
        };
        self.send(to, &message);
        truncated
    }

    fn on_sync_buckets(&mut self, from: NodeId, digests: &[u64]) {
        if !self.syncs.contains_key(&from) {
            self.stats.unexpected_messages += 1;
            return;
        }
        let buckets = self.members.differing_buckets(digests);
        if buckets == 0 {
            self.syncs.remove(&from);
            return;
        }
        self.stats.syncs_differing += 1;
        let truncated = self.send_records(from, buckets, true);
        if let Some(sync) = self.syncs.get_mut(&from) {
            sync.truncated = truncated;
        }
    }

    fn on_sync_records(&mut self, now: Instant, from: NodeId, batch: Batch<'_>, reply: bool) {
        let Batch {
            buckets,
            metas,
            records,
            truncated,
        } = batch;
        let (source, continue_with) = if reply {
            if self.answering.remove(&from).is_none() {
                self.stats.unexpected_messages += 1;
                return;
            }
            (Source::Sync { bootstrap: false }, None)
        } else {
            let Some(sync) = self.syncs.remove(&from) else {
                self.stats.unexpected_messages += 1;
                return;
            };
            // Only a joiner needs the whole difference at once; elsewhere a
            // large difference means gossip is in flight (a fleet forming),
            // and chasing it would turn every exchange into a table dump.
            let more = sync.bootstrap && (truncated || sync.truncated);
            (
                Source::Sync {
                    bootstrap: sync.bootstrap,
                },
                more.then_some(true),
            )
        };
        self.stats.sync_records_received += records.len() as u64;
        for record in records {
            if buckets & (1 << wire::bucket_of(record.id)) == 0 {
                self.stats.claims_ignored += 1;
                continue;
            }
            let claim = Claim {
                id: record.id,
                liveness: record.liveness,
                // The codec checked every index against the table.
                meta: record
                    .meta
                    .map(|(incarnation, index)| (incarnation, &metas[index as usize])),
                from,
            };
            self.learn(now, claim, source);
        }
        if reply {
            self.send_records(from, buckets, false);
        }
        if let Some(bootstrap) = continue_with {
            // The joiner's view is still incomplete: go on with the same peer,
            // as part of the same bootstrap.
            self.start_sync(now, from, bootstrap);
        }
    }

    /// Tries to reach one member believed dead, or an unreachable seed, with an
    /// anti-entropy exchange: after a partition heals this is how each side
    /// finds out the other is back.
    fn reconnect(&mut self, now: Instant) {
        let seeds_down: Vec<NodeId> = self
            .seeds
            .iter()
            .copied()
            .filter(|&seed| {
                !self
                    .members
                    .get(seed)
                    .is_some_and(|member| member.state().is_up())
            })
            .collect();
        let candidates = self.downed.len() + seeds_down.len();
        if candidates == 0 {
            return;
        }
        let pick = self.rng.random_range(0..candidates);
        let peer = match pick.checked_sub(self.downed.len()) {
            Some(seed) => seeds_down[seed],
            None => self.downed[pick].1,
        };
        let is_down = !self
            .members
            .get(peer)
            .is_some_and(|member| member.state().is_up());
        if is_down {
            // A joiner whose seeds were unreachable still knows only itself:
            // this exchange is its bootstrap.
            let bootstrap = self.members.len() <= 1;
            self.start_sync(now, peer, bootstrap);
        }
    }

    // --- plumbing ---------------------------------------------------------------

    /// Up to `count` distinct up members, other than this agent and
    /// `exclude`, drawn at random (fewer when few qualify: the draws are
    /// bounded).
    fn random_up_members(&mut self, count: usize, exclude: &[NodeId]) -> Vec<NodeId> {
        let mut picked = Vec::with_capacity(count);
        // This agent is never picked; it counts among the up members only
        // while it is up (a leaving agent is not, and must still reach the
        // last other member of a two-agent fleet).
        let me = usize::from(
            self.members
                .get(self.id)
                .is_some_and(|me| me.state().is_up()),
        );
        let eligible = self.members.up_count().saturating_sub(me + exclude.len());
        let wanted = count.min(eligible);
        for _ in 0..RANDOM_PICK_ATTEMPTS + 4 * wanted {
            if picked.len() == wanted {
                break;
            }
            let member = self
                .members
                .member_at(self.rng.random_range(0..self.members.len()));
            if member.id == self.id
                || exclude.contains(&member.id)
                || !member.state().is_up()
                || picked.contains(&member.id)
            {
                continue;
            }
            picked.push(member.id);
        }
        picked
    }

    fn allocate_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    // --- admission and replicated state -----------------------------------------

    /// The physical time of this agent's HLC: never earlier than a
    /// timestamp it issued.
    fn now_millis(&self, now: Instant) -> u64 {
        millis(now).max(self.hlc.last().millis)
    }

    fn send_hello(&mut self, to: NodeId, reply: bool) {
        let cert = Box::new(NodeCert::clone(&self.cert));
        self.send(to, &Message::Hello { cert, reply });
    }

    /// A peer this agent cannot admit yet talked to it: introduce ourselves
    /// and ask for its certificate, at most once a probe interval per peer.
    fn introduce(&mut self, now: Instant, peer: NodeId) {
        self.introduced.retain(|_, until| *until > now);
        if self.introduced.contains_key(&peer) || self.introduced.len() >= INTRODUCTIONS_MAX {
            return;
        }
        self.introduced
            .insert(peer, now + self.config.probe_interval);
        self.send_hello(peer, true);
    }

    fn on_hello(&mut self, now: Instant, from: NodeId, cert: NodeCert, reply: bool) {
        if cert.node_id() != from {
            self.stats.unadmitted_messages += 1;
            return;
        }
        let now_millis = self.now_millis(now);
        let (result, effects) = self.replicas.merge(Entry::Cert(Box::new(cert)), now_millis);
        if result.is_err() {
            self.stats.unadmitted_messages += 1;
            return;
        }
        self.apply_state_effects(now, effects);
        if reply {
            self.send_hello(from, false);
        }
    }

    fn on_state(&mut self, now: Instant, from: NodeId, message: StateMessage) {
        let now_millis = self.now_millis(now);
        let mut answers = Vec::new();
        let effects = self
            .replicas
            .handle(message, from, now_millis, &mut answers);
        for answer in answers {
            self.send(from, &Message::State(answer));
        }
        self.apply_state_effects(now, effects);
    }

    /// Asks the sender of the message just handled for the certificates of
    /// members it told us about that we cannot admit yet.
    fn fetch_missing_certs(&mut self, now: Instant, from: NodeId) {
        if self.missing_certs.is_empty() {
            return;
        }
        let keys: Vec<_> = self.missing_certs.drain(..).map(cert_key).collect();
        let now_millis = self.now_millis(now);
        if let Some(want) = self.replicas.want(Kind::Cert, keys, from, now_millis) {
            self.send(from, &Message::State(want));
        }
    }

    /// Holds a claim about a member we cannot admit yet and asks for its
    /// certificate.
    fn park(&mut self, claim: Claim<'_>, source: Source) {
        if self.parked.len() >= PARKED_MAX && !self.parked.contains_key(&claim.id) {
            self.stats.claims_ignored += 1;
            return;
        }
        let parked = Parked {
            liveness: claim.liveness,
            meta: claim
                .meta
                .map(|(incarnation, meta)| (incarnation, Arc::clone(meta))),
            from: claim.from,
            source,
        };
        if self.parked.insert(claim.id, parked).is_none() {
            self.missing_certs.push(claim.id);
        }
    }

    fn apply_state_effects(&mut self, now: Instant, effects: Merged) {
        for entry in effects.journal {
            if self.journal.len() >= JOURNAL_MAX {
                self.stats.journal_dropped += 1;
            } else {
                self.journal.push_back(entry);
            }
        }
        for id in effects.admitted {
            if let Some(parked) = self.parked.remove(&id) {
                let claim = Claim {
                    id,
                    liveness: parked.liveness,
                    meta: parked
                        .meta
                        .as_ref()
                        .map(|(incarnation, meta)| (*incarnation, meta)),
                    from: parked.from,
                };
                self.learn(now, claim, parked.source);
            }
        }
        if effects.trust_changed {
            self.parked
                .retain(|_, parked| parked.liveness.state.is_up());
            self.expel_unadmitted(now);
        }
        if effects.trust_changed {
            self.void_revoked_releases(now);
        }
        if effects.config_changed {
            self.advance_releases(now);
        }
        for digest in &effects.records {
            if let Some(signed) = self.replicas.ledger().get(digest) {
                self.remedy.index(signed, &mut self.stats.remedy);
            }
        }
        self.remedy_dirty |= effects.remedy_changed;
    }

    /// Marks void every release run whose signatures no longer reach the
    /// threshold under the new trust: a revoked key signed it. A void
    /// release may be replaced by another of its version (see
    /// [`AppliedRelease::void`]).
    fn void_revoked_releases(&mut self, now: Instant) {
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
            self.persists.push(Persist::Release(void.clone()));
            self.applied.insert(doc, void);
        }
    }

    /// Moves each document to its next release while that release's
    /// changes have all arrived, one version at a time.
    fn advance_releases(&mut self, now: Instant) {
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
                self.persists.push(Persist::Release(applied.clone()));
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
    fn update_safe_mode(&mut self, now: Instant) {
        let safe_mode = self.is_safe_mode(now);
        if safe_mode != self.safe_mode {
            self.safe_mode = safe_mode;
            if safe_mode {
                self.stats.safe_mode_entered += 1;
            }
            self.push_event(Event::SafeMode { entered: safe_mode });
        }
    }

    /// Declares dead every member whose certificate no longer holds (its key
    /// or its issuer was revoked); their messages are already dropped.
    fn expel_unadmitted(&mut self, now: Instant) {
        let now_millis = self.now_millis(now);
        let expelled: Vec<Member> = (0..self.members.len())
            .map(|at| self.members.member_at(at))
            .filter(|member| member.id != self.id && member.state().is_up())
            .filter(|member| !self.replicas.certs().admits(member.id, now_millis))
            .collect();
        for member in expelled {
            let dead = Liveness {
                incarnation: member.incarnation(),
                state: MemberState::Dead,
            };
            if let Some(change) = self.members.merge(member.id, dead, None) {
                self.stats.expelled += 1;
                self.on_change(now, member.id, change, self.id);
            }
        }
    }

    fn send(&mut self, to: NodeId, message: &Message) {
        if self.transmits.len() >= self.config.transmit_queue_max {
            self.stats.transmits_dropped += 1;
            return;
        }
        let Ok(bytes) = wire::encode(message) else {
            self.stats.encode_errors += 1;
            return;
        };
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.transmits.push_back(Transmit { to, bytes });
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.event_queue_max {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

/// Whether handling `message` may verify a signature, and so must wait
/// while its sender's verification budget is spent: an introduction (a
/// certificate), replicated entries, a voter's signed grant. Everything
/// else (probes, gossip, digests, requests) passes, so a peer in debt is
/// still probed and still answers.
fn may_verify(message: &Message) -> bool {
    match message {
        Message::Hello { .. } | Message::Lease(LeaseMessage::Granted { .. }) => true,
        Message::State(StateMessage::Entries { entries }) => !entries.is_empty(),
        Message::State(StateMessage::Push { entries, .. }) => !entries.is_empty(),
        Message::State(
            StateMessage::Roots { .. }
            | StateMessage::Buckets { .. }
            | StateMessage::Versions { .. }
            | StateMessage::Want { .. },
        )
        | Message::Lease(
            LeaseMessage::Request { .. }
            | LeaseMessage::Refused { .. }
            | LeaseMessage::Release { .. },
        )
        | Message::Ping { .. }
        | Message::Ack { .. }
        | Message::PingReq { .. }
        | Message::Nack { .. }
        | Message::Gossip { .. }
        | Message::SyncRoot { .. }
        | Message::SyncBuckets { .. }
        | Message::SyncRecords { .. } => false,
    }
}

/// Milliseconds of an agent clock reading, the physical part of its HLC.
fn millis(now: Instant) -> u64 {
    now.0 / 1_000_000
}

fn jitter(rng: &mut ChaCha8Rng, period: Duration) -> Duration {
    let nanos = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(rng.random_range(0..nanos))
}
