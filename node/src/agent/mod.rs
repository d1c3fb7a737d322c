//! The agent: SWIM membership with the Lifeguard refinements, piggybacked
//! gossip and push-pull anti-entropy, as one deterministic state machine.

mod admission;
mod claims;
mod durable;
mod effects;
mod exchange;
mod gossip;
mod invariants;
mod leases;
mod outbox;
mod probe;
mod releases;
mod remedy;
mod rollouts;

pub use rollouts::{RolloutView, WaveView};

use effects::Effects;
use outbox::Outbox;

use crate::broadcast::BroadcastQueue;
use crate::budget::{Budgets, Metered};
use crate::config::Config;
use crate::error::AgentError;
use crate::event::{Event, Transmit};
use crate::health::LocalHealth;
use crate::identity::Identity;
use crate::lease::{LeaseMessage, Leases};
use crate::members::{Member, MemberTable};
use crate::output::Output;
use crate::remedy::Remedy;
use crate::remedy::policy::Policy;
use crate::remedy::task::{TaskId, TaskResult};
use crate::state::StateMessage;
use crate::state::{Entry, Replicas};
use crate::stats::Stats;
use crate::suspicion::{Expired, Suspicions};
use crate::time::Instant;
use crate::wire::{self, Message};
use admission::Admission;
use exchange::{Batch, Exchanges};
use fleetmesh_crdt::{
    AppliedRelease, HealthReport, HealthState, HlcClock, Incarnation, Keypair, Liveness,
    MemberState, NodeCert, NodeId, NodeMeta, Replica, SignedHealth, Value, Verifier,
};
use probe::Prober;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use releases::Releases;
use rollouts::Rollouts;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of a datagram reserved for the message around piggybacked updates.
const MESSAGE_OVERHEAD_BYTES: usize = 32;
/// How far ahead of the local clock a peer's HLC timestamp may be.
const HLC_MAX_AHEAD_MILLIS: u64 = 60_000;
/// Draws tried when picking random members; bounds the loop when few of the
/// table's members qualify.
const RANDOM_PICK_ATTEMPTS: usize = 32;
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Probe,
    Gossip,
    Sync,
    Reconnect,
}

const TIMERS: [Timer; 4] = [Timer::Probe, Timer::Gossip, Timer::Sync, Timer::Reconnect];

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
    releases: Releases,
    rollouts: Rollouts,
    admission: Admission,
    incarnation: Incarnation,
    meta: Arc<NodeMeta>,
    left: bool,
    rng: ChaCha8Rng,
    members: MemberTable,
    broadcasts: BroadcastQueue,
    suspicions: Suspicions,
    health: LocalHealth,
    prober: Prober,
    exchanges: Exchanges,
    seeds: Vec<NodeId>,
    /// Dead and departed members in the order they went down: reap deadline,
    /// member, incarnation. Also the candidates for reconnection attempts.
    downed: VecDeque<(Instant, NodeId, Incarnation)>,
    timers: BTreeMap<Timer, Instant>,
    stats: Stats,
    /// What the driver has yet to drain.
    outbox: Outbox,
    /// Work one part of the agent asked of another, run before the input
    /// that caused it returns.
    effects: Effects,
    /// Drains completed, for sampling the costlier invariant checks.
    drains: u64,
    leases: Leases,
    remedy: Remedy,
    /// Ledger, health or lease state changed since remediation last ran.
    remedy_dirty: bool,
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
    /// Fails, changing nothing, when `config` breaks a relationship the
    /// core relies on ([`Config::validate`]), `meta` breaks the limits
    /// receivers enforce or the identity does not verify.
    pub fn new(
        config: Config,
        identity: Identity,
        meta: NodeMeta,
        seed: u64,
        now: Instant,
        verifier: Arc<dyn Verifier>,
    ) -> Result<Agent, AgentError> {
        config.validate()?;
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
        let outbox = Outbox::new(config.transmit_queue_max, config.event_queue_max);
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
            releases: Releases::default(),
            rollouts: Rollouts::default(),
            admission: Admission::default(),
            incarnation: 0,
            meta: Arc::new(meta),
            left: false,
            rng,
            members: MemberTable::default(),
            suspicions: Suspicions::default(),
            prober: Prober::default(),
            exchanges: Exchanges::default(),
            seeds: Vec::new(),
            downed: VecDeque::new(),
            timers,
            stats: Stats::default(),
            outbox,
            effects: Effects::default(),
            drains: 0,
            leases,
            remedy: Remedy::default(),
            remedy_dirty: false,
        };
        let alive = Liveness {
            incarnation: 0,
            state: MemberState::Alive,
        };
        agent.members.merge(id, alive, Some((0, &agent.meta)));
        Ok(agent)
    }

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
        self.releases.applied().get(doc)
    }

    /// The releases this agent runs, per document.
    pub fn applied_releases(&self) -> &BTreeMap<String, AppliedRelease> {
        self.releases.applied()
    }

    /// The content of `doc` at the release this agent runs; `None` with no
    /// release applied, or while the released changes have not all arrived
    /// (a restarted agent catching up).
    pub fn released_config(&self, doc: &str) -> Option<Value> {
        let applied = self
            .releases
            .applied()
            .get(doc)
            .filter(|applied| !applied.void)?;
        let release = self.replicas.releases().entry(&applied.content_digest())?;
        self.replicas.config().value_at(doc, &release.release.heads)
    }

    /// Whether the agent is in safe mode: a release it runs has expired,
    /// turned void (a signer was revoked), or names changes it does not hold
    /// (a restart still catching up, or a quarantined author's changes), so
    /// it must start no new disruptive action until that is over.
    pub fn is_safe_mode(&self, now: Instant) -> bool {
        let now_millis = self.now_millis(now);
        self.releases.applied().iter().any(|(doc, applied)| {
            let readable =
                self.releases.running().get(doc).is_some_and(|release| {
                    self.replicas.config().has_all(doc, &release.release.heads)
                });
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
        self.prober.stop();
        self.suspicions = Suspicions::default();
        self.exchanges.clear();
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
        self.merge_own(now, entry)
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
        // A check's result may decide this host's attestation.
        self.rollout_tick(now);
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
        self.exchanges.expire(now);
        self.reap(now);
        self.lease_timeout(now);
        self.remedy_tick(now);
        self.rollout_tick(now);
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
                    let busy = self.exchanges.started_with();
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
                    if self.rollouts.take_waiting() {
                        self.advance_releases(now);
                    }
                    self.reconnect(now);
                    self.members.shrink_slack();
                    self.timers
                        .insert(timer, now + self.config.reconnect_interval);
                }
            }
        }
    }

    /// The next output, in the order the driver must act on them (see
    /// [`Output`]): after any input, call until it returns
    /// [`Output::Timeout`] or [`Output::Idle`]. Durable state comes first,
    /// so a driver that acts on each output as it comes out never sends
    /// what it has not made durable.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outbox.next() {
            return output;
        }
        // The drain is over: the input that filled it is done.
        self.drains += 1;
        self.check_invariants();
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
        consider(self.exchanges.next_deadline());
        consider(self.downed.front().map(|&(at, _, _)| at));
        consider(self.leases.next_deadline().filter(|_| !self.left));
        consider(self.remedy.next_deadline().filter(|_| !self.left));
        consider(self.prober.next_deadline());
        consider(self.rollouts.next_deadline().filter(|_| !self.left));
        next
    }

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

    /// The physical time of this agent's HLC: never earlier than a
    /// timestamp it issued.
    fn now_millis(&self, now: Instant) -> u64 {
        millis(now).max(self.hlc.last().millis)
    }

    fn send(&mut self, to: NodeId, message: &Message) {
        if !self.outbox.has_room_to_send() {
            self.stats.transmits_dropped += 1;
            return;
        }
        let Ok(bytes) = wire::encode(message) else {
            self.stats.encode_errors += 1;
            return;
        };
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.outbox.send(Transmit { to, bytes });
    }

    fn push_event(&mut self, event: Event) {
        if self.outbox.event(event) {
            self.stats.events_dropped += 1;
        }
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
