//! Remediation in scenario files: the `[services]` model of check and
//! action durations, the remediation expectations' types, what the
//! `policy` faults declare (which the `service`, `approve` and
//! `crash-holder` faults may name), and the voter selectors an operator's
//! tool resolves to keys.

use crate::scenario::context::{Context, ScenarioError};
use crate::scenario::fleet::parse_selector;
use fleetmesh_node::Policy;
use fleetmesh_node::crdt::{PublicKey, Value};
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
pub(crate) struct ServicesFile {
    check_latency_ms: Option<f64>,
    action_ms: Option<f64>,
    #[serde(default)]
    actions: BTreeMap<String, f64>,
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
pub(crate) fn model(
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

/// What the scenario's policies declare, for the faults that name it.
#[derive(Default)]
pub struct Declared {
    checks: BTreeSet<String>,
    rules: BTreeSet<String>,
    actions: BTreeSet<String>,
    /// Budget lease scopes (`remediate:<rule>` of disruptive rules).
    pub scopes: BTreeSet<String>,
}

impl Declared {
    /// Adds what `policy` declares.
    pub fn add(&mut self, policy: &Policy) {
        self.checks.extend(policy.checks.keys().cloned());
        for rule in policy.rules.values() {
            self.rules.insert(rule.name.clone());
            self.actions
                .extend(rule.steps.iter().map(|step| step.action.clone()));
            self.scopes
                .extend(rule.budgets().into_iter().map(|(scope, _)| scope));
        }
    }

    /// Whether a policy declares check `name`; if not, what to say.
    pub fn check(&self, name: &str) -> Result<(), String> {
        named(&self.checks, name)
    }

    /// Whether a policy declares rule `name`; if not, what to say.
    pub fn rule(&self, name: &str) -> Result<(), String> {
        named(&self.rules, name)
    }

    /// Whether a policy's rule runs action `name`; if not, what to say.
    pub fn action(&self, name: &str) -> Result<(), String> {
        named(&self.actions, name)
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

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;
    use crate::scenario::fault::Fault;
    use crate::scenario::fault::service::ServiceMode;

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
