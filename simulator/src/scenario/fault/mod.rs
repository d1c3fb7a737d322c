//! The fault timeline: one module per kind of `[[faults]]` entry, and the
//! registry that names them.
//!
//! Each kind's module owns all of it: its entry's file struct and
//! validation ([`kind::Parse`]), its resolution into the schedule's
//! actions, its variation by a swarm seed, its writing back into the file
//! for `sim shrink`, and its bar in the report ([`kind::Kind`]). The
//! registry below generates from one line per kind the [`Fault`] enum,
//! the file enum serde reads `kind = "..."` into, and the dispatch.
//!
//! Why an enum generated from a registry rather than trait objects: the
//! file enum keeps serde's tagged reading (its errors, with their lines,
//! stay as they were), `Fault` stays `Clone + PartialEq + Debug` for the
//! swarm and shrink tests, and a kind still touches only its module, its
//! registry line and the docs.
//!
//! How to add a kind: write `fault/<kind>.rs` with its struct and `File`
//! and the two trait impls (copy a kind close to it), add its `mod` and
//! its line at the end of the registry, and its row in
//! `docs/scenarios.md`. A kind that needs the world to do something new
//! also adds an [`crate::scenario::schedule::Action`] and its application in
//! `world/act.rs`.

use crate::network::LinkModel;
use crate::rng::Seeds;
use crate::scenario::context::{Context, ScenarioError};
use crate::scenario::fleet::Fleet;
use crate::scenario::schedule::{self, Schedule};
use crate::scenario::services::Declared;
use kind::{Input, Kind, Known, Misfit, Parse, Resolution};
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

pub mod approve;
pub mod attack;
pub mod clock;
pub mod config;
pub mod crash;
pub mod crash_holder;
pub mod emergency_stop;
pub mod equivocate;
pub mod health_flaps;
pub mod kind;
pub mod leave;
pub mod network;
pub mod partition;
pub mod pause;
pub mod policy;
pub mod random_pauses;
pub mod rate;
pub mod retag;
pub mod revoke;
pub mod rotate_root;
pub mod service;
pub mod vary;
pub mod write;

/// Generates [`Fault`], [`FaultFile`], [`KINDS`] and the dispatch from
/// one line per kind: `Variant(module::Type) = "name in files";`.
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($kind:ty) = $name:literal;)*) => {
        /// One entry of the fault timeline, by kind; each kind's data and
        /// behaviour live in its module.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Fault {
            $($(#[$doc])* $variant(Box<$kind>),)*
        }

        /// A `[[faults]]` entry as serde reads it: `kind` picks the variant.
        #[derive(Deserialize)]
        #[serde(tag = "kind", deny_unknown_fields)]
        pub(crate) enum FaultFile {
            $(#[serde(rename = $name)] $variant(<$kind as Parse>::File),)*
        }

        /// Every kind: its name in scenario files, and whether swarm runs
        /// vary it (chaos) or keep it as written (workload). Swarm runs
        /// draw for the chaos kinds in this order, so a new kind goes at
        /// the end: the mixes of existing seeds stay as they were.
        pub const KINDS: &[(&str, bool)] = &[$(($name, <$kind as Parse>::CHAOS),)*];

        /// Every kind's name and example entry, for the tests that cover
        /// every kind.
        #[cfg(test)]
        const EXAMPLES: &[(&str, &str)] = &[$(($name, <$kind as Parse>::EXAMPLE),)*];

        impl Fault {
            /// What the fault does.
            pub fn kind(&self) -> &dyn Kind {
                match self {
                    $(Fault::$variant(fault) => fault.as_ref(),)*
                }
            }

            fn kind_mut(&mut self) -> &mut dyn Kind {
                match self {
                    $(Fault::$variant(fault) => fault.as_mut(),)*
                }
            }

            /// The kind's name in scenario files.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Fault::$variant(_) => $name,)*
                }
            }

            /// True for chaos (which swarm runs vary), false for workload.
            pub fn is_chaos(&self) -> bool {
                match self {
                    $(Fault::$variant(_) => <$kind as Parse>::CHAOS,)*
                }
            }
        }

        impl FaultFile {
            fn parse(&self, input: &Input<'_>) -> Result<Fault, ScenarioError> {
                Ok(match self {
                    $(FaultFile::$variant(file) => {
                        Fault::$variant(Box::new(<$kind as Parse>::parse(file, input)?))
                    })*
                })
            }
        }
    };
}

registry! {
    /// Split the network into groups.
    Partition(partition::Partition) = "partition";
    /// Crash agents, optionally restarting them.
    Crash(crash::Crash) = "crash";
    /// Pause agents.
    Pause(pause::Pause) = "pause";
    /// Pause random agents, as a Poisson process per agent.
    RandomPauses(random_pauses::RandomPauses) = "random-pauses";
    /// Change the default link model for a while.
    Network(network::Network) = "network";
    /// Skew and drift the clocks of agents.
    Clock(clock::Clock) = "clock";
    /// Agents leave gracefully.
    Leave(leave::Leave) = "leave";
    /// Agents change their tags.
    Retag(retag::Retag) = "retag";
    /// An operator writes a config document and (usually) releases it.
    Config(config::Config) = "config";
    /// The root revokes an operator's or an agent's key.
    Revoke(revoke::Revoke) = "revoke";
    /// The root key is replaced.
    RotateRoot(rotate_root::RotateRoot) = "rotate-root";
    /// An admitted agent turns hostile.
    Attack(attack::Attack) = "attack";
    /// An operator key equivocates.
    Equivocate(equivocate::Equivocate) = "equivocate";
    /// Crash whichever agent holds a lease scope.
    CrashHolder(crash_holder::CrashHolder) = "crash-holder";
    /// Agents' health checks flip.
    HealthFlaps(health_flaps::HealthFlaps) = "health-flaps";
    /// An operator releases the remediation policy.
    Policy(policy::Policy) = "policy";
    /// A modelled service fails.
    Service(service::ServiceFault) = "service";
    /// An operator approves pending remediations.
    Approve(approve::ApproveFault) = "approve";
    /// An operator stops all automation (and may lift the stop).
    EmergencyStop(emergency_stop::EmergencyStop) = "emergency-stop";
}

impl Fault {
    /// The fault as a swarm seed varies it.
    pub fn varied(&self, variation: &vary::Variation) -> Fault {
        let mut fault = self.clone();
        fault.kind_mut().vary(variation);
        fault
    }
}

/// What the `policy` entries of `files` declare: the other remediation
/// faults name it wherever they stand in the file, so policies are read
/// first.
pub(crate) fn declared(
    context: &Context<'_>,
    files: &[Spanned<FaultFile>],
    fleet: &Fleet,
    link: LinkModel,
) -> Result<Declared, ScenarioError> {
    let none = Declared::default();
    let mut declared = Declared::default();
    for (entry, input) in inputs(context, files, fleet, link, &none) {
        if let FaultFile::Policy(file) = entry {
            let (_, policy) = policy::Policy::read(file, &input)?;
            declared.add(&policy);
        }
    }
    Ok(declared)
}

/// Reads and validates the `[[faults]]` entries of a run ending at `end`.
pub(crate) fn faults(
    context: &Context<'_>,
    files: &[Spanned<FaultFile>],
    fleet: &Fleet,
    link: LinkModel,
    declared: &Declared,
    end: Duration,
) -> Result<Vec<Fault>, ScenarioError> {
    let mut faults = Vec::with_capacity(files.len());
    for (entry, input) in inputs(context, files, fleet, link, declared) {
        let fault = entry.parse(&input)?;
        fault
            .kind()
            .fits(end)
            .map_err(|misfit| refusal(context, input.index, input.span, misfit))?;
        faults.push(fault);
    }
    Ok(faults)
}

/// Each entry of `files` with what its kind's parse is handed.
fn inputs<'a>(
    context: &'a Context<'a>,
    files: &'a [Spanned<FaultFile>],
    fleet: &'a Fleet,
    link: LinkModel,
    declared: &'a Declared,
) -> impl Iterator<Item = (&'a FaultFile, Input<'a>)> {
    files.iter().enumerate().map(move |(index, entry)| {
        let input = Input {
            context,
            index,
            span: entry.span(),
            fleet,
            link,
            declared,
        };
        (entry.get_ref(), input)
    })
}

/// Checks the names `faults` give against the rest of the scenario.
pub(crate) fn check_known(
    context: &Context<'_>,
    files: &[Spanned<FaultFile>],
    faults: &[Fault],
    known: &Known<'_>,
) -> Result<(), ScenarioError> {
    for (index, (entry, fault)) in files.iter().zip(faults).enumerate() {
        fault
            .kind()
            .check_known(known)
            .map_err(|misfit| refusal(context, index, entry.span(), misfit))?;
    }
    Ok(())
}

fn refusal(
    context: &Context<'_>,
    index: usize,
    span: Range<usize>,
    misfit: Misfit,
) -> ScenarioError {
    let field = match misfit.field {
        Some(name) => format!("faults[{index}].{name}"),
        None => format!("faults[{index}]"),
    };
    context.invalid(span, field, misfit.message)
}

/// The fault timeline of one run resolved against `fleet`: the agents'
/// starts, then every fault's actions, drawn from the `faults` stream of
/// `seeds` in file order, and sorted by time.
pub fn resolve(
    fleet: &Fleet,
    default_link: LinkModel,
    faults: &[Fault],
    seeds: &Seeds,
) -> Schedule {
    let mut rng = seeds.rng("faults", 0);
    let mut schedule = schedule::starts(fleet, seeds);
    let mut resolution = Resolution {
        fleet,
        default_link,
        rng: &mut rng,
        schedule: &mut schedule,
        services: 0,
    };
    for fault in faults {
        fault.kind().resolve(&mut resolution);
    }
    schedule::sort(&mut schedule);
    schedule
}

#[cfg(test)]
mod tests;
