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
//!
//! The loop and the drain live here; the driver's other work is split by
//! what it touches: the replica snapshot, journal replay and trust file
//! ([`replicas`]), the swarm's events, sends and admission ([`network`],
//! with per-peer bookkeeping in [`crate::peers`]), admin API requests
//! ([`requests`], answered from [`crate::views`]), and the core's events
//! as log lines ([`events`]).

mod events;
mod network;
mod replicas;
mod requests;

pub use requests::entries_of;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetmesh_crdt::{Digest, Ed25519, NodeId, NodeMeta};
use fleetmesh_node::{Agent, Durable, Instant, Output, Task, TaskId, TaskResult};
use fleetmesh_node::{Entry, Kind};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::admin::{self, Answer};
use crate::admission::ADMISSION_SWEEP_INTERVAL;
use crate::clock::Clock;
use crate::config::{AgentConfig, Endpoint};
use crate::exec;
use crate::gate::Admitted;
use crate::journal::{JOURNAL_BYTES_MAX, Journal};
use crate::metrics::RuntimeStats;
use crate::peers::Peers;
use crate::state::{REPLICAS_SAVE_INTERVAL, StateDir};
use crate::transport::{self, IDLE_CONNECTION_TIMEOUT, Mesh, MeshEvent, WireCounters};

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
    /// Connections, routes, send queues and seeds, per peer.
    peers: Peers,
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
    started_at: tokio::time::Instant,
    leaving: Option<tokio::time::Instant>,
    /// True until the first drain has run: what the core reports while it
    /// takes back its saved state is summed up once, after it.
    starting: bool,
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
        peers: Peers::new(&config.limits),
        bootstrap_pending: config.bootstrap.clone(),
        listening: Vec::new(),
        tasks: JoinSet::new(),
        stats: RuntimeStats::default(),
        admin: Arc::default(),
        wire_counters,
        admitted,
        started_at: tokio::time::Instant::now(),
        leaving: None,
        starting: true,
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
    driver.started();
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
        in_flight = driver.peers.in_flight(),
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
