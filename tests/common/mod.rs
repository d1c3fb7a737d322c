//! What the tests of real agents share: the operator CLI, a throwaway
//! fleet made with it (keys, trust chain, certificates, agent configs), its
//! agent processes, and bounded waits on their admin APIs. The agents run
//! on loopback or, with [`netns`], each in a network namespace of its own.
//!
//! Each test crate compiles this module by itself and uses only part of it.
#![allow(dead_code)]

/// Network namespaces for partition tests.
pub mod netns;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Longest any one wait may take.
pub const WAIT: Duration = Duration::from_secs(90);
/// Pause between two polls of a wait.
pub const POLL: Duration = Duration::from_millis(250);

/// Runs the fleetmesh binary in `dir`; panics with its output when it fails.
pub fn fleetmesh(dir: &Path, args: &[&str]) -> String {
    run_checked(
        Command::new(env!("CARGO_BIN_EXE_fleetmesh")).args(args),
        dir,
    )
}

fn run_checked(command: &mut Command, dir: &Path) -> String {
    let output = command
        .current_dir(dir)
        .output()
        .expect("the fleetmesh binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Makes a key file; returns its public key.
pub fn keygen(dir: &Path, out: &str) -> String {
    let stdout = fleetmesh(dir, &["keygen", "--out", out]);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("public key "))
        .expect("keygen prints the public key")
        .to_owned()
}

/// A loopback UDP port nobody listens on right now.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free UDP port")
        .port()
}

/// A loopback TCP port nobody listens on right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free TCP port")
        .port()
}

/// `GET path` on the admin API at `port` of this namespace's loopback;
/// `None` while nothing answers.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    request(stream, path)
}

fn request(mut stream: TcpStream, path: &str) -> Option<(u16, String)> {
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

/// [`get`] of a JSON answer; `None` unless it is 200 and JSON.
pub fn get_json(port: u16, path: &str) -> Option<Value> {
    parse_ok(get(port, path)?)
}

fn parse_ok(answer: (u16, String)) -> Option<Value> {
    match answer {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Polls `done` until it returns `Some`, at most [`WAIT`] and every
/// `poll`; panics with `what` and the agents' logs otherwise.
pub fn wait_every<T>(
    fleet: &Fleet,
    what: &str,
    poll: Duration,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    let polls = (WAIT.as_millis() / poll.as_millis().max(1)) as usize;
    for _ in 0..polls {
        if let Some(value) = done() {
            eprintln!("{what}: after {:.1}s", start.elapsed().as_secs_f64());
            return value;
        }
        if start.elapsed() > WAIT {
            break;
        }
        std::thread::sleep(poll);
    }
    panic!(
        "timed out after {:?} waiting for {what}\n{}",
        start.elapsed(),
        fleet.logs()
    );
}

/// [`wait_every`] at the usual [`POLL`].
pub fn wait_for<T>(fleet: &Fleet, what: &str, done: impl FnMut() -> Option<T>) -> T {
    wait_every(fleet, what, POLL, done)
}

/// Where one agent runs: its QUIC address, its admin port on the loopback
/// of its network namespace, and that namespace (`None`: this process's).
pub struct Place {
    /// The QUIC address the agent listens on.
    pub listen: SocketAddr,
    /// The admin API's port on 127.0.0.1.
    pub admin: u16,
    /// The network namespace it runs in.
    pub netns: Option<String>,
}

/// One agent's files and process.
pub struct Node {
    /// Its state directory, also its working directory.
    pub dir: PathBuf,
    /// The node's public key (hex), as `keygen` printed it.
    pub key: String,
    /// The admin API's port on 127.0.0.1 of its namespace.
    pub admin: u16,
    /// Its network namespace; `None`: this process's.
    pub netns: Option<String>,
    /// The agent process, while it runs.
    pub child: Option<Child>,
}

impl Node {
    /// `GET path` on this node's admin API, from inside its namespace.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        match &self.netns {
            None => get(self.admin, path),
            Some(name) => {
                let stream = netns::connect_loopback(name, self.admin).ok()?;
                request(stream, path)
            }
        }
    }

    /// [`Node::get`] of a JSON answer.
    pub fn get_json(&self, path: &str) -> Option<Value> {
        parse_ok(self.get(path)?)
    }

    /// `command` run in this node's namespace.
    fn command(&self, program: &str) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name, program]);
                command
            }
        }
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The test fleet: its files and its agents, killed on drop.
pub struct Fleet {
    /// Holds the files until the fleet is dropped.
    pub _scratch: TempDir,
    /// The agents, in order.
    pub nodes: Vec<Node>,
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
    /// A fleet of `count` agents on loopback, each on ports of its own.
    pub fn new(count: usize) -> Fleet {
        let places = (0..count)
            .map(|_| Place {
                listen: SocketAddr::from(([127, 0, 0, 1], free_udp_port())),
                admin: free_tcp_port(),
                netns: None,
            })
            .collect();
        Fleet::at(places)
    }

    /// Keys, a trust chain, and for each place a state directory with its
    /// node's key, certificate and the chain, plus its agent config.
    pub fn at(places: Vec<Place>) -> Fleet {
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
        let mut nodes = Vec::new();
        for (index, place) in places.iter().enumerate() {
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
            let bootstrap: Vec<String> = places[..2.min(places.len())]
                .iter()
                .filter(|other| other.listen != place.listen)
                .map(|other| format!("\"{}\"", other.listen))
                .collect();
            fs::write(
                dir.join("agent.toml"),
                format!(
                    "state_dir = \".\"\nlisten = [\"{}\"]\nbootstrap = [{}]\nmdns = false\nadmin = \"127.0.0.1:{}\"\nlog_format = \"json\"\nlog_level = \"info\"\n",
                    place.listen,
                    bootstrap.join(", "),
                    place.admin,
                ),
            )
            .expect("agent config");
            nodes.push(Node {
                dir,
                key: public,
                admin: place.admin,
                netns: place.netns.clone(),
                child: None,
            });
        }
        Fleet {
            _scratch: scratch,
            nodes,
        }
    }

    /// Starts agent `index`, logging to `agent.log` in its directory.
    pub fn start(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("agent.log"))
            .expect("log file");
        // Checks and actions run in the agent's working directory: each
        // node's own.
        let child = node
            .command(env!("CARGO_BIN_EXE_fleetmesh"))
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
    pub fn logs(&self) -> String {
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
    pub fn view(&self, index: usize) -> Option<BTreeMap<String, (String, u64)>> {
        let members = self.nodes[index].get_json("/v1/members")?;
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
    pub fn release(&self, index: usize, doc: &str) -> Option<u64> {
        let releases = self.nodes[index].get_json("/v1/releases")?;
        releases["releases"]
            .as_array()?
            .iter()
            .find(|release| release["doc"] == doc)?["version"]
            .as_u64()
    }

    /// Drafts `content` (TOML) as document `doc` and releases it with the
    /// operator CLI; returns the files this added to the store, changes
    /// before the release that names them.
    pub fn draft_release(&self, doc: &str, content: &str) -> Vec<PathBuf> {
        let root = self._scratch.path();
        let store = root.join("store");
        let listing = || -> Vec<PathBuf> {
            fs::read_dir(&store)
                .map(|entries| {
                    entries
                        .filter_map(|entry| Some(entry.ok()?.path()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let before = listing();
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
        let mut added: Vec<PathBuf> = listing()
            .into_iter()
            .filter(|path| !before.contains(path))
            .collect();
        // change-* sorts before release-*.
        added.sort();
        added
    }

    /// Hands `files` to agent `index` with `fleetmesh publish`, run in the
    /// agent's namespace.
    pub fn publish(&self, index: usize, files: &[PathBuf]) {
        let node = &self.nodes[index];
        let stdout = run_checked(
            node.command(env!("CARGO_BIN_EXE_fleetmesh"))
                .args(["publish", "--agent", &format!("127.0.0.1:{}", node.admin)])
                .args(files),
            self._scratch.path(),
        );
        assert!(stdout.contains("published"), "{stdout}");
    }

    /// Drafts and releases `content` as `doc`, and publishes it to agent 0.
    pub fn publish_release(&self, doc: &str, content: &str) {
        let files = self.draft_release(doc, content);
        self.publish(0, &files);
    }

    /// Agent `index`'s node id, once its admin API answers.
    pub fn id(&self, index: usize) -> Option<String> {
        let info = self.nodes[index].get_json("/v1/agent")?;
        info["id"].as_str().map(str::to_owned)
    }

    /// Whether every agent of `indices` sees exactly `alive` alive.
    pub fn all_see_alive(&self, indices: &[usize], alive: &[String]) -> bool {
        indices.iter().all(|&index| {
            self.view(index).is_some_and(|view| {
                alive
                    .iter()
                    .all(|id| view.get(id).is_some_and(|(state, _)| state == "alive"))
            })
        })
    }

    /// Whether every agent of `indices` sees every agent of `others` dead;
    /// `ids` are the agents' ids in order.
    pub fn all_see_dead(&self, ids: &[String], indices: &[usize], others: &[usize]) -> bool {
        indices.iter().all(|&index| {
            self.view(index).is_some_and(|view| {
                others.iter().all(|&other| {
                    view.get(&ids[other])
                        .is_some_and(|(state, _)| state == "dead")
                })
            })
        })
    }

    /// Whether all agents agree: the same view, every member alive, and
    /// the same release of each of `docs`.
    pub fn converged(&self, docs: &[(&str, u64)]) -> bool {
        let count = self.nodes.len();
        let views: Option<Vec<_>> = (0..count).map(|index| self.view(index)).collect();
        let Some(views) = views else {
            return false;
        };
        let agree = views.iter().all(|view| {
            view.len() == count
                && view.values().all(|(state, _)| state == "alive")
                && *view == views[0]
        });
        agree
            && (0..count).all(|index| {
                docs.iter()
                    .all(|&(doc, version)| self.release(index, doc) == Some(version))
            })
    }

    /// Kills agent `index` (SIGKILL) and reaps it.
    pub fn kill(&mut self, index: usize) {
        let mut child = self.nodes[index].child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("reaped");
    }
}
