//! `fleetmesh demo`: a mesh of real agents on this host, for a newcomer's
//! first look. It starts N agents as processes on loopback with a
//! throwaway fleet ([`fleetmesh_runtime::local`]), releases a remediation
//! policy with one check and one rule, breaks the demo service on one
//! node, and prints each stage as it happens: the mesh forms, the config
//! reaches every agent, the check fails, the remediation runs, the check
//! is healthy again. With `--hold` the mesh then stays up until Enter or a
//! signal, for the newcomer to poke with the CLI. Then it stops every
//! agent (SIGTERM, a wait, a kill past it) and removes its temporary
//! directory, which holds the fleet's keys.
//!
//! Every stage has a deadline; one missed stops the demo with what did
//! not happen and the agents' last log lines, exit status 1. SIGINT
//! (Ctrl-C), SIGTERM or SIGHUP, to the demo or to its process group, stop
//! it the same way at once, exit status 128 + the signal's number. The
//! agents die with the demo even when it is killed with SIGKILL (they get
//! SIGKILL as it ends); only then is the directory left behind.

use std::fs;
use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetmesh_runtime::local::{self, LocalFleet, Stopped};
use serde_json::Value;

use crate::interrupt;

/// The demo service is up while this file exists in a node's directory.
const SERVICE_FILE: &str = "service-up";
/// The policy: the check `service` tests the file (the agent runs checks
/// in its working directory, the node's own), and the rule `service-down`
/// recreates it. The action sleeps a second first, as a real restart
/// takes a moment: that keeps the failure on screen long enough to be
/// seen. `max_unhealthy = 0.5`: one node of the demo failing is not a
/// systemic fault.
const POLICY: &str = r#"
[checks.service]
kind = "exec"
command = ["test", "-f", "service-up"]
select = "role=local"
interval_ms = 300
timeout_ms = 250
fall = 2
rise = 1

[rules.service-down]
check = "service"
select = "role=local"
max_unhealthy = 0.5
steps = [
  { action = "restart", class = "local", timeout_ms = 5000, command = ["sh", "-c", "sleep 1; touch service-up"] },
]
"#;

/// The policy's document, check and rule.
const POLICY_DOC: &str = fleetmesh_node::POLICY_DOC;
const CHECK: &str = "service";
const RULE: &str = "service-down";

/// Deadlines of the stages.
const MESH_FORMS: Duration = Duration::from_secs(45);
const CONFIG_SPREADS: Duration = Duration::from_secs(20);
const CHECK_RUNS: Duration = Duration::from_secs(20);
const CHECK_FAILS: Duration = Duration::from_secs(20);
const REMEDIATION_RUNS: Duration = Duration::from_secs(30);
const CHECK_HEALS: Duration = Duration::from_secs(20);
/// How long agents get to leave and exit after SIGTERM (their leave
/// takes 2 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `--hold` keeps the mesh up without Enter or a signal.
const HOLD_MAX: Duration = Duration::from_secs(3600);

/// The demo stopped because a stop signal came (its number).
#[derive(Debug)]
struct Interrupted(libc::c_int);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "interrupted by {}", interrupt::name(self.0))
    }
}

impl std::error::Error for Interrupted {}

/// An error when a stop signal has come.
fn check_interrupt() -> anyhow::Result<()> {
    match interrupt::received() {
        Some(signal) => Err(Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// [`local::wait_for`], ending early with [`Interrupted`] on a signal.
fn wait_for<T>(
    what: &str,
    within: Duration,
    mut done: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let waited = local::wait_for(what, within, || match interrupt::received() {
        Some(signal) => Some(Err(Interrupted(signal))),
        None => done().map(Ok),
    })?;
    Ok(waited?)
}

/// Prints a line for the newcomer; a closed standard output loses the
/// line but not the demo, which still stops its agents and cleans up.
fn print(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Runs the demo with `nodes` agents; keeps the mesh up after the stages
/// if `hold`, and the temporary directory if `keep`. The exit status: 0,
/// or 128 + the number of the signal that stopped it.
pub fn run(nodes: usize, keep: bool, hold: bool) -> anyhow::Result<ExitCode> {
    interrupt::watch()?;
    let scratch = tempfile::Builder::new()
        .prefix("fleetmesh-demo-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let binary = std::env::current_exe().context("cannot find the fleetmesh binary itself")?;
    let start = Instant::now();
    let say = |line: &str| print(&format!("[{:5.1}s] {line}", start.elapsed().as_secs_f64()));
    let mut fleet = match LocalFleet::create(&binary, scratch.path(), nodes) {
        Ok(fleet) => fleet,
        // A signal to the process group ends the commands making the files.
        Err(error) => return interrupted_status().ok_or(error),
    };
    say(&format!(
        "made a throwaway fleet of {nodes} nodes in {} (operator key, trust chain, certificates)",
        scratch.path().display()
    ));
    let result = stages(&mut fleet, &say).and_then(|()| {
        say("done: the mesh healed its own service");
        if hold { hold_up(&fleet, &say) } else { Ok(()) }
    });
    let stopped = fleet.stop_all(STOP_TIMEOUT);
    let killed = stopped
        .iter()
        .filter(|end| matches!(end, Stopped::Killed))
        .count();
    let failed_exits = stopped
        .iter()
        .filter(|end| matches!(end, Stopped::Exited(status) if !status.success()))
        .count();
    say(&format!(
        "stopped {} agents ({killed} killed after {} s, {failed_exits} exited with an error)",
        stopped.len(),
        STOP_TIMEOUT.as_secs()
    ));
    let logs = fleet.logs();
    drop(fleet);
    if keep {
        let kept = scratch.keep();
        say(&format!("kept {}", kept.display()));
    } else {
        scratch
            .close()
            .context("cannot remove the demo's temporary directory")?;
    }
    // A signal to the whole process group also reaches the agents and the
    // commands the demo runs: whatever failed then, the signal is the cause.
    if let Some(status) = interrupted_status() {
        return Ok(status);
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error.context(format!("the demo stopped\n{logs}"))),
    }
}

/// After a stop signal: says so, and gives the exit status 128 + its
/// number, as a shell reports a command the signal ended.
fn interrupted_status() -> Option<ExitCode> {
    let signal = interrupt::received()?;
    print(&format!("{}: stopped", Interrupted(signal)));
    Some(ExitCode::from(128 + u8::try_from(signal).unwrap_or(0)))
}

/// `--hold`: says how to reach the mesh, and waits for Enter, a stop
/// signal, or [`HOLD_MAX`].
fn hold_up(fleet: &LocalFleet, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let admin = &fleet.nodes[0].admin.endpoint;
    say(&format!(
        "the mesh stays up until you press Enter or Ctrl-C (at most {} min); from another terminal:",
        HOLD_MAX.as_secs() / 60
    ));
    for command in ["members", "health", "remediations", "leases"] {
        print(&format!("    fleetmesh {command} --admin {admin}"));
    }
    print(&format!(
        "    (any node's socket: {}/node-N/admin.sock; its log: node-N/agent.log)",
        fleet.dir().display()
    ));
    let (enter_to, enter) = mpsc::channel();
    // Blocks on standard input; ends with the process. End of input (no
    // terminal) is not Enter: then only a signal or the bound ends the hold.
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::stdin()
            .read_line(&mut line)
            .is_ok_and(|read| read > 0)
        {
            let _ = enter_to.send(());
        }
    });
    let polls = HOLD_MAX.as_millis() / local::POLL.as_millis();
    for _ in 0..polls {
        check_interrupt()?;
        if enter.try_recv().is_ok() {
            return Ok(());
        }
        std::thread::sleep(local::POLL);
    }
    say(&format!("held {} min: stopping", HOLD_MAX.as_secs() / 60));
    Ok(())
}

/// The demo's stages, in order; the first that misses its deadline ends
/// it.
fn stages(fleet: &mut LocalFleet, say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let count = fleet.nodes.len();
    let all: Vec<usize> = (0..count).collect();
    for node in &fleet.nodes {
        fs::write(node.dir.join(SERVICE_FILE), "").context("cannot start the demo service")?;
    }
    for index in 0..count {
        fleet.start(index)?;
    }
    say(&format!(
        "started {count} agents on loopback (admin API of node-0: {})",
        fleet.nodes[0].admin.endpoint
    ));
    let ids: Vec<String> = wait_for("every agent's admin API answering", MESH_FORMS, || {
        all.iter().map(|&index| fleet.id(index)).collect()
    })?;
    wait_for(
        &format!("every agent seeing all {count} alive"),
        MESH_FORMS,
        || fleet.all_see_alive(&all, &ids).then_some(()),
    )?;
    say(&format!(
        "the mesh formed: every agent sees all {count} alive"
    ));

    fleet.publish_release(0, POLICY_DOC, POLICY)?;
    say(&format!(
        "released the policy (check `{CHECK}`, rule `{RULE}`) and published it to node-0"
    ));
    wait_for(
        "the policy release reaching every agent",
        CONFIG_SPREADS,
        || {
            all.iter()
                .all(|&index| fleet.release(index, POLICY_DOC) == Some(1))
                .then_some(())
        },
    )?;
    say(&format!("every agent runs release 1 of `{POLICY_DOC}`"));
    wait_for("every node reporting the check healthy", CHECK_RUNS, || {
        ids.iter()
            .all(|id| fleet.health(0, id, CHECK).as_deref() == Some("healthy"))
            .then_some(())
    })?;
    say(&format!("every node reports `{CHECK}` healthy"));

    let victim = count - 1;
    let name = fleet.nodes[victim].name.clone();
    let broken = Instant::now();
    fs::remove_file(fleet.nodes[victim].dir.join(SERVICE_FILE))
        .context("cannot break the demo service")?;
    say(&format!(
        "broke the service on {name} (removed its {SERVICE_FILE})"
    ));
    // The node's own view first: it knows before anyone else. A ledger
    // outcome means the failure came and went between two looks.
    wait_for(&format!("{name}'s check failing"), CHECK_FAILS, || {
        let unhealthy = fleet.health(victim, &ids[victim], CHECK).as_deref() == Some("unhealthy");
        (unhealthy || outcome(fleet, victim, &ids[victim]).is_some()).then_some(())
    })?;
    say(&format!("{name}: check `{CHECK}` is unhealthy"));
    let record = wait_for(
        &format!("the remediation's outcome on {name} reaching node-0"),
        REMEDIATION_RUNS,
        || outcome(fleet, 0, &ids[victim]),
    )?;
    say(&format!(
        "{name}: rule `{RULE}` ran its action: {} (exit code {}), as node-0's ledger shows",
        if record["record"]["success"] == true {
            "succeeded"
        } else {
            "failed"
        },
        record["record"]["exit_code"]
    ));
    wait_for(
        &format!("{name}'s check healthy again, as node-0 sees it"),
        CHECK_HEALS,
        || (fleet.health(0, &ids[victim], CHECK).as_deref() == Some("healthy")).then_some(()),
    )?;
    say(&format!(
        "{name}: check `{CHECK}` healthy again, {:.1} s after the break",
        broken.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The outcome record of the demo rule on `target` (an id), as node
/// `index`'s ledger holds it.
fn outcome(fleet: &LocalFleet, index: usize, target: &str) -> Option<Value> {
    let ledger = fleet.get_json(index, "/v1/ledger")?;
    ledger["records"]
        .as_array()?
        .iter()
        .find(|record| {
            record["target_id"] == target
                && record["rule"] == RULE
                && record["record"]["kind"] == "outcome"
        })
        .cloned()
}
