//! How much memory a run will take, estimated from its scenario before it
//! starts, so that a run too large for the machine is refused with a
//! reason instead of dying of "memory allocation failed" minutes in.
//!
//! Every simulated agent holds its own view of the fleet: a member record,
//! the certificate and the metadata of every other agent. So memory grows
//! with the square of the fleet, not with the simulated time (a 500-agent
//! run of 120 s and one of 600 s peak alike). On top of that floor:
//!
//! - a partition (halves, one-way links, bridges) makes each side suspect
//!   and then declare the other dead, and the heal makes every agent
//!   refute: suspicions, queued refutations and anti-entropy dumps held
//!   by every agent about every other, more than doubling the floor;
//! - each health check of each node is a report every agent holds.
//!
//! Neither the simulated time nor the report's timeline (`--report`: 1.4
//! MiB more for 500 agents' 580,000 events) weighs in.
//!
//! The constants are fitted to the peak resident memory (`/usr/bin/time
//! -v`) of release runs on this project's machine (docs/benchmarks.md,
//! "Simulator memory"). The estimate errs high: it is a guard, and a run
//! it lets through should fit.

use crate::scenario::Scenario;
use crate::scenario::fault::Fault;

/// The process with a handful of agents.
const BASE_BYTES: u64 = 16 << 20;
/// Each agent's own state: its tables, queues and timers.
const AGENT_BYTES: u64 = 64 << 10;
/// What one agent holds about one other: member record, certificate,
/// metadata, digests. Fitted: 200, 500, 1,000 and 2,000 agents joining
/// over 10 s, 120 s simulated, peaked at 53, 200, 687 and 2,784 MiB.
const AGENT_PAIR_BYTES: u64 = 700;
/// What a partition and its heal add per pair, as a multiple of
/// [`AGENT_PAIR_BYTES`] in eighths: partition-heal (1,000 agents) peaked
/// at 1,552 MiB against 687 MiB for the same fleet undisturbed.
const PARTITION_EIGHTHS: u64 = 10;
/// One health report held by one agent: each of N agents holds N × checks.
/// Fitted: 500 agents with 8 flapping checks each peaked at 1,558 MiB
/// against 200 MiB without.
const HEALTH_REPORT_BYTES: u64 = 720;

/// The estimated peak memory of one run of `scenario`, in bytes.
pub fn peak_bytes(scenario: &Scenario) -> u64 {
    let agents = u64::from(scenario.fleet.agents);
    let pairs = agents.saturating_mul(agents);
    let partitioned = scenario
        .faults
        .iter()
        .any(|fault| matches!(fault, Fault::Partition(_)));
    let pair_bytes = if partitioned {
        AGENT_PAIR_BYTES.saturating_mul(8 + PARTITION_EIGHTHS) / 8
    } else {
        AGENT_PAIR_BYTES
    };
    let checks = scenario
        .faults
        .iter()
        .filter_map(|fault| match fault {
            Fault::HealthFlaps(flaps) => Some(u64::from(flaps.checks)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    [
        BASE_BYTES,
        agents.saturating_mul(AGENT_BYTES),
        pairs.saturating_mul(pair_bytes),
        pairs
            .saturating_mul(checks)
            .saturating_mul(HEALTH_REPORT_BYTES),
    ]
    .into_iter()
    .fold(0, u64::saturating_add)
}

/// The most agents `scenario` could have for one run to fit in `bytes`,
/// everything else as written: what to suggest when it does not fit.
pub fn agents_fitting(scenario: &Scenario, bytes: u64) -> u32 {
    let fits = |agents: u32| {
        let mut smaller = scenario.clone();
        smaller.fleet.agents = agents;
        peak_bytes(&smaller) <= bytes
    };
    // Bisection: the estimate grows with the fleet.
    let (mut low, mut high) = (0, scenario.fleet.agents);
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if fits(middle) {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(agents: u32, faults: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nduration_s = 120\n[fleet]\nagents = {agents}\njoin_spread_s = 10\n{faults}"
        );
        Scenario::parse("t.toml", &text).expect("valid")
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_estimate_covers_the_runs_it_was_fitted_to() {
        // Measured peaks (MiB), and the estimate may exceed each by a
        // fifth at most.
        for (agents, measured) in [(200, 53), (500, 200), (1_000, 687), (2_000, 2_784)] {
            let estimate = peak_bytes(&scenario(agents, "")) / MIB;
            assert!(
                estimate >= measured && estimate <= measured * 6 / 5,
                "{agents} agents: estimated {estimate} MiB, measured {measured} MiB"
            );
        }
        let partition = "[[faults]]\nkind = \"partition\"\nat_s = 30\nheal_s = 90\ngroups = [{ fraction = 0.5 }]\n";
        let estimate = peak_bytes(&scenario(1_000, partition)) / MIB;
        assert!(
            (1_552..=1_552 * 6 / 5).contains(&estimate),
            "{estimate} MiB"
        );
        let flaps = "[[faults]]\nkind = \"health-flaps\"\nfrom_s = 20\nuntil_s = 110\nchecks = 8\nper_agent_hour = 60\n";
        let estimate = peak_bytes(&scenario(500, flaps)) / MIB;
        assert!(
            (1_558..=1_558 * 6 / 5).contains(&estimate),
            "{estimate} MiB"
        );
    }

    #[test]
    fn a_fleet_of_a_hundred_thousand_is_far_beyond_a_machine() {
        let huge = scenario(100_000, "");
        assert!(peak_bytes(&huge) > 1 << 42, "more than 4 TiB");
        let fitting = agents_fitting(&huge, 24 << 30);
        assert!((5_500..6_500).contains(&fitting), "{fitting}");
        let mut at = huge.clone();
        at.fleet.agents = fitting;
        assert!(peak_bytes(&at) <= 24 << 30);
        at.fleet.agents = fitting + 1;
        assert!(peak_bytes(&at) > 24 << 30);
        assert_eq!(agents_fitting(&huge, 0), 0);
    }
}
