//! Issue 5's runtime targets, measured on real agent processes; prints a
//! table. Ignored in ordinary test runs (a benchmark, minutes long, and
//! its speed targets are no assertions); run it on a release build:
//!
//! ```sh
//! cargo test --release --test runtime_bench -- --ignored --nocapture
//! ```
//!
//! - idle: 20 agents on loopback; after formation and a settling pause,
//!   each agent's CPU time (utime + stime of /proc/PID/stat) over a window,
//!   as a share of one core, and its VmRSS (/proc/PID/status);
//! - release spread: from `fleetmesh publish` of a release to one agent
//!   until all 20 report running it on `/v1/releases`;
//! - partition heal: 20 agents in network namespaces (`common::netns`), cut
//!   in two sides of 10 until each side declares the other dead, a release published
//!   on one side, then healed: the time until all agree on membership (all
//!   alive, the same incarnations) and config. Skipped where namespaces
//!   are unavailable.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{fleet_at, form, loopback_fleet, netns, wait_every, wait_for};

/// Agents in each benchmark's fleet.
const AGENTS: usize = 20;
/// Quiet time after formation before the idle window: the join's gossip
/// and anti-entropy die down.
const SETTLE: Duration = Duration::from_secs(20);
/// The idle window.
const IDLE_WINDOW: Duration = Duration::from_secs(30);
/// Releases timed.
const RELEASES: u64 = 5;
/// Pause between two timed releases.
const RELEASE_GAP: Duration = Duration::from_secs(2);
/// Polls while a release spreads or a heal converges: the resolution.
const FINE_POLL: Duration = Duration::from_millis(20);
/// Partitions healed and timed.
const HEALS: u64 = 3;
/// Idle targets: share of one core, and resident bytes.
const IDLE_CPU_TARGET: f64 = 0.01;
const IDLE_RSS_TARGET: u64 = 30_000_000;
/// Spread and heal targets.
const RELEASE_TARGET: Duration = Duration::from_secs(1);
const HEAL_TARGET: Duration = Duration::from_secs(5);

/// One line of the table.
struct Row {
    benchmark: String,
    result: String,
    target: &'static str,
    met: Option<bool>,
}

#[test]
#[ignore = "a benchmark: cargo test --release --test runtime_bench -- --ignored --nocapture"]
fn runtime_targets() {
    let mut rows = Vec::new();
    loopback(&mut rows);
    partition(&mut rows);
    println!("\n| benchmark | result | target | met |\n|---|---|---|---|");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        println!(
            "| {} | {} | {} | {met} |",
            row.benchmark, row.result, row.target
        );
    }
}

/// The idle and release-spread rows, on one loopback fleet.
fn loopback(rows: &mut Vec<Row>) {
    let (mut fleet, _scratch) = loopback_fleet(AGENTS);
    form(&mut fleet);
    std::thread::sleep(SETTLE);

    let pids: Vec<u32> = (0..AGENTS)
        .map(|index| fleet.pid(index).expect("running"))
        .collect();
    let before: Vec<u64> = pids.iter().map(|&pid| cpu_ticks(pid)).collect();
    let start = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let window = start.elapsed().as_secs_f64();
    let after: Vec<u64> = pids.iter().map(|&pid| cpu_ticks(pid)).collect();
    let ticks_per_second = clock_ticks_per_second();
    let shares: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(before, after)| (after - before) as f64 / ticks_per_second / window)
        .collect();
    let rss: Vec<u64> = pids
        .iter()
        .map(|&pid| status_kib(pid, "VmRSS") * 1024)
        .collect();
    let threads = status_kib(pids[0], "Threads");
    let cpu_max = shares.iter().copied().fold(0.0, f64::max);
    let rss_max = rss.iter().copied().max().unwrap_or_default();
    rows.push(Row {
        benchmark: format!(
            "idle agent CPU, {AGENTS}-agent loopback mesh, {:.0} s window after formation",
            IDLE_WINDOW.as_secs_f64()
        ),
        result: format!(
            "mean {:.2}%, max {:.2}% of one core",
            100.0 * shares.iter().sum::<f64>() / shares.len() as f64,
            100.0 * cpu_max
        ),
        target: "< 1%",
        met: Some(cpu_max < IDLE_CPU_TARGET),
    });
    rows.push(Row {
        benchmark: "idle agent resident memory (VmRSS), same mesh".to_owned(),
        result: format!(
            "mean {:.1} MB, max {:.1} MB ({threads} threads)",
            rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1e6,
            rss_max as f64 / 1e6
        ),
        target: "< 30 MB",
        met: Some(rss_max < IDLE_RSS_TARGET),
    });

    let mut times = Vec::new();
    for version in 1..=RELEASES {
        let files = fleet
            .draft_release("bench", &format!("[bench]\nrun = {version}\n"))
            .expect("the release is made");
        let start = Instant::now();
        fleet.publish(0, &files).expect("the release is published");
        wait_every(
            &fleet,
            &format!("all {AGENTS} agents run release {version}"),
            FINE_POLL,
            || {
                (0..AGENTS)
                    .all(|index| fleet.release(index, "bench") == Some(version))
                    .then_some(())
            },
        );
        times.push(start.elapsed());
        std::thread::sleep(RELEASE_GAP);
    }
    rows.push(Row {
        benchmark: format!(
            "config release to all {AGENTS} agents on loopback ({RELEASES} releases)"
        ),
        result: spread(&times),
        target: "< 1 s",
        met: Some(times.iter().all(|time| *time < RELEASE_TARGET)),
    });
}

/// The partition-heal row, on a fleet in namespaces.
fn partition(rows: &mut Vec<Row>) {
    let benchmark = format!(
        "{AGENTS} agents in namespaces, cut in two sides of {} and {}, healed: all agree on membership and config ({HEALS} heals)",
        AGENTS / 2,
        AGENTS - AGENTS / 2
    );
    let Some(network) = netns::network_or_skip("runtime_bench partition", AGENTS, AGENTS / 2)
    else {
        rows.push(Row {
            benchmark,
            result: "skipped: network namespaces unavailable".to_owned(),
            target: "< 5 s",
            met: None,
        });
        return;
    };
    let (side_a, side_b) = network.sides();
    let (mut fleet, _scratch) = fleet_at(network.places());
    let ids = form(&mut fleet);
    let mut times = Vec::new();
    for version in 1..=HEALS {
        network.cut();
        wait_for(&fleet, "each side declares the other dead", || {
            (fleet.all_see_dead(&ids, &side_a, &side_b)
                && fleet.all_see_dead(&ids, &side_b, &side_a))
            .then_some(())
        });
        fleet
            .publish_release(0, "bench", &format!("[bench]\nrun = {version}\n"))
            .expect("the release is published");
        network.heal();
        let start = Instant::now();
        wait_every(&fleet, "all agree after the heal", FINE_POLL, || {
            fleet.converged(&[("bench", version)]).then_some(())
        });
        times.push(start.elapsed());
    }
    rows.push(Row {
        benchmark,
        result: spread(&times),
        target: "< 5 s",
        met: Some(times.iter().all(|time| *time < HEAL_TARGET)),
    });
}

/// Median and max of `times`, and each.
fn spread(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let each: Vec<String> = times
        .iter()
        .map(|time| format!("{:.2}", time.as_secs_f64()))
        .collect();
    format!(
        "median {:.2} s, max {:.2} s ({} s)",
        sorted[sorted.len() / 2].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64(),
        each.join(", ")
    )
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("the agent runs");
    // Fields after the command name (which may hold spaces), from field 3
    // (state): utime is field 14 and stime field 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    let field = |at: usize| -> u64 { fields[at].parse().expect("a tick count") };
    field(11) + field(12)
}

/// A numeric field of /proc/PID/status (`VmRSS` in KiB, `Threads`).
fn status_kib(pid: u32, name: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("the field is present")
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}
