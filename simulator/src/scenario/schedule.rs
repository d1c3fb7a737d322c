//! The fault timeline of one run, resolved against the fleet: every random
//! choice (which agents crash, who is a bridge, when random pauses happen)
//! is drawn here, once, from the run's `faults` stream, so the schedule can
//! be printed and replayed exactly.

use crate::network::{Cut, LinkModel};
use crate::rng::Seeds;
use crate::scenario::fleet::{Fleet, Nodes};
use crate::scenario::operators::{OperatorKey, Publication, TrustChange};
use rand::RngExt;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// One resolved action.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start an agent and join it through the seeds.
    Start(u32),
    /// Install a partition.
    Partition(Cut),
    /// Remove the partition.
    Heal,
    /// Crash agents.
    Crash(Vec<u32>),
    /// Restart crashed agents (a fresh process).
    Restart(Vec<u32>),
    /// Pause agents.
    Pause(Vec<u32>),
    /// Resume paused agents.
    Resume(Vec<u32>),
    /// Set the default link model.
    Network(LinkModel),
    /// Set one agent's clock: offset in nanoseconds, drift in ppm.
    Clock(u32, i64, i64),
    /// Agents leave gracefully.
    Leave(Vec<u32>),
    /// Stop agents that left (a gossip round after they announced it).
    Stop(Vec<u32>),
    /// Agents change their tags.
    Retag(Vec<u32>, BTreeMap<String, String>),
    /// An operator writes config and hands it to one running agent of the
    /// candidates.
    Publish(Box<Publication>, Vec<u32>),
    /// The root signs a trust document and hands it to one running agent of
    /// the candidates.
    Trust(TrustChange, Vec<u32>),
    /// An operator key signs two changes with one sequence number, each
    /// handed to another running agent of the candidates.
    Equivocate(OperatorKey, String, Vec<u32>),
    /// One attempt of a hostile agent against another.
    Attack {
        /// The hostile agent.
        attacker: u32,
        /// Its victim.
        target: u32,
        /// The attempt's number: picks what is forged.
        attempt: u32,
        /// The fault's attempts in all.
        attempts: u32,
        /// The config key the attacker holds, if any.
        config_key: Option<OperatorKey>,
    },
    /// An agent reports health check number `check` healthy or not.
    Health {
        /// The agent.
        agent: u32,
        /// The check's number.
        check: u8,
        /// Its new state.
        healthy: bool,
    },
    /// Crash the agent holding a lease scope when the action runs,
    /// restarting it after the delay, if any.
    CrashHolder(String, Option<Duration>),
    /// An operator releases the remediation policy through one running
    /// agent of the candidates.
    Policy(Box<Publication>, Vec<u32>),
    /// The service of `service` fault number `fault` (in file order among
    /// the `service` faults) fails, or recovers by itself, on `nodes`.
    Service {
        /// Which `service` fault.
        fault: u32,
        /// The hosts.
        nodes: Vec<u32>,
        /// Fails (true) or recovers (false).
        failing: bool,
    },
    /// An operator approves the pending remediations of the fault's rule
    /// on `targets`, reading the ledger of one running agent of `via`.
    Approve(Box<Approval>, Vec<u32>, Vec<u32>),
    /// An operator's emergency stop (or resume) handed to one running
    /// agent of the list.
    EmergencyStop(Box<StopOrder>, Vec<u32>),
}

/// What an operator's emergency stop says, from an `emergency-stop` fault.
#[derive(Clone, Debug, PartialEq)]
pub struct StopOrder {
    /// Tags an agent must carry to be stopped; empty: every agent.
    pub selector: std::collections::BTreeMap<String, String>,
    /// How long the stop lasts from its signature; `None`: a resume that
    /// lifts the stops with this selector.
    pub lasting: Option<Duration>,
}

/// What an operator's approvals say, from an `approve` fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    /// The rule whose pending remediations are approved.
    pub rule: String,
    /// How long each approval lasts from its signature.
    pub ttl: Duration,
    /// Signed this long before it arrives (so it may arrive expired).
    pub late_by: Duration,
}

impl Action {
    /// True for actions that disturb the fleet: the convergence clock
    /// restarts after each. Expelling a node changes who is in the fleet;
    /// other operator actions do not.
    pub fn disturbs(&self) -> bool {
        match self {
            Action::Trust(change, _) => matches!(change, TrustChange::RevokeNode(_)),
            Action::Clock(..)
            | Action::Retag(..)
            | Action::Stop(..)
            | Action::Publish(..)
            | Action::Equivocate(..)
            | Action::Health { .. }
            | Action::Policy(..)
            | Action::Service { .. }
            | Action::Approve(..)
            | Action::EmergencyStop(..)
            | Action::Attack { .. } => false,
            _ => true,
        }
    }
}

/// Time-ordered actions. Ties keep the order of the scenario file.
pub type Schedule = Vec<(Duration, Action)>;

/// Every agent's start: the seeds at 0, the others at uniformly random
/// times within the fleet's join spread, drawn from the `joins` stream.
pub fn starts(fleet: &Fleet, seeds: &Seeds) -> Schedule {
    let mut join_rng = seeds.rng("joins", 0);
    (0..fleet.agents)
        .map(|agent| {
            let at = if agent < fleet.seeds || fleet.join_spread.is_zero() {
                Duration::ZERO
            } else {
                fleet.join_spread.mul_f64(join_rng.random::<f64>())
            };
            (at, Action::Start(agent))
        })
        .collect()
}

/// Orders `schedule` by time. Stable: equal times keep file order, except
/// that clocks are set before agents start, so a skew at t=0 is the clock
/// the process starts with.
pub fn sort(schedule: &mut Schedule) {
    schedule.sort_by_key(|(at, action)| (*at, !matches!(action, Action::Clock(..))));
}

/// The agents `nodes` names, ascending. `taken` marks agents already used
/// (by earlier partition groups) and so not eligible.
pub fn pick(
    fleet: &Fleet,
    nodes: &Nodes,
    taken: Option<&[bool]>,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    if let Some(ids) = &nodes.ids {
        let mut ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&agent| taken.is_none_or(|taken| !taken[agent as usize]))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        return ids;
    }
    let mut eligible: Vec<u32> = (0..fleet.agents)
        .filter(|&agent| taken.is_none_or(|taken| !taken[agent as usize]))
        .filter(|&agent| {
            let tags = &fleet.tags[agent as usize];
            nodes
                .select
                .iter()
                .all(|(key, value)| tags.get(key) == Some(value))
        })
        .filter(|&agent| !(nodes.exclude_seeds && agent < fleet.seeds))
        .collect();
    let wanted = match (nodes.count, nodes.fraction) {
        (Some(count), _) => (count as usize).min(eligible.len()),
        (None, Some(fraction)) => ((eligible.len() as f64) * fraction).round() as usize,
        (None, None) => eligible.len(),
    }
    .min(eligible.len());
    if wanted < eligible.len() {
        eligible.shuffle(rng);
        eligible.truncate(wanted);
        eligible.sort_unstable();
    }
    eligible
}

/// Names of the fault action codes of [`crate::event::TraceEvent::Fault`].
pub const FAULT_NAMES: [&str; 22] = [
    "start",
    "partition",
    "heal",
    "crash",
    "restart",
    "pause",
    "resume",
    "network change",
    "clock change",
    "leave",
    "stop",
    "retag",
    "config publication",
    "trust change",
    "attack attempt",
    "equivocation",
    "crash of the holder",
    "health report",
    "policy publication",
    "service fails",
    "service recovers",
    "approval",
];

impl Action {
    /// The action's code in [`crate::event::TraceEvent::Fault`]: an index
    /// into [`FAULT_NAMES`]. Part of every trace hash.
    pub fn code(&self) -> u8 {
        match self {
            Action::Start(_) => 0,
            Action::Partition(_) => 1,
            Action::Heal => 2,
            Action::Crash(_) => 3,
            Action::Restart(_) => 4,
            Action::Pause(_) => 5,
            Action::Resume(_) => 6,
            Action::Network(_) => 7,
            Action::Clock(..) => 8,
            Action::Leave(_) => 9,
            Action::Stop(_) => 10,
            Action::Retag(..) => 11,
            Action::Publish(..) => 12,
            Action::Trust(..) => 13,
            Action::Attack { .. } => 14,
            Action::Equivocate(..) => 15,
            Action::CrashHolder(..) => 16,
            Action::Health { .. } => 17,
            Action::Policy(..) => 18,
            Action::Service { failing: true, .. } => 19,
            Action::Service { failing: false, .. } => 20,
            Action::Approve(..) => 21,
            Action::EmergencyStop(..) => 22,
        }
    }
}
