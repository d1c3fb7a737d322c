//! Swarm mixes: each seed of a swarm run also draws which fault kinds are
//! on, which faults of the timeline happen, how intense they are and when
//! they start, within the scenario's `[swarm]` bounds.
//!
//! A scenario's timeline is one point in the space of fault schedules; a
//! fixed timeline over many seeds varies only the interleavings around it.
//! Drawing the mix per seed (as FoundationDB's and TigerBeetle's swarm
//! testing do) reaches combinations no author wrote down: a partition with
//! no loss, pauses without crashes, a crash half a minute earlier.
//!
//! Only the chaos faults vary. The scenario's workload — operators'
//! publications, policies, trust changes, service failures, approvals,
//! attacks, leaves and retags — stays as written, so the invariants still
//! have something to judge. The mix comes from its own random stream
//! (`swarm`), so the run's other streams are those of the plain seed.

use crate::rng::Seeds;
use crate::scenario::{Fault, Nodes, Scenario};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The kinds of chaos fault a mix varies, by their names in scenario files.
pub const KINDS: [&str; 8] = [
    "partition",
    "crash",
    "pause",
    "random-pauses",
    "network",
    "clock",
    "crash-holder",
    "health-flaps",
];

/// The kind of a chaos fault, or `None` for workload the mix keeps.
fn kind(fault: &Fault) -> Option<&'static str> {
    Some(match fault {
        Fault::Partition { .. } => "partition",
        Fault::Crash { .. } => "crash",
        Fault::Pause { .. } => "pause",
        Fault::RandomPauses { .. } => "random-pauses",
        Fault::Network { .. } => "network",
        Fault::Clock { .. } => "clock",
        Fault::CrashHolder { .. } => "crash-holder",
        Fault::HealthFlaps { .. } => "health-flaps",
        Fault::Config { .. }
        | Fault::Policy { .. }
        | Fault::Trust { .. }
        | Fault::Equivocate { .. }
        | Fault::Service(_)
        | Fault::Approve(_)
        | Fault::Attack { .. }
        | Fault::Leave { .. }
        | Fault::Retag { .. } => return None,
    })
}

/// What one seed's mix did to the scenario, for the report and the replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// Chaos faults in the timeline as written.
    pub written: usize,
    /// Chaos faults kept.
    pub kept: usize,
    /// Fault kinds the scenario uses, each with its intensity factor, or
    /// `None` when the seed turned the kind off.
    pub kinds: BTreeMap<&'static str, Option<f64>>,
    /// The factor applied to the default link's loss, duplication and
    /// reordering.
    pub link: f64,
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} faults", self.kept, self.written)?;
        for (kind, factor) in &self.kinds {
            match factor {
                Some(factor) => write!(f, ", {kind} x{factor:.2}")?,
                None => write!(f, ", {kind} off")?,
            }
        }
        write!(f, ", link loss x{:.2}", self.link)
    }
}

/// `scenario` as seed `seed` of a swarm plays it, and what changed.
pub fn mix(scenario: &Scenario, seed: u64) -> (Scenario, Mix) {
    let (mixed, mix, _) = mix_traced(scenario, seed);
    (mixed, mix)
}

/// [`mix`], and for each fault of the mixed scenario the index of the
/// fault of `scenario` it was varied from: what it takes to write the mix
/// down as a scenario file ([`crate::shrink`]).
pub fn mix_traced(scenario: &Scenario, seed: u64) -> (Scenario, Mix, Vec<usize>) {
    let bounds = &scenario.swarm;
    let mut rng = Seeds::new(seed).rng("swarm", 0);
    let used: Vec<&'static str> = KINDS
        .into_iter()
        .filter(|name| {
            scenario
                .faults
                .iter()
                .any(|fault| kind(fault) == Some(*name))
        })
        .collect();
    let mut kinds: BTreeMap<&'static str, Option<f64>> = BTreeMap::new();
    for name in &used {
        let on = !rng.random_bool(bounds.kind_off);
        let factor = draw(&mut rng, bounds.scale_min, bounds.scale_max);
        kinds.insert(name, on.then_some(factor));
    }
    if !used.is_empty() && kinds.values().all(Option::is_none) {
        // A mix with no chaos at all tests nothing the plain seed does not.
        let revived = used[rng.random_range(0..used.len())];
        kinds.insert(revived, Some(bounds.scale_max));
    }
    let keep = draw(&mut rng, bounds.keep_min, 1.0);
    let link = draw(&mut rng, bounds.scale_min, bounds.scale_max);
    let jitter = bounds.jitter.unwrap_or(scenario.duration / 20);
    let mut mixed = scenario.clone();
    mixed.link.loss = (mixed.link.loss * link).min(1.0);
    mixed.link.duplicate = (mixed.link.duplicate * link).min(1.0);
    mixed.link.reorder = (mixed.link.reorder * link).min(1.0);
    let mut written = 0;
    let mut kept = 0;
    let mut spare = None;
    mixed.faults = Vec::with_capacity(scenario.faults.len());
    let mut sources = Vec::with_capacity(scenario.faults.len());
    for (index, fault) in scenario.faults.iter().enumerate() {
        let Some(name) = kind(fault) else {
            mixed.faults.push(fault.clone());
            sources.push(index);
            continue;
        };
        written += 1;
        // Every fault draws the same numbers whether or not it is kept, so
        // one fault's fate does not reshuffle the others'.
        let keep_it = rng.random_bool(keep);
        let shift = signed(&mut rng, jitter);
        if let Some(Some(factor)) = kinds.get(name) {
            let varied = vary(fault, *factor, shift, scenario.duration);
            if keep_it {
                mixed.faults.push(varied);
                sources.push(index);
                kept += 1;
            } else if spare.is_none() {
                spare = Some((index, varied));
            }
        }
    }
    if kept == 0
        && let Some((index, spare)) = spare
    {
        // As above: some chaos, or the seed repeats the plain run's work.
        mixed.faults.push(spare);
        sources.push(index);
        kept = 1;
    }
    let mix = Mix {
        written,
        kept,
        kinds,
        link,
    };
    (mixed, mix, sources)
}

fn draw(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    if high > low {
        rng.random_range(low..=high)
    } else {
        low
    }
}

/// A shift uniform in `[-jitter, +jitter]`, in nanoseconds.
fn signed(rng: &mut ChaCha8Rng, jitter: Duration) -> i128 {
    let nanos = jitter.as_nanos() as i128;
    if nanos == 0 {
        0
    } else {
        rng.random_range(-nanos..=nanos)
    }
}

/// `at` moved by `shift`, kept within the run.
fn moved(at: Duration, shift: i128, end: Duration) -> Duration {
    let nanos = (at.as_nanos() as i128 + shift).clamp(0, end.as_nanos() as i128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A later time `end_at` of a fault that moves to `start`: the fault's
/// length scaled by `factor`.
fn stretched(start: Duration, old_start: Duration, end_at: Duration, factor: f64) -> Duration {
    start + end_at.saturating_sub(old_start).mul_f64(factor)
}

fn scaled_nodes(nodes: &Nodes, factor: f64) -> Nodes {
    let mut nodes = nodes.clone();
    nodes.count = nodes
        .count
        .map(|count| ((f64::from(count) * factor).round() as u32).max(1));
    nodes.fraction = nodes
        .fraction
        .map(|fraction| (fraction * factor).clamp(f64::MIN_POSITIVE, 1.0));
    nodes
}

/// One chaos fault at intensity `factor`, moved by `shift` nanoseconds.
fn vary(fault: &Fault, factor: f64, shift: i128, end: Duration) -> Fault {
    let mut fault = fault.clone();
    match &mut fault {
        Fault::Partition {
            at, heal, groups, ..
        } => {
            let start = moved(*at, shift, end);
            *heal = heal.map(|heal| stretched(start, *at, heal, factor));
            *at = start;
            // Smaller named groups reshape the partition: the agents they
            // leave out join the remainder group.
            for group in groups {
                *group = scaled_nodes(group, factor);
            }
        }
        Fault::Crash { at, nodes, .. } => {
            *at = moved(*at, shift, end);
            *nodes = scaled_nodes(nodes, factor);
        }
        Fault::Pause {
            at,
            nodes,
            duration,
        } => {
            *at = moved(*at, shift, end);
            *nodes = scaled_nodes(nodes, factor);
            *duration = duration.mul_f64(factor);
        }
        Fault::RandomPauses {
            from,
            until,
            per_agent_hour,
            ..
        } => {
            let start = moved(*from, shift, end);
            *until = moved(*until, shift, end).max(start);
            *from = start;
            *per_agent_hour *= factor;
        }
        Fault::HealthFlaps {
            from,
            until,
            per_agent_hour,
            ..
        } => {
            let start = moved(*from, shift, end);
            *until = moved(*until, shift, end).max(start);
            *from = start;
            *per_agent_hour *= factor;
        }
        Fault::Network { at, until, model } => {
            let start = moved(*at, shift, end);
            *until = until.map(|until| stretched(start, *at, until, factor));
            *at = start;
            model.loss = (model.loss * factor).min(1.0);
            model.duplicate = (model.duplicate * factor).min(1.0);
            model.reorder = (model.reorder * factor).min(1.0);
        }
        Fault::Clock {
            at,
            nodes,
            skew,
            drift_ppm,
        } => {
            *at = moved(*at, shift, end);
            *nodes = scaled_nodes(nodes, factor);
            // Within what a scenario file may say, so that a mix can be
            // written down as one (`sim shrink --swarm`).
            *skew = skew.mul_f64(factor).min(Duration::from_secs(3_600));
            *drift_ppm = ((f64::from(*drift_ppm) * factor).round() as u32).min(99_999);
        }
        Fault::CrashHolder { at, .. } => *at = moved(*at, shift, end),
        _ => {}
    }
    fault
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"
name = "mix"
duration_s = 100
[fleet]
agents = 20
[network]
loss = 0.1
[[faults]]
kind = "partition"
at_s = 20
heal_s = 40
groups = [{ fraction = 0.5 }]
[[faults]]
kind = "crash"
at_s = 50
nodes = { count = 4 }
[[faults]]
kind = "random-pauses"
from_s = 0
until_s = 100
per_agent_hour = 10
duration_s = 2
[[faults]]
kind = "leave"
at_s = 60
nodes = { count = 1 }
"#;

    fn scenario() -> Scenario {
        Scenario::parse("mix.toml", SCENARIO).expect("the test scenario parses")
    }

    #[test]
    fn a_seed_always_draws_the_same_mix() {
        let scenario = scenario();
        for seed in 1..20 {
            let (one, mix_one) = mix(&scenario, seed);
            let (two, mix_two) = mix(&scenario, seed);
            assert_eq!(mix_one, mix_two);
            assert_eq!(one.faults, two.faults);
        }
    }

    #[test]
    fn mixes_stay_within_the_default_bounds_and_keep_the_workload() {
        let scenario = scenario();
        let mut shapes = std::collections::BTreeSet::new();
        for seed in 1..200 {
            let (mixed, mix) = mix(&scenario, seed);
            assert_eq!(mix.written, 3);
            assert!((1..=3).contains(&mix.kept), "seed {seed} kept no fault");
            assert!(mix.kinds.values().any(Option::is_some), "seed {seed}");
            assert!(mixed.link.loss <= 0.1 + 1e-12);
            assert!(mixed.link.loss >= 0.1 * 0.25 - 1e-12);
            let leaves = mixed
                .faults
                .iter()
                .filter(|fault| matches!(fault, Fault::Leave { .. }))
                .count();
            assert_eq!(leaves, 1, "workload is kept");
            for fault in &mixed.faults {
                match fault {
                    Fault::Partition {
                        at, heal, groups, ..
                    } => {
                        let heal = heal.expect("still heals");
                        assert!(heal >= *at && heal - *at <= Duration::from_secs(20));
                        let fraction = groups[0].fraction.expect("a fraction");
                        assert!((0.125 - 1e-12..=0.5 + 1e-12).contains(&fraction));
                        shapes.insert((fraction * 100.0).round() as u32);
                    }
                    Fault::Crash { nodes, .. } => {
                        assert!((1..=4).contains(&nodes.count.expect("a count")));
                    }
                    Fault::RandomPauses { per_agent_hour, .. } => {
                        assert!((2.5 - 1e-9..=10.0 + 1e-9).contains(per_agent_hour));
                    }
                    _ => {}
                }
                assert!(fault_at(fault) <= scenario.duration);
            }
        }
        assert!(shapes.len() > 10, "partition shapes vary: {shapes:?}");
    }

    #[test]
    fn kinds_are_switched_off_per_seed() {
        let scenario = scenario();
        let off: usize = (1..200)
            .map(|seed| mix(&scenario, seed).1)
            .filter(|mix| mix.kinds.get("partition") == Some(&None))
            .count();
        // kind_off is 0.25 by default.
        assert!(
            (20..=80).contains(&off),
            "partition off in {off} of 199 seeds"
        );
    }

    fn fault_at(fault: &Fault) -> Duration {
        match fault {
            Fault::Partition { at, .. } | Fault::Crash { at, .. } | Fault::Leave { at, .. } => *at,
            Fault::RandomPauses { from, .. } => *from,
            _ => Duration::ZERO,
        }
    }
}
