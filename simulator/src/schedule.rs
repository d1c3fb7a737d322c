//! The fault timeline of one run, resolved against the fleet: every random
//! choice (which agents crash, who is a bridge, when random pauses happen)
//! is drawn here, once, from the run's `faults` stream, so the schedule can
//! be printed and replayed exactly.

use crate::network::{Cut, LinkModel};
use crate::rng::Seeds;
use crate::scenario::{
    ApproveFault, Fault, Fleet, Nodes, OperatorKey, Publication, ServiceMode, TrustChange,
};
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
    Approve(Box<ApproveFault>, Vec<u32>, Vec<u32>),
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
            | Action::Attack { .. } => false,
            _ => true,
        }
    }
}

/// Time-ordered actions. Ties keep the order of the scenario file.
pub type Schedule = Vec<(Duration, Action)>;

/// Resolves `faults` for `fleet` with the `faults` stream of `seeds`.
pub fn resolve(
    fleet: &Fleet,
    default_link: LinkModel,
    faults: &[Fault],
    seeds: &Seeds,
) -> Schedule {
    let mut rng = seeds.rng("faults", 0);
    let mut schedule: Schedule = Vec::new();
    let mut join_rng = seeds.rng("joins", 0);
    let mut services = 0u32;
    for agent in 0..fleet.agents {
        let at = if agent < fleet.seeds || fleet.join_spread.is_zero() {
            Duration::ZERO
        } else {
            fleet.join_spread.mul_f64(join_rng.random::<f64>())
        };
        schedule.push((at, Action::Start(agent)));
    }
    for fault in faults {
        match fault {
            Fault::Partition {
                at,
                heal,
                groups,
                allow,
                bridges,
            } => {
                let cut = cut(fleet, groups, allow, bridges.as_ref(), &mut rng);
                schedule.push((*at, Action::Partition(cut)));
                if let Some(heal) = heal {
                    schedule.push((*heal, Action::Heal));
                }
            }
            Fault::Crash {
                at,
                nodes,
                restart_after,
            } => {
                let picked = pick(fleet, nodes, None, &mut rng);
                schedule.push((*at, Action::Crash(picked.clone())));
                if let Some(after) = restart_after {
                    schedule.push((*at + *after, Action::Restart(picked)));
                }
            }
            Fault::Pause {
                at,
                nodes,
                duration,
            } => {
                let picked = pick(fleet, nodes, None, &mut rng);
                schedule.push((*at, Action::Pause(picked.clone())));
                schedule.push((*at + *duration, Action::Resume(picked)));
            }
            Fault::RandomPauses {
                from,
                until,
                per_agent_hour,
                duration,
            } => {
                random_pauses(
                    fleet,
                    *from,
                    *until,
                    *per_agent_hour,
                    *duration,
                    &mut rng,
                    &mut schedule,
                );
            }
            Fault::HealthFlaps {
                from,
                until,
                checks,
                per_agent_hour,
            } => health_flaps(
                fleet,
                (*from, *until),
                *checks,
                *per_agent_hour,
                &mut rng,
                &mut schedule,
            ),
            Fault::Network { at, until, model } => {
                schedule.push((*at, Action::Network(*model)));
                if let Some(until) = until {
                    // Back to the scenario's [network] model, whatever other
                    // network faults did meanwhile.
                    schedule.push((*until, Action::Network(default_link)));
                }
            }
            Fault::Clock {
                at,
                nodes,
                skew,
                drift_ppm,
            } => {
                let skew = i64::try_from(skew.as_nanos()).unwrap_or(i64::MAX);
                let drift = i64::from(*drift_ppm);
                for agent in pick(fleet, nodes, None, &mut rng) {
                    let offset = if skew == 0 {
                        0
                    } else {
                        rng.random_range(-skew..=skew)
                    };
                    let drift = if drift == 0 {
                        0
                    } else {
                        rng.random_range(-drift..=drift)
                    };
                    schedule.push((*at, Action::Clock(agent, offset, drift)));
                }
            }
            Fault::Leave { at, nodes } => {
                let picked = pick(fleet, nodes, None, &mut rng);
                schedule.push((*at, Action::Leave(picked.clone())));
                schedule.push((*at + Duration::from_secs(1), Action::Stop(picked)));
            }
            Fault::CrashHolder {
                at,
                scope,
                restart_after,
            } => schedule.push((*at, Action::CrashHolder(scope.clone(), *restart_after))),
            Fault::Retag { at, nodes, tags } => {
                schedule.push((
                    *at,
                    Action::Retag(pick(fleet, nodes, None, &mut rng), tags.clone()),
                ));
            }
            Fault::Policy { at, publication } => {
                let via = pick(fleet, &publication.via, None, &mut rng);
                schedule.push((*at, Action::Policy(Box::new(publication.clone()), via)));
            }
            Fault::Service(service) => {
                let nodes = pick(fleet, &service.nodes, None, &mut rng);
                let mut turn = |at: Duration, failing: bool| {
                    let action = Action::Service {
                        fault: services,
                        nodes: nodes.clone(),
                        failing,
                    };
                    schedule.push((at, action));
                };
                match service.mode {
                    ServiceMode::Crash => turn(service.at, true),
                    ServiceMode::Flap { period, until } => {
                        let mut at = service.at;
                        let mut failing = true;
                        while at < until {
                            turn(at, failing);
                            failing = !failing;
                            at += period;
                        }
                        turn(until, false);
                    }
                }
                if let Some(heal) = service.heal {
                    turn(heal, false);
                }
                services += 1;
            }
            Fault::Approve(approve) => {
                let targets = pick(fleet, &approve.nodes, None, &mut rng);
                let via = pick(fleet, &approve.via, None, &mut rng);
                schedule.push((approve.at, Action::Approve(approve.clone(), targets, via)));
            }
            Fault::Config { at, publication } => {
                let via = pick(fleet, &publication.via, None, &mut rng);
                schedule.push((*at, Action::Publish(Box::new(publication.clone()), via)));
            }
            Fault::Equivocate {
                at,
                author,
                doc,
                via,
            } => {
                let via = pick(fleet, via, None, &mut rng);
                schedule.push((*at, Action::Equivocate(*author, doc.clone(), via)));
            }
            Fault::Trust { at, change, via } => {
                let via = pick(fleet, via, None, &mut rng);
                schedule.push((*at, Action::Trust(*change, via)));
            }
            Fault::Attack {
                from,
                until,
                attempts,
                attacker,
                config_key,
            } => {
                let step = (*until - *from) / *attempts;
                for attempt in 0..*attempts {
                    let mut target = rng.random_range(0..fleet.agents.max(2) - 1);
                    if target >= *attacker {
                        target += 1;
                    }
                    let action = Action::Attack {
                        attacker: *attacker,
                        target: target.min(fleet.agents - 1),
                        attempt,
                        attempts: *attempts,
                        config_key: *config_key,
                    };
                    schedule.push((*from + step * attempt, action));
                }
            }
        }
    }
    // Stable: equal times keep file order, except that clocks are set before
    // agents start, so a skew at t=0 is the clock the process starts with.
    schedule.sort_by_key(|(at, action)| (*at, !matches!(action, Action::Clock(..))));
    schedule
}

/// The agents `nodes` names, ascending. `taken` marks agents already used
/// (by earlier partition groups) and so not eligible.
fn pick(fleet: &Fleet, nodes: &Nodes, taken: Option<&[bool]>, rng: &mut ChaCha8Rng) -> Vec<u32> {
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

fn cut(
    fleet: &Fleet,
    groups: &[Nodes],
    allow: &[(u16, u16)],
    bridges: Option<&Nodes>,
    rng: &mut ChaCha8Rng,
) -> Cut {
    let agents = fleet.agents as usize;
    let rest = u16::try_from(groups.len()).expect("at most 64 groups");
    let mut group_of = vec![rest; agents];
    let mut taken = vec![false; agents];
    for (number, nodes) in groups.iter().enumerate() {
        for agent in pick(fleet, nodes, Some(&taken), rng) {
            taken[agent as usize] = true;
            group_of[agent as usize] = u16::try_from(number).expect("at most 64 groups");
        }
    }
    let bridge_group = rest + 1;
    let group_count = rest + 1 + u16::from(bridges.is_some());
    if let Some(bridges) = bridges {
        for agent in pick(fleet, bridges, None, rng) {
            group_of[agent as usize] = bridge_group;
        }
    }
    let mut cut = Cut::isolated(group_of, group_count);
    for &(from, to) in allow {
        cut.allow(from, to);
    }
    if bridges.is_some() {
        for group in 0..bridge_group {
            cut.allow(group, bridge_group);
            cut.allow(bridge_group, group);
        }
    }
    cut
}

/// Every agent reports its `checks` healthy at the window's start; then
/// each check flips as a Poisson process of `per_agent_hour`.
fn health_flaps(
    fleet: &Fleet,
    (from, until): (Duration, Duration),
    checks: u8,
    per_agent_hour: f64,
    rng: &mut ChaCha8Rng,
    schedule: &mut Schedule,
) {
    for agent in 0..fleet.agents {
        for check in 0..checks {
            schedule.push((
                from,
                Action::Health {
                    agent,
                    check,
                    healthy: true,
                },
            ));
            if per_agent_hour <= 0.0 {
                continue;
            }
            let mean_gap_s = 3600.0 / per_agent_hour;
            let mut at = from.as_secs_f64();
            let mut healthy = true;
            loop {
                let uniform: f64 = rng.random();
                at += -mean_gap_s * (1.0 - uniform).ln();
                if at >= until.as_secs_f64() {
                    break;
                }
                healthy = !healthy;
                let action = Action::Health {
                    agent,
                    check,
                    healthy,
                };
                schedule.push((Duration::from_secs_f64(at), action));
            }
        }
    }
}

fn random_pauses(
    fleet: &Fleet,
    from: Duration,
    until: Duration,
    per_agent_hour: f64,
    duration: Duration,
    rng: &mut ChaCha8Rng,
    schedule: &mut Schedule,
) {
    if per_agent_hour <= 0.0 {
        return;
    }
    let mean_gap_s = 3600.0 / per_agent_hour;
    for agent in 0..fleet.agents {
        let mut at = from.as_secs_f64();
        loop {
            let uniform: f64 = rng.random();
            at += -mean_gap_s * (1.0 - uniform).ln();
            if at >= until.as_secs_f64() {
                break;
            }
            let start = Duration::from_secs_f64(at);
            schedule.push((start, Action::Pause(vec![agent])));
            schedule.push((start + duration, Action::Resume(vec![agent])));
            // Pauses of one agent never overlap.
            at += duration.as_secs_f64();
        }
    }
}
