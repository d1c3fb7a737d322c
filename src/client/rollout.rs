//! `fleetmesh config rollout status DOC`: where the staged rollout of a
//! document stands, as one agent sees it (docs/rollouts.md).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::table::{cell, list, print_json, table};
use super::{Client, Target};

/// Longest `--watch` runs: a rollout still under way after a day wants a
/// human's look, not a terminal left open.
const WATCH_MAX: Duration = Duration::from_secs(24 * 3600);
/// How often `--watch` asks the agent again.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Width of a wave's progress bar, in characters.
const BAR_WIDTH: usize = 20;

/// `fleetmesh config rollout status`: the waves of the staged release of
/// `doc` this agent runs or waits for. With `watch` on a terminal, the
/// view is redrawn every second until the rollout ends (every wave open,
/// or a gate failed).
pub fn rollout_status(target: &Target, doc: &str, watch: bool) -> anyhow::Result<()> {
    let client = Client::new(&target.agent)?;
    let live = watch && !target.json && std::io::stdout().is_terminal();
    let started = Instant::now();
    loop {
        let answer = client.get("/v1/releases")?;
        let Some(release) = list(&answer, "releases")
            .iter()
            .find(|release| release["doc"] == doc)
            .cloned()
        else {
            bail!(
                "the agent at {} runs no release of document {doc}: publish one with `fleetmesh config publish`",
                client.at()
            );
        };
        let rollout = &release["rollout"];
        if rollout.is_null() {
            bail!(
                "document {doc} has no staged release at the agent at {}: it runs version {} and waits for none (stage one with `fleetmesh config release --rollout PLAN.toml`)",
                client.at(),
                cell(&release["version"])
            );
        }
        if target.json {
            return print_json(rollout);
        }
        let view = render(doc, &release, rollout);
        if live {
            // Clear the screen and draw again in place.
            print!("\x1b[2J\x1b[H{view}");
            std::io::stdout().flush()?;
        } else {
            print!("{view}");
        }
        let over = !rollout["failed_wave"].is_null()
            || rollout["open_waves"].as_u64() == Some(list(rollout, "waves").len() as u64);
        if !live || over || started.elapsed() >= WATCH_MAX {
            return Ok(());
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// The status view of one rollout.
fn render(doc: &str, release: &Value, rollout: &Value) -> String {
    let waves = list(rollout, "waves");
    let state = match (&rollout["failed_wave"], release["reverted_to"].as_u64()) {
        (Value::Null, _) => format!(
            "{} of {} waves open",
            cell(&rollout["open_waves"]),
            waves.len()
        ),
        (failed, Some(to)) => {
            format!(
                "wave {} failed its gate: halted, this agent went back to version {to}",
                cell(failed)
            )
        }
        (failed, None) => format!("wave {} failed its gate: halted", cell(failed)),
    };
    let mut out = format!(
        "{doc} version {} (revert to {}): {state}\nthis agent: wave {}, runs version {}{}\n",
        cell(&rollout["version"]),
        cell(&rollout["revert_to"]),
        cell(&rollout["own_wave"]),
        cell(&release["version"]),
        match rollout["bake_left_millis"].as_u64() {
            Some(left) => format!(", {:.0} s of its bake left", left as f64 / 1e3),
            None => String::new(),
        }
    );
    let rows: Vec<Vec<String>> = waves
        .iter()
        .map(|wave| {
            vec![
                cell(&wave["wave"]),
                cell(&wave["hosts"]),
                cell(&wave["passed"]),
                cell(&wave["failed"]),
                format!("{} s", wave["bake_millis"].as_u64().unwrap_or(0) / 1_000),
                bar(wave),
                cell(&wave["verdict"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "WAVE", "HOSTS", "PASSED", "FAILED", "BAKE", "PROGRESS", "STATE",
        ],
        &rows,
    ));
    out
}

/// A wave's share of attested hosts as a bar: `#` passed, `x` failed.
fn bar(wave: &Value) -> String {
    let hosts = wave["hosts"].as_u64().unwrap_or(0).max(1) as usize;
    let of = |field: &str| wave[field].as_u64().unwrap_or(0) as usize * BAR_WIDTH / hosts;
    let failed = of("failed").min(BAR_WIDTH);
    let passed = of("passed").min(BAR_WIDTH - failed);
    format!(
        "[{}{}{}]",
        "#".repeat(passed),
        "x".repeat(failed),
        ".".repeat(BAR_WIDTH - passed - failed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bar_shows_passes_and_failures_within_its_width() {
        let wave = json!({ "hosts": 10, "passed": 5, "failed": 2 });
        assert_eq!(bar(&wave), "[##########xxxx......]");
        let over = json!({ "hosts": 1, "passed": 3, "failed": 3 });
        assert_eq!(
            bar(&over).len(),
            BAR_WIDTH + 2,
            "never wider than its width"
        );
        assert_eq!(bar(&json!({})), format!("[{}]", ".".repeat(BAR_WIDTH)));
    }

    #[test]
    fn the_view_says_when_a_gate_failed_and_where_the_agent_went() {
        let release = json!({ "version": 7, "reverted_to": 6 });
        let rollout = json!({
            "version": 7, "revert_to": 6, "open_waves": 1, "failed_wave": 0,
            "own_wave": 0, "bake_left_millis": null,
            "waves": [{ "wave": 0, "hosts": 10, "passed": 0, "failed": 2, "bake_millis": 30000, "verdict": "failed" }],
        });
        let view = render("app", &release, &rollout);
        assert!(
            view.contains("wave 0 failed its gate: halted, this agent went back to version 6"),
            "{view}"
        );
        assert!(view.contains("failed"), "{view}");
    }
}
