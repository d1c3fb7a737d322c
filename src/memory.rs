//! The memory check before a simulation: a scenario whose estimated peak
//! (`fleetmesh_simulator::footprint`) exceeds what this machine has
//! available is refused at once, with what to reduce, instead of dying of
//! "memory allocation failed" minutes in. `--force` runs it anyway.

use anyhow::bail;
use fleetmesh_simulator::Scenario;
use fleetmesh_simulator::footprint;

/// Bytes the kernel says can be allocated without swapping
/// (`MemAvailable` in /proc/meminfo); `None` where it cannot be read (not
/// Linux): no check then.
fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_available(&text)
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
fn parse_available(meminfo: &str) -> Option<u64> {
    let kib = meminfo.lines().find_map(|line| {
        let value = line.strip_prefix("MemAvailable:")?.trim();
        value.strip_suffix("kB")?.trim().parse::<u64>().ok()
    })?;
    kib.checked_mul(1024)
}

/// Bytes as GiB with one decimal, for messages.
fn gib(bytes: u64) -> String {
    let tenths = bytes.saturating_mul(10) >> 30;
    format!("{}.{} GiB", tenths / 10, tenths % 10)
}

/// Refuses `scenario` when `runs` runs of it at once (the jobs of a sweep)
/// would need more memory than this machine has available, unless
/// `force`, which only warns.
pub fn check(scenario: &Scenario, runs: usize, force: bool) -> anyhow::Result<()> {
    match available() {
        Some(available) => check_against(scenario, runs, force, available),
        None => Ok(()),
    }
}

fn check_against(
    scenario: &Scenario,
    runs: usize,
    force: bool,
    available: u64,
) -> anyhow::Result<()> {
    let runs = u64::try_from(runs.max(1)).unwrap_or(u64::MAX);
    let each = footprint::peak_bytes(scenario);
    let needed = each.saturating_mul(runs);
    if needed <= available {
        return Ok(());
    }
    let jobs = if runs > 1 {
        format!(" in each of {runs} runs at once")
    } else {
        String::new()
    };
    let estimate = format!(
        "scenario {}: estimated peak memory {}{jobs} ({} agents, each holding every other's member record and certificate)",
        scenario.name,
        gib(each),
        scenario.fleet.agents,
    );
    if force {
        eprintln!(
            "warning: {estimate} exceeds the {} available; running anyway (--force)",
            gib(available)
        );
        return Ok(());
    }
    let fitting = footprint::agents_fitting(scenario, available / runs);
    let fewer_jobs = if runs > 1 { ", fewer --jobs" } else { "" };
    bail!(
        "{estimate} exceeds the {} this machine has available (MemAvailable); run at most about {fitting} agents{fewer_jobs}, or pass --force to run anyway",
        gib(available)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(agents: u32) -> Scenario {
        let text = format!("name = \"big\"\nduration_s = 604800\n[fleet]\nagents = {agents}\n");
        Scenario::parse("big.toml", &text).expect("valid")
    }

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let meminfo = "MemTotal:       24683520 kB\nMemFree:         4629000 kB\nMemAvailable:   23930880 kB\n";
        assert_eq!(parse_available(meminfo), Some(23_930_880 * 1024));
        assert_eq!(parse_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_available("MemAvailable: lots\n"), None);
    }

    #[test]
    fn a_run_too_large_is_refused_with_what_to_reduce() {
        let available = 24 << 30;
        let error = check_against(&scenario(100_000), 1, false, available)
            .expect_err("100,000 agents do not fit in 24 GiB")
            .to_string();
        for part in [
            "big",
            "100000 agents",
            "24.0 GiB",
            "at most about",
            "--force",
        ] {
            assert!(error.contains(part), "{part:?} missing: {error}");
        }
        assert!(!error.contains("--jobs"), "{error}");
        assert!(check_against(&scenario(100_000), 1, true, available).is_ok());
        assert!(check_against(&scenario(1_000), 1, false, available).is_ok());
        // Twenty runs of 1,000 agents at once need about 15 GiB.
        let error = check_against(&scenario(1_000), 20, false, 8 << 30)
            .expect_err("twenty at once do not fit in 8 GiB")
            .to_string();
        assert!(
            error.contains("20 runs at once") && error.contains("fewer --jobs"),
            "{error}"
        );
    }
}
