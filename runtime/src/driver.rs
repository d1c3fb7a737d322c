//! The agent's task: one tokio task that owns the core's [`Agent`] and
//! drives it per the contract in `node/src/agent.rs`: after every input it
//! drains, in order, the entries to journal and what to persist (both
//! written and synced before anything is sent), what to send, events,
//! tasks; then it answers the publishes that input made, and waits for
//! the next input or the core's next deadline.
//!
//! Inputs are libp2p events (messages, connections, mDNS discoveries), the
//! core's timer, finished checks and actions, admin API queries and the
//! shutdown signal. Nothing here blocks on the network: sends are handed to
//! libp2p, whose queue is bounded by [`crate::config::Limits`] counted in
//! bytes per peer and in all, and executors run as their own tasks.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use fleetmesh_crdt::{
    ConfigEntry, Digest, Ed25519, HealthState, IdempotencyKey, LeaseKind, MemberState, NodeId,
    NodeMeta, PublicKey, RecordKind, Replica, SignedRecord, SignedRelease,
};
use fleetmesh_node::state::{Entry, Kind};
use fleetmesh_node::{
    Agent, Durable, Event, Instant, Output, Policy, Task, TaskId, TaskResult, Transmit,
};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, mdns};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::admin::{self, Answer, Query};
use crate::admission::{ADMISSION_SWEEP_INTERVAL, Strangers};
use crate::clock::Clock;
use crate::config::{AgentConfig, Endpoint};
use crate::exec;
use crate::files;
use crate::formats;
use crate::gate::Admitted;
use crate::journal::{JOURNAL_BYTES_MAX, Journal, Replayed};
use crate::metrics::{self, Gauges, RuntimeStats};
use crate::state::{REPLICAS_SAVE_INTERVAL, StateDir};
use crate::transport::{self, IDLE_CONNECTION_TIMEOUT, Mesh, MeshEvent, WireCounters};

/// Most seeds (bootstrap and mDNS peers) kept; past it, discoveries are
/// counted and dropped. The fleet is reached through any one of them.
pub const SEEDS_MAX: usize = 64;

/// A connection at least this old when its peer opens another one is taken
/// for a leftover of the peer's previous process (the peer would have used
/// it otherwise) and closed: libp2p spreads messages over all of a peer's
/// connections, and those sent on a dead one are lost until QUIC's idle
/// timeout notices. Younger ones are two dials crossing at start.
const STALE_CONNECTION_AGE: Duration = Duration::from_secs(2);

/// How long a leaving agent keeps running, so its `Left` reaches the fleet
/// (a couple of gossip rounds and their acknowledgements).
const LEAVE_GRACE: Duration = Duration::from_secs(2);

/// Bounds the drain loop: task refusals feed the core, which may hand out
/// more; in practice one or two passes suffice.
const DRAIN_PASSES_MAX: usize = 16;

/// Descriptors the agent holds whatever its load: the async runtime's,
/// the QUIC and mDNS sockets, the lock, standard streams, a state file
/// being written, and room to spare.
const DESCRIPTORS_BASE: u64 = 64;

/// Descriptors one running check or action holds: the pipes of its
/// standard output and error, and its process's pidfd or wait handle.
const DESCRIPTORS_PER_TASK: u64 = 3;

/// The most file descriptors the agent of `config` may hold at once:
/// [`DESCRIPTORS_BASE`], the admin API's listener and its
/// [`admin::CONNECTIONS_MAX`] connections, and [`DESCRIPTORS_PER_TASK`]
/// per check or action running (`limits.tasks_running_max`). QUIC
/// connections to peers share the agent's UDP sockets and cost none.
pub fn descriptors_needed(config: &AgentConfig) -> u64 {
    let tasks = u64::try_from(config.limits.tasks_running_max).unwrap_or(u64::MAX);
    let admin = if config.admin.is_some() {
        1 + admin::CONNECTIONS_MAX as u64
    } else {
        0
    };
    DESCRIPTORS_BASE
        .saturating_add(admin)
        .saturating_add(tasks.saturating_mul(DESCRIPTORS_PER_TASK))
}

/// What the running agent tells the process that started it.
#[derive(Clone, Debug)]
pub struct Started {
    /// The node's id.
    pub id: NodeId,
    /// Where the admin API listens, if enabled.
    pub admin: Option<Endpoint>,
}

/// One message handed to libp2p and not yet acknowledged.
struct InFlight {
    peer: PeerId,
    bytes: usize,
}

/// A seed: a peer reached through bootstrap or mDNS, before the core
/// knows its address from its metadata.
struct Seed {
    peer: PeerId,
    addrs: Vec<Multiaddr>,
}

/// What woke the loop.
enum Wake {
    Swarm(Box<SwarmEvent<MeshEvent>>),
    Timer,
    Task(Result<(TaskId, TaskResult), tokio::task::JoinError>),
    Admin(admin::Request),
    Redial,
    Admission,
    Shutdown,
    LeaveDone,
    Save,
}

/// The agent and everything around it.
struct Driver {
    agent: Agent,
    clock: Clock,
    config: AgentConfig,
    state: StateDir,
    durable: Durable,
    trust_version_saved: u64,
    /// The saved collections' roots at the last snapshot written (or
    /// loaded): equal roots, nothing to write.
    replicas_saved: [Digest; Kind::SAVED.len()],
    /// Whether the last snapshot write failed (reported once per streak).
    replicas_failing: bool,
    /// What the core merged since the last snapshot.
    journal: Journal,
    /// The core's `journal_dropped` counter as last seen: when it moves,
    /// entries were never journaled, and a snapshot must hold them.
    journal_dropped: u64,
    /// Answers to publishes, held until the drain that journaled what they
    /// merged has returned: acknowledged means durable. At most one input's
    /// worth: they are sent after every drain.
    acknowledgements: Vec<(oneshot::Sender<Answer>, Answer)>,
    swarm: Swarm<Mesh>,
    /// Connected peers by node: where a message for a node goes first.
    connected: BTreeMap<NodeId, PeerId>,
    /// Each peer's open connections and when they opened (bounded by the
    /// connection limits).
    connections: HashMap<PeerId, Vec<(ConnectionId, tokio::time::Instant)>>,
    in_flight: HashMap<OutboundRequestId, InFlight>,
    /// Unacknowledged messages and bytes per peer.
    queued_per_peer: HashMap<PeerId, (usize, usize)>,
    queued_bytes: usize,
    seeds: BTreeMap<NodeId, Seed>,
    /// Bootstrap addresses not yet answered by an agent.
    bootstrap_pending: Vec<Multiaddr>,
    /// Addresses bound by the listeners.
    listening: Vec<Multiaddr>,
    tasks: JoinSet<(TaskId, TaskResult)>,
    stats: RuntimeStats,
    admin: Arc<admin::Counters>,
    /// Incoming messages the codec refused for their size.
    wire_counters: Arc<WireCounters>,
    /// The connected peers the core admits, as the codec reads them.
    admitted: Admitted,
    /// Connections whose peer the core does not admit (yet).
    strangers: Strangers,
    started_at: tokio::time::Instant,
    leaving: Option<tokio::time::Instant>,
}

/// Runs the agent of `config` until `shutdown` completes, then leaves the
/// fleet gracefully. `started` (if given) learns the node id and admin
/// address once the agent runs.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
    started: Option<oneshot::Sender<Started>>,
) -> anyhow::Result<()> {
    let clock = Clock::new();
    let state = StateDir::open(&config.state_dir)?;
    let (identity, chain) = state.load_identity(clock.now_millis())?;
    let durable = state.load_durable()?;
    let (journal, replayed) = Journal::open(&state.journal_path())?;
    let tags = config
        .tags
        .clone()
        .unwrap_or_else(|| identity.cert.body.tags.clone());
    let keypair = identity.keypair.clone();
    let mut seed = [0; 8];
    getrandom::fill(&mut seed)
        .map_err(|error| anyhow::anyhow!("the operating system gave no randomness: {error}"))?;
    let now = clock.now();
    let meta = NodeMeta {
        tags,
        addrs: Vec::new(),
    };
    let mut agent = Agent::new(
        config.protocol(),
        identity,
        meta,
        u64::from_le_bytes(seed),
        now,
        Arc::new(Ed25519),
    )
    .map_err(|error| anyhow::anyhow!("the agent refused to start: {error}"))?;
    let restored = durable.is_some();
    let durable = durable.unwrap_or_default();
    agent.restore(now, durable.clone());
    // The chain file may hold trust versions past the genesis (an operator
    // installed it so, or this agent saved what it learned): hand them in.
    for doc in chain.chain().skip(1) {
        if let Err(error) = agent.publish(now, Entry::Trust(Box::new(doc.clone()))) {
            tracing::warn!(version = doc.doc.version, %error, "trust version from trust.json refused");
        }
    }
    let trust_version_saved = agent.replicas().trust().head().doc.version;

    let local_key = transport::libp2p_keypair(&keypair);
    let local_peer = local_key.public().to_peer_id();
    let wire_counters = Arc::new(WireCounters::default());
    let admitted = Admitted::default();
    let (mesh, mdns_error) = Mesh::new(
        local_peer,
        &config.limits,
        config.mdns,
        admitted.clone(),
        Arc::clone(&wire_counters),
    );
    if let Some(error) = mdns_error {
        tracing::warn!(%error, "mDNS discovery is off: it could not start; peers are found through bootstrap only");
    }
    let limits = config.limits.clone();
    let protocol = config.protocol();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(local_key)
        .with_tokio()
        .with_quic_config(|mut quic| {
            // A peer that vanished (crashed, cut off) is noticed by QUIC
            // within a few probe periods, so its dead connection stops
            // taking messages; keep-alives hold live ones open.
            let idle = (protocol.probe_interval * 4)
                .clamp(Duration::from_secs(4), Duration::from_secs(10));
            quic.max_idle_timeout = u32::try_from(idle.as_millis()).unwrap_or(u32::MAX);
            quic.keep_alive_interval = idle / 4;
            // What one peer can make this agent buffer: one message per
            // stream, a few per connection.
            let message =
                u32::try_from(fleetmesh_node::limits::MESSAGE_BYTES_MAX).unwrap_or(u32::MAX);
            quic.max_stream_data = message.saturating_add(message / 2);
            quic.max_connection_data = message.saturating_mul(4);
            // The config's range (at most 1,024) always fits.
            quic.max_concurrent_stream_limit =
                u32::try_from(limits.streams_per_connection).unwrap_or(u32::MAX);
            quic
        })
        .with_behaviour(|_| mesh)
        .map_err(|error| anyhow::anyhow!("cannot set up the transport: {error}"))?
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();

    let mut driver = Driver {
        agent,
        clock,
        state,
        durable,
        trust_version_saved,
        replicas_saved: [Digest([0; 32]); Kind::SAVED.len()],
        replicas_failing: false,
        journal,
        journal_dropped: 0,
        acknowledgements: Vec::new(),
        swarm,
        connected: BTreeMap::new(),
        connections: HashMap::new(),
        in_flight: HashMap::new(),
        queued_per_peer: HashMap::new(),
        queued_bytes: 0,
        seeds: BTreeMap::new(),
        bootstrap_pending: config.bootstrap.clone(),
        listening: Vec::new(),
        tasks: JoinSet::new(),
        stats: RuntimeStats::default(),
        admin: Arc::default(),
        wire_counters,
        admitted,
        strangers: Strangers::new(&config.limits),
        started_at: tokio::time::Instant::now(),
        leaving: None,
        config,
    };
    for addr in driver.config.listen.clone() {
        driver.swarm.listen_on(addr.clone()).map_err(|error| {
            anyhow::anyhow!(
                "cannot listen on {addr}: {error}; check the `listen` addresses in the agent config (is the port taken?)"
            )
        })?;
    }
    let (admin_tx, mut admin_rx) = mpsc::channel(admin::QUEUE_MAX);
    let mut admin_at = None;
    // Dropped as `run` returns: that closes the admin connections and
    // removes the socket file.
    let _admin = match admin::Listen::of(&driver.config)? {
        Some(listen) => {
            let server = admin::Server::bind(listen, admin_tx, Arc::clone(&driver.admin)).await?;
            admin_at = Some(server.endpoint());
            Some(AbortOnDrop(tokio::spawn(server.serve())))
        }
        None => None,
    };
    tracing::info!(
        node = %driver.agent.id(),
        key = %keypair.public(),
        peer = %local_peer,
        admin = admin_at.as_ref().map(ToString::to_string),
        restored,
        trust_version = trust_version_saved,
        "agent started"
    );
    driver.load_replicas();
    driver.replay_journal(replayed);
    driver.dial_bootstrap();
    let mut timeout = driver.drain()?;
    if let Some(started) = started {
        let _ = started.send(Started {
            id: driver.agent.id(),
            admin: admin_at,
        });
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mut redial = tokio::time::interval(driver.config.protocol().reconnect_interval);
    redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut save = tokio::time::interval(REPLICAS_SAVE_INTERVAL);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut admission = tokio::time::interval(ADMISSION_SWEEP_INTERVAL);
    admission.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let timer = timeout.map(|at| driver.clock.deadline(at));
        let wake = tokio::select! {
            event = driver.swarm.select_next_some() => Wake::Swarm(Box::new(event)),
            () = sleep_until(timer) => Wake::Timer,
            Some(done) = driver.tasks.join_next(), if !driver.tasks.is_empty() => Wake::Task(done),
            Some(request) = admin_rx.recv() => Wake::Admin(request),
            _ = redial.tick() => Wake::Redial,
            _ = admission.tick() => Wake::Admission,
            _ = save.tick() => Wake::Save,
            () = &mut shutdown, if driver.leaving.is_none() => Wake::Shutdown,
            () = sleep_until(driver.leaving), if driver.leaving.is_some() => Wake::LeaveDone,
        };
        match wake {
            Wake::Swarm(event) => driver.on_swarm(*event),
            Wake::Timer => {
                let now = driver.clock.now();
                driver.agent.handle_timeout(now);
            }
            Wake::Task(done) => driver.on_task_done(done),
            Wake::Admin(request) => driver.answer(request),
            Wake::Redial => driver.dial_bootstrap(),
            Wake::Admission => driver.sweep_admission(),
            Wake::Save => driver.save_replicas(),
            Wake::Shutdown => driver.leave(),
            Wake::LeaveDone => break,
        }
        timeout = driver.drain()?;
        driver.acknowledge();
    }
    driver.save_replicas();
    tracing::info!(
        in_flight = driver.in_flight.len(),
        "left the fleet; stopping"
    );
    Ok(())
}

/// The error that stops the agent when it cannot write `what`: it must
/// not send or acknowledge what it could forget after a crash.
fn stop_unwritten(what: &str) -> String {
    format!(
        "cannot write {what}; the agent stops rather than send promises it could forget after a crash; start it again once this is fixed"
    )
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sleeps until `at`; forever for `None`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `addr` without a trailing `/p2p/...`.
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|part| !matches!(part, Protocol::P2p(_)))
        .collect()
}

impl Driver {
    /// Drains the core per the driver contract ([`Output`]) and returns
    /// when its next timeout is due. Durable outputs come out first; they
    /// are gathered and made durable with one journal sync and one state
    /// write before the first output that is not durable is acted on. An
    /// error is fatal: state the core asked to make durable could not be
    /// written, so nothing that depends on it may be sent.
    fn drain(&mut self) -> anyhow::Result<Option<Instant>> {
        let mut next = None;
        for _ in 0..DRAIN_PASSES_MAX {
            let mut entries = Vec::new();
            let mut persisted = false;
            let mut synced = false;
            let mut refused = Vec::new();
            loop {
                let output = self.agent.poll_output();
                if !output.is_durable() && !synced {
                    self.make_durable(std::mem::take(&mut entries), persisted)?;
                    (persisted, synced) = (false, true);
                }
                match output {
                    Output::Journal(entry) => {
                        entries.push(entry);
                        synced = false;
                    }
                    Output::Persist(persist) => {
                        self.durable.apply(persist);
                        (persisted, synced) = (true, false);
                    }
                    Output::Transmit(transmit) => self.send(transmit),
                    Output::Event(event) => self.on_event(event),
                    Output::Task(task) => refused.extend(self.start_task(task)),
                    Output::Timeout(at) => {
                        next = Some(at);
                        break;
                    }
                    Output::Idle => {
                        next = None;
                        break;
                    }
                }
            }
            if refused.is_empty() {
                break;
            }
            let now = self.clock.now();
            for id in refused {
                let result = TaskResult {
                    success: false,
                    exit_code: None,
                    detail: format!(
                        "not run: {} checks and actions already running (limits.tasks_running_max)",
                        self.tasks.len()
                    ),
                };
                self.agent.handle_task_result(now, id, result);
            }
        }
        Ok(next)
    }

    /// Makes a drained run of durable outputs durable: the journal entries
    /// with one sync (the journal first, so that a release written to the
    /// durable state is never on disk without the changes it names), then
    /// the folded durable state if a persist changed it, then a newer trust
    /// chain.
    fn make_durable(&mut self, entries: Vec<Entry>, persisted: bool) -> anyhow::Result<()> {
        self.write_journal(entries)?;
        if persisted {
            self.state
                .save_durable(&self.durable)
                .with_context(|| stop_unwritten("the agent's durable state"))?;
            self.stats.durable_writes += 1;
        }
        self.save_trust();
        Ok(())
    }

    /// Appends what the core merged (`entries`) to the journal with one
    /// sync (group commit). Entries the core could not hand out (its queue overflowed)
    /// are saved by a whole snapshot instead; past the journal's bound, a
    /// snapshot empties it early.
    fn write_journal(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        let mut unjournaled = 0;
        if !entries.is_empty() {
            unjournaled = self
                .journal
                .append(&entries)
                .with_context(|| stop_unwritten("the replica journal"))?;
            self.stats.journal_writes += 1;
            self.stats.journal_entries += (entries.len() - unjournaled) as u64;
        }
        let dropped = self.agent.stats().journal_dropped;
        if dropped != self.journal_dropped || unjournaled > 0 {
            self.journal_dropped = dropped;
            tracing::warn!(
                dropped,
                unjournaled,
                "entries missed the journal: saving a whole snapshot instead"
            );
            return self
                .write_snapshot()
                .with_context(|| stop_unwritten("the replica snapshot"));
        }
        if self.journal.len() >= JOURNAL_BYTES_MAX && !self.replicas_failing {
            self.save_replicas();
        }
        Ok(())
    }

    /// Answers the publishes whose entries the last drain journaled.
    fn acknowledge(&mut self) {
        for (reply, answer) in self.acknowledgements.drain(..) {
            let _ = reply.send(answer);
        }
    }

    /// Takes back the replica snapshot of the previous process, if any. A
    /// damaged one is reported and set aside: all it held is the fleet's,
    /// and the agent catches up from its peers instead.
    fn load_replicas(&mut self) {
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
    fn replay_journal(&mut self, replayed: Replayed) {
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
    fn save_replicas(&mut self) {
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
    fn write_snapshot(&mut self) -> anyhow::Result<()> {
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
    fn save_trust(&mut self) {
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

    /// The peer a message for `node` goes to: a connected one, a seed, or
    /// the key of the node's certificate.
    fn peer_for(&self, node: NodeId) -> Option<PeerId> {
        if let Some(peer) = self.connected.get(&node) {
            return Some(*peer);
        }
        if let Some(seed) = self.seeds.get(&node) {
            return Some(seed.peer);
        }
        let cert = self.agent.replicas().certs().get(node)?;
        transport::peer_of_key(&cert.body.node_key)
    }

    /// Where `node` can be dialed: its announced addresses, and those it
    /// was found at as a seed.
    fn addresses_of(&self, node: NodeId) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = self
            .agent
            .members()
            .meta(node)
            .map(|meta| {
                meta.addrs
                    .iter()
                    .filter_map(|addr| addr.parse::<Multiaddr>().ok())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(seed) = self.seeds.get(&node) {
            for addr in &seed.addrs {
                if !addrs.contains(addr) {
                    addrs.push(addr.clone());
                }
            }
        }
        addrs
    }

    fn send(&mut self, transmit: Transmit) {
        let Some(peer) = self.peer_for(transmit.to) else {
            self.stats.transmits_unroutable += 1;
            return;
        };
        let bytes = transmit.bytes.len();
        let (messages, queued) = self.queued_per_peer.get(&peer).copied().unwrap_or((0, 0));
        let limits = &self.config.limits;
        if queued + bytes > limits.queue_bytes_per_peer
            || messages >= limits.queue_messages_per_peer
            || self.queued_bytes + bytes > limits.queue_bytes_max
        {
            self.stats.transmits_dropped_queue_full += 1;
            return;
        }
        let addrs = if self.swarm.is_connected(&peer) {
            Vec::new()
        } else {
            self.addresses_of(transmit.to)
        };
        let id = self
            .swarm
            .behaviour_mut()
            .wire
            .inner_mut()
            .send_request_with_addresses(&peer, transmit.bytes, addrs);
        self.in_flight.insert(id, InFlight { peer, bytes });
        let queued = self.queued_per_peer.entry(peer).or_default();
        queued.0 += 1;
        queued.1 += bytes;
        self.queued_bytes += bytes;
        self.stats.transmits_sent += 1;
    }

    /// Frees the queue space of a message that was acknowledged or failed.
    fn settle(&mut self, id: OutboundRequestId) {
        let Some(done) = self.in_flight.remove(&id) else {
            return;
        };
        self.queued_bytes = self.queued_bytes.saturating_sub(done.bytes);
        if let Some((messages, bytes)) = self.queued_per_peer.get_mut(&done.peer) {
            *messages = messages.saturating_sub(1);
            *bytes = bytes.saturating_sub(done.bytes);
            if *messages == 0 {
                self.queued_per_peer.remove(&done.peer);
            }
        }
    }

    fn dial_bootstrap(&mut self) {
        let own: Vec<Multiaddr> = self.listening.iter().map(without_peer).collect();
        for addr in self.bootstrap_pending.clone() {
            if own.contains(&without_peer(&addr)) {
                continue;
            }
            if let Err(error) = self.swarm.dial(addr.clone()) {
                self.stats.dial_errors += 1;
                tracing::debug!(%addr, %error, "cannot dial bootstrap peer");
            }
        }
    }

    /// Remembers `peer`, found at `addr`, as a seed; tells the core when
    /// the seed list grew.
    fn add_seed(&mut self, peer: PeerId, addr: Multiaddr) {
        let Some((_, node)) = transport::node_of(&peer) else {
            return;
        };
        if node == self.agent.id() {
            return;
        }
        let addr = without_peer(&addr);
        if let Some(seed) = self.seeds.get_mut(&node) {
            if !seed.addrs.contains(&addr) && seed.addrs.len() < 4 {
                seed.addrs.push(addr);
            }
            return;
        }
        if self.seeds.len() >= SEEDS_MAX {
            self.stats.seeds_dropped += 1;
            return;
        }
        self.seeds.insert(
            node,
            Seed {
                peer,
                addrs: vec![addr],
            },
        );
        let seeds: Vec<NodeId> = self.seeds.keys().copied().collect();
        let now = self.clock.now();
        self.agent.join(now, &seeds);
    }

    fn on_swarm(&mut self, event: SwarmEvent<MeshEvent>) {
        match event {
            SwarmEvent::Behaviour(MeshEvent::Wire(event)) => self.on_wire(event),
            SwarmEvent::Behaviour(MeshEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.stats.mdns_discovered += 1;
                    self.swarm.add_peer_address(peer, addr.clone());
                    self.add_seed(peer, addr);
                }
            }
            SwarmEvent::Behaviour(MeshEvent::Mdns(mdns::Event::Expired(_))) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                self.stats.connections_opened += 1;
                let Some((_, node)) = transport::node_of(&peer_id) else {
                    // Not an ed25519 key: no agent can be behind it.
                    self.stats.peers_refused += 1;
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                let now = tokio::time::Instant::now();
                let admitted = self.agent.admits(self.clock.now(), node);
                self.admitted.set(peer_id, admitted);
                if !admitted
                    && !self
                        .strangers
                        .opened(connection_id, peer_id, endpoint.is_listener(), now)
                {
                    self.stats.connections_unadmitted_refused += 1;
                    self.swarm.close_connection(connection_id);
                    return;
                }
                self.connected.insert(node, peer_id);
                let open = self.connections.entry(peer_id).or_default();
                if endpoint.is_listener() {
                    let (stale, kept): (Vec<_>, Vec<_>) = open
                        .drain(..)
                        .partition(|(_, since)| now.duration_since(*since) >= STALE_CONNECTION_AGE);
                    *open = kept;
                    for (stale, _) in stale {
                        self.stats.connections_replaced += 1;
                        self.swarm.close_connection(stale);
                    }
                }
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push((connection_id, now));
                // A bootstrap peer may reach this agent first: its dial
                // crosses ours (which the per-peer limit may then refuse).
                // QUIC sends from its listening socket, so the address an
                // incoming connection comes from is the peer's own.
                let remote = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let remote = without_peer(&remote);
                let before = self.bootstrap_pending.len();
                self.bootstrap_pending
                    .retain(|pending| without_peer(pending) != remote);
                if self.bootstrap_pending.len() < before {
                    tracing::info!(node = %node, addr = %remote, "bootstrap peer answered");
                    self.add_seed(peer_id, remote);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.stats.connections_closed += 1;
                self.strangers.closed(connection_id);
                if let Some(open) = self.connections.get_mut(&peer_id) {
                    open.retain(|(id, _)| *id != connection_id);
                    if open.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
                if num_established == 0 {
                    self.admitted.set(peer_id, false);
                    if let Some((_, node)) = transport::node_of(&peer_id) {
                        self.connected.remove(&node);
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if !self.listening.contains(&address) {
                    self.listening.push(address);
                }
                self.announce_addresses();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listening.retain(|addr| *addr != address);
                self.announce_addresses();
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                self.stats.incoming_connection_errors += 1;
                tracing::debug!(error = ?error, "incoming connection failed");
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                self.stats.dial_errors += 1;
                if let DialError::LocalPeerId { address } = &error {
                    // A bootstrap address that is this agent itself.
                    let own = without_peer(address);
                    self.bootstrap_pending
                        .retain(|pending| without_peer(pending) != own);
                }
                tracing::debug!(error = ?error, "dial failed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "a listener failed");
            }
            _ => {}
        }
    }

    /// Asks the core whether `peer` (node `node`) is admitted now, and
    /// tells the codec and the strangers' bookkeeping; returns the answer.
    fn check_admission(&mut self, peer: PeerId, node: NodeId) -> bool {
        let admitted = self.agent.admits(self.clock.now(), node);
        self.admitted.set(peer, admitted);
        if admitted {
            self.strangers.admitted(&peer);
        }
        admitted
    }

    /// Asks the core again about every connected peer (certificates also
    /// come from third parties, and go with revocation and expiry): a peer
    /// no longer admitted gets the strangers' grace, and connections past
    /// their grace are closed.
    fn sweep_admission(&mut self) {
        let now = tokio::time::Instant::now();
        let peers: Vec<PeerId> = self.connections.keys().copied().collect();
        for peer in peers {
            let Some((_, node)) = transport::node_of(&peer) else {
                continue;
            };
            if self.check_admission(peer, node) {
                continue;
            }
            for (id, _) in self.connections.get(&peer).cloned().unwrap_or_default() {
                if !self.strangers.contains(id) {
                    self.strangers.opened(id, peer, false, now);
                }
            }
        }
        for id in self.strangers.expired(now) {
            self.stats.connections_unadmitted_expired += 1;
            self.swarm.close_connection(id);
        }
    }

    fn on_wire(&mut self, event: request_response::Event<Vec<u8>, ()>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    // Acknowledge first: the sender's queue is freed whatever
                    // the core makes of the bytes.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .wire
                        .inner_mut()
                        .send_response(channel, ());
                    let Some((_, node)) = transport::node_of(&peer) else {
                        self.stats.peers_refused += 1;
                        return;
                    };
                    self.stats.messages_delivered += 1;
                    let now = self.clock.now();
                    self.agent.handle_message(now, node, &request);
                    // A Hello admits its sender at once: its next message
                    // may be a large one.
                    self.check_admission(peer, node);
                }
                request_response::Message::Response { request_id, .. } => self.settle(request_id),
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                match error {
                    OutboundFailure::DialFailure => self.stats.transmit_dial_failures += 1,
                    OutboundFailure::Timeout => self.stats.transmit_timeouts += 1,
                    OutboundFailure::ConnectionClosed
                    | OutboundFailure::UnsupportedProtocols
                    | OutboundFailure::Io(_) => self.stats.transmit_failures += 1,
                }
                self.settle(request_id);
            }
            request_response::Event::InboundFailure { error, .. } => {
                self.stats.receive_failures += 1;
                tracing::debug!(%error, "incoming message failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Announces the addresses peers should dial: the configured
    /// `advertise` ones, or those bound (loopback ones only when nothing
    /// else is bound, as on a test host), within the metadata's limits.
    fn announce_addresses(&mut self) {
        use fleetmesh_crdt::meta_limits::{ADDR_BYTES_MAX, ADDRS_MAX, TOTAL_BYTES_MAX};
        let candidates: Vec<Multiaddr> = if self.config.advertise.is_empty() {
            let routable: Vec<Multiaddr> = self
                .listening
                .iter()
                .filter(|addr| !is_loopback(addr))
                .cloned()
                .collect();
            if routable.is_empty() {
                self.listening.clone()
            } else {
                routable
            }
        } else {
            self.config.advertise.clone()
        };
        let Some(current) = self.agent.members().meta(self.agent.id()).cloned() else {
            return;
        };
        let mut budget = TOTAL_BYTES_MAX.saturating_sub(
            current
                .tags
                .iter()
                .map(|(key, value)| key.len() + value.len())
                .sum::<usize>(),
        );
        let mut addrs = Vec::new();
        for addr in candidates.iter().map(without_peer) {
            let text = addr.to_string();
            if addrs.len() >= ADDRS_MAX || text.len() > ADDR_BYTES_MAX || text.len() > budget {
                self.stats.addrs_dropped += 1;
                continue;
            }
            budget -= text.len();
            addrs.push(text);
        }
        if addrs == current.addrs {
            return;
        }
        let meta = NodeMeta {
            tags: current.tags.clone(),
            addrs,
        };
        if let Err(error) = self.agent.set_meta(meta) {
            tracing::warn!(%error, "cannot announce the listen addresses");
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::MemberChanged {
                id,
                previous,
                current,
            } => {
                let state = state_name(current.state);
                match current.state {
                    MemberState::Alive => {
                        tracing::debug!(member = %id, incarnation = current.incarnation, state, "member changed")
                    }
                    MemberState::Suspect | MemberState::Dead | MemberState::Left => {
                        tracing::info!(
                            member = %id,
                            incarnation = current.incarnation,
                            state,
                            previous = previous.map(|previous| state_name(previous.state)),
                            "member changed"
                        )
                    }
                }
            }
            Event::MemberReaped { id } => tracing::debug!(member = %id, "member forgotten"),
            Event::Refuted { incarnation } => {
                tracing::info!(incarnation, "refuted a claim about this agent")
            }
            Event::ReleaseApplied {
                doc,
                version,
                digest,
            } => tracing::info!(doc, version, digest = %digest, "release applied"),
            Event::SafeMode { entered: true } => {
                tracing::warn!(
                    "safe mode: a release expired, turned void or is incomplete; no disruptive action starts"
                )
            }
            Event::SafeMode { entered: false } => tracing::info!("safe mode over"),
            Event::LeaseAcquired { scope, epoch } => {
                tracing::info!(scope, epoch, "lease acquired")
            }
            Event::LeaseLost { scope, epoch } => tracing::info!(scope, epoch, "lease lost"),
        }
    }

    /// Starts `task`; returns its id when it cannot run now.
    fn start_task(&mut self, task: Task) -> Option<TaskId> {
        if self.tasks.len() >= self.config.limits.tasks_running_max {
            self.stats.tasks_refused += 1;
            return Some(task.id());
        }
        if let Task::Action {
            key, step, epoch, ..
        } = &task
        {
            tracing::info!(
                rule = key.rule,
                incident = key.incident,
                action = step.action,
                epoch,
                "running remediation action"
            );
        }
        self.stats.tasks_started += 1;
        let output_max = self.config.limits.output_bytes_max;
        self.tasks.spawn(exec::run(task, output_max));
        None
    }

    fn on_task_done(&mut self, done: Result<(TaskId, TaskResult), tokio::task::JoinError>) {
        match done {
            Ok((id, result)) => {
                let now = self.clock.now();
                self.agent.handle_task_result(now, id, result);
            }
            Err(error) => {
                // The core counts the run failed at its timeout.
                self.stats.tasks_lost += 1;
                tracing::error!(%error, "an executor failed");
            }
        }
    }

    fn answer(&mut self, request: admin::Request) {
        self.stats.admin_requests += 1;
        let publish = matches!(request.query, Query::Publish(_));
        let answer = match request.query {
            Query::Alive => Answer::Alive,
            Query::Agent => Answer::Json(self.info()),
            Query::Members => Answer::Json(self.members()),
            Query::Health => Answer::Json(self.health()),
            Query::Releases => Answer::Json(self.releases()),
            Query::Leases => Answer::Json(self.leases()),
            Query::Ledger => Answer::Json(self.ledger()),
            Query::Remediations => Answer::Json(json!({
                "remediations": self.remediations().iter().map(Remediation::json).collect::<Vec<_>>(),
            })),
            Query::Approvals => Answer::Json(self.approvals()),
            Query::ConfigHistory => Answer::Json(self.config_history()),
            Query::Trust => self.trust(),
            Query::Metrics => Answer::Metrics(self.metrics()),
            Query::Publish(text) => self.publish(&text),
            Query::Leave => {
                self.leave();
                Answer::Json(json!({
                    "leaving": true,
                    "stops_in_millis": LEAVE_GRACE.as_millis() as u64,
                }))
            }
        };
        if publish {
            // Acknowledged means durable: answered after the drain that
            // journals what it merged ([`Driver::acknowledge`]).
            self.acknowledgements.push((request.reply, answer));
        } else {
            let _ = request.reply.send(answer);
        }
    }

    /// Announces that this agent leaves and stops the loop after
    /// [`LEAVE_GRACE`]; asked again while leaving, changes nothing.
    fn leave(&mut self) {
        if self.leaving.is_some() {
            return;
        }
        tracing::info!("leaving the fleet");
        let now = self.clock.now();
        self.agent.leave(now);
        self.leaving = Some(tokio::time::Instant::now() + LEAVE_GRACE);
    }

    /// Merges the entries of a signed file (trust chain, config change or
    /// release) and spreads those that verify.
    fn publish(&mut self, text: &str) -> Answer {
        let entries = match entries_of(text) {
            Ok(entries) => entries,
            Err(error) => {
                return Answer::Refused(json!({ "error": format!("the file {error:#}") }));
            }
        };
        let now = self.clock.now();
        let mut refused = Vec::new();
        let count = entries.len();
        for entry in entries {
            if let Some(stale) = self.stale(&entry) {
                refused.push(stale);
                continue;
            }
            if let Err(error) = self.agent.publish(now, entry) {
                refused.push(error.to_string());
            }
        }
        if refused.is_empty() {
            tracing::info!(entries = count, "published");
            Answer::Json(json!({ "published": count }))
        } else {
            Answer::Refused(json!({
                "error": format!("{} of {count} entries refused: {}", refused.len(), refused.join("; ")),
                "published": count - refused.len(),
            }))
        }
    }

    /// Why a published release is stale, if it is: this agent already
    /// runs a higher version of its document, or another release of the
    /// same version. Agents only move forward, so such a release would be
    /// held and never run; an operator publishing it made a mistake worth
    /// saying. The release this agent runs may be published again (after a
    /// whole fleet restarted, say).
    fn stale(&self, entry: &Entry) -> Option<String> {
        let Entry::Release(release) = entry else {
            return None;
        };
        let body = &release.release;
        let applied = self.agent.applied_release(&body.doc)?;
        let behind = body.version < applied.version
            || (body.version == applied.version
                && body.digest() != applied.digest
                && !applied.void);
        behind.then(|| {
            format!(
                "release {} version {} is stale: this agent already runs version {} of {}; make release {} instead (`fleetmesh config release --version {}`)",
                body.doc,
                body.version,
                applied.version,
                body.doc,
                applied.version + 1,
                applied.version + 1
            )
        })
    }

    /// The trust chain this agent runs, as the file an operator would
    /// hold.
    fn trust(&self) -> Answer {
        let chain = formats::chain_json(self.agent.replicas().trust())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        match chain {
            Some(chain) => Answer::Json(chain),
            None => Answer::Refused(json!({ "error": "the trust chain could not be written out" })),
        }
    }

    /// The ledger grouped per remediation (rule, target, incident), oldest
    /// first.
    fn remediations(&self) -> Vec<Remediation> {
        let now_millis = self.clock.now_millis();
        let mut grouped: BTreeMap<&IdempotencyKey, Vec<&SignedRecord>> = BTreeMap::new();
        for signed in self.agent.replicas().ledger().iter() {
            grouped.entry(&signed.record.key).or_default().push(signed);
        }
        let mut all: Vec<Remediation> = grouped
            .into_iter()
            .map(|(key, records)| {
                let name = self.name_of(key.target.node_id());
                Remediation::of(key, name, &records, now_millis, self.agent.policy())
            })
            .collect();
        all.sort_by_key(|remediation| remediation.first_millis);
        all
    }

    fn approvals(&self) -> Value {
        let waiting: Vec<Value> = self
            .remediations()
            .iter()
            .filter(|remediation| remediation.awaits_approval.is_some())
            .map(Remediation::json)
            .collect();
        json!({ "approvals": waiting, "now_millis": self.clock.now_millis() })
    }

    fn config_history(&self) -> Value {
        let log = self.agent.replicas().releases();
        let mut releases: Vec<SignedRelease> = log
            .versions()
            .iter()
            .filter_map(|(key, _)| log.entry(key))
            .collect();
        releases.sort_by(|a, b| {
            (&a.release.doc, a.release.version, a.release.digest()).cmp(&(
                &b.release.doc,
                b.release.version,
                b.release.digest(),
            ))
        });
        let releases: Vec<Value> = releases
            .iter()
            .map(|signed| {
                let body = &signed.release;
                let digest = body.digest();
                let applied = self.agent.applied_release(&body.doc);
                json!({
                    "doc": body.doc,
                    "version": body.version,
                    "digest": digest.to_hex(),
                    "trust_version": body.trust_version,
                    "expires_millis": body.expires_millis,
                    "signers": signed.signatures.keys().map(PublicKey::to_hex).collect::<Vec<_>>(),
                    "running": applied.is_some_and(|applied| applied.digest == digest),
                })
            })
            .collect();
        json!({ "releases": releases, "quarantined": self.quarantined() })
    }

    /// Config keys this agent refuses for equivocating or for signing a
    /// change automerge cannot apply: the operator's cue to revoke them.
    fn quarantined(&self) -> Vec<String> {
        self.agent
            .replicas()
            .config()
            .quarantined()
            .map(PublicKey::to_hex)
            .collect()
    }

    fn info(&self) -> Value {
        let now = self.clock.now();
        let trust = self.agent.replicas().trust();
        let me = self.agent.members().meta(self.agent.id());
        json!({
            "id": self.agent.id().to_string(),
            "name": self.name_of(self.agent.id()),
            "key": self.key_of(self.agent.id()),
            "peer": self.swarm.local_peer_id().to_string(),
            "incarnation": self.agent.incarnation(),
            "fleet": trust.fleet_id().to_hex(),
            "fleet_name": trust.head().doc.fleet,
            "trust_version": trust.head().doc.version,
            "tags": me.map(|meta| meta.tags.clone()).unwrap_or_default(),
            "addrs": me.map(|meta| meta.addrs.clone()).unwrap_or_default(),
            "listening": self.listening.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "safe_mode": self.agent.is_safe_mode(now),
            "policy_loaded": self.agent.policy().is_some(),
            "leaving": self.leaving.is_some(),
            "uptime_millis": self.started_at.elapsed().as_millis() as u64,
            "now_millis": self.clock.now_millis(),
            "now": files::format_time(self.clock.now_millis()),
            "state_dir": self.state.path().display().to_string(),
        })
    }

    fn key_of(&self, node: NodeId) -> Option<String> {
        self.agent
            .replicas()
            .certs()
            .get(node)
            .map(|cert| cert.body.node_key.to_hex())
    }

    /// The name in `node`'s certificate, if this agent holds it.
    fn name_of(&self, node: NodeId) -> Option<String> {
        self.agent
            .replicas()
            .certs()
            .get(node)
            .map(|cert| cert.body.name.clone())
    }

    fn members(&self) -> Value {
        let table = self.agent.members();
        let members: Vec<Value> = (0..table.len())
            .map(|at| {
                let member = table.member_at(at);
                let cert = self.agent.replicas().certs().get(member.id);
                let meta = table.meta(member.id);
                json!({
                    "id": member.id.to_string(),
                    "name": cert.map(|cert| cert.body.name.clone()),
                    "key": cert.map(|cert| cert.body.node_key.to_hex()),
                    "state": state_name(member.state()),
                    "incarnation": member.incarnation(),
                    "tags": meta.map(|meta| meta.tags.clone()).unwrap_or_default(),
                    "addrs": meta.map(|meta| meta.addrs.clone()).unwrap_or_default(),
                    "connected": self.connected.contains_key(&member.id),
                    "self": member.id == self.agent.id(),
                })
            })
            .collect();
        json!({ "members": members })
    }

    fn health(&self) -> Value {
        let reports: Vec<Value> = self
            .agent
            .replicas()
            .health()
            .iter()
            .map(|signed| {
                let report = &signed.report;
                json!({
                    "node": report.node.node_id().to_string(),
                    "name": self.name_of(report.node.node_id()),
                    "key": report.node.to_hex(),
                    "check": report.check,
                    "state": match report.state {
                        HealthState::Healthy => "healthy",
                        HealthState::Unhealthy => "unhealthy",
                        HealthState::Unknown => "unknown",
                    },
                    "at_millis": report.at.millis,
                    "detail": report.detail,
                    "cause": report.cause.map(|cause| cause.to_hex()),
                })
            })
            .collect();
        json!({ "reports": reports })
    }

    fn releases(&self) -> Value {
        let releases: Vec<Value> = self
            .agent
            .applied_releases()
            .values()
            .map(|applied| {
                json!({
                    "doc": applied.doc,
                    "version": applied.version,
                    "digest": applied.digest.to_hex(),
                    "expires_millis": applied.expires_millis,
                    "void": applied.void,
                    "content": self.agent.released_config(&applied.doc)
                        .and_then(|value| serde_json::to_value(value).ok()),
                })
            })
            .collect();
        json!({ "releases": releases, "quarantined": self.quarantined() })
    }

    fn leases(&self) -> Value {
        let now = self.clock.now();
        let leases: Vec<Value> = self
            .agent
            .replicas()
            .leases()
            .iter()
            .map(|signed| {
                let lease = &signed.lease;
                // Who backs the lease, so an operator can see which voters
                // granted it (a quorum lease) or that none did.
                let (voters, granted_by): (Vec<String>, Vec<String>) = match &lease.kind {
                    LeaseKind::Quorum { voters, grants } => (
                        voters.iter().map(PublicKey::to_hex).collect(),
                        grants
                            .iter()
                            .map(|grant| grant.body.voter.to_hex())
                            .collect(),
                    ),
                    LeaseKind::Component => (Vec::new(), Vec::new()),
                };
                json!({
                    "scope": lease.scope,
                    "voters": voters,
                    "granted_by": granted_by,
                    "epoch": lease.epoch,
                    "holder": lease.holder.to_hex(),
                    "holder_id": lease.holder.node_id().to_string(),
                    "holder_name": self.name_of(lease.holder.node_id()),
                    "granted_at_millis": lease.granted_at.millis,
                    "expires_at_millis": lease.expires_at_millis(),
                    "held_here": self.agent.holds(now, &lease.scope) == Some(lease.epoch),
                    "budget_in_use": self.agent.budget_in_use(now, &lease.scope),
                })
            })
            .collect();
        json!({ "leases": leases })
    }

    fn ledger(&self) -> Value {
        let records: Vec<Value> = self
            .agent
            .replicas()
            .ledger()
            .iter()
            .map(|signed| {
                let record = &signed.record;
                json!({
                    "digest": signed.digest().to_hex(),
                    "rule": record.key.rule,
                    "target": record.key.target.to_hex(),
                    "target_id": record.key.target.node_id().to_string(),
                    "incident": record.key.incident,
                    "author": record.author.to_hex(),
                    "at_millis": record.at.millis,
                    "record": record_json(&record.kind),
                })
            })
            .collect();
        json!({ "records": records })
    }

    fn metrics(&mut self) -> String {
        let now = self.clock.now();
        let admin = &self.admin;
        self.stats.admin_busy = admin.busy.load(Ordering::Relaxed);
        self.stats.admin_requests_refused = admin.requests_refused.load(Ordering::Relaxed);
        self.stats.admin_connections_refused = admin.connections_refused.load(Ordering::Relaxed);
        self.stats.admin_connections_timed_out =
            admin.connections_timed_out.load(Ordering::Relaxed);
        self.stats.admin_accept_errors = admin.accept_errors.load(Ordering::Relaxed);
        let counters = &self.wire_counters;
        self.stats.messages_oversized = counters.oversized.load(Ordering::Relaxed);
        self.stats.messages_unadmitted_oversized =
            counters.unadmitted_oversized.load(Ordering::Relaxed);
        let table = self.agent.members();
        let mut counts = [0usize; 4];
        for at in 0..table.len() {
            counts[state_index(table.member_at(at).state())] += 1;
        }
        let budget_in_use = self
            .agent
            .replicas()
            .leases()
            .iter()
            .filter(|signed| signed.lease.scope.starts_with("remediate:"))
            .map(|signed| {
                let scope = signed.lease.scope.clone();
                let used = self.agent.budget_in_use(now, &scope);
                (scope, used)
            })
            .collect();
        let gauges = Gauges {
            members: [
                MemberState::Alive,
                MemberState::Suspect,
                MemberState::Dead,
                MemberState::Left,
            ]
            .into_iter()
            .map(|state| (state_name(state), counts[state_index(state)]))
            .collect(),
            broadcast_queue: self.agent.queued_broadcasts(),
            push_queue: self.agent.replicas().push_len(),
            outbound_in_flight: self.in_flight.len(),
            outbound_bytes: self.queued_bytes,
            tasks_running: self.tasks.len(),
            connections_unadmitted: self.strangers.len(),
            connections: self
                .swarm
                .network_info()
                .connection_counters()
                .num_established() as usize,
            admin_connections: usize::try_from(admin.connections_open.load(Ordering::Relaxed))
                .unwrap_or(usize::MAX),
            budget_in_use,
            safe_mode: self.agent.is_safe_mode(now),
            incarnation: u64::from(self.agent.incarnation()),
            trust_version: self.agent.replicas().trust().head().doc.version,
            releases: self
                .agent
                .applied_releases()
                .values()
                .map(|applied| (applied.doc.clone(), applied.version))
                .collect(),
        };
        metrics::render(
            self.agent.stats(),
            &self.agent.replicas().stats(),
            &self.stats,
            &gauges,
        )
    }
}

/// One remediation as the ledger tells it: every record about one
/// (rule, target, incident).
struct Remediation {
    key: IdempotencyKey,
    target_name: Option<String>,
    first_millis: u64,
    last_millis: u64,
    records: usize,
    /// Where it stands, in one word.
    status: &'static str,
    /// The action planned or asked for, if a record names it.
    action: Option<String>,
    /// The outcome's detail or the rail's reason, if any.
    detail: Option<String>,
    approved: bool,
    /// The record an approval would answer (an intent of a step that waits
    /// for one, or a needs-human record), if it still waits: the id
    /// `fleetmesh approve` takes.
    awaits_approval: Option<Digest>,
}

impl Remediation {
    fn of(
        key: &IdempotencyKey,
        target_name: Option<String>,
        records: &[&SignedRecord],
        now_millis: u64,
        policy: Option<&Policy>,
    ) -> Remediation {
        let find = |wanted: fn(&RecordKind) -> bool| {
            records
                .iter()
                .find(|signed| wanted(&signed.record.kind))
                .copied()
        };
        let outcome = find(|kind| matches!(kind, RecordKind::Outcome { .. }));
        let started = find(|kind| matches!(kind, RecordKind::Started { .. }));
        let skipped = find(|kind| matches!(kind, RecordKind::Skipped { .. }));
        let needs_human = find(|kind| matches!(kind, RecordKind::NeedsHuman { .. }));
        let intent = find(|kind| matches!(kind, RecordKind::Intent { .. }));
        let request = find(|kind| matches!(kind, RecordKind::Request { .. }));
        let approved = records.iter().any(|signed| {
            matches!(signed.record.kind, RecordKind::Approval { expires_millis, .. } if expires_millis > now_millis)
        });
        let action = records.iter().find_map(|signed| match &signed.record.kind {
            RecordKind::Intent { action, .. } | RecordKind::Request { action, .. } => {
                Some(action.clone())
            }
            _ => None,
        });
        let detail = records.iter().find_map(|signed| match &signed.record.kind {
            RecordKind::Outcome { detail, .. } => Some(detail.clone()),
            RecordKind::Skipped { reason } | RecordKind::NeedsHuman { reason } => {
                Some(reason.clone())
            }
            _ => None,
        });
        let dry_run = intent.is_some_and(|signed| {
            matches!(signed.record.kind, RecordKind::Intent { dry_run: true, .. })
        });
        // A step's intent waits for an approval when the policy says the
        // step needs one; with no policy loaded the agent cannot tell, so
        // it lists it rather than hide it.
        let gated = |action: &str| {
            policy
                .and_then(|policy| policy.rules.get(&key.rule))
                .is_none_or(|rule| {
                    rule.steps
                        .iter()
                        .any(|step| step.action == action && step.approval)
                })
        };
        let status = match (outcome, started, skipped, needs_human, intent, request) {
            (Some(signed), ..) => match signed.record.kind {
                RecordKind::Outcome { success: true, .. } => "succeeded",
                _ => "failed",
            },
            (None, Some(_), ..) => "running",
            (None, None, Some(_), ..) => "skipped",
            (None, None, None, Some(_), ..) if approved => "approved",
            (None, None, None, Some(_), ..) => "needs-human",
            (None, None, None, None, Some(_), _) if dry_run => "dry-run",
            (None, None, None, None, Some(_), _) => "planned",
            (None, None, None, None, None, Some(_)) => "requested",
            (None, None, None, None, None, None) if approved => "approved",
            (None, None, None, None, None, None) => "lapsed",
        };
        let awaits_approval = match status {
            _ if approved => None,
            "needs-human" => needs_human,
            "planned" if action.as_deref().is_some_and(gated) => intent,
            _ => None,
        }
        .map(|signed| signed.digest());
        let status = match status {
            "planned" if awaits_approval.is_some() => "awaiting-approval",
            other => other,
        };
        let times = records.iter().map(|signed| signed.record.at.millis);
        Remediation {
            key: key.clone(),
            target_name,
            first_millis: times.clone().min().unwrap_or(0),
            last_millis: times.max().unwrap_or(0),
            records: records.len(),
            status,
            action,
            detail,
            approved,
            awaits_approval,
        }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.awaits_approval.map(|digest| digest.to_hex()),
            "rule": self.key.rule,
            "target": self.key.target.to_hex(),
            "target_id": self.key.target.node_id().to_string(),
            "target_name": self.target_name,
            "incident": self.key.incident,
            "status": self.status,
            "action": self.action,
            "detail": self.detail,
            "approved": self.approved,
            "records": self.records,
            "first_at_millis": self.first_millis,
            "last_at_millis": self.last_millis,
        })
    }
}

/// The entries a signed file holds, by its `format`: how the admin API
/// reads a `POST /v1/publish` body (public for the fuzz target
/// `admin_body`).
pub fn entries_of(text: &str) -> anyhow::Result<Vec<Entry>> {
    let format = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| value.get("format")?.as_str().map(str::to_owned));
    match format.as_deref() {
        Some(formats::CHAIN_FORMAT) => Ok(formats::parse_chain(text)?
            .chain()
            .map(|doc| Entry::Trust(Box::new(doc.clone())))
            .collect()),
        Some(formats::CHANGE_FORMAT) => {
            let json: formats::ChangeJson =
                files::parse_json(text, formats::CHANGE_FORMAT, "config change")?;
            let change = json.decode().context("holds bad data")?;
            Ok(vec![Entry::Config(Box::new(ConfigEntry::Change(change)))])
        }
        Some(formats::APPROVAL_FORMAT) => {
            let json: formats::ApprovalJson =
                files::parse_json(text, formats::APPROVAL_FORMAT, "approval")?;
            Ok(vec![Entry::Ledger(Box::new(json.decode()?))])
        }
        Some(formats::RELEASE_FORMAT) => {
            let json: formats::ReleaseJson =
                files::parse_json(text, formats::RELEASE_FORMAT, "config release")?;
            let release = json.decode().context("holds bad data")?;
            Ok(vec![Entry::Release(Box::new(release))])
        }
        _ => anyhow::bail!(
            "is not a trust chain, config change, config release or approval file (by its \"format\" field); publish the files `fleetmesh fleet`, `fleetmesh config` and `fleetmesh approve` write"
        ),
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

fn state_index(state: MemberState) -> usize {
    match state {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

fn record_json(kind: &RecordKind) -> Value {
    let key = |key: &PublicKey| key.to_hex();
    match kind {
        RecordKind::Intent {
            scope,
            epoch,
            action,
            planner,
            dry_run,
            deadline_millis,
        } => json!({
            "kind": "intent", "scope": scope, "epoch": epoch, "action": action,
            "planner": key(planner), "dry_run": dry_run, "deadline_millis": deadline_millis,
        }),
        RecordKind::Request { scope, action } => {
            json!({ "kind": "request", "scope": scope, "action": action })
        }
        RecordKind::Started { epoch } => json!({ "kind": "started", "epoch": epoch }),
        RecordKind::Outcome {
            success,
            exit_code,
            detail,
        } => json!({
            "kind": "outcome", "success": success, "exit_code": exit_code, "detail": detail,
        }),
        RecordKind::Skipped { reason } => json!({ "kind": "skipped", "reason": reason }),
        RecordKind::NeedsHuman { reason } => json!({ "kind": "needs-human", "reason": reason }),
        RecordKind::Approval {
            approver,
            expires_millis,
            trust_version,
        } => json!({
            "kind": "approval", "approver": key(approver),
            "expires_millis": expires_millis, "trust_version": trust_version,
        }),
    }
}

/// A future that resolves on SIGTERM or SIGINT (Ctrl-C): the signals that
/// ask the agent to leave the fleet and stop. SIGHUP, whose default would
/// kill the agent without a word, calls `on_hangup` instead (the binary
/// reloads its log level) and stops nothing. The handlers are installed
/// when this is called, inside the async runtime, so a signal arriving
/// while the agent starts is not lost.
pub fn shutdown_signal(mut on_hangup: impl FnMut()) -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (mut term, mut int, mut hup) = match signals {
            (Ok(term), Ok(int), Ok(hup)) => (term, int, hup),
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                tracing::error!(%error, "cannot watch for SIGTERM, SIGINT and SIGHUP; stop the agent with SIGKILL");
                return std::future::pending::<()>().await;
            }
        };
        loop {
            tokio::select! {
                _ = term.recv() => return tracing::info!("SIGTERM received"),
                _ = int.recv() => return tracing::info!("SIGINT received"),
                _ = hup.recv() => on_hangup(),
            }
        }
    }
}
