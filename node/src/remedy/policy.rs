//! The remediation policy: checks and rules as a released config document
//! states them (`docs/remediation.md` has the format with examples).
//!
//! The agent reads the policy from the document named [`POLICY_DOC`] at the
//! release it runs, and only there: drafts are never acted on. A document
//! that does not parse is refused as a whole, naming the field, and the
//! agent keeps the policy it had.

use fleetmesh_crdt::{Digest, NodeMeta, PublicKey, Value, lease_limits, ledger_limits};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The config document that holds the remediation policy.
pub const POLICY_DOC: &str = "remediation";
/// Most checks a policy declares.
pub(crate) const CHECKS_MAX: usize = 64;
/// Most rules a policy declares.
pub(crate) const RULES_MAX: usize = 64;
/// Most steps in one rule's escalation ladder.
pub(crate) const STEPS_MAX: usize = 8;
/// Most arguments of an exec command, and longest argument in bytes.
pub(crate) const ARGS_MAX: usize = 32;
const ARG_BYTES_MAX: usize = 1_024;
/// Shortest check interval: agents are guests on their hosts.
pub(crate) const INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Longest interval, timeout, window or duration any field takes.
pub(crate) const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an approval-gated step waits for an operator's approval unless
/// the policy says otherwise: long enough for a paged human to acknowledge,
/// read the record and run `fleetmesh approve`; short enough that an
/// incident nobody answers moves on to the next step or to `needs-human`
/// within the hour.
pub(crate) const APPROVAL_WINDOW_DEFAULT: Duration = Duration::from_secs(15 * 60);
/// Shortest approval window a policy may set: a human needs at least this.
pub(crate) const APPROVAL_WINDOW_MIN: Duration = Duration::from_secs(10);

/// Why a policy document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("remediation policy: {field}: {problem}")]
pub struct PolicyError {
    /// The field, as a path (`rules.web-down.steps[1].class`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// A released policy this agent refused: it keeps the policy it had, and
/// says so (`/v1/agent`, `config release`) instead of reporting the
/// release's policy as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRefusal {
    /// The release of [`POLICY_DOC`] whose policy was refused.
    pub version: u64,
    /// That release's digest.
    pub digest: Digest,
    /// Why.
    pub error: PolicyError,
}

impl PolicyRefusal {
    /// `field: problem`, as the admin API and the CLI show it.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.error.field, self.error.problem)
    }
}

/// How a check is run; the runtime's executors read it, the simulator
/// models every kind by the check's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// Run a command; exit code 0 passes.
    Exec {
        /// Program and arguments (no shell).
        command: Vec<String>,
    },
    /// HTTP GET; passes on the expected status.
    Http {
        /// The URL.
        url: String,
        /// The status that passes.
        status: u16,
    },
    /// TCP connect; passes when the connection opens.
    Tcp {
        /// `host:port`.
        addr: String,
    },
}

/// One health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    /// Its name: the health report's key.
    pub name: String,
    /// How to run it.
    pub kind: CheckKind,
    /// The nodes that run it.
    pub select: Selector,
    /// How often it runs.
    pub interval: Duration,
    /// A run that takes longer fails (the runtime kills it).
    pub timeout: Duration,
    /// Consecutive failures before the check turns unhealthy.
    pub fall: u32,
    /// Consecutive passes before it turns healthy again.
    pub rise: u32,
    /// Failures in this long after the agent starts do not count (the
    /// service may still be coming up).
    pub grace: Duration,
}

impl CheckSpec {
    /// How long a sustained failure takes to be reported: the hysteresis.
    pub fn detection_time(&self) -> Duration {
        self.interval * self.fall
    }
}

/// What an action touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionClass {
    /// Only the node's own service: no coordination, works offline.
    Local,
    /// Removes capacity: needs the scope's budget lease.
    Disruptive,
}

impl ActionClass {
    /// The name the policy and the ledger use.
    pub fn name(self) -> &'static str {
        match self {
            ActionClass::Local => "local",
            ActionClass::Disruptive => "disruptive",
        }
    }
}

/// One rung of a rule's escalation ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The action's name (the ledger records it).
    pub action: String,
    /// What runs; empty in the simulator, where actions are modelled.
    pub command: Vec<String>,
    /// Local or disruptive.
    pub class: ActionClass,
    /// How long the action may run (it is killed then) and the service
    /// has to recover before the next step is tried.
    pub timeout: Duration,
    /// Wait for an operator's approval record before starting.
    pub approval: bool,
    /// With `approval`: how long the step waits for one, from when it
    /// became current, before it is skipped. Independent of `timeout`,
    /// which bounds the action once it has started.
    pub approval_window: Duration,
}

/// `key=value` pairs a node's tags must all carry. Never empty: a rule
/// or check that would select every node is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector(BTreeMap<String, String>);

impl Selector {
    /// Parses `key=value[,key=value]`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut pairs = BTreeMap::new();
        for pair in text.split(',').map(str::trim) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!(
                    "`{pair}` is not key=value (a wildcard or empty selector is refused)"
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() || key == "*" || value == "*" {
                return Err(format!(
                    "`{pair}` names no key or value (a wildcard selector is refused)"
                ));
            }
            pairs.insert(key.to_owned(), value.to_owned());
        }
        Ok(Selector(pairs))
    }

    /// Whether `meta`'s tags carry every pair.
    pub fn matches(&self, meta: &NodeMeta) -> bool {
        self.0
            .iter()
            .all(|(key, value)| meta.tags.get(key) == Some(value))
    }
}

/// A remediation rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// Its name: the ledger key's `rule`.
    pub name: String,
    /// The check whose failure it remediates.
    pub check: String,
    /// The nodes it applies to.
    pub select: Selector,
    /// How long the check must stay unhealthy before the first step.
    pub unhealthy_for: Duration,
    /// The escalation ladder, tried in order.
    pub steps: Vec<Step>,
    /// Disruptive remediations of the scope at once, fleet-wide (without
    /// escrow).
    pub max_concurrent: u32,
    /// Above this fraction of the selected nodes unhealthy, the fault is
    /// systemic: nothing is remediated and the skip is recorded.
    pub max_unhealthy: f64,
    /// Least time between two actions on one target.
    pub cooldown: Duration,
    /// After this many actions on one target within `limit_window`, the
    /// rule stops for that target and asks for a human.
    pub limit_count: u32,
    /// The window of `limit_count`.
    pub limit_window: Duration,
    /// Record what would be done, do nothing.
    pub dry_run: bool,
    /// The budget lease's voters (and candidates), named by key so that
    /// every agent running this release counts the same majority. Empty
    /// with escrow.
    pub voters: BTreeSet<PublicKey>,
    /// The budget split per group, each slot granted by its own voters.
    pub escrow: Option<Escrow>,
    /// The budget lease's ttl.
    pub lease_ttl: Duration,
}

/// A rule's budget split by the value of one tag (say one slot per zone),
/// each slot its own lease scope granted by its own voters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escrow {
    /// The tag whose value picks a target's slot.
    pub tag: String,
    /// Slots by tag value.
    pub slots: BTreeMap<String, Slot>,
}

/// One slot of an escrowed budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The slot's voters (and candidates).
    pub voters: BTreeSet<PublicKey>,
    /// Disruptive remediations of the slot at once.
    pub max_concurrent: u32,
}

/// One lease scope of a rule's budget: its voters and allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget<'a> {
    /// The voters, who are also the candidates.
    pub voters: &'a BTreeSet<PublicKey>,
    /// Disruptive remediations at once under this scope.
    pub max_concurrent: u32,
}

impl RuleSpec {
    /// The budget lease's scope without escrow, or the scope of the slot
    /// for tag value `slot`.
    pub fn scope_of(&self, slot: Option<&str>) -> String {
        match slot {
            None => format!("remediate:{}", self.name),
            Some(value) => format!("remediate:{}:{value}", self.name),
        }
    }

    /// Every lease scope of the rule's budget.
    pub fn budgets(&self) -> Vec<(String, Budget<'_>)> {
        if !self.is_disruptive() {
            return Vec::new();
        }
        match &self.escrow {
            None => vec![(
                self.scope_of(None),
                Budget {
                    voters: &self.voters,
                    max_concurrent: self.max_concurrent,
                },
            )],
            Some(escrow) => escrow
                .slots
                .iter()
                .map(|(value, slot)| {
                    let budget = Budget {
                        voters: &slot.voters,
                        max_concurrent: slot.max_concurrent,
                    };
                    (self.scope_of(Some(value)), budget)
                })
                .collect(),
        }
    }

    /// The scope and budget a target with `meta` is remediated under;
    /// `None` with escrow when its tag value has no slot.
    pub fn budget_for(&self, meta: &NodeMeta) -> Option<(String, Budget<'_>)> {
        let slot = match &self.escrow {
            None => None,
            Some(escrow) => Some(meta.tags.get(&escrow.tag)?.as_str()),
        };
        let scope = self.scope_of(slot);
        self.budget(&scope).map(|budget| (scope, budget))
    }

    /// The budget of `scope`, if it is one of the rule's.
    pub fn budget(&self, scope: &str) -> Option<Budget<'_>> {
        self.budgets()
            .into_iter()
            .find(|(theirs, _)| theirs == scope)
            .map(|(_, budget)| budget)
    }

    /// Whether any step needs the budget lease.
    pub fn is_disruptive(&self) -> bool {
        self.steps
            .iter()
            .any(|step| step.class == ActionClass::Disruptive)
    }
}

/// A parsed policy, as of the release that carried it.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Checks by name.
    pub checks: BTreeMap<String, CheckSpec>,
    /// Rules by name.
    pub rules: BTreeMap<String, RuleSpec>,
}

impl Policy {
    /// Parses the policy document's content.
    pub fn parse(value: &Value) -> Result<Policy, PolicyError> {
        let root = Fields::of(value, "")?;
        root.only(&["checks", "rules"])?;
        let mut checks = BTreeMap::new();
        if let Some(map) = root.map("checks")? {
            if map.len() > CHECKS_MAX {
                return Err(root.error("checks", format!("at most {CHECKS_MAX} checks")));
            }
            for (name, value) in map {
                let path = format!("checks.{name}");
                checks.insert(name.clone(), parse_check(name, &Fields::of(value, &path)?)?);
            }
        }
        let mut rules = BTreeMap::new();
        if let Some(map) = root.map("rules")? {
            if map.len() > RULES_MAX {
                return Err(root.error("rules", format!("at most {RULES_MAX} rules")));
            }
            for (name, value) in map {
                let path = format!("rules.{name}");
                let rule = parse_rule(name, &Fields::of(value, &path)?)?;
                if !checks.contains_key(&rule.check) {
                    return Err(PolicyError {
                        field: format!("{path}.check"),
                        problem: format!("no check named `{}`", rule.check),
                    });
                }
                rules.insert(name.clone(), rule);
            }
        }
        Ok(Policy { checks, rules })
    }

    /// The checks `meta` selects.
    pub fn checks_for<'a>(&'a self, meta: &'a NodeMeta) -> impl Iterator<Item = &'a CheckSpec> {
        self.checks
            .values()
            .filter(move |check| check.select.matches(meta))
    }

    /// The rules that remediate `check` on a node with `meta`.
    pub fn rules_for<'a>(
        &'a self,
        check: &'a str,
        meta: &'a NodeMeta,
    ) -> impl Iterator<Item = &'a RuleSpec> {
        self.rules
            .values()
            .filter(move |rule| rule.check == check && rule.select.matches(meta))
    }
}

/// `fields.field`: a list of 1 to 64 node keys in hex.
fn parse_voters(
    value: &Value,
    fields: &Fields<'_>,
    field: &str,
) -> Result<BTreeSet<PublicKey>, PolicyError> {
    let refused = || {
        fields.error(
            field,
            format!(
                "a list of 1 to {} node keys in hex",
                lease_limits::VOTERS_MAX
            ),
        )
    };
    let Value::List(list) = value else {
        return Err(refused());
    };
    let mut voters = BTreeSet::new();
    for voter in list {
        let key = match voter {
            Value::Str(hex) => PublicKey::from_hex(hex),
            _ => None,
        };
        voters.insert(key.ok_or_else(refused)?);
    }
    if voters.is_empty() || voters.len() > lease_limits::VOTERS_MAX {
        return Err(refused());
    }
    Ok(voters)
}

fn parse_escrow(rule: &str, fields: &Fields<'_>) -> Result<Escrow, PolicyError> {
    fields.only(&["tag", "slots"])?;
    let tag = fields.required_string("tag")?;
    let Some(map) = fields.map("slots")?.filter(|map| !map.is_empty()) else {
        return Err(fields.error("slots", "at least one slot is required"));
    };
    let mut slots = BTreeMap::new();
    for (value, slot) in map {
        let path = format!("{}.slots.{value}", fields.path);
        // The slot's scope must fit where scopes go.
        let scope_len = "remediate:".len() + rule.len() + 1 + value.len();
        if value.is_empty() || scope_len > lease_limits::SCOPE_MAX.min(ledger_limits::NAME_MAX) {
            return Err(PolicyError {
                field: path,
                problem: "rule name and slot value together take at most 52 bytes".to_owned(),
            });
        }
        let slot = Fields::of(slot, &path)?;
        slot.only(&["voters", "max_concurrent"])?;
        let voters = match slot.get("voters") {
            Some(list) => parse_voters(list, &slot, "voters")?,
            None => return Err(slot.error("voters", "is required")),
        };
        let max_concurrent = slot.int("max_concurrent", 1, 10_000)?.unwrap_or(1) as u32;
        slots.insert(
            value.clone(),
            Slot {
                voters,
                max_concurrent,
            },
        );
    }
    Ok(Escrow { tag, slots })
}

fn parse_name(name: &str, path: &str) -> Result<(), PolicyError> {
    let valid = !name.is_empty()
        && name.len() <= ledger_limits::NAME_MAX - "remediate:".len()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    if valid {
        Ok(())
    } else {
        Err(PolicyError {
            field: path.to_owned(),
            problem: "names are 1 to 54 letters, digits, `-`, `_` or `.`".to_owned(),
        })
    }
}

fn parse_check(name: &str, fields: &Fields<'_>) -> Result<CheckSpec, PolicyError> {
    parse_name(name, &fields.path)?;
    fields.only(&[
        "kind",
        "command",
        "url",
        "status",
        "addr",
        "select",
        "interval_ms",
        "timeout_ms",
        "fall",
        "rise",
        "grace_ms",
    ])?;
    let kind = match fields.string("kind")?.as_deref() {
        Some("exec") => CheckKind::Exec {
            command: fields.command("command")?,
        },
        Some("http") => CheckKind::Http {
            url: fields.required_string("url")?,
            status: fields.int("status", 100, 599)?.unwrap_or(200) as u16,
        },
        Some("tcp") => CheckKind::Tcp {
            addr: fields.required_string("addr")?,
        },
        _ => return Err(fields.error("kind", "must be \"exec\", \"http\" or \"tcp\"")),
    };
    let interval = fields
        .millis("interval_ms", INTERVAL_MIN)?
        .unwrap_or(Duration::from_secs(10));
    let timeout = fields
        .millis("timeout_ms", Duration::from_millis(1))?
        .unwrap_or(interval / 2);
    if timeout >= interval {
        return Err(fields.error("timeout_ms", "must be below interval_ms"));
    }
    Ok(CheckSpec {
        name: name.to_owned(),
        kind,
        select: fields.selector("select")?,
        interval,
        timeout,
        fall: fields.int("fall", 1, 100)?.unwrap_or(3) as u32,
        rise: fields.int("rise", 1, 100)?.unwrap_or(2) as u32,
        grace: fields
            .millis("grace_ms", Duration::ZERO)?
            .unwrap_or(Duration::ZERO),
    })
}

fn parse_rule(name: &str, fields: &Fields<'_>) -> Result<RuleSpec, PolicyError> {
    parse_name(name, &fields.path)?;
    fields.only(&[
        "check",
        "select",
        "unhealthy_for_ms",
        "steps",
        "max_concurrent",
        "max_unhealthy",
        "cooldown_ms",
        "limit_count",
        "limit_window_ms",
        "require_approval",
        "approval_window_s",
        "dry_run",
        "voters",
        "escrow",
        "lease_ttl_ms",
    ])?;
    let require_approval = fields.bool("require_approval")?.unwrap_or(false);
    let approval_window = fields.approval_window()?.unwrap_or(APPROVAL_WINDOW_DEFAULT);
    let Some(Value::List(list)) = fields.get("steps") else {
        return Err(fields.error("steps", "a list of 1 or more steps is required"));
    };
    if list.is_empty() || list.len() > STEPS_MAX {
        return Err(fields.error("steps", format!("1 to {STEPS_MAX} steps")));
    }
    let mut steps = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let step = Fields::of(value, &format!("{}.steps[{index}]", fields.path))?;
        step.only(&[
            "action",
            "command",
            "class",
            "timeout_ms",
            "approval",
            "approval_window_s",
        ])?;
        let action = step.required_string("action")?;
        parse_name(&action, &format!("{}.action", step.path))?;
        let class = match step.string("class")?.as_deref() {
            Some("local") => ActionClass::Local,
            Some("disruptive") => ActionClass::Disruptive,
            _ => return Err(step.error("class", "must be \"local\" or \"disruptive\"")),
        };
        let command = match step.get("command") {
            Some(_) => step.command("command")?,
            None => Vec::new(),
        };
        let approval = step.bool("approval")?.unwrap_or(require_approval);
        let own_window = step.approval_window()?;
        if own_window.is_some() && !approval {
            return Err(step.error(
                "approval_window_s",
                "applies only to a step that waits for an approval: set approval = true or remove it",
            ));
        }
        steps.push(Step {
            action,
            command,
            class,
            timeout: step
                .millis("timeout_ms", Duration::from_millis(1))?
                .unwrap_or(Duration::from_secs(30)),
            approval,
            approval_window: own_window.unwrap_or(approval_window),
        });
    }
    let max_unhealthy = match fields.get("max_unhealthy") {
        None => 0.3,
        Some(Value::Float(share)) if *share > 0.0 && *share <= 1.0 => *share,
        Some(Value::Int(1)) => 1.0,
        Some(_) => return Err(fields.error("max_unhealthy", "a fraction in (0, 1]")),
    };
    let voters = match fields.get("voters") {
        Some(value) => parse_voters(value, fields, "voters")?,
        None => BTreeSet::new(),
    };
    let escrow = match fields.get("escrow") {
        Some(value) => {
            let path = format!("{}.escrow", fields.path);
            Some(parse_escrow(name, &Fields::of(value, &path)?)?)
        }
        None => None,
    };
    let lease_ttl = fields
        .millis("lease_ttl_ms", Duration::from_millis(1))?
        .unwrap_or(Duration::from_secs(30));
    let rule = RuleSpec {
        name: name.to_owned(),
        check: fields.required_string("check")?,
        select: fields.selector("select")?,
        unhealthy_for: fields
            .millis("unhealthy_for_ms", Duration::ZERO)?
            .unwrap_or(Duration::ZERO),
        steps,
        max_concurrent: fields.int("max_concurrent", 1, 10_000)?.unwrap_or(1) as u32,
        max_unhealthy,
        cooldown: fields
            .millis("cooldown_ms", Duration::ZERO)?
            .unwrap_or(Duration::from_secs(60)),
        limit_count: fields.int("limit_count", 1, 1_000)?.unwrap_or(3) as u32,
        limit_window: fields
            .millis("limit_window_ms", Duration::from_millis(1))?
            .unwrap_or(Duration::from_secs(3600)),
        dry_run: fields.bool("dry_run")?.unwrap_or(false),
        voters,
        escrow,
        lease_ttl,
    };
    if rule.is_disruptive() {
        let voters_ok = !rule.voters.is_empty() && rule.voters.len() <= lease_limits::VOTERS_MAX;
        match (&rule.escrow, voters_ok) {
            (None, false) => {
                return Err(fields.error(
                    "voters",
                    format!(
                        "a rule with a disruptive step names 1 to {} voters, or an escrow",
                        lease_limits::VOTERS_MAX
                    ),
                ));
            }
            (Some(_), _) if !rule.voters.is_empty() => {
                return Err(fields.error("voters", "with an escrow, each slot names its voters"));
            }
            _ => {}
        }
        // An action started under a lease must end before the lease can
        // pass to another holder; renewals keep at least two thirds of the
        // ttl ahead of the holder.
        let longest = rule
            .steps
            .iter()
            .filter(|step| step.class == ActionClass::Disruptive)
            .map(|step| step.timeout)
            .max()
            .unwrap_or_default();
        if longest * 2 > rule.lease_ttl {
            return Err(fields.error(
                "lease_ttl_ms",
                "must be at least twice the longest disruptive step's timeout_ms",
            ));
        }
    }
    Ok(rule)
}

/// A policy map being read, with its path for errors.
struct Fields<'a> {
    map: &'a BTreeMap<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: &str) -> Result<Fields<'a>, PolicyError> {
        match value {
            Value::Map(map) => Ok(Fields {
                map,
                path: path.to_owned(),
            }),
            _ => Err(PolicyError {
                field: if path.is_empty() { "(document)" } else { path }.to_owned(),
                problem: "must be a table".to_owned(),
            }),
        }
    }

    fn error(&self, field: &str, problem: impl Into<String>) -> PolicyError {
        let field = if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        };
        PolicyError {
            field,
            problem: problem.into(),
        }
    }

    fn only(&self, known: &[&str]) -> Result<(), PolicyError> {
        match self.map.keys().find(|key| !known.contains(&key.as_str())) {
            Some(unknown) => Err(self.error(
                unknown,
                format!("unknown field (known: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    fn map(&self, field: &str) -> Result<Option<&'a BTreeMap<String, Value>>, PolicyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Map(map)) => Ok(Some(map)),
            Some(_) => Err(self.error(field, "must be a table")),
        }
    }

    fn string(&self, field: &str) -> Result<Option<String>, PolicyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Str(text)) if text.len() <= ARG_BYTES_MAX => Ok(Some(text.clone())),
            Some(_) => Err(self.error(field, format!("a string of at most {ARG_BYTES_MAX} bytes"))),
        }
    }

    fn required_string(&self, field: &str) -> Result<String, PolicyError> {
        self.string(field)?
            .ok_or_else(|| self.error(field, "is required"))
    }

    fn bool(&self, field: &str) -> Result<Option<bool>, PolicyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.error(field, "must be true or false")),
        }
    }

    fn int(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, PolicyError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Int(n)) if (min..=max).contains(n) => Ok(Some(*n)),
            Some(_) => Err(self.error(field, format!("an integer in {min}..={max}"))),
        }
    }

    fn millis(&self, field: &str, min: Duration) -> Result<Option<Duration>, PolicyError> {
        let max = DURATION_MAX.as_millis() as i64;
        let min_ms = min.as_millis() as i64;
        Ok(self
            .int(field, min_ms, max)?
            .map(|ms| Duration::from_millis(ms as u64)))
    }

    /// `approval_window_s`: whole seconds within the approval window's
    /// bounds.
    fn approval_window(&self) -> Result<Option<Duration>, PolicyError> {
        let min = APPROVAL_WINDOW_MIN.as_secs() as i64;
        let max = DURATION_MAX.as_secs() as i64;
        Ok(self
            .int("approval_window_s", min, max)?
            .map(|secs| Duration::from_secs(secs as u64)))
    }

    fn selector(&self, field: &str) -> Result<Selector, PolicyError> {
        let text = self.required_string(field)?;
        Selector::parse(&text).map_err(|problem| self.error(field, problem))
    }

    fn command(&self, field: &str) -> Result<Vec<String>, PolicyError> {
        let problem = format!("a list of 1 to {ARGS_MAX} strings: program, then arguments");
        let Some(Value::List(list)) = self.get(field) else {
            return Err(self.error(field, problem));
        };
        if list.is_empty() || list.len() > ARGS_MAX {
            return Err(self.error(field, problem));
        }
        list.iter()
            .map(|arg| match arg {
                Value::Str(text) if text.len() <= ARG_BYTES_MAX => Ok(text.clone()),
                _ => Err(self.error(field, problem.clone())),
            })
            .collect()
    }
}
