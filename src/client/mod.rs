//! The commands that talk to a running agent through its admin API
//! (`fleetmesh info`, `members`, `health`, `leases`, `remediations`, `approve`,
//! `stop`, `resume`, `leave`, and `config publish|release|show|history` without `--store`).
//!
//! Each prints a table by default and, with `--json`, the admin API's
//! JSON as it came (for one `--doc`, that document's entry), so scripts
//! read what the API documents. Errors say what to do: no agent at the
//! address, no permission on its socket, a key without the role, a stale
//! release.
//!
//! The agent is found (see [`AgentArgs`]) at `--admin`, else where the
//! agent config (`--config`, or [`DEFAULT_CONFIG`] when it exists) says,
//! else at [`DEFAULT_SOCKET`]; a TCP admin API's token is read from
//! `--token-file` or from where the config says.

mod approve;
mod config;
mod info;
mod members;
mod rollout;
mod stop;
mod table;
mod views;

pub use approve::{Approve, approve, parse_duration};
pub use config::{config_history, config_release, config_show, publish};
pub use info::info;
pub use members::{MembersArgs, members};
pub use rollout::rollout_status;
pub use stop::{Stop, resume, stop};
pub use views::{health, leases, remediations};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use fleetmesh_runtime::config::Endpoint;
use fleetmesh_runtime::{AgentConfig, admin};
use serde_json::Value;

use crate::pipe::PipeErrors;
use table::cell;

/// The agent config the CLI reads, when it exists and none is named.
pub const DEFAULT_CONFIG: &str = "/etc/fleetmesh/agent.toml";
/// The admin socket the CLI tries when no config says where it is: the
/// default `admin` of an agent whose `state_dir` is `/var/lib/fleetmesh`.
pub const DEFAULT_SOCKET: &str = "/var/lib/fleetmesh/admin.sock";

/// Where the agent's admin API is.
#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// The agent's admin API: its Unix socket, or its loopback IP:PORT
    /// [default: the `admin` of the agent config, else
    /// /var/lib/fleetmesh/admin.sock].
    #[arg(long, value_name = "SOCKET|IP:PORT", alias = "agent")]
    pub admin: Option<Endpoint>,
    /// The agent's config, read for where its admin API and token are
    /// [default: /etc/fleetmesh/agent.toml, when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The token file of an admin API on TCP [default: the one the agent
    /// config names, or admin.token in its state directory].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl AgentArgs {
    /// The admin API these arguments name, with its token file for TCP.
    fn target(&self) -> anyhow::Result<admin::Target> {
        let endpoint = match &self.admin {
            Some(endpoint) => endpoint.clone(),
            None => match self.agent_config()? {
                Some((path, config)) => config.admin.clone().with_context(|| {
                    format!(
                        "the admin API is off in {} (`admin = \"off\"`): turn it on there, or pass --admin",
                        path.display()
                    )
                })?,
                None => Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)),
            },
        };
        let token_file = match (&endpoint, &self.token_file) {
            (Endpoint::Unix(_), None) => None,
            (Endpoint::Unix(socket), Some(_)) => bail!(
                "--token-file is for an admin API on TCP; the one at {} is a Unix socket: leave --token-file out",
                socket.display()
            ),
            (Endpoint::Tcp(_), Some(file)) => Some(file.clone()),
            (Endpoint::Tcp(addr), None) => Some(
                self.agent_config()?
                    .and_then(|(_, config)| config.admin_token_path())
                    .with_context(|| {
                        format!(
                            "the admin API at {addr} asks for a token: pass --token-file FILE (the agent writes admin.token in its state directory), or --config with the agent's config"
                        )
                    })?,
            ),
        };
        Ok(admin::Target {
            endpoint,
            token_file,
        })
    }

    /// The agent config named by `--config`, or the default one when it
    /// exists; with its path.
    fn agent_config(&self) -> anyhow::Result<Option<(PathBuf, AgentConfig)>> {
        let path = match &self.config {
            Some(path) => path.clone(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok(None),
        };
        let config = AgentConfig::load(&path)?;
        Ok(Some((path, config)))
    }
}

/// Where the agent is and how to print its answer.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// The agent.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Print the admin API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `publish` / `config publish`: signed files for a running agent.
#[derive(Args, Clone, Debug)]
pub struct PublishArgs {
    /// The agent.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The files (trust chain, config changes, config releases,
    /// approvals), published in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// How long `leave` waits for the agent to stop: its grace period to
/// spread the news, plus room for a loaded host.
const LEAVE_WAIT: Duration = Duration::from_secs(15);
/// Pause between two looks at a leaving agent.
const LEAVE_POLL: Duration = Duration::from_millis(200);

/// One agent's admin API, called from synchronous code.
struct Client {
    runtime: tokio::runtime::Runtime,
    target: admin::Target,
}

impl Client {
    fn new(agent: &AgentArgs) -> anyhow::Result<Client> {
        let target = agent.target()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Client { runtime, target })
    }

    /// Where the agent is, for messages.
    fn at(&self) -> &Endpoint {
        &self.target.endpoint
    }

    fn call(&self, path: &str, body: Option<String>) -> anyhow::Result<(u16, String)> {
        // An agent closing the connection early is an error to report,
        // not a signal to end the command on.
        let _pipe_errors = PipeErrors::returned();
        self.runtime.block_on(admin::call(&self.target, path, body))
    }

    /// `GET path`, as JSON; an error naming the agent's reason otherwise.
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let answer = self.call(path, None)?;
        let value = self.taken(answer, |status| format!("answered {status} to {path}"))?;
        if value.is_null() {
            bail!(
                "the agent at {} answered {path} with something that is not JSON: is this a fleetmesh agent's admin API?",
                self.at()
            );
        }
        Ok(value)
    }

    /// `POST path` with `body`: the answer's JSON when taken, the agent's
    /// reason as the error when refused.
    fn post(&self, path: &str, body: String, what: &str) -> anyhow::Result<Value> {
        let answer = self.call(path, Some(body))?;
        self.taken(answer, |_| format!("refused {what}"))
    }

    /// The JSON of a `(status, body)` answer (null when it is not JSON);
    /// unless the status is 200, an error saying what the agent did
    /// (`refusal` of the status) and its reason.
    fn taken(
        &self,
        (status, body): (u16, String),
        refusal: impl FnOnce(u16) -> String,
    ) -> anyhow::Result<Value> {
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status != 200 {
            bail!(
                "the agent at {} {}: {}",
                self.at(),
                refusal(status),
                value["error"].as_str().unwrap_or(body.trim())
            );
        }
        Ok(value)
    }
}

/// `fleetmesh leave`: the agent leaves the fleet and stops; waits until
/// it no longer answers.
pub fn leave(agent: &AgentArgs) -> anyhow::Result<()> {
    let client = Client::new(agent)?;
    let info = client.get("/v1/agent")?;
    client.post("/v1/leave", "{}".to_owned(), "to leave")?;
    println!(
        "agent {} ({}) at {} is leaving the fleet",
        cell(&info["name"]),
        cell(&info["id"]),
        client.at()
    );
    let polls = LEAVE_WAIT.as_millis() / LEAVE_POLL.as_millis();
    for _ in 0..polls {
        std::thread::sleep(LEAVE_POLL);
        if client.call("/healthz", None).is_err() {
            println!("it stopped");
            return Ok(());
        }
    }
    bail!(
        "the agent at {} still answers {} s after it was asked to leave: look at its log; stop it with SIGTERM",
        client.at(),
        LEAVE_WAIT.as_secs()
    )
}
