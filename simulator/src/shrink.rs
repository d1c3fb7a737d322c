//! Shrinking a failing run to a small schedule that still fails.
//!
//! A failure found by a swarm seed comes with dozens of faults, a fleet of
//! fifty and minutes of simulated time; most of it has nothing to do with
//! the failure. The shrinker removes what it can while the run still breaks
//! the same invariant: first the time after the violation, then faults
//! (delta debugging, Zeller's ddmin), then agents, and again until nothing
//! more goes. Every candidate is a scenario *file*: the shrinker edits the
//! TOML document and lets the scenario parser validate it, so what it ends
//! with is a file that `fleetmesh sim run FILE` replays, with the seed
//! written into it. A swarm seed's mix is written into the document first
//! (the faults it kept, as it varied them, and the scaled link), so the
//! shrunk file needs no `--swarm` to replay.
//!
//! Runs stop at the first violation, which keeps each candidate cheap: a
//! shrink of a 50-agent, 300 s swarm failure is some tens of runs.

use crate::checkers::Violation;
use crate::scenario::fault::write;
use crate::scenario::{Scenario, ScenarioError};
use crate::{RunOptions, swarm};
use toml::{Table, Value};

/// Why a run could not be shrunk.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    /// The scenario file does not load.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The seed breaks no invariant.
    #[error(
        "seed {seed} breaks no invariant, so there is nothing to shrink (a run that only misses an [expect] bound is not shrunk); use a seed `sim swarm` or `sim run --seeds` reported as failing"
    )]
    NoFailure {
        /// The seed.
        seed: u64,
    },
    /// The edited document could not be written as TOML.
    #[error("cannot write the shrunk scenario as TOML: {0}")]
    Render(String),
    /// The run, written as a scenario file, does not fail the same way.
    #[error(
        "seed {seed} breaks `{invariant}`, but the run written as a scenario file does not; this is a bug in the shrinker, please report it with the seed"
    )]
    NotReplayed {
        /// The seed.
        seed: u64,
        /// The invariant the run breaks.
        invariant: &'static str,
    },
    /// The seed's swarm mix drew values a scenario file cannot hold.
    #[error("seed {seed}'s swarm mix cannot be written as a scenario file: {error}")]
    MixUnwritable {
        /// The seed.
        seed: u64,
        /// What the scenario parser refused.
        error: ScenarioError,
    },
    /// The seed does not fit a scenario file's `seed` field.
    #[error("seed {0} is above {max}, the largest seed a scenario file can hold; shrink a smaller seed", max = i64::MAX)]
    SeedTooLarge(u64),
    /// The time limit ended the shrink before its first run.
    #[error("the time limit ended the shrink before it could run anything; give it more time")]
    NoTime,
}

/// The size of a schedule: what shrinking reduces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size {
    /// Faults in the timeline.
    pub faults: usize,
    /// Agents in the fleet.
    pub agents: u32,
    /// Simulated duration, in seconds.
    pub duration_s: f64,
}

/// The outcome of a shrink.
#[derive(Debug)]
pub struct Shrunk {
    /// The violation of the run as given.
    pub original: Violation,
    /// The same invariant's violation in the shrunk run.
    pub violation: Violation,
    /// The shrunk scenario file, comment header included.
    pub text: String,
    /// The run as given (for a swarm seed: its mix written down).
    pub before: Size,
    /// The shrunk run.
    pub after: Size,
    /// Candidate runs made.
    pub runs: usize,
    /// False when `keep_going` stopped the shrink before it had tried
    /// everything; the file is then the smallest found so far.
    pub complete: bool,
}

/// Shrinks seed `seed` of the scenario file `text` (named `label` in
/// errors and in the header), played as swarm seed `swarm` would, while
/// the same invariant still fails. `keep_going` is asked before each run;
/// returning false ends the shrink with what it has (the caller owns the
/// wall clock).
pub fn shrink(
    label: &str,
    text: &str,
    seed: u64,
    swarm: bool,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<Shrunk, ShrinkError> {
    let scenario = Scenario::parse(label, text)?;
    let seed_field = i64::try_from(seed).map_err(|_| ShrinkError::SeedTooLarge(seed))?;
    let mut doc: Table = text
        .parse()
        .map_err(|error: toml::de::Error| ScenarioError::Syntax {
            path: label.into(),
            line: 1,
            message: error.message().to_string(),
        })?;
    let played = if swarm {
        mix_document(&mut doc, &scenario, seed)
    } else {
        scenario
    };
    doc.remove("swarm");
    doc.insert("seed".into(), Value::Integer(seed_field));
    if swarm && let Err(error) = Scenario::parse(label, &render(&doc)?) {
        return Err(ShrinkError::MixUnwritable { seed, error });
    }
    let original = first_violation(&played, seed).ok_or(ShrinkError::NoFailure { seed })?;
    let mut shrinker = Shrinker {
        label,
        seed,
        invariant: original.invariant,
        runs: 0,
        keep_going,
        stopped: false,
    };
    let replayed = shrinker.fails(&doc);
    if shrinker.stopped {
        return Err(ShrinkError::NoTime);
    }
    let mut violation = replayed.ok_or(ShrinkError::NotReplayed {
        seed,
        invariant: original.invariant,
    })?;
    let before = size(&doc);
    loop {
        let start = size(&doc);
        shrinker.shorten(&mut doc, &mut violation);
        shrinker.drop_faults(&mut doc, &mut violation);
        shrinker.fewer_agents(&mut doc, &mut violation);
        if shrinker.stopped || size(&doc) == start {
            break;
        }
    }
    let after = size(&doc);
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("scenario")
        .to_owned();
    doc.insert("name".into(), Value::String(format!("{name}-shrunk")));
    doc.insert(
        "description".into(),
        Value::String(format!(
            "seed {seed} of {label}{}, shrunk: {}",
            if swarm { " (swarm mix)" } else { "" },
            violation.invariant
        )),
    );
    let header = format!(
        "# Shrunk by `fleetmesh sim shrink {label} --seed {seed}{}` in {} runs{}:\n\
         # from {} faults, {} agents, {} s to {} faults, {} agents, {} s.\n\
         # It still breaks `{}`:\n#   {}\n\
         # Replay it with `fleetmesh sim run FILE` (the seed is in the file).\n\n",
        if swarm { " --swarm" } else { "" },
        shrinker.runs,
        if shrinker.stopped {
            " (stopped early: the smallest found so far)"
        } else {
            ""
        },
        before.faults,
        before.agents,
        before.duration_s,
        after.faults,
        after.agents,
        after.duration_s,
        violation.invariant,
        violation.to_string().replace('\n', " "),
    );
    let body = render(&doc)?;
    Ok(Shrunk {
        original,
        violation,
        text: header + &body,
        before,
        after,
        runs: shrinker.runs,
        complete: !shrinker.stopped,
    })
}

/// The scenario file `text` (which parses as `scenario`) with swarm seed
/// `seed`'s mix written into it: a file that plays, without `--swarm`, the
/// run the swarm made for that seed.
pub fn write_swarm_mix(text: &str, scenario: &Scenario, seed: u64) -> Result<String, ShrinkError> {
    let mut doc: Table = text
        .parse()
        .map_err(|error: toml::de::Error| ScenarioError::Syntax {
            path: scenario.name.clone(),
            line: 1,
            message: error.message().to_string(),
        })?;
    mix_document(&mut doc, scenario, seed);
    render(&doc)
}

fn render(doc: &Table) -> Result<String, ShrinkError> {
    toml::to_string(doc).map_err(|error| ShrinkError::Render(error.to_string()))
}

/// Writes seed `seed`'s swarm mix of `scenario` into its document `doc`;
/// returns the mixed scenario.
fn mix_document(doc: &mut Table, scenario: &Scenario, seed: u64) -> Scenario {
    let (mixed, _, sources) = swarm::mix_traced(scenario, seed);
    write_mix(doc, &mixed, &sources);
    mixed
}

fn first_violation(scenario: &Scenario, seed: u64) -> Option<Violation> {
    let options = RunOptions {
        stop_on_violation: true,
        ..RunOptions::seeded(seed)
    };
    crate::run(scenario, options).violations.into_iter().next()
}

struct Shrinker<'a> {
    label: &'a str,
    seed: u64,
    invariant: &'static str,
    runs: usize,
    keep_going: &'a mut dyn FnMut() -> bool,
    stopped: bool,
}

impl Shrinker<'_> {
    /// The violation of the target invariant in the run of `doc`, or
    /// `None` when the run holds it, another invariant breaks first, or
    /// `doc` is not a valid scenario.
    fn fails(&mut self, doc: &Table) -> Option<Violation> {
        if self.stopped || !(self.keep_going)() {
            self.stopped = true;
            return None;
        }
        let text = toml::to_string(doc).ok()?;
        let scenario = Scenario::parse(self.label, &text).ok()?;
        self.runs += 1;
        first_violation(&scenario, self.seed).filter(|found| found.invariant == self.invariant)
    }

    /// Ends the run a second after the violation, dropping faults that
    /// would start later.
    fn shorten(&mut self, doc: &mut Table, violation: &mut Violation) {
        let end = (violation.at as f64 / 1e9).ceil() + 1.0;
        if end >= duration_s(doc) {
            return;
        }
        let mut candidate = doc.clone();
        candidate.insert("duration_s".into(), Value::Float(end));
        let faults: Vec<Value> = faults(doc)
            .into_iter()
            .filter(|fault| start_s(fault) <= end)
            .collect();
        set_faults(&mut candidate, faults);
        if let Some(found) = self.fails(&candidate) {
            *doc = candidate;
            *violation = found;
        }
    }

    /// Removes every fault the failure does not need.
    fn drop_faults(&mut self, doc: &mut Table, violation: &mut Violation) {
        let all = faults(doc);
        let mut last = None;
        let kept = ddmin(all.len(), |subset| {
            let mut candidate = doc.clone();
            set_faults(
                &mut candidate,
                subset.iter().map(|&i| all[i].clone()).collect(),
            );
            let found = self.fails(&candidate);
            let failed = found.is_some();
            if let Some(found) = found {
                last = Some(found);
            }
            failed
        });
        if kept.len() < all.len() {
            set_faults(doc, kept.iter().map(|&i| all[i].clone()).collect());
            // `last` is the violation of the last failing subset tried,
            // which ddmin returns.
            if let Some(found) = last {
                *violation = found;
            }
        }
    }

    /// The fewest agents (by bisection) with which the run still fails.
    /// Fleets the file's groups, seeds or node ids do not fit are rejected
    /// by the parser and count as passing.
    fn fewer_agents(&mut self, doc: &mut Table, violation: &mut Violation) {
        let Some(current) = agents(doc) else {
            return;
        };
        let (mut low, mut high) = (1, current);
        while low < high {
            let middle = low + (high - low) / 2;
            let mut candidate = doc.clone();
            let resized = resize_fleet(&mut candidate, middle);
            match resized.then(|| self.fails(&candidate)).flatten() {
                Some(found) => {
                    high = middle;
                    *doc = candidate;
                    *violation = found;
                }
                None => low = middle + 1,
            }
            if self.stopped {
                return;
            }
        }
    }
}

/// Sets the fleet of `doc` to `agents`, scaling the `[[fleet.groups]]`
/// counts in proportion (every group keeps at least one agent, so its
/// selectors still match). False when the groups cannot fit.
fn resize_fleet(doc: &mut Table, agents: u32) -> bool {
    let Some(Value::Table(fleet)) = doc.get_mut("fleet") else {
        return false;
    };
    fleet.insert("agents".into(), Value::Integer(i64::from(agents)));
    let Some(Value::Array(groups)) = fleet.get_mut("groups") else {
        return true;
    };
    let counts: Vec<i64> = groups
        .iter()
        .map(|group| group.get("count").and_then(Value::as_integer).unwrap_or(0))
        .collect();
    let total: i64 = counts.iter().sum();
    if total <= 0 || counts.len() as i64 > i64::from(agents) {
        return false;
    }
    let mut scaled: Vec<i64> = counts
        .iter()
        .map(|count| (count * i64::from(agents) / total).max(1))
        .collect();
    let short = i64::from(agents) - scaled.iter().sum::<i64>();
    let Some(largest) = (0..scaled.len()).max_by_key(|&index| (scaled[index], usize::MAX - index))
    else {
        return false;
    };
    scaled[largest] += short;
    if scaled[largest] < 1 {
        return false;
    }
    for (group, count) in groups.iter_mut().zip(scaled) {
        if let Value::Table(group) = group {
            group.insert("count".into(), Value::Integer(count));
        }
    }
    true
}

/// The smallest subset of `0..n` (in order) for which `fails` holds, as
/// delta debugging finds it: try each of `granularity` chunks alone, then
/// each complement, and refine the chunks when neither fails. `fails` is
/// known to hold for the whole set. The result is 1-minimal (no single
/// element can go) when the search runs to its end.
pub fn ddmin(n: usize, mut fails: impl FnMut(&[usize]) -> bool) -> Vec<usize> {
    let mut items: Vec<usize> = (0..n).collect();
    if fails(&[]) {
        return Vec::new();
    }
    let mut granularity = 2;
    while items.len() >= 2 {
        let chunks: Vec<Vec<usize>> = split(&items, granularity);
        let mut reduced = false;
        for chunk in &chunks {
            if fails(chunk) {
                items = chunk.clone();
                granularity = 2;
                reduced = true;
                break;
            }
        }
        if !reduced && chunks.len() > 2 {
            for skip in 0..chunks.len() {
                let complement: Vec<usize> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| *index != skip)
                    .flat_map(|(_, chunk)| chunk.iter().copied())
                    .collect();
                if fails(&complement) {
                    items = complement;
                    granularity = (granularity - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if granularity >= items.len() {
                break;
            }
            granularity = (granularity * 2).min(items.len());
        }
    }
    items
}

/// `items` cut into `parts` chunks of near-equal length, in order.
fn split(items: &[usize], parts: usize) -> Vec<Vec<usize>> {
    let parts = parts.clamp(1, items.len().max(1));
    (0..parts)
        .map(|part| items[part * items.len() / parts..(part + 1) * items.len() / parts].to_vec())
        .filter(|chunk| !chunk.is_empty())
        .collect()
}

fn faults(doc: &Table) -> Vec<Value> {
    doc.get("faults")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn set_faults(doc: &mut Table, faults: Vec<Value>) {
    if faults.is_empty() {
        doc.remove("faults");
    } else {
        doc.insert("faults".into(), Value::Array(faults));
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Float(float) => Some(*float),
        Value::Integer(integer) => Some(*integer as f64),
        _ => None,
    }
}

fn duration_s(doc: &Table) -> f64 {
    number(doc.get("duration_s")).unwrap_or(0.0)
}

fn agents(doc: &Table) -> Option<u32> {
    let agents = doc.get("fleet")?.get("agents")?.as_integer()?;
    u32::try_from(agents).ok()
}

/// When a fault entry starts (`at_s`, or `from_s` for the spread kinds).
fn start_s(fault: &Value) -> f64 {
    number(fault.get("at_s"))
        .or_else(|| number(fault.get("from_s")))
        .unwrap_or(0.0)
}

fn size(doc: &Table) -> Size {
    Size {
        faults: faults(doc).len(),
        agents: agents(doc).unwrap_or(0),
        duration_s: duration_s(doc),
    }
}

/// Writes `mixed` (a swarm mix of the scenario `doc` describes) into `doc`:
/// `sources[i]` is the entry of `doc`'s faults that `mixed.faults[i]` was
/// varied from. Only what a mix varies is written (start and end times,
/// node counts and fractions, rates, skews, loss); every other field stays
/// as the author wrote it.
fn write_mix(doc: &mut Table, mixed: &Scenario, sources: &[usize]) {
    let written = faults(doc);
    let faults = mixed
        .faults
        .iter()
        .zip(sources)
        .filter_map(|(fault, &index)| {
            let mut entry = written.get(index)?.clone();
            if let Value::Table(table) = &mut entry {
                fault.kind().write_back(table);
            }
            Some(entry)
        })
        .collect();
    set_faults(doc, faults);
    let network = doc
        .entry("network")
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(network) = network {
        write::loss(network, &mixed.link);
        // A link rule's fields default to the scenario's link as written:
        // pin them, since the mix scaled that link and not the rules.
        if let Some(Value::Array(rules)) = network.get_mut("links") {
            for (rule, parsed) in rules.iter_mut().zip(&mixed.links) {
                if let Value::Table(rule) = rule {
                    write::loss(rule, &parsed.model);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::fault::Fault;

    #[test]
    fn ddmin_finds_the_faults_a_failure_needs() {
        let culprits = [3, 17, 21];
        let mut runs = 0;
        let kept = ddmin(25, |subset| {
            runs += 1;
            culprits.iter().all(|culprit| subset.contains(culprit))
        });
        assert_eq!(kept, culprits);
        // Far below the n² = 625 subsets a naive search tries.
        assert!(runs <= 100, "{runs} runs");
        assert_eq!(ddmin(25, |_| true), Vec::<usize>::new());
        assert_eq!(ddmin(1, |subset| subset == [0]), vec![0]);
    }

    #[test]
    fn a_smaller_fleet_keeps_every_group_and_sums_up() {
        let mut doc: Table = "[fleet]\nagents = 50\n[[fleet.groups]]\ncount = 3\n[[fleet.groups]]\ncount = 2\n[[fleet.groups]]\ncount = 27\n[[fleet.groups]]\ncount = 18\n"
            .parse()
            .unwrap();
        assert!(resize_fleet(&mut doc, 11));
        let counts: Vec<i64> = doc["fleet"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|group| group["count"].as_integer().unwrap())
            .collect();
        assert_eq!(counts.iter().sum::<i64>(), 11);
        assert!(counts.iter().all(|&count| count >= 1), "{counts:?}");
        assert_eq!(doc["fleet"]["agents"].as_integer(), Some(11));
        assert!(
            !resize_fleet(&mut doc, 3),
            "four groups cannot fit three agents"
        );
    }

    #[test]
    fn a_written_mix_keeps_the_attack_as_written_with_its_config_key() {
        const TEXT: &str = "name = \"t\"\nduration_s = 60\n[fleet]\nagents = 8\n\
            [[faults]]\nkind = \"crash\"\nat_s = 10\nnodes = { count = 2 }\n\
            [[faults]]\nkind = \"attack\"\nfrom_s = 5\nuntil_s = 50\nattempts = 24\n\
            attacker = 3\nconfig_key = \"operator-2\"\n";
        let scenario = Scenario::parse("t.toml", TEXT).unwrap();
        for seed in 1..=5 {
            let written = write_swarm_mix(TEXT, &scenario, seed).unwrap();
            let replayed = Scenario::parse("written.toml", &written).unwrap();
            assert_eq!(replayed.faults, swarm::mix(&scenario, seed).0.faults);
            assert!(
                replayed.faults.iter().any(|fault| matches!(
                    fault,
                    Fault::Attack(attack)
                        if attack.config_key == Some(crate::scenario::OperatorKey::Operator2)
                )),
                "{written}"
            );
        }
    }
}
