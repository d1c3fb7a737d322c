//! Remediation in scenario files: the `policy` fault (the released
//! remediation document, with voter selectors an operator's tool resolves
//! to keys), the `service` fault (a modelled service fails, flaps, heals),
//! the `approve` fault (an operator approves pending remediations), the
//! `[services]` model of check and action durations, and the remediation
//! expectations.

use super::{
    Content, Context, Fault, Fleet, Nodes, NodesFile, Publication, ScenarioError, nodes,
    operator_key, parse_selector, seconds,
};
use fleetmesh_node::POLICY_DOC;
use fleetmesh_node::Policy;
use fleetmesh_node::crdt::{PublicKey, Value, lease_limits};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// How long modelled checks and actions take.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceModel {
    /// From a check's start to its result.
    pub check_latency: Duration,
    /// How long an action runs unless `actions` names it.
    pub action: Duration,
    /// Durations of particular actions, by name.
    pub actions: BTreeMap<String, Duration>,
}

impl Default for ServiceModel {
    fn default() -> ServiceModel {
        ServiceModel {
            check_latency: Duration::from_millis(2),
            action: Duration::from_millis(500),
            actions: BTreeMap::new(),
        }
    }
}

impl ServiceModel {
    /// How long action `name` runs.
    pub fn duration_of(&self, name: &str) -> Duration {
        self.actions.get(name).copied().unwrap_or(self.action)
    }
}

/// How a `service` fault breaks its service.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceMode {
    /// Unhealthy from `at` until an action of `fixed_by` or `heal` fixes it.
    Crash,
    /// Unhealthy at `at`, healthy `period` later, unhealthy again after
    /// another `period`, and so on until `until`, when it stays healthy. An
    /// action of `fixed_by` makes it healthy until its next unhealthy turn.
    Flap {
        /// Length of each half.
        period: Duration,
        /// When the flapping stops.
        until: Duration,
    },
}

/// A `service` fault: the modelled service of `check` fails on `nodes`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceFault {
    /// When it fails.
    pub at: Duration,
    /// On which agents' hosts.
    pub nodes: Nodes,
    /// The check (of a published policy) whose service fails.
    pub check: String,
    /// Crash or flap.
    pub mode: ServiceMode,
    /// Actions that fix it when they complete; none fixes it if empty.
    pub fixed_by: Vec<String>,
    /// It recovers by itself then, if still failing.
    pub heal: Option<Duration>,
    /// Liveness: each failure is healthy again within this long.
    pub expect_fixed_within: Option<Duration>,
}

/// An `approve` fault: an operator holding `approve` signs an approval for
/// every pending remediation of `rule` on `nodes` an agent's ledger shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ApproveFault {
    /// When the approvals arrive.
    pub at: Duration,
    /// The rule.
    pub rule: String,
    /// The targets whose remediations are approved.
    pub nodes: Nodes,
    /// How long each approval lasts from its signature.
    pub ttl: Duration,
    /// Signed this long before it arrives (so it may arrive expired).
    pub late_by: Duration,
    /// The agents the operator may read the ledger of and hand the
    /// approvals to (one running agent is picked).
    pub via: Nodes,
}

/// "Agents in this set ran no disruptive action during [from, until]".
#[derive(Clone, Debug, PartialEq)]
pub struct LocalOnly {
    /// The agents, resolved against the fleet.
    pub agents: Vec<u32>,
    /// Window start.
    pub from: Duration,
    /// Window end.
    pub until: Duration,
}

/// Expectations about remediation, checked on the run's outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemedyExpect {
    /// Least number of actions started (local and disruptive).
    pub actions_min: Option<u64>,
    /// Most actions started.
    pub actions_max: Option<u64>,
    /// Least number of disruptive actions started.
    pub disruptive_min: Option<u64>,
    /// Most disruptive actions started.
    pub disruptive_max: Option<u64>,
    /// Least number of systemic-failure skips recorded by agents.
    pub skipped_systemic_min: Option<u64>,
    /// Least number of `needs-human` records (limit reached, or ladder
    /// exhausted).
    pub needs_human_min: Option<u64>,
    /// Least number of skips because an approval had expired.
    pub approval_expired_min: Option<u64>,
    /// Windows in which some agents ran no disruptive action.
    pub local_only: Vec<LocalOnly>,
}

// --- the file format -----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServicesFile {
    check_latency_ms: Option<f64>,
    action_ms: Option<f64>,
    #[serde(default)]
    actions: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    at_s: f64,
    #[serde(default = "super::default_author")]
    author: String,
    content: toml::Table,
    expires_after_s: Option<f64>,
    #[serde(default)]
    via: NodesFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceFile {
    at_s: f64,
    nodes: NodesFile,
    check: String,
    #[serde(default = "default_mode")]
    mode: String,
    period_s: Option<f64>,
    until_s: Option<f64>,
    #[serde(default)]
    fixed_by: Vec<String>,
    heal_s: Option<f64>,
    expect_fixed_within_s: Option<f64>,
}

fn default_mode() -> String {
    "crash".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveFile {
    at_s: f64,
    rule: String,
    nodes: NodesFile,
    ttl_s: f64,
    #[serde(default)]
    late_by_s: f64,
    #[serde(default)]
    via: NodesFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LocalOnlyFile {
    nodes: NodesFile,
    from_s: f64,
    until_s: f64,
}

// --- loading -----------------------------------------------------------------

/// Longest modelled check latency or action, in milliseconds (one hour).
const MODEL_MS_MAX: f64 = 3_600_000.0;

fn model_millis(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    value: f64,
) -> Result<Duration, ScenarioError> {
    if !(value.is_finite() && (0.0..=MODEL_MS_MAX).contains(&value)) {
        return Err(context.invalid(span, field, "must be 0 to 3600000 ms"));
    }
    Ok(Duration::from_secs_f64(value / 1000.0))
}

/// Validates `[services]`.
pub(super) fn model(
    context: &Context<'_>,
    file: &Spanned<ServicesFile>,
) -> Result<ServiceModel, ScenarioError> {
    let span = file.span();
    let services = file.get_ref();
    let mut model = ServiceModel::default();
    if let Some(ms) = services.check_latency_ms {
        model.check_latency = model_millis(context, span.clone(), "services.check_latency_ms", ms)?;
    }
    if let Some(ms) = services.action_ms {
        model.action = model_millis(context, span.clone(), "services.action_ms", ms)?;
    }
    for (name, &ms) in &services.actions {
        let duration = model_millis(
            context,
            span.clone(),
            &format!("services.actions.{name}"),
            ms,
        )?;
        model.actions.insert(name.clone(), duration);
    }
    Ok(model)
}

/// Replaces every rule's `voters` selector string (`"role=db"`) by the
/// list of hex keys `keys` gives for it, as an operator's tool does before
/// signing; a list is kept as it is. Returns the rule and the problem for a
/// selector that does not parse.
pub fn resolve_voters(
    value: &Value,
    mut keys: impl FnMut(&BTreeMap<String, String>) -> Vec<PublicKey>,
) -> Result<Value, (String, String)> {
    let mut value = value.clone();
    let Value::Map(root) = &mut value else {
        return Ok(value);
    };
    let Some(Value::Map(rules)) = root.get_mut("rules") else {
        return Ok(value);
    };
    for (name, rule) in rules.iter_mut() {
        let Value::Map(rule) = rule else {
            continue;
        };
        let Some(Value::Str(text)) = rule.get("voters") else {
            continue;
        };
        let selector = parse_selector(text).map_err(|problem| (name.clone(), problem))?;
        let voters = keys(&selector)
            .iter()
            .map(|key| Value::Str(key.to_hex()))
            .collect();
        rule.insert("voters".into(), Value::List(voters));
    }
    Ok(value)
}

/// The agents whose tags carry every tag of `select`.
fn selected(tags: &[BTreeMap<String, String>], select: &BTreeMap<String, String>) -> Vec<u32> {
    (0..tags.len() as u32)
        .filter(|&agent| {
            select
                .iter()
                .all(|(key, value)| tags[agent as usize].get(key) == Some(value))
        })
        .collect()
}

/// Validates a `policy` fault: its content must be a policy the agents
/// accept once its voter selectors are resolved.
pub(super) fn policy(
    context: &Context<'_>,
    index: usize,
    span: Range<usize>,
    file: &PolicyFile,
    fleet: &Fleet,
) -> Result<(Fault, Policy), ScenarioError> {
    let field = |name: &str| format!("faults[{index}].{name}");
    let author = operator_key(context, span.clone(), &field("author"), &file.author)?;
    let value: Value = toml::Value::Table(file.content.clone())
        .try_into()
        .map_err(|error: toml::de::Error| {
            context.invalid(span.clone(), field("content"), error.to_string())
        })?;
    // Placeholder keys, one per agent: the real ones depend on the seed.
    let mut counts = Vec::new();
    let placeholder = resolve_voters(&value, |select| {
        let agents = selected(&fleet.tags, select);
        counts.push(agents.len());
        agents
            .into_iter()
            .map(|agent| {
                let mut key = [0u8; 32];
                key[..4].copy_from_slice(&agent.to_le_bytes());
                PublicKey(key)
            })
            .collect()
    })
    .map_err(|(rule, problem)| {
        context.invalid(
            span.clone(),
            field(&format!("content.rules.{rule}.voters")),
            problem,
        )
    })?;
    if let Some(&count) = counts
        .iter()
        .find(|&&count| count == 0 || count > lease_limits::VOTERS_MAX)
    {
        return Err(context.invalid(
            span,
            field("content.rules"),
            format!(
                "a voters selector selects {count} agents; a rule has 1 to {} voters",
                lease_limits::VOTERS_MAX
            ),
        ));
    }
    let policy = Policy::parse(&placeholder).map_err(|error| {
        context.invalid(
            span.clone(),
            field(&format!("content.{}", error.field)),
            error.problem,
        )
    })?;
    let expires_after = file
        .expires_after_s
        .map(|value| seconds(context, span.clone(), &field("expires_after_s"), value))
        .transpose()?;
    let fault = Fault::Policy {
        at: seconds(context, span.clone(), &field("at_s"), file.at_s)?,
        publication: Publication {
            doc: POLICY_DOC.to_owned(),
            author,
            content: Content::Inline(value),
            release: true,
            expires_after,
            via: nodes(context, span, &field("via"), &file.via, fleet)?,
        },
    };
    Ok((fault, policy))
}

/// What the scenario's policies declare, for the faults that name it.
#[derive(Default)]
pub(super) struct Declared {
    checks: BTreeSet<String>,
    rules: BTreeSet<String>,
    actions: BTreeSet<String>,
    /// Budget lease scopes (`remediate:<rule>` of disruptive rules).
    pub(super) scopes: BTreeSet<String>,
}

impl Declared {
    /// Adds what `policy` declares.
    pub(super) fn add(&mut self, policy: &Policy) {
        self.checks.extend(policy.checks.keys().cloned());
        for rule in policy.rules.values() {
            self.rules.insert(rule.name.clone());
            self.actions
                .extend(rule.steps.iter().map(|step| step.action.clone()));
            self.scopes
                .extend(rule.budgets().into_iter().map(|(scope, _)| scope));
        }
    }
}

fn named(set: &BTreeSet<String>, name: &str) -> Result<(), String> {
    if set.contains(name) {
        return Ok(());
    }
    let known: Vec<&str> = set.iter().map(String::as_str).collect();
    Err(format!(
        "{name:?} is not declared by any policy fault (declared: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

/// Validates a `service` fault against the policies declared.
pub(super) fn service(
    context: &Context<'_>,
    index: usize,
    span: Range<usize>,
    file: &ServiceFile,
    fleet: &Fleet,
    declared: &Declared,
) -> Result<Fault, ScenarioError> {
    let field = |name: &str| format!("faults[{index}].{name}");
    let time = |name: &str, value: f64| seconds(context, span.clone(), &field(name), value);
    let at = time("at_s", file.at_s)?;
    named(&declared.checks, &file.check)
        .map_err(|message| context.invalid(span.clone(), field("check"), message))?;
    for action in &file.fixed_by {
        named(&declared.actions, action)
            .map_err(|message| context.invalid(span.clone(), field("fixed_by"), message))?;
    }
    let mode = match (file.mode.as_str(), file.period_s, file.until_s) {
        ("crash", None, None) => ServiceMode::Crash,
        ("crash", _, _) => {
            return Err(context.invalid(
                span,
                field("period_s"),
                "period_s and until_s are for mode = \"flap\"",
            ));
        }
        ("flap", Some(period_s), Some(until_s)) => {
            let period = time("period_s", period_s)?;
            let until = time("until_s", until_s)?;
            if period.is_zero() {
                return Err(context.invalid(span, field("period_s"), "must be positive"));
            }
            if until <= at {
                return Err(context.invalid(span, field("until_s"), "must be after at_s"));
            }
            ServiceMode::Flap { period, until }
        }
        ("flap", _, _) => {
            return Err(context.invalid(
                span,
                field("period_s"),
                "mode = \"flap\" needs period_s and until_s",
            ));
        }
        (other, _, _) => {
            return Err(context.invalid(
                span,
                field("mode"),
                format!("unknown mode {other:?}; use \"crash\" or \"flap\""),
            ));
        }
    };
    let heal = file.heal_s.map(|value| time("heal_s", value)).transpose()?;
    if heal.is_some_and(|heal| heal <= at) {
        return Err(context.invalid(span, field("heal_s"), "must be after at_s"));
    }
    let expect_fixed_within = file
        .expect_fixed_within_s
        .map(|value| time("expect_fixed_within_s", value))
        .transpose()?;
    if expect_fixed_within.is_some_and(|bound| bound.is_zero()) {
        return Err(context.invalid(span, field("expect_fixed_within_s"), "must be positive"));
    }
    Ok(Fault::Service(Box::new(ServiceFault {
        at,
        nodes: nodes(context, span, &field("nodes"), &file.nodes, fleet)?,
        check: file.check.clone(),
        mode,
        fixed_by: file.fixed_by.clone(),
        heal,
        expect_fixed_within,
    })))
}

/// Validates an `approve` fault against the policies declared.
pub(super) fn approve(
    context: &Context<'_>,
    index: usize,
    span: Range<usize>,
    file: &ApproveFile,
    fleet: &Fleet,
    declared: &Declared,
) -> Result<Fault, ScenarioError> {
    let field = |name: &str| format!("faults[{index}].{name}");
    let time = |name: &str, value: f64| seconds(context, span.clone(), &field(name), value);
    named(&declared.rules, &file.rule)
        .map_err(|message| context.invalid(span.clone(), field("rule"), message))?;
    let ttl = time("ttl_s", file.ttl_s)?;
    if ttl.is_zero() {
        return Err(context.invalid(span, field("ttl_s"), "must be positive"));
    }
    Ok(Fault::Approve(Box::new(ApproveFault {
        at: time("at_s", file.at_s)?,
        rule: file.rule.clone(),
        nodes: nodes(context, span.clone(), &field("nodes"), &file.nodes, fleet)?,
        ttl,
        late_by: time("late_by_s", file.late_by_s)?,
        via: nodes(context, span, &field("via"), &file.via, fleet)?,
    })))
}

/// Validates the remediation fields of `[expect]`.
pub(super) fn expect(
    context: &Context<'_>,
    span: Range<usize>,
    file: &super::ExpectFile,
    fleet: &Fleet,
) -> Result<RemedyExpect, ScenarioError> {
    for (name, min, max) in [
        ("actions", file.actions_min, file.actions_max),
        ("disruptive", file.disruptive_min, file.disruptive_max),
    ] {
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(context.invalid(
                span,
                format!("expect.{name}_min"),
                format!("{min} is above {name}_max ({max})"),
            ));
        }
    }
    let mut local_only = Vec::new();
    for (index, window) in file.local_only.iter().enumerate() {
        let field = |name: &str| format!("expect.local_only[{index}].{name}");
        let chosen = &window.nodes;
        if chosen.count.is_some() || chosen.fraction.is_some() || chosen.exclude_seeds {
            return Err(context.invalid(
                span,
                field("nodes"),
                "names agents by select or ids only (random picks would change per run)",
            ));
        }
        let chosen = nodes(context, span.clone(), &field("nodes"), chosen, fleet)?;
        let agents = match &chosen.ids {
            Some(ids) => ids.clone(),
            None => selected(&fleet.tags, &chosen.select),
        };
        let from = seconds(context, span.clone(), &field("from_s"), window.from_s)?;
        let until = seconds(context, span.clone(), &field("until_s"), window.until_s)?;
        if until <= from {
            return Err(context.invalid(span, field("until_s"), "must be after from_s"));
        }
        local_only.push(LocalOnly {
            agents,
            from,
            until,
        });
    }
    Ok(RemedyExpect {
        actions_min: file.actions_min,
        actions_max: file.actions_max,
        disruptive_min: file.disruptive_min,
        disruptive_max: file.disruptive_max,
        skipped_systemic_min: file.skipped_systemic_min,
        needs_human_min: file.needs_human_min,
        approval_expired_min: file.approval_expired_min,
        local_only,
    })
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Fault, Scenario, ServiceMode};

    const FLEET: &str = "name = \"t\"\nduration_s = 100\n[fleet]\nagents = 6\n[[fleet.groups]]\ncount = 3\ntags = { role = \"db\" }\n[[fleet.groups]]\ncount = 3\ntags = { role = \"web\" }\n";

    const POLICY: &str = "[[faults]]\nkind = \"policy\"\nat_s = 1\n[faults.content.checks.web]\nkind = \"tcp\"\naddr = \"127.0.0.1:80\"\nselect = \"role=web\"\ninterval_ms = 1000\n[faults.content.rules.fix]\ncheck = \"web\"\nselect = \"role=web\"\nvoters = \"role=db\"\nlease_ttl_ms = 20000\nsteps = [{ action = \"reboot\", class = \"disruptive\", timeout_ms = 5000 }]\n";

    fn parse(extra: &str) -> Result<Scenario, String> {
        Scenario::parse("t.toml", &format!("{FLEET}{POLICY}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn policy_service_approve_and_expectations_load() {
        let scenario = parse(
            "[[faults]]\nkind = \"service\"\nat_s = 5\nnodes = { ids = [4] }\ncheck = \"web\"\nmode = \"flap\"\nperiod_s = 10\nuntil_s = 50\nfixed_by = [\"reboot\"]\nexpect_fixed_within_s = 30\n[[faults]]\nkind = \"approve\"\nat_s = 20\nrule = \"fix\"\nnodes = { select = \"role=web\" }\nttl_s = 30\nlate_by_s = 40\n[[faults]]\nkind = \"crash-holder\"\nat_s = 30\nscope = \"remediate:fix\"\n[services]\nactions = { reboot = 3000 }\n[expect]\ndisruptive_max = 2\nlocal_only = [{ nodes = { select = \"role=web\" }, from_s = 10, until_s = 20 }]\n",
        )
        .unwrap();
        let Fault::Service(service) = &scenario.faults[1] else {
            panic!("a service fault");
        };
        assert!(matches!(service.mode, ServiceMode::Flap { .. }));
        assert!(matches!(scenario.faults[2], Fault::Approve(_)));
        assert_eq!(scenario.services.duration_of("reboot").as_millis(), 3000);
        assert_eq!(scenario.services.duration_of("restart").as_millis(), 500);
        assert_eq!(scenario.expect.remedy.local_only[0].agents, vec![3, 4, 5]);
    }

    #[test]
    fn remediation_errors_name_file_line_and_field() {
        let cases = [
            // The agents' own parser refuses it: too short a ttl.
            (
                POLICY.replace("lease_ttl_ms = 20000", "lease_ttl_ms = 6000"),
                String::new(),
                "faults[0].content.rules.fix.lease_ttl_ms",
            ),
            (
                POLICY.replace("voters = \"role=db\"", "voters = \"role=none\""),
                String::new(),
                "faults[0].content.rules",
            ),
            (
                POLICY.replace("interval_ms = 1000", "intervall_ms = 1000"),
                String::new(),
                "intervall_ms",
            ),
            (
                POLICY.to_owned(),
                "[[faults]]\nkind = \"service\"\nat_s = 5\nnodes = {}\ncheck = \"db\"\n".into(),
                "faults[1].check",
            ),
            (
                POLICY.to_owned(),
                "[[faults]]\nkind = \"service\"\nat_s = 5\nnodes = {}\ncheck = \"web\"\nfixed_by = [\"restart\"]\n".into(),
                "faults[1].fixed_by",
            ),
            (
                POLICY.to_owned(),
                "[[faults]]\nkind = \"service\"\nat_s = 5\nnodes = {}\ncheck = \"web\"\nmode = \"flap\"\n".into(),
                "faults[1].period_s",
            ),
            (
                POLICY.to_owned(),
                "[[faults]]\nkind = \"approve\"\nat_s = 5\nrule = \"nope\"\nnodes = {}\nttl_s = 1\n".into(),
                "faults[1].rule",
            ),
            (
                POLICY.to_owned(),
                "[[faults]]\nkind = \"service\"\nat_s = 5\nnodes = {}\ncheck = \"web\"\nspeed = 1\n".into(),
                "speed",
            ),
            (
                POLICY.to_owned(),
                "[expect]\nlocal_only = [{ nodes = { count = 1 }, from_s = 1, until_s = 2 }]\n"
                    .into(),
                "expect.local_only[0].nodes",
            ),
        ];
        for (policy, extra, field) in cases {
            let text = format!("{FLEET}{policy}{extra}");
            let error = Scenario::parse("t.toml", &text).unwrap_err().to_string();
            assert!(error.starts_with("t.toml:"), "{error}");
            assert!(error.contains(field), "{field}: {error}");
        }
    }
}
