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
use crate::scenario::Scenario;
use crate::scenario::fault::vary::Variation;
use crate::scenario::fault::{Fault, KINDS};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The kind of a chaos fault, or `None` for workload the mix keeps.
fn kind(fault: &Fault) -> Option<&'static str> {
    fault.is_chaos().then_some(fault.name())
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
        .iter()
        .filter(|(_, chaos)| *chaos)
        .map(|(name, _)| *name)
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
            let varied = fault.varied(&Variation {
                factor: *factor,
                shift,
                end: scenario.duration,
            });
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
                .filter(|fault| matches!(fault, Fault::Leave(_)))
                .count();
            assert_eq!(leaves, 1, "workload is kept");
            for fault in &mixed.faults {
                match fault {
                    Fault::Partition(partition) => {
                        let (at, heal) = (partition.at, partition.heal.expect("still heals"));
                        assert!(heal >= at && heal - at <= Duration::from_secs(20));
                        let fraction = partition.groups[0].fraction.expect("a fraction");
                        assert!((0.125 - 1e-12..=0.5 + 1e-12).contains(&fraction));
                        shapes.insert((fraction * 100.0).round() as u32);
                    }
                    Fault::Crash(crash) => {
                        assert!((1..=4).contains(&crash.nodes.count.expect("a count")));
                    }
                    Fault::RandomPauses(pauses) => {
                        assert!((2.5 - 1e-9..=10.0 + 1e-9).contains(&pauses.window.per_agent_hour));
                    }
                    _ => {}
                }
                assert!(fault.kind().start() <= scenario.duration);
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
}
