//! Scenario files: a fleet, its protocol parameters, a network, a fault
//! timeline and the expectations a run must meet. The format is documented
//! in `docs/scenarios.md`; every field is checked, and an error names the
//! file, the line and the field.
//!
//! Each section is read by its own module; the `[[faults]]` entries by
//! their kinds' modules under [`crate::scenario::fault`]. This module reads the
//! file and puts the sections together.

use crate::network::LinkModel;
use context::{Context, DURATION_S_MAX, seconds};
use expect::{Expect, ExpectFile};
use fault::kind::Known;
use fault::{Fault, FaultFile};
use fleet::{Fleet, FleetFile};
use fleetmesh_node::Config;
use leases::LeaseSpec;
use network::{LinkRule, NetworkFile};
use protocol::ProtocolFile;
use serde::Deserialize;
use services::{ServiceModel, ServicesFile};
use std::path::Path;
use std::time::Duration;
use swarm::{SwarmBounds, SwarmFile};
use toml::Spanned;

pub mod context;
pub mod expect;
pub mod fault;
pub mod fleet;
pub mod leases;
pub mod network;
pub mod operators;
pub mod protocol;
pub mod schedule;
pub mod services;
pub mod swarm;

pub use context::ScenarioError;
pub use fleet::Nodes;
pub use operators::{Content, OperatorKey, Publication, TrustChange};

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
    services: Option<Spanned<ServicesFile>>,
    #[serde(default)]
    swarm: Option<Spanned<SwarmFile>>,
}

fn default_seed() -> u64 {
    1
}

// --- loading -----------------------------------------------------------------

impl Scenario {
    /// Whether an operator issues an emergency stop in this scenario (its
    /// operator key then holds `stop`).
    pub fn has_emergency_stop(&self) -> bool {
        self.faults
            .iter()
            .any(|fault| matches!(fault, Fault::EmergencyStop(_)))
    }

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
        let fleet = fleet::fleet(&context, &file.fleet)?;
        let (config, preset) = match &file.protocol {
            Some(protocol) => protocol::config(&context, protocol)?,
            None => (Config::lan(), "lan".to_string()),
        };
        let (link, links) = match &file.network {
            Some(network) => network::network(&context, network, &fleet)?,
            None => (LinkModel::default(), Vec::new()),
        };
        let declared = fault::declared(&context, &file.faults, &fleet, link)?;
        let faults = fault::faults(&context, &file.faults, &fleet, link, &declared, duration)?;
        let leases = leases::leases(&context, &file.leases, &fleet, &config)?;
        let known = Known {
            leases: &leases,
            declared: &declared,
        };
        fault::check_known(&context, &file.faults, &faults, &known)?;
        let expect = match &file.expect {
            Some(expect) => expect::expect(&context, expect, &fleet)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::operators::OperatorKey;

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
            [Fault::Attack(attack)] => attack.config_key,
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
