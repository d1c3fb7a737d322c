//! A fleet of real agents on this host's loopback: what `fleetmesh demo`
//! runs and what the multi-process tests start.
//!
//! [`LocalFleet::create`] makes everything an operator would, with the
//! `fleetmesh` binary's own operator commands (so the files are exactly
//! those an operator gets): one throwaway operator key holding every role,
//! the genesis trust chain, and per node a state directory with its key,
//! certificate, the chain and an agent config listening on a free loopback
//! port, its admin API on the Unix socket in its directory, with mDNS off.
//! Agents are `fleetmesh agent` child processes, each
//! running in its own node directory (checks and actions run there) and
//! logging JSON lines to `agent.log` in it. Dropping the fleet kills every
//! agent still running; [`LocalFleet::stop_all`] stops them the polite way
//! first; and an agent gets SIGKILL when the thread that started it ends,
//! even by SIGKILL, so none outlives its fleet.
//!
//! [`LocalFleet::create_at`] places each node elsewhere: its own listen
//! address, its admin API on TCP with a token if asked, and a command
//! prefix its agent and the commands aimed at it run under (`ip netns exec
//! NAME`: a network namespace of its own; its admin socket is still a file
//! this process reaches).

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::admin::Target;
use crate::config::{ADMIN_SOCKET, ADMIN_TOKEN, Endpoint};

/// The tag every node of a local fleet carries: what policies select.
pub const TAG: (&str, &str) = ("role", "local");

/// The operator key file, in the fleet directory: roles root, config,
/// admit, approve and stop.
pub const OPERATOR_KEY: &str = "operator.key";

/// Most agents one local fleet runs: loopback ports and a test machine's
/// cores are finite.
pub const NODES_MAX: usize = 32;

/// Pause between two polls of [`wait_for`].
pub const POLL: Duration = Duration::from_millis(100);

/// How many log lines of each agent [`LocalFleet::logs`] shows.
const LOG_TAIL_LINES: usize = 30;

/// What a member's view holds per member id: its state and incarnation.
pub type View = BTreeMap<String, (String, u64)>;

/// Where one node of [`LocalFleet::create_at`] runs.
pub struct Placement {
    /// The QUIC address its agent listens on (and the others bootstrap
    /// from, for the first two nodes).
    pub listen: SocketAddr,
    /// Its admin API on this loopback address, with the token its agent
    /// writes; `None` (the default): on the Unix socket in its directory.
    pub admin_tcp: Option<SocketAddr>,
    /// A program and its arguments that the agent and every command aimed
    /// at it (`fleetmesh publish`) run under, such as `ip netns exec
    /// NAME`; empty: run directly.
    pub prefix: Vec<String>,
}

impl Placement {
    /// A node on this host's loopback, on a port free right now, its admin
    /// API on its Unix socket.
    pub fn loopback() -> anyhow::Result<Placement> {
        Ok(Placement {
            listen: SocketAddr::from(([127, 0, 0, 1], free_udp_port()?)),
            admin_tcp: None,
            prefix: Vec::new(),
        })
    }

    /// [`Placement::loopback`] with the admin API on a free loopback TCP
    /// port instead, behind its token.
    pub fn loopback_tcp_admin() -> anyhow::Result<Placement> {
        Ok(Placement {
            admin_tcp: Some(SocketAddr::from(([127, 0, 0, 1], free_tcp_port()?))),
            ..Placement::loopback()?
        })
    }
}

/// One agent's files and process.
pub struct LocalNode {
    /// Its name, `node-INDEX`, as its certificate says.
    pub name: String,
    /// Its public key (hex), as its certificate names it.
    pub key: String,
    /// Its state directory, also its working directory.
    pub dir: PathBuf,
    /// Its admin API.
    pub admin: Target,
    prefix: Vec<String>,
    child: Option<Child>,
}

impl LocalNode {
    /// `program`, run under the node's command prefix.
    fn command(&self, program: &Path) -> Command {
        match self.prefix.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
        }
    }

    /// The CLI's arguments that aim a command at this node's admin API.
    pub fn admin_args(&self) -> Vec<String> {
        let mut args = vec!["--admin".to_owned(), self.admin.endpoint.to_string()];
        if let Some(token) = &self.admin.token_file {
            args.extend(["--token-file".to_owned(), token.display().to_string()]);
        }
        args
    }
}

/// How a stopped agent ended.
#[derive(Debug)]
pub enum Stopped {
    /// It exited by itself after SIGTERM, with this status.
    Exited(ExitStatus),
    /// It did not exit within the timeout and was killed.
    Killed,
    /// It was not running.
    NotRunning,
}

/// A fleet of agents on loopback: files in a directory the caller owns,
/// agents as child processes (killed on drop).
pub struct LocalFleet {
    binary: PathBuf,
    dir: PathBuf,
    /// The nodes, by index.
    pub nodes: Vec<LocalNode>,
    runtime: tokio::runtime::Runtime,
}

impl Drop for LocalFleet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A loopback port nobody uses right now (the agent binds it moments
/// later; another process taking it in between makes that agent refuse to
/// start, saying so).
fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `done` every [`POLL`] until it returns `Some`, for at most
/// `within`; an error naming `what` otherwise.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    done: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    wait_every(what, within, POLL, done)
}

/// [`wait_for`], polling every `poll` (the resolution of a timing).
pub fn wait_every<T>(
    what: &str,
    within: Duration,
    poll: Duration,
    mut done: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let polls = within.as_millis() / poll.as_millis().max(1) + 1;
    for _ in 0..polls {
        if let Some(value) = done() {
            return Ok(value);
        }
        if start.elapsed() > within {
            break;
        }
        std::thread::sleep(poll);
    }
    bail!("{what} did not happen within {} s", within.as_secs())
}

impl LocalFleet {
    /// Makes the files of a fleet of `count` nodes on loopback in `dir`
    /// (which must exist) with the operator commands of `binary`, the
    /// `fleetmesh` binary. Starts nothing.
    pub fn create(binary: &Path, dir: &Path, count: usize) -> anyhow::Result<LocalFleet> {
        if count == 0 || count > NODES_MAX {
            bail!("a local fleet has 1 to {NODES_MAX} nodes, not {count}");
        }
        let places = (0..count)
            .map(|_| Placement::loopback())
            .collect::<anyhow::Result<Vec<Placement>>>()
            .context("cannot find free loopback ports")?;
        LocalFleet::create_at(binary, dir, places)
    }

    /// [`LocalFleet::create`], one node per placement, each where it says.
    pub fn create_at(
        binary: &Path,
        dir: &Path,
        places: Vec<Placement>,
    ) -> anyhow::Result<LocalFleet> {
        let count = places.len();
        if count == 0 || count > NODES_MAX {
            bail!("a local fleet has 1 to {NODES_MAX} nodes, not {count}");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let mut fleet = LocalFleet {
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            nodes: Vec::new(),
            runtime,
        };
        let operator = fleet.keygen(OPERATOR_KEY)?;
        fleet.fleetmesh(&[
            "fleet",
            "init",
            "--name",
            "local",
            "--root-key",
            OPERATOR_KEY,
            "--key",
            &format!("{operator}=config,admit,approve,stop"),
            "--out",
            "trust.json",
        ])?;
        let seeds: Vec<SocketAddr> = places.iter().take(2).map(|place| place.listen).collect();
        for (index, place) in places.into_iter().enumerate() {
            let name = format!("node-{index}");
            let node_dir = dir.join(&name);
            fs::create_dir(&node_dir)
                .with_context(|| format!("cannot create {}", node_dir.display()))?;
            let public = fleet.keygen(&format!("{name}/node.key"))?;
            fleet.fleetmesh(&[
                "fleet",
                "admit",
                "--trust",
                "trust.json",
                "--admit-key",
                OPERATOR_KEY,
                "--node",
                &public,
                "--name",
                &name,
                "--tag",
                &format!("{}={}", TAG.0, TAG.1),
                // Names the host in its certificate, so a rollout wave
                // (which selects over certificate tags) can pick it.
                "--tag",
                &format!("host={name}"),
                "--out",
                &format!("{name}/node.cert.json"),
            ])?;
            fs::copy(dir.join("trust.json"), node_dir.join("trust.json"))
                .context("cannot copy the trust chain")?;
            // Every agent bootstraps from the first two (the first two
            // from each other): a restarted one finds the fleet again the
            // way an operator's would.
            let bootstrap: Vec<String> = seeds
                .iter()
                .filter(|&&other| other != place.listen)
                .map(|other| format!("\"{other}\""))
                .collect();
            let admin = match place.admin_tcp {
                None => Target::unix(node_dir.join(ADMIN_SOCKET)),
                Some(addr) => Target {
                    endpoint: Endpoint::Tcp(addr),
                    token_file: Some(node_dir.join(ADMIN_TOKEN)),
                },
            };
            let admin_field = match &admin.endpoint {
                Endpoint::Unix(_) => "unix".to_owned(),
                Endpoint::Tcp(addr) => addr.to_string(),
            };
            fs::write(
                node_dir.join("agent.toml"),
                format!(
                    "state_dir = \".\"\nlisten = [\"{}\"]\nbootstrap = [{}]\nmdns = false\nadmin = \"{admin_field}\"\nlog_format = \"json\"\nlog_level = \"info\"\n",
                    place.listen,
                    bootstrap.join(", "),
                ),
            )
            .context("cannot write an agent config")?;
            fleet.nodes.push(LocalNode {
                name,
                key: public,
                dir: node_dir,
                admin,
                prefix: place.prefix,
                child: None,
            });
        }
        Ok(fleet)
    }

    /// The fleet's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `fleetmesh ARGS` in the fleet directory; its standard output,
    /// or an error with its standard error.
    pub fn fleetmesh(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run(Command::new(&self.binary).args(args), args)
    }

    /// Runs `command` (the binary with `args`, and maybe more) in the
    /// fleet directory; its standard output, or an error naming `args`.
    fn run(&self, command: &mut Command, args: &[&str]) -> anyhow::Result<String> {
        let program = command.get_program().to_owned();
        let output = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "`fleetmesh {}` failed: {}{}",
                args.join(" "),
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    /// Makes a key file (path relative to the fleet directory); returns
    /// its public key.
    fn keygen(&self, out: &str) -> anyhow::Result<String> {
        let stdout = self.fleetmesh(&["keygen", "--out", out])?;
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("public key "))
            .map(str::to_owned)
            .context("`fleetmesh keygen` printed no public key")
    }

    /// Starts node `index`'s agent (again, after a stop: same state
    /// directory, same identity).
    pub fn start(&mut self, index: usize) -> anyhow::Result<()> {
        let binary = self.binary.clone();
        let node = self.node_mut(index)?;
        if node.child.is_some() {
            bail!("{} is already running", node.name);
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("agent.log"))
            .context("cannot open an agent's log file")?;
        let mut command = node.command(&binary);
        command
            .args(["agent", "--config"])
            .arg(node.dir.join("agent.toml"))
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        die_with_this_thread(&mut command);
        let child = command.spawn().context("cannot start an agent")?;
        node.child = Some(child);
        Ok(())
    }

    /// Node `index`'s agent's process id, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.nodes.get(index)?.child.as_ref().map(Child::id)
    }

    /// How node `index`'s agent ended, if it was started and has exited
    /// by itself since (a refusal to start, say); the process stays taken
    /// until [`LocalFleet::kill`] or a new [`LocalFleet::start`].
    pub fn exited(&mut self, index: usize) -> Option<ExitStatus> {
        self.nodes.get_mut(index)?.child.as_mut()?.try_wait().ok()?
    }

    fn node_mut(&mut self, index: usize) -> anyhow::Result<&mut LocalNode> {
        let count = self.nodes.len();
        self.nodes
            .get_mut(index)
            .with_context(|| format!("the fleet has {count} nodes, not a node {index}"))
    }

    /// Kills node `index`'s agent at once (a crash).
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let node = self.node_mut(index)?;
        let mut child = node.child.take().context("the agent is not running")?;
        child.kill().context("cannot kill the agent")?;
        child.wait().context("cannot reap the agent")?;
        Ok(())
    }

    /// Stops every running agent: SIGTERM to all (each leaves the fleet
    /// gracefully), then waits up to `timeout` for them, and kills those
    /// still running. How each ended, by index.
    pub fn stop_all(&mut self, timeout: Duration) -> Vec<Stopped> {
        for node in &self.nodes {
            if let Some(child) = &node.child {
                terminate(child);
            }
        }
        let start = Instant::now();
        let polls = timeout.as_millis() / POLL.as_millis() + 1;
        let mut ended: Vec<Option<Stopped>> = self
            .nodes
            .iter()
            .map(|node| node.child.is_none().then_some(Stopped::NotRunning))
            .collect();
        for _ in 0..polls {
            for (node, end) in self.nodes.iter_mut().zip(&mut ended) {
                if let Some(child) = node.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    *end = Some(Stopped::Exited(status));
                    node.child = None;
                }
            }
            if ended.iter().all(Option::is_some) || start.elapsed() > timeout {
                break;
            }
            std::thread::sleep(POLL);
        }
        for (node, end) in self.nodes.iter_mut().zip(&mut ended) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
                *end = Some(Stopped::Killed);
            }
        }
        ended
            .into_iter()
            .map(|end| end.unwrap_or(Stopped::NotRunning))
            .collect()
    }

    /// Sends node `index`'s agent SIGTERM and takes its process; the
    /// caller waits for it.
    pub fn terminate(&mut self, index: usize) -> anyhow::Result<Child> {
        let node = self.node_mut(index)?;
        let child = node.child.take().context("the agent is not running")?;
        terminate(&child);
        Ok(child)
    }

    /// Sends node `index`'s agent SIGHUP: it reloads its log level.
    pub fn hangup(&self, index: usize) -> anyhow::Result<()> {
        let child = self
            .nodes
            .get(index)
            .and_then(|node| node.child.as_ref())
            .context("the agent is not running")?;
        signal(child, libc::SIGHUP);
        Ok(())
    }

    /// `GET path` on node `index`'s admin API: status and body; `None`
    /// while nothing answers.
    pub fn get(&self, index: usize, path: &str) -> Option<(u16, String)> {
        let node = self.nodes.get(index)?;
        self.runtime
            .block_on(crate::admin::call(&node.admin, path, None))
            .ok()
    }

    /// `GET path` on node `index`'s admin API, as JSON; `None` while
    /// nothing answers or the answer is not 200.
    pub fn get_json(&self, index: usize, path: &str) -> Option<Value> {
        match self.get(index, path)? {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// The value of metric `name` (one without labels) in node `index`'s
    /// `/metrics`; `None` while nothing answers, the answer is not 200 or
    /// the metric is not there.
    pub fn metric(&self, index: usize, name: &str) -> Option<u64> {
        match self.get(index, "/metrics")? {
            (200, text) => text
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok()),
            _ => None,
        }
    }

    /// Node `index`'s id, once its admin API answers.
    pub fn id(&self, index: usize) -> Option<String> {
        self.get_json(index, "/v1/agent")?["id"]
            .as_str()
            .map(str::to_owned)
    }

    /// What node `index` believes, per member id.
    pub fn view(&self, index: usize) -> Option<View> {
        let members = self.get_json(index, "/v1/members")?;
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

    /// The state node `index` gives member `id`.
    pub fn state_of(&self, index: usize, id: &str) -> Option<String> {
        self.view(index)?.remove(id).map(|(state, _)| state)
    }

    /// Whether every node of `indices` sees every member of `ids` in
    /// `state`, asking each node once.
    fn all_see(&self, indices: &[usize], ids: &[&str], state: &str) -> bool {
        indices.iter().all(|&index| {
            self.view(index).is_some_and(|view| {
                ids.iter()
                    .all(|id| view.get(*id).is_some_and(|(seen, _)| seen == state))
            })
        })
    }

    /// Whether every node of `indices` sees every id of `alive` alive.
    pub fn all_see_alive(&self, indices: &[usize], alive: &[String]) -> bool {
        let alive: Vec<&str> = alive.iter().map(String::as_str).collect();
        self.all_see(indices, &alive, "alive")
    }

    /// Whether every node of `indices` sees every node of `others` dead;
    /// `ids` are the nodes' ids, by index.
    pub fn all_see_dead(&self, ids: &[String], indices: &[usize], others: &[usize]) -> bool {
        let dead: Vec<&str> = others.iter().map(|&other| ids[other].as_str()).collect();
        self.all_see(indices, &dead, "dead")
    }

    /// Whether all nodes agree: the same view, holding every node alive,
    /// and the same release version of each of `docs`.
    pub fn converged(&self, docs: &[(&str, u64)]) -> bool {
        let count = self.nodes.len();
        let Some(views) = (0..count)
            .map(|index| self.view(index))
            .collect::<Option<Vec<View>>>()
        else {
            return false;
        };
        views.iter().all(|view| {
            view.len() == count
                && view.values().all(|(state, _)| state == "alive")
                && *view == views[0]
        }) && (0..count).all(|index| {
            docs.iter()
                .all(|&(doc, version)| self.release(index, doc) == Some(version))
        })
    }

    /// The release version node `index` runs for document `doc`.
    pub fn release(&self, index: usize, doc: &str) -> Option<u64> {
        let releases = self.get_json(index, "/v1/releases")?;
        releases["releases"]
            .as_array()?
            .iter()
            .find(|release| release["doc"] == doc)?["version"]
            .as_u64()
    }

    /// The state of check `check` on node `node` (an id) as node `index`
    /// holds it.
    pub fn health(&self, index: usize, node: &str, check: &str) -> Option<String> {
        let reports = self.get_json(index, "/v1/health")?;
        reports["reports"]
            .as_array()?
            .iter()
            .find(|report| report["node"] == node && report["check"] == check)?["state"]
            .as_str()
            .map(str::to_owned)
    }

    /// Drafts `content` (TOML) as document `doc` and releases it with
    /// the operator key (the next version); publishes the store's changes
    /// and the new release to node `index` (older releases would be
    /// refused as stale). Returns the release file's path.
    pub fn publish_release(
        &self,
        index: usize,
        doc: &str,
        content: &str,
    ) -> anyhow::Result<PathBuf> {
        let files = self.draft_release(doc, content)?;
        self.publish(index, &files)?;
        files
            .last()
            .cloned()
            .context("a release makes a release file")
    }

    /// Drafts `content` (TOML) as document `doc` and releases it with the
    /// operator key (the next version), publishing nothing. Returns what
    /// an agent needs to take it: the store's changes, then the new
    /// release (last).
    pub fn draft_release(&self, doc: &str, content: &str) -> anyhow::Result<Vec<PathBuf>> {
        self.draft_staged_release(doc, content, None)
    }

    /// [`LocalFleet::draft_release`], staged by the rollout plan `plan`
    /// (a `[rollout]` table in TOML) when one is given.
    pub fn draft_staged_release(
        &self,
        doc: &str,
        content: &str,
        plan: Option<&str>,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let source = format!("{doc}.toml");
        fs::write(self.dir.join(&source), content).context("cannot write the document")?;
        self.config_as_operator("draft", doc, &["--from", &source])?;
        let plan_file = format!("{doc}.plan.toml");
        let staged = match plan {
            Some(plan) => {
                fs::write(self.dir.join(&plan_file), plan).context("cannot write the plan")?;
                vec!["--rollout", plan_file.as_str()]
            }
            None => Vec::new(),
        };
        let released = self.config_as_operator("release", doc, &staged)?;
        let release = released
            .lines()
            .find_map(|line| line.strip_prefix("wrote release "))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|path| self.dir.join(path))
            .context("`fleetmesh config release` printed no release file")?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(self.dir.join("store")).context("cannot read the store")? {
            let path = entry.context("cannot read the store")?.path();
            let name = path.file_name().and_then(|name| name.to_str());
            if name.is_some_and(|name| name.starts_with("change-")) {
                files.push(path);
            }
        }
        // Changes before the release that names them.
        files.sort();
        files.push(release);
        Ok(files)
    }

    /// Runs `fleetmesh config <verb>` on document `doc` in the fleet's
    /// store with the operator key, and `extra` arguments; returns stdout.
    fn config_as_operator(&self, verb: &str, doc: &str, extra: &[&str]) -> anyhow::Result<String> {
        let common = [
            "config",
            verb,
            "--trust",
            "trust.json",
            "--key",
            OPERATOR_KEY,
            "--doc",
            doc,
            "--store",
            "store",
        ];
        self.fleetmesh(&[&common[..], extra].concat())
    }

    /// Hands `files` (signed files, in order) to node `index` with
    /// `fleetmesh config publish`, run under the node's command prefix.
    pub fn publish(&self, index: usize, files: &[PathBuf]) -> anyhow::Result<()> {
        let node = self.nodes.get(index).context("no such node")?;
        let mut args = vec!["config".to_owned(), "publish".to_owned()];
        args.extend(node.admin_args());
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(node.command(&self.binary).args(&args).args(files), &words)?;
        Ok(())
    }

    /// The last lines of every agent's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for node in &self.nodes {
            let log = fs::read_to_string(node.dir.join("agent.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            all.push_str(&format!("--- {} (last lines of its log)\n", node.name));
            for line in tail {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }
}

/// Makes the process `command` starts get SIGKILL when the thread that
/// starts it ends (`PR_SET_PDEATHSIG`; the agents of a local fleet are
/// started and dropped by one thread), so that no agent outlives a
/// `fleetmesh demo` or a test killed with SIGKILL, which run no drop. A
/// parent gone before the child set this is caught too: the child then
/// exits before it runs anything.
fn die_with_this_thread(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid(2) touches no memory.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec the closure makes only the
    // async-signal-safe system calls prctl(2) and getppid(2), and
    // allocates nothing (the error is a raw OS error).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Sends SIGTERM to `child`: the agent leaves the fleet and exits.
fn terminate(child: &Child) {
    signal(child, libc::SIGTERM);
}

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory; the
        // child is not reaped yet (its `Child` is held), so the id is
        // still its own.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}
