//! What a fault kind is: the two traits each kind of the timeline
//! implements in its own module, and what the simulator hands them to
//! parse, resolve and report. A leaf of the fault modules: every kind and
//! the registry use it, and it uses neither.

use crate::network::LinkModel;
use crate::scenario::context::{Context, ScenarioError, seconds};
use crate::scenario::fault::vary::Variation;
use crate::scenario::fleet::{Fleet, Nodes, NodesFile, nodes};
use crate::scenario::leases::LeaseSpec;
use crate::scenario::operators::{OperatorKey, doc_id, operator_key};
use crate::scenario::schedule::{Action, Schedule, pick};
use crate::scenario::services::Declared;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::time::Duration;
use toml::Table;

/// How a kind's `[[faults]]` entry is read: its file struct, its
/// validation, an example, and whether swarm runs vary it.
pub trait Parse: Kind + Sized {
    /// The entry's fields as serde reads them (unknown fields refused).
    type File: DeserializeOwned;
    /// The fields of a valid entry in TOML, `kind` left out: what the
    /// tests that cover every registered kind build their scenarios from
    /// (the fleet has agents 0 to 5 tagged `role=db` and `role=web`, a
    /// lease scope `s`, and a policy declaring check `web`, rule `fix` and
    /// action `reboot`).
    const EXAMPLE: &'static str;
    /// True for chaos, which a swarm run varies seed by seed; false for
    /// workload, which it keeps as written.
    const CHAOS: bool;

    /// Validates `file`; errors name the file, the line and the field.
    fn parse(file: &Self::File, input: &Input<'_>) -> Result<Self, ScenarioError>;
}

/// What a parsed fault does: resolution into the schedule's actions, its
/// variation by a swarm seed and its writing back (for `sim shrink`), and
/// its bar in the report.
pub trait Kind {
    /// When the fault starts.
    fn start(&self) -> Duration;

    /// Checks the fault against the end of the run; by default, that it
    /// starts by then.
    fn fits(&self, end: Duration) -> Result<(), Misfit> {
        starts_by(self.start(), end)
    }

    /// Checks the names the fault gives against the rest of the scenario,
    /// once every section is read.
    fn check_known(&self, _known: &Known<'_>) -> Result<(), Misfit> {
        Ok(())
    }

    /// Appends the fault's actions. Random choices draw from the run's
    /// `faults` stream in file order: the draws, and their order, are
    /// part of every trace hash.
    fn resolve(&self, resolution: &mut Resolution<'_>);

    /// Varies the fault as a swarm seed does: intensity by
    /// `variation.factor`, start moved by `variation.shift`. Workload is
    /// never varied.
    fn vary(&mut self, _variation: &Variation) {}

    /// Writes what [`Kind::vary`] changes into the fault's file `entry`,
    /// so that the entry parses back to this very fault.
    fn write_back(&self, _entry: &mut Table) {}

    /// The fault's bar in the report's timeline; `end` is the run's end,
    /// in seconds.
    fn period(&self, end: f64) -> Period;

    /// True when it writes config or trust, or attacks: the run then checks
    /// the agents' config state whenever it changes.
    fn touches_config(&self) -> bool {
        false
    }
}

/// A fault that does not fit the scenario: the field (`None`: the entry
/// as a whole) and what is wrong.
#[derive(Debug)]
pub struct Misfit {
    /// The field, under `faults[i]`.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

/// A fault starting at `start` fits a run ending at `end`.
pub fn starts_by(start: Duration, end: Duration) -> Result<(), Misfit> {
    if start > end {
        return Err(Misfit {
            field: None,
            message: "starts after the scenario ends".into(),
        });
    }
    Ok(())
}

/// The rest of the scenario, for [`Kind::check_known`].
pub struct Known<'a> {
    /// The `[[leases]]` scopes.
    pub leases: &'a [LeaseSpec],
    /// What the `policy` faults declare.
    pub declared: &'a Declared,
}

/// A fault's bar in the report: from, until (seconds), CSS class, label.
#[derive(Clone, Debug, PartialEq)]
pub struct Period {
    /// Start, in seconds.
    pub from: f64,
    /// End, in seconds.
    pub until: f64,
    /// The CSS class of the bar.
    pub class: &'static str,
    /// What the bar says.
    pub label: String,
}

impl Period {
    /// A bar from `from` to `until`.
    pub fn new(from: f64, until: f64, class: &'static str, label: impl Into<String>) -> Period {
        Period {
            from,
            until,
            class,
            label: label.into(),
        }
    }

    /// A mark at `at`.
    pub fn mark(at: Duration, label: impl Into<String>) -> Period {
        let at = at.as_secs_f64();
        Period::new(at, at, "mark", label)
    }

    /// A bar over the window `from`..`until`.
    pub fn window(
        from: Duration,
        until: Duration,
        class: &'static str,
        label: impl Into<String>,
    ) -> Period {
        Period::new(from.as_secs_f64(), until.as_secs_f64(), class, label)
    }

    /// From `start` until `stop` (not before `start`), or the run's `end`.
    pub fn until(
        start: Duration,
        stop: Option<Duration>,
        end: f64,
        class: &'static str,
        label: impl Into<String>,
    ) -> Period {
        let start = start.as_secs_f64();
        let until = stop.map_or(end, |stop| stop.as_secs_f64().max(start));
        Period::new(start, until, class, label)
    }

    /// From `start` for `after`, or until the run's `end` without one.
    pub fn lasting(
        start: Duration,
        after: Option<Duration>,
        end: f64,
        class: &'static str,
        label: impl Into<String>,
    ) -> Period {
        let start = start.as_secs_f64();
        let until = after.map_or(end, |after| start + after.as_secs_f64());
        Period::new(start, until, class, label)
    }
}

/// What a kind's [`Parse::parse`] is handed: where the entry stands, the
/// fleet, the scenario's link model and what the policies declare.
pub struct Input<'a> {
    /// The file being read.
    pub(crate) context: &'a Context<'a>,
    /// The entry's index in `[[faults]]`.
    pub index: usize,
    /// The entry's span in the file.
    pub span: Range<usize>,
    /// The fleet.
    pub fleet: &'a Fleet,
    /// The scenario's `[network]` link model.
    pub link: LinkModel,
    /// What the `policy` faults declare (empty while they are read).
    pub declared: &'a Declared,
}

impl Input<'_> {
    /// The entry's path in errors: `faults[i]`.
    pub fn prefix(&self) -> String {
        format!("faults[{}]", self.index)
    }

    /// Field `name`'s path in errors: `faults[i].name`.
    pub fn field(&self, name: &str) -> String {
        format!("faults[{}].{name}", self.index)
    }

    /// The error for field `name`.
    pub fn invalid(&self, name: &str, message: impl Into<String>) -> ScenarioError {
        self.context
            .invalid(self.span.clone(), self.field(name), message)
    }

    /// Field `name`, `value` seconds.
    pub fn seconds(&self, name: &str, value: f64) -> Result<Duration, ScenarioError> {
        seconds(self.context, self.span.clone(), &self.field(name), value)
    }

    /// The window `from_s` to `until_s`, which must end after it starts.
    pub fn window(&self, from_s: f64, until_s: f64) -> Result<(Duration, Duration), ScenarioError> {
        let from = self.seconds("from_s", from_s)?;
        let until = self.seconds("until_s", until_s)?;
        if until <= from {
            return Err(self.invalid("until_s", "must be after from_s"));
        }
        Ok((from, until))
    }

    /// Optional field `name`, in seconds.
    pub fn optional_seconds(
        &self,
        name: &str,
        value: Option<f64>,
    ) -> Result<Option<Duration>, ScenarioError> {
        value.map(|value| self.seconds(name, value)).transpose()
    }

    /// Optional field `name` in seconds, which must be after `at` (the
    /// entry's `at_s`).
    pub fn optional_after(
        &self,
        at: Duration,
        name: &str,
        value: Option<f64>,
    ) -> Result<Option<Duration>, ScenarioError> {
        let time = self.optional_seconds(name, value)?;
        if time.is_some_and(|time| time <= at) {
            return Err(self.invalid(name, "must be after at_s"));
        }
        Ok(time)
    }

    /// Node set `name`.
    pub(crate) fn nodes(&self, name: &str, file: &NodesFile) -> Result<Nodes, ScenarioError> {
        nodes(
            self.context,
            self.span.clone(),
            &self.field(name),
            file,
            self.fleet,
        )
    }

    /// Operator key `name`.
    pub fn operator_key(&self, name: &str, text: &str) -> Result<OperatorKey, ScenarioError> {
        operator_key(self.context, self.span.clone(), &self.field(name), text)
    }

    /// Document id `name`: a name the config store accepts.
    pub fn doc_id(&self, name: &str, doc: &str) -> Result<(), ScenarioError> {
        doc_id(self.context, self.span.clone(), &self.field(name), doc)
    }
}

/// What a kind's [`Kind::resolve`] is handed: the fleet, the run's
/// `faults` stream and the schedule to append to.
pub struct Resolution<'a> {
    /// The fleet.
    pub fleet: &'a Fleet,
    /// The scenario's `[network]` link model.
    pub default_link: LinkModel,
    /// The run's `faults` stream.
    pub rng: &'a mut ChaCha8Rng,
    /// The schedule so far.
    pub schedule: &'a mut Schedule,
    /// `service` faults resolved so far: the number the next one's actions
    /// carry.
    pub services: u32,
}

impl Resolution<'_> {
    /// The agents `nodes` names, drawn from the `faults` stream.
    pub fn pick(&mut self, nodes: &Nodes) -> Vec<u32> {
        pick(self.fleet, nodes, None, self.rng)
    }

    /// Schedules `action` at `at`.
    pub fn push(&mut self, at: Duration, action: Action) {
        self.schedule.push((at, action));
    }

    /// Schedules at `at` what an operator hands to the agents `via` names
    /// (drawn from the `faults` stream now): `action` built for them.
    pub fn hand(&mut self, at: Duration, via: &Nodes, action: impl FnOnce(Vec<u32>) -> Action) {
        let via = self.pick(via);
        self.push(at, action(via));
    }
}
