//! Staged rollouts: the plan a release may carry, which wave each host is
//! in, and what the evidence from earlier waves says.
//!
//! Everything here is a pure function of signed data (the release, the
//! hosts' certificates, the hosts' attestations), so every agent that holds
//! the same data reaches the same answer with no controller and no view of
//! the fleet beyond it. Where an agent holds less (a partition, a fresh
//! agent), the answers only ever err towards "not yet": a wave opens on
//! evidence, never on its absence (`docs/rollouts.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::{Digest, PublicKey};
use crate::selector::parse_selector;

/// Bounds on a rollout plan.
pub mod rollout_limits {
    /// Fractions are in parts per million: this is all of the hosts.
    pub const PPM: u32 = 1_000_000;
    /// Most waves in one plan.
    pub const WAVES_MAX: usize = 16;
    /// Most checks a gate names.
    pub const GATE_CHECKS_MAX: usize = 16;
    /// Longest check name, in bytes (as health reports bound it).
    pub const CHECK_NAME_MAX: usize = 64;
    /// Most `key=value` pairs in a wave's selector.
    pub const SELECTOR_PAIRS_MAX: usize = 16;
    /// Longest selector key or value, in bytes.
    pub const SELECTOR_TEXT_MAX: usize = 64;
    /// Longest bake of one wave: a rollout that needs more is a calendar,
    /// not a gate.
    pub const BAKE_MAX_MILLIS: u64 = 7 * 24 * 3_600_000;
    /// The rank domain: a host's rank for a release.
    pub const RANK_DOMAIN: &str = "fleetmesh 2026-12 rollout rank v1";
}

use rollout_limits::*;

/// A staged rollout: the waves a release reaches the fleet in, and the gate
/// each wave must pass before the next opens. Part of the signed release,
/// so nothing about it can change after the config threshold signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// The version of the same document that hosts go back to when a gate
    /// fails: the signed release names it, so the revert needs no new
    /// signature.
    pub revert_to: u64,
    /// What each wave's hosts must show before the next wave opens.
    pub gate: Gate,
    /// The waves, in order. The last takes every host left.
    pub waves: Vec<Wave>,
}

/// What a wave's hosts must show while they bake the release.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// Checks that must stay healthy on a wave host (sorted, distinct).
    /// A host that runs none of them attests on safe mode and needs-human
    /// alone.
    pub checks: Vec<String>,
    /// Largest share of a wave's hosts that may fail, in parts per million.
    pub max_unhealthy_ppm: u32,
    /// A wave host in safe mode fails the gate.
    pub no_safe_mode: bool,
    /// A needs-human record about a wave host fails the gate.
    pub no_needs_human: bool,
}

/// One wave of a rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// Certificate tags a host must carry to be in the wave; empty: any.
    pub select: BTreeMap<String, String>,
    /// The share of the hosts the selector matches that run the release
    /// once this wave is open, in parts per million: cumulative, as in
    /// "5 %, then 25 %, then 100 %".
    pub fraction_ppm: u32,
    /// How long each of the wave's hosts runs the release, on its own
    /// clock, before it attests that it passed.
    pub bake_millis: u64,
}

/// How a plan breaks its bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rollout: {0}")]
pub struct PlanError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(why.into()))
}

impl Rollout {
    /// Checks the plan of a release of `version`: a predecessor before it,
    /// 1..=[`WAVES_MAX`] waves with fractions in (0, 1], the last with no
    /// selector and all of the hosts (so every host lands in a wave),
    /// bounded bakes, names and selectors.
    pub fn check_shape(&self, version: u64) -> Result<(), PlanError> {
        if self.revert_to == 0 || self.revert_to >= version {
            return refuse(format!(
                "revert_to must name an earlier version of the document (1..{version})"
            ));
        }
        if self.waves.is_empty() || self.waves.len() > WAVES_MAX {
            return refuse(format!("a plan has 1..={WAVES_MAX} waves"));
        }
        if self.gate.max_unhealthy_ppm >= PPM {
            return refuse("gate.max_unhealthy must be below 1");
        }
        if self.gate.checks.len() > GATE_CHECKS_MAX
            || !self.gate.checks.windows(2).all(|pair| pair[0] < pair[1])
            || self
                .gate
                .checks
                .iter()
                .any(|check| check.is_empty() || check.len() > CHECK_NAME_MAX)
        {
            return refuse(format!(
                "gate.checks: at most {GATE_CHECKS_MAX} names of 1..={CHECK_NAME_MAX} bytes, sorted and distinct"
            ));
        }
        for (index, wave) in self.waves.iter().enumerate() {
            if wave.fraction_ppm == 0 || wave.fraction_ppm > PPM {
                return refuse(format!("wave {index}: fraction must be in (0, 1]"));
            }
            if wave.bake_millis > BAKE_MAX_MILLIS {
                return refuse(format!("wave {index}: bake is at most 7 days"));
            }
            let long = |text: &String| text.is_empty() || text.len() > SELECTOR_TEXT_MAX;
            if wave.select.len() > SELECTOR_PAIRS_MAX
                || wave
                    .select
                    .iter()
                    .any(|(key, value)| long(key) || long(value))
            {
                return refuse(format!(
                    "wave {index}: a selector has at most {SELECTOR_PAIRS_MAX} pairs of 1..={SELECTOR_TEXT_MAX} bytes"
                ));
            }
        }
        let last = self.waves.last().expect("checked non-empty");
        if !last.select.is_empty() || last.fraction_ppm != PPM {
            return refuse("the last wave must take every host left: no selector, fraction 1");
        }
        Ok(())
    }

    /// The wave of the host with `key` and certificate `tags` in the
    /// release with digest `release`: the first wave whose selector its
    /// tags carry and whose fraction is above its rank.
    pub fn wave_of(
        &self,
        release: &Digest,
        key: &PublicKey,
        tags: &BTreeMap<String, String>,
    ) -> usize {
        let rank = rank_ppm(release, key);
        self.waves
            .iter()
            .position(|wave| {
                rank < wave.fraction_ppm
                    && wave
                        .select
                        .iter()
                        .all(|(key, value)| tags.get(key) == Some(value))
            })
            // A plan that passed `check_shape` always has a place; one that
            // did not puts stragglers last rather than nowhere.
            .unwrap_or(self.waves.len().saturating_sub(1))
    }

    /// Where the rollout stands given the evidence about each wave
    /// (`tallies[j]` for wave `j`; missing ones count as empty waves):
    /// how many waves are open and the first whose gate failed.
    pub fn progress(&self, tallies: &[Tally]) -> Progress {
        let verdicts: Vec<Verdict> = (0..self.waves.len())
            .map(|wave| {
                self.gate
                    .verdict(tallies.get(wave).copied().unwrap_or_default())
            })
            .collect();
        let failed = verdicts
            .iter()
            .position(|verdict| *verdict == Verdict::Failed);
        // Wave 0 is open from the start; each later one once every wave
        // before it passed.
        let open = 1 + verdicts
            .iter()
            .take(self.waves.len().saturating_sub(1))
            .take_while(|verdict| **verdict == Verdict::Passed)
            .count();
        Progress { open, failed }
    }
}

/// A rollout plan as operators write it (TOML under `[rollout]`, or in a
/// release file): fractions in [0, 1], bakes in seconds, selectors as
/// `key=value[,key=value]`. [`RolloutSpec::plan`] turns it into the
/// [`Rollout`] a release carries, checked; [`RolloutSpec::of`] back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The version hosts go back to when a gate fails.
    pub revert_to: u64,
    /// The gate every wave must pass.
    #[serde(default)]
    pub gate: GateSpec,
    /// The waves, in order.
    #[serde(rename = "wave")]
    pub waves: Vec<WaveSpec>,
}

/// A gate as operators write it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Checks that must stay healthy on a wave's hosts.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Largest fraction of a wave allowed to fail, in [0, 1).
    #[serde(default)]
    pub max_unhealthy: f64,
    /// A wave host in safe mode fails the gate.
    #[serde(default)]
    pub no_safe_mode: bool,
    /// A needs-human record about a wave host fails the gate.
    #[serde(default)]
    pub no_needs_human: bool,
}

/// A wave as operators write it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    /// `key=value[,key=value]` over certificate tags; empty: any host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub select: String,
    /// The share of the matching hosts running the release once the wave
    /// is open, cumulative, in (0, 1].
    pub fraction: f64,
    /// Seconds each host runs the release before it attests.
    #[serde(default)]
    pub bake_s: f64,
}

/// `fraction` of all hosts in parts per million, if it is a number in
/// [0, 1].
fn ppm(field: &str, fraction: f64) -> Result<u32, PlanError> {
    if !(0.0..=1.0).contains(&fraction) {
        return refuse(format!("{field} must be a number from 0 to 1"));
    }
    Ok((fraction * f64::from(PPM)).round() as u32)
}

impl RolloutSpec {
    /// The plan for a release of `version`, refused (naming the field) where
    /// agents would refuse the release.
    pub fn plan(&self, version: u64) -> Result<Rollout, PlanError> {
        let mut checks = self.gate.checks.clone();
        checks.sort();
        checks.dedup();
        let waves = self
            .waves
            .iter()
            .enumerate()
            .map(|(index, wave)| {
                let bake = wave.bake_s;
                if !(0.0..=(BAKE_MAX_MILLIS / 1_000) as f64).contains(&bake) {
                    return refuse(format!("wave {index}: bake_s must be 0 to 7 days"));
                }
                Ok(Wave {
                    select: parse_selector(&wave.select)
                        .map_err(|error| PlanError(format!("wave {index}: {error}")))?,
                    fraction_ppm: ppm(&format!("wave {index}: fraction"), wave.fraction)?,
                    bake_millis: (bake * 1_000.0).round() as u64,
                })
            })
            .collect::<Result<Vec<Wave>, PlanError>>()?;
        let rollout = Rollout {
            revert_to: self.revert_to,
            gate: Gate {
                checks,
                max_unhealthy_ppm: ppm("gate.max_unhealthy", self.gate.max_unhealthy)?,
                no_safe_mode: self.gate.no_safe_mode,
                no_needs_human: self.gate.no_needs_human,
            },
            waves,
        };
        rollout.check_shape(version)?;
        Ok(rollout)
    }

    /// The operators' form of `plan`: [`RolloutSpec::plan`] gives it back.
    pub fn of(plan: &Rollout) -> RolloutSpec {
        let fraction = |ppm: u32| f64::from(ppm) / f64::from(PPM);
        RolloutSpec {
            revert_to: plan.revert_to,
            gate: GateSpec {
                checks: plan.gate.checks.clone(),
                max_unhealthy: fraction(plan.gate.max_unhealthy_ppm),
                no_safe_mode: plan.gate.no_safe_mode,
                no_needs_human: plan.gate.no_needs_human,
            },
            waves: plan
                .waves
                .iter()
                .map(|wave| WaveSpec {
                    select: wave
                        .select
                        .iter()
                        .map(|(key, value)| format!("{key}={value}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    fraction: fraction(wave.fraction_ppm),
                    bake_s: wave.bake_millis as f64 / 1_000.0,
                })
                .collect(),
        }
    }
}

/// A host's rank for a release, in parts per million: the same on every
/// agent, and different for each release, so each release picks other
/// canaries.
pub fn rank_ppm(release: &Digest, key: &PublicKey) -> u32 {
    let digest = Digest::of(RANK_DOMAIN, &(release, key));
    let prefix = u64::from_le_bytes(digest.0[..8].try_into().expect("8 bytes"));
    ((u128::from(prefix) * u128::from(PPM)) >> 64) as u32
}

/// The evidence about one wave as an agent holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The wave's hosts: as many as the agent counts among the
    /// certificates it holds, or as an attester counted, whichever is more.
    pub hosts: u32,
    /// Hosts that attested they passed (and did not also fail).
    pub passed: u32,
    /// Hosts that attested they failed.
    pub failed: u32,
}

/// What the evidence says about one wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Enough of its hosts passed and not too many failed.
    Passed,
    /// More of its hosts failed than the gate allows.
    Failed,
    /// Neither yet.
    Pending,
}

impl Gate {
    /// The verdict on a wave: failed once more than ⌊max_unhealthy ·
    /// hosts⌋ failed; passed once ⌈(1 − max_unhealthy) · hosts⌉ passed. An
    /// empty wave has passed.
    pub fn verdict(&self, tally: Tally) -> Verdict {
        let hosts = u64::from(tally.hosts);
        let allowed = hosts * u64::from(self.max_unhealthy_ppm) / u64::from(PPM);
        let needed = hosts - allowed;
        if u64::from(tally.failed) > allowed {
            Verdict::Failed
        } else if u64::from(tally.passed) >= needed {
            Verdict::Passed
        } else {
            Verdict::Pending
        }
    }
}

/// Where a rollout stands at one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Waves `0..open` are open.
    pub open: usize,
    /// The first wave whose gate failed: the rollout is halted and its
    /// hosts go back to the predecessor.
    pub failed: Option<usize>,
}

impl Progress {
    /// Whether a host of `wave` may run the release now.
    pub fn admits(&self, wave: usize) -> bool {
        self.failed.is_none() && wave < self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u64) -> PublicKey {
        PublicKey(Digest::of("test key", &seed).0)
    }

    fn plan(fractions: &[u32], max_unhealthy_ppm: u32) -> Rollout {
        Rollout {
            revert_to: 1,
            gate: Gate {
                max_unhealthy_ppm,
                ..Gate::default()
            },
            waves: fractions
                .iter()
                .map(|&fraction_ppm| Wave {
                    fraction_ppm,
                    bake_millis: 30_000,
                    ..Wave::default()
                })
                .collect(),
        }
    }

    #[test]
    fn shape_refuses_what_would_leave_hosts_out_or_point_forward() {
        assert!(plan(&[50_000, 250_000, PPM], 0).check_shape(2).is_ok());
        assert!(
            plan(&[50_000, PPM], 0).check_shape(1).is_err(),
            "revert_to forward"
        );
        assert!(
            plan(&[50_000, 500_000], 0).check_shape(2).is_err(),
            "last not all"
        );
        assert!(plan(&[], 0).check_shape(2).is_err(), "no waves");
        assert!(plan(&[0, PPM], 0).check_shape(2).is_err(), "empty fraction");
        assert!(plan(&[PPM], PPM).check_shape(2).is_err(), "all may fail");
        let mut selected = plan(&[50_000, PPM], 0);
        selected.waves[1].select.insert("role".into(), "db".into());
        assert!(selected.check_shape(2).is_err(), "last wave selects");
        let mut unsorted = plan(&[PPM], 0);
        unsorted.gate.checks = vec!["web".into(), "disk".into()];
        assert!(unsorted.check_shape(2).is_err(), "checks unsorted");
    }

    #[test]
    fn the_gate_counts_against_the_wave_size() {
        let gate = Gate {
            max_unhealthy_ppm: 100_000,
            ..Gate::default()
        };
        let tally = |hosts, passed, failed| Tally {
            hosts,
            passed,
            failed,
        };
        assert_eq!(gate.verdict(tally(0, 0, 0)), Verdict::Passed, "empty");
        assert_eq!(gate.verdict(tally(10, 9, 1)), Verdict::Passed);
        assert_eq!(gate.verdict(tally(10, 8, 1)), Verdict::Pending);
        assert_eq!(gate.verdict(tally(10, 8, 2)), Verdict::Failed);
        assert_eq!(gate.verdict(tally(5, 0, 1)), Verdict::Failed, "⌊0.5⌋ = 0");
    }

    #[test]
    fn a_selector_wave_takes_only_hosts_with_its_tags() {
        let mut rollout = plan(&[PPM, PPM], 0);
        rollout.waves[0]
            .select
            .insert("role".into(), "canary".into());
        let release = Digest::of("test", &1u8);
        let canary = BTreeMap::from([("role".to_owned(), "canary".to_owned())]);
        for seed in 0..50 {
            assert_eq!(rollout.wave_of(&release, &key(seed), &canary), 0);
            assert_eq!(rollout.wave_of(&release, &key(seed), &BTreeMap::new()), 1);
        }
    }

    #[test]
    fn the_operators_form_round_trips_and_names_what_is_wrong() {
        let spec = RolloutSpec {
            revert_to: 3,
            gate: GateSpec {
                checks: vec!["web".into(), "disk".into()],
                max_unhealthy: 0.1,
                no_safe_mode: true,
                no_needs_human: false,
            },
            waves: vec![
                WaveSpec {
                    select: "role=canary, zone=a".into(),
                    fraction: 0.05,
                    bake_s: 30.0,
                },
                WaveSpec {
                    select: String::new(),
                    fraction: 1.0,
                    bake_s: 0.25,
                },
            ],
        };
        let plan = spec.plan(4).unwrap();
        assert_eq!(plan.gate.checks, ["disk", "web"], "sorted");
        assert_eq!(plan.waves[0].fraction_ppm, 50_000);
        assert_eq!(plan.waves[0].select.len(), 2);
        assert_eq!(plan.waves[1].bake_millis, 250);
        assert_eq!(RolloutSpec::of(&plan).plan(4).unwrap(), plan);
        let mut bad = spec.clone();
        bad.waves[0].fraction = f64::NAN;
        assert!(bad.plan(4).unwrap_err().0.contains("wave 0: fraction"));
        let mut bad = spec.clone();
        bad.waves[0].select = "role".into();
        assert!(bad.plan(4).unwrap_err().0.contains("wave 0"));
        assert!(spec.plan(3).unwrap_err().0.contains("revert_to"));
    }

    proptest! {
        #[test]
        fn every_host_lands_in_one_wave_near_its_share(
            first in 1u32..400_000,
            second in 400_000u32..PPM,
            release in any::<u64>(),
        ) {
            let rollout = plan(&[first, second, PPM], 0);
            let release = Digest::of("test", &release);
            let hosts = 4_000u64;
            let mut counts = [0u64; 3];
            for seed in 0..hosts {
                let wave = rollout.wave_of(&release, &key(seed), &BTreeMap::new());
                prop_assert!(wave < 3);
                counts[wave] += 1;
            }
            // Cumulative shares, within 4 standard deviations of a binomial.
            let cumulative = [counts[0], counts[0] + counts[1]];
            for (count, fraction) in cumulative.iter().zip([first, second]) {
                let p = f64::from(fraction) / f64::from(PPM);
                let spread = 4.0 * (hosts as f64 * p * (1.0 - p)).sqrt() + 1.0;
                prop_assert!((*count as f64 - hosts as f64 * p).abs() <= spread);
            }
        }

        #[test]
        fn more_evidence_never_closes_a_wave_or_lifts_a_failure(
            hosts in proptest::collection::vec(0u32..40, 3),
            passed in proptest::collection::vec(0u32..40, 3),
            failed in proptest::collection::vec(0u32..40, 3),
            extra in proptest::collection::vec((0usize..3, any::<bool>()), 0..20),
            max_unhealthy_ppm in 0u32..PPM,
        ) {
            let rollout = plan(&[100_000, 500_000, PPM], max_unhealthy_ppm);
            let mut tallies: Vec<Tally> = (0..3)
                .map(|wave| Tally {
                    hosts: hosts[wave],
                    passed: passed[wave].min(hosts[wave]),
                    failed: failed[wave].min(hosts[wave] - passed[wave].min(hosts[wave])),
                })
                .collect();
            let mut before = rollout.progress(&tallies);
            for (wave, pass) in extra {
                if pass {
                    tallies[wave].passed += 1;
                } else {
                    tallies[wave].failed += 1;
                }
                let after = rollout.progress(&tallies);
                prop_assert!(before.failed.is_none() || after.failed.is_some(), "a failure lifted");
                if pass {
                    prop_assert!(after.open >= before.open, "a pass closed a wave");
                    prop_assert_eq!(after.failed, before.failed);
                }
                prop_assert!(after.open >= 1 && after.open <= 3);
                before = after;
            }
        }
    }
}
