//! Real agents: `fleetmesh agent` processes on loopback, made and admitted
//! with the operator CLI as an operator would, watched through their admin
//! APIs. Every wait is bounded in time and in polls; every agent is killed
//! when the test ends, pass or fail.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Agents in the test fleet.
const AGENTS: usize = 5;
/// Longest any one wait may take.
const WAIT: Duration = Duration::from_secs(90);
/// Pause between two polls of a wait.
const POLL: Duration = Duration::from_millis(250);

fn fleetmesh(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the fleetmesh binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "fleetmesh {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Makes a key file; returns its public key.
fn keygen(dir: &Path, out: &str) -> String {
    let stdout = fleetmesh(dir, &["keygen", "--out", out]);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("public key "))
        .expect("keygen prints the public key")
        .to_owned()
}

/// A loopback port nobody listens on right now, for UDP or TCP.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free UDP port")
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free TCP port")
        .port()
}

/// `GET path` on the admin API at `port`; `None` while nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn get_json(port: u16, path: &str) -> Option<Value> {
    match get(port, path)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Polls `done` until it returns `Some`, at most [`WAIT`]; panics with
/// `what` and the agents' logs otherwise.
fn wait_for<T>(fleet: &Fleet, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let polls = (WAIT.as_millis() / POLL.as_millis()) as usize;
    for _ in 0..polls {
        if let Some(value) = done() {
            eprintln!("{what}: after {:.1}s", start.elapsed().as_secs_f64());
            return value;
        }
        if start.elapsed() > WAIT {
            break;
        }
        std::thread::sleep(POLL);
    }
    panic!(
        "timed out after {:?} waiting for {what}\n{}",
        start.elapsed(),
        fleet.logs()
    );
}

/// One agent's files and process.
struct Node {
    dir: PathBuf,
    admin: u16,
    child: Option<Child>,
}

/// The test fleet: its files and its agents, killed on drop.
struct Fleet {
    /// Holds the files until the fleet is dropped.
    _scratch: TempDir,
    nodes: Vec<Node>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Fleet {
    /// Keys, a trust chain, and for each of `count` nodes a state directory
    /// with its key, certificate and the chain, plus its agent config.
    fn new(count: usize) -> Fleet {
        let scratch = tempfile::tempdir().expect("temporary directory");
        let root = scratch.path();
        let admin_key = keygen(root, "root.key");
        fleetmesh(
            root,
            &[
                "fleet",
                "init",
                "--name",
                "loopback",
                "--root-key",
                "root.key",
                "--key",
                &format!("{admin_key}=admit,config"),
                "--out",
                "trust.json",
            ],
        );
        let ports: Vec<u16> = (0..count).map(|_| free_udp_port()).collect();
        let mut nodes = Vec::new();
        for (index, port) in ports.iter().enumerate() {
            let dir = root.join(format!("node-{index}"));
            fs::create_dir(&dir).expect("state directory");
            let public = keygen(root, &format!("node-{index}/node.key"));
            fleetmesh(
                root,
                &[
                    "fleet",
                    "admit",
                    "--trust",
                    "trust.json",
                    "--admit-key",
                    "root.key",
                    "--node",
                    &public,
                    "--name",
                    &format!("node-{index}"),
                    "--tag",
                    "role=test",
                    "--out",
                    &format!("node-{index}/node.cert.json"),
                ],
            );
            fs::copy(root.join("trust.json"), dir.join("trust.json")).expect("copy trust");
            // Every agent bootstraps from the first two (the first two from
            // each other): a restarted one finds the fleet again the same
            // way an operator's would.
            let bootstrap: Vec<String> = ports[..2]
                .iter()
                .filter(|&&other| other != *port)
                .map(|other| format!("\"127.0.0.1:{other}\""))
                .collect();
            let admin = free_tcp_port();
            fs::write(
                dir.join("agent.toml"),
                format!(
                    "state_dir = \".\"\nlisten = [\"127.0.0.1:{port}\"]\nbootstrap = [{}]\nmdns = false\nadmin = \"127.0.0.1:{admin}\"\nlog_format = \"json\"\nlog_level = \"info\"\n",
                    bootstrap.join(", ")
                ),
            )
            .expect("agent config");
            nodes.push(Node {
                dir,
                admin,
                child: None,
            });
        }
        Fleet {
            _scratch: scratch,
            nodes,
        }
    }

    fn start(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("agent.log"))
            .expect("log file");
        // Checks and actions run in the agent's working directory: each
        // node's own.
        let child = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(["agent", "--config"])
            .arg(node.dir.join("agent.toml"))
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the agent starts");
        node.child = Some(child);
    }

    /// Each agent's log, for a failure message.
    fn logs(&self) -> String {
        let mut all = String::new();
        for (index, node) in self.nodes.iter().enumerate() {
            let log = fs::read_to_string(node.dir.join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            all.push_str(&format!("--- node-{index} (last lines of its log)\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// What agent `index` believes: member id -> (state, incarnation).
    fn view(&self, index: usize) -> Option<BTreeMap<String, (String, u64)>> {
        let members = get_json(self.nodes[index].admin, "/v1/members")?;
        members["members"]
            .as_array()?
            .iter()
            .map(|member| {
                Some((
                    member["id"].as_str()?.to_owned(),
                    (
                        member["state"].as_str()?.to_owned(),
                        member["incarnation"].as_u64()?,
                    ),
                ))
            })
            .collect()
    }

    /// The release version agent `index` runs for document `doc`.
    fn release(&self, index: usize, doc: &str) -> Option<u64> {
        let releases = get_json(self.nodes[index].admin, "/v1/releases")?;
        releases["releases"]
            .as_array()?
            .iter()
            .find(|release| release["doc"] == doc)?["version"]
            .as_u64()
    }

    /// Drafts `content` (TOML) as document `doc`, releases it with the
    /// operator CLI, and publishes the store's files to agent 0.
    fn publish_release(&self, doc: &str, content: &str) {
        let root = self._scratch.path();
        let source = format!("{doc}.toml");
        fs::write(root.join(&source), content).expect("content");
        fleetmesh(
            root,
            &[
                "config",
                "draft",
                "--trust",
                "trust.json",
                "--key",
                "root.key",
                "--doc",
                doc,
                "--from",
                &source,
                "--store",
                "store",
            ],
        );
        fleetmesh(
            root,
            &[
                "config",
                "release",
                "--trust",
                "trust.json",
                "--key",
                "root.key",
                "--doc",
                doc,
                "--store",
                "store",
            ],
        );
        let mut published: Vec<String> = fs::read_dir(root.join("store"))
            .expect("store")
            .map(|entry| entry.expect("entry").path().display().to_string())
            .collect();
        // Changes before the releases that name them (change-* sorts first).
        published.sort();
        let admin = format!("127.0.0.1:{}", self.nodes[0].admin);
        let mut args = vec!["publish", "--agent", &admin];
        args.extend(published.iter().map(String::as_str));
        let stdout = fleetmesh(root, &args);
        assert!(stdout.contains("published"), "{stdout}");
    }

    fn id(&self, index: usize) -> Option<String> {
        let info = get_json(self.nodes[index].admin, "/v1/agent")?;
        info["id"].as_str().map(str::to_owned)
    }

    /// Whether every agent of `indices` sees exactly `alive` alive.
    fn all_see_alive(&self, indices: &[usize], alive: &[String]) -> bool {
        indices.iter().all(|&index| {
            self.view(index).is_some_and(|view| {
                alive
                    .iter()
                    .all(|id| view.get(id).is_some_and(|(state, _)| state == "alive"))
            })
        })
    }

    fn kill(&mut self, index: usize) {
        let mut child = self.nodes[index].child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("reaped");
    }
}

#[test]
fn five_agents_converge_detect_a_crash_and_take_a_restart_back() {
    let mut fleet = Fleet::new(AGENTS);
    for index in 0..AGENTS {
        fleet.start(index);
    }
    let all: Vec<usize> = (0..AGENTS).collect();
    let ids: Vec<String> = wait_for(&fleet, "every admin API answers", || {
        all.iter().map(|&index| fleet.id(index)).collect()
    });
    wait_for(&fleet, "all 5 agents see all 5 alive", || {
        fleet.all_see_alive(&all, &ids).then_some(())
    });
    // The admin API serves the core's counters.
    let (status, metrics) = get(fleet.nodes[0].admin, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fleetmesh_members{state=\"alive\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleetmesh_messages_received_total"),
        "{metrics}"
    );
    assert_eq!(
        get(fleet.nodes[0].admin, "/healthz").map(|(status, _)| status),
        Some(200)
    );

    // A config release, made and signed with the operator CLI and handed
    // to one agent, reaches them all, content included.
    fleet.publish_release("app", "[web]\nport = 8080\n");
    wait_for(&fleet, "every agent runs release 1 of app", || {
        all.iter()
            .all(|&index| fleet.release(index, "app") == Some(1))
            .then_some(())
    });
    let releases = get_json(fleet.nodes[3].admin, "/v1/releases").expect("releases");
    assert_eq!(releases["releases"][0]["content"]["web"]["port"], 8080);

    // A crash: the others declare it dead.
    let victim = AGENTS - 1;
    let before = fleet.view(0).expect("view")[&ids[victim]].1;
    fleet.kill(victim);
    let survivors: Vec<usize> = (0..victim).collect();
    wait_for(
        &fleet,
        "the survivors declare the killed agent dead",
        || {
            survivors
                .iter()
                .all(|&index| {
                    fleet.view(index).is_some_and(|view| {
                        view.get(&ids[victim])
                            .is_some_and(|(state, _)| state == "dead")
                    })
                })
                .then_some(())
        },
    );

    // What it must not forget was written before it was acted on.
    let durable = fs::read_to_string(fleet.nodes[victim].dir.join("durable.json"))
        .expect("the killed agent left its durable state");
    assert!(durable.contains("\"app\""), "{durable}");

    // A restart from the same state directory: the same node, restored,
    // alive again everywhere at a higher incarnation (it refuted its death).
    fleet.start(victim);
    let id = wait_for(&fleet, "the restarted agent's admin API answers", || {
        fleet.id(victim)
    });
    assert_eq!(id, ids[victim], "the restarted agent kept its identity");
    wait_for(&fleet, "all 5 see the restarted agent alive again", || {
        fleet.all_see_alive(&all, &ids).then_some(())
    });
    let log = fs::read_to_string(fleet.nodes[victim].dir.join("agent.log")).expect("log");
    let restarted = log
        .lines()
        .filter(|line| line.contains("agent started"))
        .nth(1)
        .expect("two starts logged");
    assert!(restarted.contains("\"restored\":true"), "{restarted}");
    assert_eq!(fleet.release(victim, "app"), Some(1));
    let after = fleet.view(0).expect("view")[&ids[victim]].1;
    assert!(after > before, "incarnation {after} should exceed {before}");
    let trust = fs::read_to_string(fleet.nodes[victim].dir.join("trust.json")).expect("trust");
    assert!(trust.contains("fleetmesh-trust-chain"));

    // A graceful stop: SIGTERM, a clean exit, and the others see it left.
    let leaver = 2;
    let mut child = fleet.nodes[leaver].child.take().expect("running");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = wait_for(&fleet, "the agent exits after SIGTERM", || {
        child.try_wait().expect("wait")
    });
    assert!(exit.success(), "exit status {exit:?}\n{}", fleet.logs());
    let others: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&index| index != leaver)
        .collect();
    wait_for(&fleet, "the others see the stopped agent as left", || {
        others
            .iter()
            .all(|&index| {
                fleet.view(index).is_some_and(|view| {
                    view.get(&ids[leaver])
                        .is_some_and(|(state, _)| state == "left")
                })
            })
            .then_some(())
    });
}

#[test]
fn a_released_policy_is_checked_and_remediated_by_the_agents_executors() {
    let mut fleet = Fleet::new(2);
    fleet.start(0);
    fleet.start(1);
    let ids: Vec<String> = wait_for(&fleet, "both admin APIs answer", || {
        (0..2).map(|index| fleet.id(index)).collect()
    });
    wait_for(&fleet, "both agents see both alive", || {
        fleet.all_see_alive(&[0, 1], &ids).then_some(())
    });
    // An exec check that fails while `broken` exists in the node's
    // directory, and a local action that records its environment and
    // repairs it. `max_unhealthy = 1`: one of two nodes failing is not a
    // systemic fault here.
    fleet.publish_release(
        "remediation",
        r#"
[checks.marker]
kind = "exec"
command = ["sh", "-c", "test ! -e broken"]
select = "role=test"
interval_ms = 200
timeout_ms = 150
fall = 2
rise = 1

[rules.marker-down]
check = "marker"
select = "role=test"
max_unhealthy = 1
steps = [
  { action = "repair", class = "local", timeout_ms = 5000, command = ["sh", "-c", "echo $FLEETMESH_RULE $FLEETMESH_EPOCH $FLEETMESH_ACTION > repaired; rm broken"] },
]
"#,
    );
    let health = |index: usize| -> Option<String> {
        let reports = get_json(fleet.nodes[index].admin, "/v1/health")?;
        reports["reports"]
            .as_array()?
            .iter()
            .find(|report| report["node"] == ids[0].as_str() && report["check"] == "marker")
            .and_then(|report| report["state"].as_str().map(str::to_owned))
    };
    wait_for(&fleet, "node 0 reports the check healthy", || {
        (health(0).as_deref() == Some("healthy")).then_some(())
    });
    fs::write(fleet.nodes[0].dir.join("broken"), "").expect("break the service");
    let outcome = wait_for(&fleet, "node 1 holds node 0's successful outcome", || {
        let ledger = get_json(fleet.nodes[1].admin, "/v1/ledger")?;
        ledger["records"]
            .as_array()?
            .iter()
            .find(|record| {
                record["target_id"] == ids[0].as_str() && record["record"]["kind"] == "outcome"
            })
            .cloned()
    });
    assert_eq!(outcome["rule"], "marker-down");
    assert_eq!(outcome["record"]["success"], true, "{outcome}");
    assert_eq!(outcome["record"]["exit_code"], 0, "{outcome}");
    let repaired = fs::read_to_string(fleet.nodes[0].dir.join("repaired")).expect("the action ran");
    assert_eq!(repaired.trim(), "marker-down 0 repair");
    assert!(
        !fleet.nodes[1].dir.join("repaired").exists(),
        "only the broken node acts"
    );
    wait_for(
        &fleet,
        "node 0's check is healthy again, as node 1 sees it",
        || (health(1).as_deref() == Some("healthy")).then_some(()),
    );
    let (_, metrics) = get(fleet.nodes[0].admin, "/metrics").expect("metrics");
    assert!(
        metrics.contains("fleetmesh_remedy_successes_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_bad_config_or_state_directory_is_refused_with_what_to_do() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let run = |config: &str| {
        fs::write(scratch.path().join("agent.toml"), config).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(["agent", "--config"])
            .arg(scratch.path().join("agent.toml"))
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let stderr = run("state_dir = \".\"\nlisten_addr = []\n");
    assert!(stderr.contains("listen_addr"), "{stderr}");
    let stderr = run("state_dir = \"missing\"\nadmin = \"off\"\nmdns = false\n");
    assert!(stderr.contains("does not exist"), "{stderr}");
    let stderr = run("state_dir = \".\"\nadmin = \"off\"\nmdns = false\n");
    assert!(stderr.contains("fleetmesh keygen"), "{stderr}");
}
