//! The HTML report of a run, rendered in a real headless browser: Debian's
//! Chromium parses it (the DOM it dumps holds every lane) and paints it
//! (the screenshot is a picture, not a blank page). Skips when Chromium is
//! not installed, unless `FLEETMESH_BROWSER_REQUIRED=1` (as in CI).

use std::path::Path;
use std::process::{Command, Output};

fn chromium() -> Option<String> {
    let candidate = std::env::var("FLEETMESH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("FLEETMESH_BROWSER_REQUIRED").is_none(),
        "FLEETMESH_BROWSER_REQUIRED is set but {candidate} does not run: install Debian's chromium"
    );
    eprintln!("skipping the browser part: {candidate} is not installed");
    None
}

/// Chromium headless, as this machine's closed network needs it: no
/// background connections, a fresh profile.
fn headless(browser: &str, profile: &Path, args: &[&str]) -> Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1300,1200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

#[test]
fn a_run_report_is_one_file_that_a_browser_renders() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let report = dir.path().join("report.html");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/lease-takeover.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["sim", "run", scenario, "--report"])
        .arg(&report)
        .output()
        .expect("fleetmesh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let html = std::fs::read_to_string(&report).expect("the report was written");
    // Self-contained: nothing to fetch, no script.
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "fetches or scripts"
    );
    assert_eq!(
        html.matches("class=\"lane\"").count(),
        30,
        "one lane per agent"
    );
    assert!(html.contains("singleton:backup"), "the lease lane");
    assert!(
        html.contains("class=\"crash\""),
        "the holder crashes are shaded"
    );
    assert!(html.contains("crash detection times"), "the plots");

    let Some(browser) = chromium() else {
        return;
    };
    let url = format!("file://{}", report.display());
    let dom = headless(
        &browser,
        &dir.path().join("profile-dom"),
        &["--dump-dom", &url],
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("class=\"lane\"").count(),
        30,
        "the browser's DOM lacks the lanes: {}",
        &dom[..dom.len().min(500)]
    );
    assert!(dom.contains("every invariant held"), "the verdict");

    let shot = dir.path().join("report.png");
    let painted = headless(
        &browser,
        &dir.path().join("profile-shot"),
        &[&format!("--screenshot={}", shot.display()), &url],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|error| {
        panic!(
            "no screenshot ({error}): {}",
            String::from_utf8_lossy(&painted.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // A blank page of this size compresses to a few KiB; lanes, bars and
    // text take far more.
    assert!(
        png.len() > 30_000,
        "the screenshot looks blank: {} bytes",
        png.len()
    );
}
