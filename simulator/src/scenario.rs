//! Scenario files: a fleet, its protocol parameters, a network, a fault
//! timeline and the expectations a run must meet. The format is documented
//! in `docs/scenarios.md`; every field is checked, and an error names the
//! file, the line and the field.

use crate::network::LinkModel;
use fleetmesh_node::Config;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU8;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

mod leases;
mod services;
mod swarm;
pub use leases::LeaseSpec;
pub use services::{
    ApproveFault, LocalOnly, RemedyExpect, ServiceFault, ServiceMode, ServiceModel, resolve_voters,
};
pub use swarm::{SCALE_MAX, SwarmBounds};

/// Most agents a scenario may ask for; the simulator's memory budget.
pub const AGENTS_MAX: u32 = 100_000;
/// Longest simulated duration, in seconds (one week).
pub const DURATION_S_MAX: f64 = 7.0 * 24.0 * 3600.0;

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error(
        "{path}: cannot read the scenario file: {error}; check the path (scenarios/ holds examples)"
    )]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Not valid TOML, an unknown field, or a value of the wrong type.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// Well-formed, but a value is out of range or inconsistent.
    #[error("{path}:{line}: field `{field}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the table holding the field.
        line: usize,
        /// Path of the field, e.g. `faults[2].heal_s`.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// A parsed, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What the scenario shows.
    pub description: String,
    /// Simulated duration.
    pub duration: Duration,
    /// Default root seed (the command line may override it).
    pub seed: u64,
    /// The fleet.
    pub fleet: Fleet,
    /// Protocol parameters every agent runs with.
    pub config: Config,
    /// Name of the preset the parameters started from.
    pub preset: String,
    /// The network's default link model.
    pub link: LinkModel,
    /// Per-link overrides, as selectors.
    pub links: Vec<LinkRule>,
    /// The fault timeline.
    pub faults: Vec<Fault>,
    /// Scopes the fleet runs the lease protocol for.
    pub leases: Vec<LeaseSpec>,
    /// How long modelled checks and actions take.
    pub services: ServiceModel,
    /// What a run must meet.
    pub expect: Expect,
    /// How far a swarm run may vary the faults from seed to seed.
    pub swarm: SwarmBounds,
}

/// The simulated fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Number of agents.
    pub agents: u32,
    /// The first `seeds` agents are the seeds every agent joins through.
    pub seeds: u32,
    /// Agents start at uniformly random times in `[0, join_spread]`; seeds
    /// start at 0.
    pub join_spread: Duration,
    /// Tags of each agent, by index.
    pub tags: Vec<BTreeMap<String, String>>,
}

/// A per-link override between two selectors.
#[derive(Clone, Debug)]
pub struct LinkRule {
    /// Senders.
    pub from: Nodes,
    /// Recipients.
    pub to: Nodes,
    /// The link model.
    pub model: LinkModel,
}

/// A set of agents, resolved against the fleet when a run is built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nodes {
    /// Keep only agents carrying all these tags.
    pub select: BTreeMap<String, String>,
    /// Then pick this many at random.
    pub count: Option<u32>,
    /// Or this fraction of the agents the selection leaves, at random.
    pub fraction: Option<f64>,
    /// Or exactly these indices (not combinable with the fields above).
    pub ids: Option<Vec<u32>>,
    /// Leave the seeds out of random picks.
    pub exclude_seeds: bool,
}

/// One entry of the fault timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Split the network into groups.
    Partition {
        /// When it starts.
        at: Duration,
        /// When it heals, if ever.
        heal: Option<Duration>,
        /// The groups, drawn in order from agents not yet grouped; agents
        /// left over form one more group.
        groups: Vec<Nodes>,
        /// Extra directed links allowed between groups: one-way links.
        allow: Vec<(u16, u16)>,
        /// Agents that reach, and are reached by, every group.
        bridges: Option<Nodes>,
    },
    /// Crash agents (volatile state lost), optionally restarting them.
    Crash {
        /// When.
        at: Duration,
        /// Which agents.
        nodes: Nodes,
        /// Restart after this long, if at all.
        restart_after: Option<Duration>,
    },
    /// Pause agents (a stopped process: no input handled, timers late).
    Pause {
        /// When.
        at: Duration,
        /// Which agents.
        nodes: Nodes,
        /// For how long.
        duration: Duration,
    },
    /// Pause random agents, as a Poisson process per agent.
    RandomPauses {
        /// Window start.
        from: Duration,
        /// Window end.
        until: Duration,
        /// Pauses per agent per hour.
        per_agent_hour: f64,
        /// Length of each pause.
        duration: Duration,
    },
    /// Agents report health checks: every check healthy at `from`, then
    /// each check flips between unhealthy and healthy as a Poisson process.
    HealthFlaps {
        /// Window start.
        from: Duration,
        /// Window end.
        until: Duration,
        /// Checks per agent.
        checks: u8,
        /// Flips per check per agent per hour.
        per_agent_hour: f64,
    },
    /// Change the default link model for a while.
    Network {
        /// When.
        at: Duration,
        /// Until when (the previous model is restored), if ever.
        until: Option<Duration>,
        /// The model in force meanwhile.
        model: LinkModel,
    },
    /// Skew and drift the clocks of agents.
    Clock {
        /// When.
        at: Duration,
        /// Which agents.
        nodes: Nodes,
        /// Each agent's offset is uniform in `[-skew, +skew]`.
        skew: Duration,
        /// Each agent's drift is uniform in `[-drift, +drift]` ppm.
        drift_ppm: u32,
    },
    /// Agents leave gracefully.
    Leave {
        /// When.
        at: Duration,
        /// Which agents.
        nodes: Nodes,
    },
    /// Agents change their tags (a new incarnation every agent must learn);
    /// the run reports how long the news took to reach everyone.
    Retag {
        /// When.
        at: Duration,
        /// Which agents.
        nodes: Nodes,
        /// The new tags.
        tags: BTreeMap<String, String>,
    },
    /// Crash whichever agent holds a lease's scope when the fault fires (no
    /// one, if nobody holds it then).
    CrashHolder {
        /// When.
        at: Duration,
        /// The scope, one of the scenario's `[[leases]]`.
        scope: String,
        /// Restart after this long, if at all.
        restart_after: Option<Duration>,
    },
    /// An operator writes a config document and (usually) releases it.
    Config {
        /// When.
        at: Duration,
        /// What is written.
        publication: Publication,
    },
    /// The root signs a new trust document.
    Trust {
        /// When.
        at: Duration,
        /// What it changes.
        change: TrustChange,
        /// Agents it may be handed to (one running agent is picked).
        via: Nodes,
    },
    /// An operator key equivocates: it signs two different changes with one
    /// sequence number and hands each to a different agent.
    Equivocate {
        /// When.
        at: Duration,
        /// The misbehaving key.
        author: OperatorKey,
        /// The document.
        doc: String,
        /// Agents the two changes may be handed to (two running ones are
        /// picked).
        via: Nodes,
    },
    /// An operator releases the remediation policy (document
    /// [`fleetmesh_node::POLICY_DOC`]); rules' voter selectors are resolved
    /// to keys when it is published.
    Policy {
        /// When.
        at: Duration,
        /// The document, released by its author.
        publication: Publication,
    },
    /// A modelled service fails.
    Service(Box<ServiceFault>),
    /// An operator approves pending remediations.
    Approve(Box<ApproveFault>),
    /// An admitted agent turns hostile: it sends forged, replayed and
    /// malformed input to random agents while still running the protocol.
    Attack {
        /// Window start.
        from: Duration,
        /// Window end.
        until: Duration,
        /// Attempts in all, spread evenly over the window.
        attempts: u32,
        /// The attacking agent.
        attacker: u32,
        /// A config key the attacker holds: it signs the change that
        /// panics automerge when applied. `None`: the attacker's own node
        /// key signs it, and every agent refuses it unapplied.
        config_key: Option<OperatorKey>,
    },
}

/// The simulated fleet's operator keys, by the names scenarios use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorKey {
    /// `operator`: holds config, admit and approve.
    Operator,
    /// `operator-2`: holds config.
    Operator2,
}

impl OperatorKey {
    /// Both keys.
    pub const ALL: [OperatorKey; 2] = [OperatorKey::Operator, OperatorKey::Operator2];

    /// The key's name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            OperatorKey::Operator => "operator",
            OperatorKey::Operator2 => "operator-2",
        }
    }

    fn parse(text: &str) -> Option<OperatorKey> {
        OperatorKey::ALL.into_iter().find(|key| key.name() == text)
    }
}

/// The content of a published config document.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Given in the scenario file.
    Inline(fleetmesh_node::crdt::Value),
    /// About this many bytes of generated keys and values, new each time.
    Generated {
        /// Approximate size.
        bytes: usize,
    },
}

/// One config write by an operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// The document.
    pub doc: String,
    /// Who writes (and signs the release).
    pub author: OperatorKey,
    /// The document's new content.
    pub content: Content,
    /// Whether a release of the new heads follows.
    pub release: bool,
    /// The release expires this long after it is published.
    pub expires_after: Option<Duration>,
    /// Agents it may be handed to (one running agent is picked).
    pub via: Nodes,
}

/// A change of the trust document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustChange {
    /// Revoke an operator key.
    Revoke(OperatorKey),
    /// Revoke an agent's node key: the fleet expels it.
    RevokeNode(u32),
    /// Replace the root key with a new one (signed by old and new).
    RotateRoot,
}

/// What a run must meet; unset bounds fall back to defaults derived from
/// the protocol parameters (see `docs/scenarios.md`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    /// After the last disturbance, all running agents agree with the truth
    /// about who is running within this bound.
    pub converge_within: Option<Duration>,
    /// Every crashed agent is declared dead by every running agent within
    /// this bound.
    pub detect_within: Option<Duration>,
    /// Most incidents of a running agent declared dead, over the whole run.
    pub false_dead_max: Option<u64>,
    /// A retag reaches every running agent within this bound.
    pub spread_within: Option<Duration>,
    /// Ceiling of bytes sent per agent per second, averaged over the run.
    pub bytes_per_agent_second_max: Option<f64>,
    /// A release (and a trust document) reaches every running agent within
    /// this bound of its publication or, if the network is cut then, of
    /// the heal.
    pub release_within: Option<Duration>,
    /// Whenever a lease scope has no holder while one of its candidates
    /// runs, some candidate holds it again within this bound.
    pub lease_held_within: Option<Duration>,
    /// Fewest panics inside automerge the agents must have caught, summed
    /// over the fleet: that the crafted changes of an `attack` reached
    /// automerge and were refused there.
    pub automerge_panics_min: Option<u64>,
    /// What remediation must have done.
    pub remedy: RemedyExpect,
}

// --- the file format, as serde sees it --------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    description: String,
    duration_s: f64,
    #[serde(default = "default_seed")]
    seed: u64,
    fleet: Spanned<FleetFile>,
    #[serde(default)]
    protocol: Option<Spanned<ProtocolFile>>,
    #[serde(default)]
    network: Option<Spanned<NetworkFile>>,
    #[serde(default)]
    faults: Vec<Spanned<FaultFile>>,
    #[serde(default)]
    expect: Option<Spanned<ExpectFile>>,
    #[serde(default)]
    leases: Vec<Spanned<leases::LeaseFile>>,
    #[serde(default)]
    services: Option<Spanned<services::ServicesFile>>,
    #[serde(default)]
    swarm: Option<Spanned<swarm::SwarmFile>>,
}

fn default_seed() -> u64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    agents: u32,
    #[serde(default = "default_seeds")]
    seeds: u32,
    #[serde(default)]
    join_spread_s: f64,
    #[serde(default)]
    groups: Vec<GroupFile>,
}

fn default_seeds() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    count: u32,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtocolFile {
    #[serde(default = "default_preset")]
    preset: String,
    probe_interval_ms: Option<u64>,
    probe_timeout_ms: Option<u64>,
    indirect_probes: Option<u8>,
    suspicion_mult: Option<f64>,
    suspicion_max_mult: Option<f64>,
    gossip_interval_ms: Option<u64>,
    gossip_fanout: Option<u8>,
    retransmit_mult: Option<u32>,
    sync_interval_s: Option<f64>,
    reconnect_interval_s: Option<f64>,
    reap_after_s: Option<f64>,
    lease_drift_bound_ms: Option<u64>,
    lease_lock_delay_ms: Option<u64>,
    verify_per_peer_per_second: Option<u32>,
    verify_per_peer_burst: Option<u32>,
    verify_unadmitted_per_second: Option<u32>,
    verify_unadmitted_burst: Option<u32>,
}

fn default_preset() -> String {
    "lan".into()
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    latency_min_ms: Option<f64>,
    latency_mean_ms: Option<f64>,
    loss: Option<f64>,
    duplicate: Option<f64>,
    reorder: Option<f64>,
    reorder_ms: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    #[serde(flatten)]
    link: LinkFile,
    #[serde(default)]
    links: Vec<LinkRuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRuleFile {
    from: NodesFile,
    to: NodesFile,
    #[serde(flatten)]
    link: LinkFile,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct NodesFile {
    #[serde(default)]
    select: Option<String>,
    count: Option<u32>,
    fraction: Option<f64>,
    ids: Option<Vec<u32>>,
    #[serde(default)]
    exclude_seeds: bool,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum FaultFile {
    Partition {
        at_s: f64,
        heal_s: Option<f64>,
        groups: Vec<NodesFile>,
        #[serde(default)]
        allow: Vec<[u16; 2]>,
        bridges: Option<NodesFile>,
    },
    Crash {
        at_s: f64,
        nodes: NodesFile,
        restart_after_s: Option<f64>,
    },
    Pause {
        at_s: f64,
        nodes: NodesFile,
        duration_s: f64,
    },
    RandomPauses {
        from_s: f64,
        until_s: f64,
        per_agent_hour: f64,
        duration_s: f64,
    },
    Network {
        at_s: f64,
        until_s: Option<f64>,
        #[serde(flatten)]
        link: LinkFile,
    },
    HealthFlaps {
        from_s: f64,
        until_s: f64,
        checks: u8,
        per_agent_hour: f64,
    },
    Clock {
        #[serde(default)]
        at_s: f64,
        nodes: NodesFile,
        skew_ms: f64,
        #[serde(default)]
        drift_ppm: u32,
    },
    Leave {
        at_s: f64,
        nodes: NodesFile,
    },
    Retag {
        at_s: f64,
        nodes: NodesFile,
        tags: BTreeMap<String, String>,
    },
    Config {
        at_s: f64,
        #[serde(default = "default_doc")]
        doc: String,
        #[serde(default = "default_author")]
        author: String,
        content: Option<toml::Table>,
        size_kb: Option<u32>,
        #[serde(default = "default_true")]
        release: bool,
        expires_after_s: Option<f64>,
        #[serde(default)]
        via: NodesFile,
    },
    Revoke {
        at_s: f64,
        key: Option<String>,
        node: Option<u32>,
        #[serde(default)]
        via: NodesFile,
    },
    RotateRoot {
        at_s: f64,
        #[serde(default)]
        via: NodesFile,
    },
    Attack {
        from_s: f64,
        until_s: f64,
        attempts: u32,
        attacker: u32,
        config_key: Option<String>,
    },
    Equivocate {
        at_s: f64,
        #[serde(default = "default_doc")]
        doc: String,
        #[serde(default = "default_author")]
        author: String,
        #[serde(default)]
        via: NodesFile,
    },
    CrashHolder {
        at_s: f64,
        scope: String,
        restart_after_s: Option<f64>,
    },
    Policy(services::PolicyFile),
    Service(services::ServiceFile),
    Approve(services::ApproveFile),
}

fn default_doc() -> String {
    "fleet".into()
}

fn default_author() -> String {
    "operator".into()
}

fn default_true() -> bool {
    true
}

/// Most attack attempts one fault may ask for.
const ATTEMPTS_MAX: u32 = 1_000_000;
/// Most verifications per second, or in a burst, a scenario may give a
/// verification budget (as the agent config's `limits.verify_*`).
const VERIFY_BUDGET_MAX: u32 = 1_000_000;
/// Largest generated config document, in KiB: a change must stay under the
/// store's per-change bound.
const CONTENT_KB_MAX: u32 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    converge_within_s: Option<f64>,
    detect_within_s: Option<f64>,
    false_dead_max: Option<u64>,
    spread_within_s: Option<f64>,
    bytes_per_agent_second_max: Option<f64>,
    release_within_s: Option<f64>,
    lease_held_within_s: Option<f64>,
    automerge_panics_min: Option<u64>,
    actions_min: Option<u64>,
    actions_max: Option<u64>,
    disruptive_min: Option<u64>,
    disruptive_max: Option<u64>,
    skipped_systemic_min: Option<u64>,
    needs_human_min: Option<u64>,
    approval_expired_min: Option<u64>,
    #[serde(default)]
    local_only: Vec<services::LocalOnlyFile>,
}

// --- loading -----------------------------------------------------------------

/// Validation context: the file's name and text, to turn spans into lines.
struct Context<'a> {
    path: &'a str,
    text: &'a str,
}

impl Context<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn invalid(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::Invalid {
            path: self.path.to_string(),
            line: self.line(span),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Scenario {
    /// Reads and validates the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
            path: name.clone(),
            error,
        })?;
        Scenario::parse(&name, &text)
    }

    /// Parses and validates scenario `text`; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let context = Context { path, text };
        let file: File = toml::from_str(text).map_err(|error| ScenarioError::Syntax {
            path: path.to_string(),
            line: error.span().map_or(1, |span| context.line(span)),
            message: error.message().to_string(),
        })?;
        let whole = 0..0;
        let duration = seconds(&context, whole.clone(), "duration_s", file.duration_s)?;
        if duration.as_secs_f64() > DURATION_S_MAX || duration.is_zero() {
            return Err(context.invalid(
                whole,
                "duration_s",
                format!("must be in (0, {DURATION_S_MAX}] seconds"),
            ));
        }
        let fleet = fleet(&context, &file.fleet)?;
        let (config, preset) = match &file.protocol {
            Some(protocol) => config(&context, protocol)?,
            None => (Config::lan(), "lan".to_string()),
        };
        let (link, links) = match &file.network {
            Some(network) => {
                let span = network.span();
                let link = link_model(
                    &context,
                    span.clone(),
                    "network",
                    LinkModel::default(),
                    network.get_ref().link,
                )?;
                let mut rules = Vec::new();
                for (index, rule) in network.get_ref().links.iter().enumerate() {
                    let field = format!("network.links[{index}]");
                    for (end, nodes) in [("from", &rule.from), ("to", &rule.to)] {
                        if nodes.count.is_some() || nodes.fraction.is_some() || nodes.exclude_seeds
                        {
                            return Err(context.invalid(
                                span.clone(),
                                format!("{field}.{end}"),
                                "a link selects agents by select or ids only (random picks would change per run)",
                            ));
                        }
                    }
                    rules.push(LinkRule {
                        from: nodes(
                            &context,
                            span.clone(),
                            &format!("{field}.from"),
                            &rule.from,
                            &fleet,
                        )?,
                        to: nodes(
                            &context,
                            span.clone(),
                            &format!("{field}.to"),
                            &rule.to,
                            &fleet,
                        )?,
                        model: link_model(&context, span.clone(), &field, link, rule.link)?,
                    });
                }
                (link, rules)
            }
            None => (LinkModel::default(), Vec::new()),
        };
        // Policies first: the other remediation faults name what they
        // declare, wherever they stand in the file.
        let mut declared = services::Declared::default();
        for (index, fault) in file.faults.iter().enumerate() {
            if let FaultFile::Policy(policy) = fault.get_ref() {
                let (_, policy) = services::policy(&context, index, fault.span(), policy, &fleet)?;
                declared.add(&policy);
            }
        }
        let mut faults = Vec::new();
        for (index, fault) in file.faults.iter().enumerate() {
            let parsed = self::fault(&context, index, fault, &fleet, link, &declared)?;
            if fault_start(&parsed) > duration {
                return Err(context.invalid(
                    fault.span(),
                    format!("faults[{index}]"),
                    "starts after the scenario ends",
                ));
            }
            if let Fault::Service(service) = &parsed
                && service
                    .expect_fixed_within
                    .is_some_and(|bound| service.at + bound > duration)
            {
                // A deadline after the end would never be checked.
                return Err(context.invalid(
                    fault.span(),
                    format!("faults[{index}].expect_fixed_within_s"),
                    "the first failure's deadline falls after the scenario ends",
                ));
            }
            faults.push(parsed);
        }
        let leases = leases::leases(&context, &file.leases, &fleet, &config)?;
        for (index, fault) in faults.iter().enumerate() {
            if let Fault::CrashHolder { scope, .. } = fault
                && !leases.iter().any(|lease| &lease.scope == scope)
                && !declared.scopes.contains(scope)
            {
                return Err(context.invalid(
                    file.faults[index].span(),
                    format!("faults[{index}].scope"),
                    format!(
                        "{scope:?} is not a scope of [[leases]] nor the budget scope of a disruptive rule (remediate:<rule>)"
                    ),
                ));
            }
        }
        let expect = match &file.expect {
            Some(expect) => self::expect(&context, expect, &fleet)?,
            None => Expect::default(),
        };
        let services = match &file.services {
            Some(model) => services::model(&context, model)?,
            None => ServiceModel::default(),
        };
        Ok(Scenario {
            name: file.name,
            description: file.description,
            duration,
            seed: file.seed,
            fleet,
            config,
            preset,
            link,
            links,
            faults,
            leases,
            services,
            expect,
            swarm: swarm::bounds(&context, file.swarm.as_ref(), duration)?,
        })
    }
}

fn fault_start(fault: &Fault) -> Duration {
    match fault {
        Fault::Partition { at, .. }
        | Fault::Crash { at, .. }
        | Fault::Pause { at, .. }
        | Fault::Network { at, .. }
        | Fault::Clock { at, .. }
        | Fault::Leave { at, .. }
        | Fault::Retag { at, .. }
        | Fault::Config { at, .. }
        | Fault::Trust { at, .. }
        | Fault::Equivocate { at, .. }
        | Fault::CrashHolder { at, .. }
        | Fault::Policy { at, .. } => *at,
        Fault::Service(service) => service.at,
        Fault::Approve(approve) => approve.at,
        Fault::RandomPauses { from, .. }
        | Fault::Attack { from, .. }
        | Fault::HealthFlaps { from, .. } => *from,
    }
}

fn seconds(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: f64,
) -> Result<Duration, ScenarioError> {
    if !value.is_finite() || !(0.0..=DURATION_S_MAX).contains(&value) {
        return Err(context.invalid(
            span,
            field,
            format!("{value} is not a duration in seconds (0 to {DURATION_S_MAX})"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

fn millis(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: u64,
) -> Result<Duration, ScenarioError> {
    if value == 0 || value > 3_600_000 {
        return Err(context.invalid(span, field, format!("{value} ms is outside 1 ms to 1 hour")));
    }
    Ok(Duration::from_millis(value))
}

fn probability(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: f64,
) -> Result<f64, ScenarioError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(context.invalid(
            span,
            field,
            format!("{value} is not a probability in [0, 1]"),
        ));
    }
    Ok(value)
}

fn fleet(context: &Context<'_>, file: &Spanned<FleetFile>) -> Result<Fleet, ScenarioError> {
    let span = file.span();
    let fleet = file.get_ref();
    if fleet.agents == 0 || fleet.agents > AGENTS_MAX {
        return Err(context.invalid(span, "fleet.agents", format!("must be 1 to {AGENTS_MAX}")));
    }
    if fleet.seeds == 0 || fleet.seeds > fleet.agents {
        return Err(context.invalid(
            span,
            "fleet.seeds",
            "must be at least 1 and at most fleet.agents",
        ));
    }
    let join_spread = seconds(
        context,
        span.clone(),
        "fleet.join_spread_s",
        fleet.join_spread_s,
    )?;
    let mut tags = Vec::with_capacity(fleet.agents as usize);
    for (index, group) in fleet.groups.iter().enumerate() {
        let field = format!("fleet.groups[{index}].tags");
        let meta = fleetmesh_node::NodeMeta {
            tags: group.tags.clone(),
            addrs: Vec::new(),
        };
        meta.validate()
            .map_err(|error| context.invalid(span.clone(), &field, error.to_string()))?;
        tags.extend(std::iter::repeat_n(
            group.tags.clone(),
            group.count as usize,
        ));
    }
    if !fleet.groups.is_empty() && tags.len() != fleet.agents as usize {
        return Err(context.invalid(
            span,
            "fleet.groups",
            format!(
                "group counts add up to {}, but fleet.agents is {}",
                tags.len(),
                fleet.agents
            ),
        ));
    }
    tags.resize(fleet.agents as usize, BTreeMap::new());
    Ok(Fleet {
        agents: fleet.agents,
        seeds: fleet.seeds,
        join_spread,
        tags,
    })
}

fn config(
    context: &Context<'_>,
    file: &Spanned<ProtocolFile>,
) -> Result<(Config, String), ScenarioError> {
    let span = file.span();
    let protocol = file.get_ref();
    let mut config = match protocol.preset.as_str() {
        "lan" => Config::lan(),
        "wan" => Config::wan(),
        other => {
            return Err(context.invalid(
                span,
                "protocol.preset",
                format!("unknown preset {other:?}; use \"lan\" or \"wan\""),
            ));
        }
    };
    let non_zero = |field: &str, value: u8| {
        NonZeroU8::new(value)
            .ok_or_else(|| context.invalid(span.clone(), field, "must be at least 1"))
    };
    if let Some(ms) = protocol.probe_interval_ms {
        config.probe_interval = millis(context, span.clone(), "protocol.probe_interval_ms", ms)?;
    }
    if let Some(ms) = protocol.probe_timeout_ms {
        config.probe_timeout = millis(context, span.clone(), "protocol.probe_timeout_ms", ms)?;
    }
    if let Some(count) = protocol.indirect_probes {
        config.indirect_probes = non_zero("protocol.indirect_probes", count)?;
    }
    if let Some(fanout) = protocol.gossip_fanout {
        config.gossip_fanout = non_zero("protocol.gossip_fanout", fanout)?;
    }
    if let Some(mult) = protocol.suspicion_mult {
        config.suspicion_mult = mult;
    }
    if let Some(mult) = protocol.suspicion_max_mult {
        config.suspicion_max_mult = mult;
    }
    if let Some(ms) = protocol.gossip_interval_ms {
        config.gossip_interval = millis(context, span.clone(), "protocol.gossip_interval_ms", ms)?;
    }
    if let Some(mult) = protocol.retransmit_mult {
        config.retransmit_mult = mult;
    }
    for (field, value, slot) in [
        (
            "protocol.sync_interval_s",
            protocol.sync_interval_s,
            &mut config.sync_interval,
        ),
        (
            "protocol.reconnect_interval_s",
            protocol.reconnect_interval_s,
            &mut config.reconnect_interval,
        ),
        (
            "protocol.reap_after_s",
            protocol.reap_after_s,
            &mut config.reap_after,
        ),
    ] {
        if let Some(value) = value {
            *slot = seconds(context, span.clone(), field, value)?;
        }
    }
    if let Some(ms) = protocol.lease_drift_bound_ms {
        let field = "protocol.lease_drift_bound_ms";
        config.lease_drift_bound = millis(context, span.clone(), field, ms)?;
    }
    if let Some(ms) = protocol.lease_lock_delay_ms {
        let field = "protocol.lease_lock_delay_ms";
        config.lease_lock_delay = millis(context, span.clone(), field, ms)?;
    }
    for (field, value, slot) in [
        (
            "protocol.verify_per_peer_per_second",
            protocol.verify_per_peer_per_second,
            &mut config.verify_per_peer.per_second,
        ),
        (
            "protocol.verify_per_peer_burst",
            protocol.verify_per_peer_burst,
            &mut config.verify_per_peer.burst,
        ),
        (
            "protocol.verify_unadmitted_per_second",
            protocol.verify_unadmitted_per_second,
            &mut config.verify_unadmitted.per_second,
        ),
        (
            "protocol.verify_unadmitted_burst",
            protocol.verify_unadmitted_burst,
            &mut config.verify_unadmitted.burst,
        ),
    ] {
        if let Some(value) = value {
            *slot = std::num::NonZeroU32::new(value)
                .filter(|value| value.get() <= VERIFY_BUDGET_MAX)
                .ok_or_else(|| {
                    context.invalid(
                        span.clone(),
                        field,
                        format!("must be 1 to {VERIFY_BUDGET_MAX}"),
                    )
                })?;
        }
    }
    config.validate().map_err(|error| {
        let field = format!("protocol.{}", error.field);
        context.invalid(span, field, error.problem)
    })?;
    Ok((config, protocol.preset.clone()))
}

fn link_model(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    base: LinkModel,
    file: LinkFile,
) -> Result<LinkModel, ScenarioError> {
    let mut model = base;
    if let Some(value) = file.latency_min_ms {
        model.latency_min_ms = value;
    }
    if let Some(value) = file.latency_mean_ms {
        model.latency_mean_ms = value;
    }
    let latency_ok = model.latency_min_ms.is_finite()
        && model.latency_min_ms >= 0.0
        && model.latency_mean_ms >= model.latency_min_ms
        && model.latency_mean_ms <= 60_000.0;
    if !latency_ok {
        return Err(context.invalid(
            span,
            format!("{field}.latency_mean_ms"),
            "latencies must satisfy 0 <= min <= mean <= 60000 ms",
        ));
    }
    for (name, value, slot) in [
        ("loss", file.loss, &mut model.loss),
        ("duplicate", file.duplicate, &mut model.duplicate),
        ("reorder", file.reorder, &mut model.reorder),
    ] {
        if let Some(value) = value {
            *slot = probability(context, span.clone(), &format!("{field}.{name}"), value)?;
        }
    }
    if let Some(value) = file.reorder_ms {
        if !(value.is_finite() && (0.0..=60_000.0).contains(&value)) {
            return Err(context.invalid(
                span,
                format!("{field}.reorder_ms"),
                "must be 0 to 60000 ms",
            ));
        }
        model.reorder_ms = value;
    }
    Ok(model)
}

/// Parses `key=value[,key=value]` selectors.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut selector = BTreeMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("selector term {pair:?} is not key=value"))?;
        selector.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(selector)
}

fn nodes(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    file: &NodesFile,
    fleet: &Fleet,
) -> Result<Nodes, ScenarioError> {
    let select = match &file.select {
        Some(text) => parse_selector(text)
            .map_err(|message| context.invalid(span.clone(), format!("{field}.select"), message))?,
        None => BTreeMap::new(),
    };
    let picks = usize::from(file.count.is_some())
        + usize::from(file.fraction.is_some())
        + usize::from(file.ids.is_some());
    if picks > 1 {
        return Err(context.invalid(span, field, "give at most one of count, fraction, ids"));
    }
    if file.ids.is_some() && (file.select.is_some() || file.exclude_seeds) {
        return Err(context.invalid(
            span,
            field,
            "ids names agents exactly; it cannot be combined with select or exclude_seeds",
        ));
    }
    if let Some(fraction) = file.fraction {
        probability(
            context,
            span.clone(),
            &format!("{field}.fraction"),
            fraction,
        )?;
    }
    if let Some(ids) = &file.ids
        && let Some(bad) = ids.iter().find(|&&id| id >= fleet.agents)
    {
        return Err(context.invalid(
            span,
            format!("{field}.ids"),
            format!("agent {bad} does not exist (fleet has {})", fleet.agents),
        ));
    }
    if file.count.is_some_and(|count| count > fleet.agents) {
        return Err(context.invalid(
            span,
            format!("{field}.count"),
            "more agents than the fleet has",
        ));
    }
    Ok(Nodes {
        select,
        count: file.count,
        fraction: file.fraction,
        ids: file.ids.clone(),
        exclude_seeds: file.exclude_seeds,
    })
}

fn fault(
    context: &Context<'_>,
    index: usize,
    file: &Spanned<FaultFile>,
    fleet: &Fleet,
    link: LinkModel,
    declared: &services::Declared,
) -> Result<Fault, ScenarioError> {
    let span = file.span();
    let field = |name: &str| format!("faults[{index}].{name}");
    let at = |value: f64| seconds(context, span.clone(), &field("at_s"), value);
    let nodes =
        |name: &str, file: &NodesFile| nodes(context, span.clone(), &field(name), file, fleet);
    Ok(match file.get_ref() {
        FaultFile::Partition {
            at_s,
            heal_s,
            groups,
            allow,
            bridges,
        } => {
            let at = at(*at_s)?;
            let heal = heal_s
                .map(|value| seconds(context, span.clone(), &field("heal_s"), value))
                .transpose()?;
            if heal.is_some_and(|heal| heal <= at) {
                return Err(context.invalid(span, field("heal_s"), "must be after at_s"));
            }
            if groups.is_empty() || groups.len() > 64 {
                return Err(context.invalid(
                    span,
                    field("groups"),
                    "give 1 to 64 groups (the agents left over form one more)",
                ));
            }
            let groups = groups
                .iter()
                .enumerate()
                .map(|(number, group)| nodes(&format!("groups[{number}]"), group))
                .collect::<Result<Vec<_>, _>>()?;
            let group_count = groups.len() + 1;
            let allow = allow
                .iter()
                .map(|&[from, to]| {
                    if usize::from(from) >= group_count || usize::from(to) >= group_count {
                        Err(context.invalid(
                            span.clone(),
                            field("allow"),
                            format!("groups are numbered 0 to {}", group_count - 1),
                        ))
                    } else {
                        Ok((from, to))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let bridges = bridges
                .as_ref()
                .map(|file| nodes("bridges", file))
                .transpose()?;
            Fault::Partition {
                at,
                heal,
                groups,
                allow,
                bridges,
            }
        }
        FaultFile::Crash {
            at_s,
            nodes: file,
            restart_after_s,
        } => Fault::Crash {
            at: at(*at_s)?,
            nodes: nodes("nodes", file)?,
            restart_after: restart_after_s
                .map(|value| seconds(context, span.clone(), &field("restart_after_s"), value))
                .transpose()?,
        },
        FaultFile::Pause {
            at_s,
            nodes: file,
            duration_s,
        } => Fault::Pause {
            at: at(*at_s)?,
            nodes: nodes("nodes", file)?,
            duration: seconds(context, span.clone(), &field("duration_s"), *duration_s)?,
        },
        FaultFile::RandomPauses {
            from_s,
            until_s,
            per_agent_hour,
            duration_s,
        } => {
            let from = seconds(context, span.clone(), &field("from_s"), *from_s)?;
            let until = seconds(context, span.clone(), &field("until_s"), *until_s)?;
            if until <= from {
                return Err(context.invalid(span, field("until_s"), "must be after from_s"));
            }
            if !(per_agent_hour.is_finite() && (0.0..=3600.0).contains(per_agent_hour)) {
                return Err(context.invalid(span, field("per_agent_hour"), "must be 0 to 3600"));
            }
            Fault::RandomPauses {
                from,
                until,
                per_agent_hour: *per_agent_hour,
                duration: seconds(context, span.clone(), &field("duration_s"), *duration_s)?,
            }
        }
        FaultFile::HealthFlaps {
            from_s,
            until_s,
            checks,
            per_agent_hour,
        } => {
            let from = seconds(context, span.clone(), &field("from_s"), *from_s)?;
            let until = seconds(context, span.clone(), &field("until_s"), *until_s)?;
            if until <= from {
                return Err(context.invalid(span, field("until_s"), "must be after from_s"));
            }
            if *checks == 0
                || usize::from(*checks) > fleetmesh_node::crdt::health_limits::CHECKS_PER_NODE_MAX
            {
                return Err(context.invalid(
                    span,
                    field("checks"),
                    format!(
                        "must be 1 to {}",
                        fleetmesh_node::crdt::health_limits::CHECKS_PER_NODE_MAX
                    ),
                ));
            }
            if !(per_agent_hour.is_finite() && (0.0..=3600.0).contains(per_agent_hour)) {
                return Err(context.invalid(span, field("per_agent_hour"), "must be 0 to 3600"));
            }
            Fault::HealthFlaps {
                from,
                until,
                checks: *checks,
                per_agent_hour: *per_agent_hour,
            }
        }
        FaultFile::Network {
            at_s,
            until_s,
            link: file,
        } => {
            let at = at(*at_s)?;
            let until = until_s
                .map(|value| seconds(context, span.clone(), &field("until_s"), value))
                .transpose()?;
            if until.is_some_and(|until| until <= at) {
                return Err(context.invalid(span, field("until_s"), "must be after at_s"));
            }
            let model = link_model(
                context,
                span.clone(),
                &format!("faults[{index}]"),
                link,
                *file,
            )?;
            Fault::Network { at, until, model }
        }
        FaultFile::Clock {
            at_s,
            nodes: file,
            skew_ms,
            drift_ppm,
        } => {
            if !(skew_ms.is_finite() && (0.0..=3_600_000.0).contains(skew_ms)) {
                return Err(context.invalid(span, field("skew_ms"), "must be 0 to 3600000"));
            }
            if *drift_ppm >= 100_000 {
                return Err(context.invalid(
                    span,
                    field("drift_ppm"),
                    "must be below 100000 (10%)",
                ));
            }
            Fault::Clock {
                at: at(*at_s)?,
                nodes: nodes("nodes", file)?,
                skew: Duration::from_secs_f64(skew_ms / 1000.0),
                drift_ppm: *drift_ppm,
            }
        }
        FaultFile::Leave { at_s, nodes: file } => Fault::Leave {
            at: at(*at_s)?,
            nodes: nodes("nodes", file)?,
        },
        FaultFile::Retag {
            at_s,
            nodes: file,
            tags,
        } => {
            let meta = fleetmesh_node::NodeMeta {
                tags: tags.clone(),
                addrs: Vec::new(),
            };
            meta.validate()
                .map_err(|error| context.invalid(span.clone(), field("tags"), error.to_string()))?;
            Fault::Retag {
                at: at(*at_s)?,
                nodes: nodes("nodes", file)?,
                tags: tags.clone(),
            }
        }
        FaultFile::Policy(policy) => services::policy(context, index, span, policy, fleet)?.0,
        FaultFile::Service(service) => {
            services::service(context, index, span, service, fleet, declared)?
        }
        FaultFile::Approve(approve) => {
            services::approve(context, index, span, approve, fleet, declared)?
        }
        FaultFile::CrashHolder {
            at_s,
            scope,
            restart_after_s,
        } => Fault::CrashHolder {
            at: at(*at_s)?,
            scope: scope.clone(),
            restart_after: restart_after_s
                .map(|value| seconds(context, span.clone(), &field("restart_after_s"), value))
                .transpose()?,
        },
        FaultFile::Config {
            at_s,
            doc,
            author,
            content,
            size_kb,
            release,
            expires_after_s,
            via,
        } => {
            if doc.is_empty() || doc.len() > fleetmesh_node::crdt::config::limits::DOC_ID_MAX {
                return Err(context.invalid(span, field("doc"), "must be 1 to 64 bytes"));
            }
            let author = operator_key(context, span.clone(), &field("author"), author)?;
            let content = match (content, size_kb) {
                (Some(table), None) => {
                    let value = toml::Value::Table(table.clone()).try_into().map_err(
                        |error: toml::de::Error| {
                            context.invalid(span.clone(), field("content"), error.to_string())
                        },
                    )?;
                    Content::Inline(value)
                }
                (None, Some(kb)) if (1..=CONTENT_KB_MAX).contains(kb) => Content::Generated {
                    bytes: *kb as usize * 1024,
                },
                (None, Some(_)) => {
                    return Err(context.invalid(
                        span,
                        field("size_kb"),
                        format!("must be 1 to {CONTENT_KB_MAX}"),
                    ));
                }
                _ => {
                    return Err(context.invalid(
                        span,
                        field("content"),
                        "give exactly one of content (a table) or size_kb",
                    ));
                }
            };
            let expires_after = expires_after_s
                .map(|value| seconds(context, span.clone(), &field("expires_after_s"), value))
                .transpose()?;
            Fault::Config {
                at: at(*at_s)?,
                publication: Publication {
                    doc: doc.clone(),
                    author,
                    content,
                    release: *release,
                    expires_after,
                    via: nodes("via", via)?,
                },
            }
        }
        FaultFile::Equivocate {
            at_s,
            doc,
            author,
            via,
        } => {
            if doc.is_empty() || doc.len() > fleetmesh_node::crdt::config::limits::DOC_ID_MAX {
                return Err(context.invalid(span, field("doc"), "must be 1 to 64 bytes"));
            }
            Fault::Equivocate {
                at: at(*at_s)?,
                author: operator_key(context, span.clone(), &field("author"), author)?,
                doc: doc.clone(),
                via: nodes("via", via)?,
            }
        }
        FaultFile::Revoke {
            at_s,
            key,
            node,
            via,
        } => {
            let change = match (key, node) {
                (Some(key), None) => {
                    TrustChange::Revoke(operator_key(context, span.clone(), &field("key"), key)?)
                }
                (None, Some(node)) if *node < fleet.agents => TrustChange::RevokeNode(*node),
                (None, Some(node)) => {
                    return Err(context.invalid(
                        span,
                        field("node"),
                        format!("agent {node} does not exist (fleet has {})", fleet.agents),
                    ));
                }
                _ => {
                    return Err(context.invalid(
                        span,
                        field("key"),
                        "give exactly one of key (an operator) or node (an agent index)",
                    ));
                }
            };
            Fault::Trust {
                at: at(*at_s)?,
                change,
                via: nodes("via", via)?,
            }
        }
        FaultFile::RotateRoot { at_s, via } => Fault::Trust {
            at: at(*at_s)?,
            change: TrustChange::RotateRoot,
            via: nodes("via", via)?,
        },
        FaultFile::Attack {
            from_s,
            until_s,
            attempts,
            attacker,
            config_key,
        } => {
            let from = seconds(context, span.clone(), &field("from_s"), *from_s)?;
            let until = seconds(context, span.clone(), &field("until_s"), *until_s)?;
            if until <= from {
                return Err(context.invalid(span, field("until_s"), "must be after from_s"));
            }
            if *attempts == 0 || *attempts > ATTEMPTS_MAX {
                return Err(context.invalid(
                    span,
                    field("attempts"),
                    format!("must be 1 to {ATTEMPTS_MAX}"),
                ));
            }
            if *attacker >= fleet.agents {
                return Err(context.invalid(
                    span,
                    field("attacker"),
                    format!(
                        "agent {attacker} does not exist (fleet has {})",
                        fleet.agents
                    ),
                ));
            }
            let config_key = config_key
                .as_deref()
                .map(|key| operator_key(context, span.clone(), &field("config_key"), key))
                .transpose()?;
            Fault::Attack {
                from,
                until,
                attempts: *attempts,
                attacker: *attacker,
                config_key,
            }
        }
    })
}

fn operator_key(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    name: &str,
) -> Result<OperatorKey, ScenarioError> {
    OperatorKey::parse(name).ok_or_else(|| {
        context.invalid(
            span,
            field,
            format!("unknown key {name:?}; use \"operator\" or \"operator-2\""),
        )
    })
}

fn expect(
    context: &Context<'_>,
    file: &Spanned<ExpectFile>,
    fleet: &Fleet,
) -> Result<Expect, ScenarioError> {
    let span = file.span();
    let expect = file.get_ref();
    let bound = |name: &str, value: Option<f64>| {
        value
            .map(|value| seconds(context, span.clone(), &format!("expect.{name}"), value))
            .transpose()
    };
    if let Some(value) = expect.bytes_per_agent_second_max
        && !(value.is_finite() && value > 0.0)
    {
        return Err(context.invalid(
            span,
            "expect.bytes_per_agent_second_max",
            "must be positive",
        ));
    }
    Ok(Expect {
        converge_within: bound("converge_within_s", expect.converge_within_s)?,
        detect_within: bound("detect_within_s", expect.detect_within_s)?,
        false_dead_max: expect.false_dead_max,
        spread_within: bound("spread_within_s", expect.spread_within_s)?,
        bytes_per_agent_second_max: expect.bytes_per_agent_second_max,
        release_within: bound("release_within_s", expect.release_within_s)?,
        lease_held_within: bound("lease_held_within_s", expect.lease_held_within_s)?,
        automerge_panics_min: expect.automerge_panics_min,
        remedy: services::expect(context, span.clone(), expect, fleet)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"t\"\nduration_s = 10\n[fleet]\nagents = 4\n";

    #[test]
    fn minimal_scenario_loads_with_defaults() {
        let scenario = Scenario::parse("t.toml", MINIMAL).unwrap();
        assert_eq!(scenario.fleet.agents, 4);
        assert_eq!(scenario.fleet.seeds, 3);
        assert_eq!(scenario.config, Config::lan());
    }

    #[test]
    fn unknown_field_names_file_and_line() {
        let text = format!("{MINIMAL}[expect]\nconverge_whithin_s = 3\n");
        let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
        assert!(error.starts_with("t.toml:6:"), "{error}");
        assert!(error.contains("converge_whithin_s"), "{error}");
    }

    #[test]
    fn bad_value_names_the_field() {
        let text = format!(
            "{MINIMAL}\n[[faults]]\nkind = \"crash\"\nat_s = 1\nnodes = {{ fraction = 1.5 }}\n"
        );
        let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
        assert!(error.contains("faults[0].nodes.fraction"), "{error}");
        assert!(error.contains("t.toml:6:"), "{error}");
    }

    #[test]
    fn group_counts_must_match_the_fleet() {
        let text = "name = \"t\"\nduration_s = 10\n[fleet]\nagents = 4\n[[fleet.groups]]\ncount = 3\ntags = { zone = \"a\" }\n";
        let error = Scenario::parse("t.toml", text).unwrap_err().to_string();
        assert!(
            error.contains("fleet.groups") && error.contains("add up to 3"),
            "{error}"
        );
    }

    #[test]
    fn verification_budgets_are_set_within_their_range() {
        let text = format!(
            "{MINIMAL}[protocol]\nverify_per_peer_per_second = 8\nverify_unadmitted_burst = 3\n"
        );
        let scenario = Scenario::parse("t.toml", &text).expect("valid");
        assert_eq!(scenario.config.verify_per_peer.per_second.get(), 8);
        assert_eq!(scenario.config.verify_unadmitted.burst.get(), 3);
        assert_eq!(
            scenario.config.verify_per_peer.burst,
            Config::lan().verify_per_peer.burst
        );
        for bad in [
            "verify_per_peer_burst = 0",
            "verify_unadmitted_per_second = 1000001",
        ] {
            let text = format!("{MINIMAL}[protocol]\n{bad}\n");
            let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
            let field = bad.split(' ').next().unwrap_or_default();
            assert!(
                error.contains(&format!("protocol.{field}")) && error.contains("1 to 1000000"),
                "{error}"
            );
        }
    }

    /// The protocol section is checked by `Config::validate`, which names
    /// the field at fault.
    #[test]
    fn a_probe_timeout_past_the_interval_is_refused() {
        let text =
            format!("{MINIMAL}[protocol]\nprobe_interval_ms = 500\nprobe_timeout_ms = 500\n");
        let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
        assert!(error.contains("protocol.probe_timeout"), "{error}");
        assert!(error.contains("shorter than probe_interval"), "{error}");
    }

    #[test]
    fn an_attack_may_hold_an_operator_config_key() {
        let attack = "\n[[faults]]\nkind = \"attack\"\nfrom_s = 1\nuntil_s = 5\nattempts = 12\nattacker = 2\n";
        let held = |scenario: &Scenario| match scenario.faults.as_slice() {
            [Fault::Attack { config_key, .. }] => *config_key,
            faults => panic!("{faults:?}"),
        };
        let text = format!("{MINIMAL}{attack}");
        assert_eq!(held(&Scenario::parse("t.toml", &text).unwrap()), None);
        let text = format!("{MINIMAL}{attack}config_key = \"operator-2\"\n");
        assert_eq!(
            held(&Scenario::parse("t.toml", &text).unwrap()),
            Some(OperatorKey::Operator2)
        );
        let text = format!("{MINIMAL}{attack}config_key = \"root\"\n");
        let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
        assert!(
            error.contains("faults[0].config_key") && error.contains("\"operator-2\""),
            "{error}"
        );
    }

    #[test]
    fn wrong_type_is_a_syntax_error_with_line() {
        let text = "name = \"t\"\nduration_s = \"long\"\n[fleet]\nagents = 4\n";
        let error = Scenario::parse("t.toml", text).unwrap_err().to_string();
        assert!(error.starts_with("t.toml:2:"), "{error}");
    }
}
