//! The admin API: JSON over HTTP/1.1 on a Unix domain socket in the state
//! directory (by default), or on a loopback TCP address with a token.
//!
//! | path | answer |
//! | --- | --- |
//! | `GET /healthz` | `ok` once the agent's loop answers |
//! | `GET /v1/agent` | who this agent is, its fleet, trust version, safe mode, uptime |
//! | `GET /v1/members` | the member table as this agent sees it |
//! | `GET /v1/health` | every health report held |
//! | `GET /v1/releases` | the release run per config document, with its content |
//! | `GET /v1/leases` | the lease table |
//! | `GET /v1/ledger` | the remediation ledger |
//! | `GET /v1/remediations` | the ledger grouped per remediation (rule, target, incident), with where each stands |
//! | `GET /v1/approvals` | remediations waiting for an operator's approval |
//! | `GET /v1/config/history` | every release held per config document, which one runs, and the config keys quarantined |
//! | `GET /v1/trust` | the trust chain the agent runs, as a trust chain file |
//! | `GET /metrics` | Prometheus text format ([`crate::metrics`]) |
//! | `POST /v1/publish` | hands the agent a signed file: a trust chain, a config change, a config release or an approval, as the operator CLI writes them; 200 when merged, 422 with the reason when refused |
//! | `POST /v1/leave` | the agent leaves the fleet gracefully and stops, as on SIGTERM |
//!
//! Who may ask: on the Unix socket, whoever the file's mode (0660, the
//! agent's user and group) lets connect; on TCP, whoever shows the token
//! ([`token`]). Before any handler runs, [`guard`] refuses what a browser
//! or a DNS rebinding page could send: a foreign `Host`, any `Origin`, a
//! POST that is not `application/json`. [`listener`] bounds the
//! connections and how long each may stay.
//!
//! Publishing grants nothing a peer could not do: the agent verifies a
//! published entry exactly as one arriving from the mesh, and spreads it
//! only if it verifies.
//!
//! The agent's state belongs to its own task, so handlers do not read it:
//! each sends a [`Query`] over a bounded channel and awaits the answer. A
//! full channel answers 503 at once (counted), so a flood of requests
//! cannot queue up work for the agent.

mod client;
mod guard;
mod listener;
mod token;

pub use client::{Target, call};
pub use listener::{CONNECTION_TIME_MAX, CONNECTIONS_MAX, IDLE_TIMEOUT};
pub use token::Token;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};

use crate::config::{ADMIN_TOKEN, AgentConfig, Endpoint};

/// Requests waiting for the agent's loop at most.
pub const QUEUE_MAX: usize = 64;

/// Largest file `POST /v1/publish` takes: a message's worth, the most any
/// one entry can be.
pub const PUBLISH_BYTES_MAX: usize = 4 * fleetmesh_node::limits::MESSAGE_BYTES_MAX;

/// How long a handler waits for the agent's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to or from the admin API, on either kind of socket.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// What a request asks the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Liveness of the agent's loop.
    Alive,
    /// Agent info.
    Agent,
    /// Members.
    Members,
    /// Health reports.
    Health,
    /// Releases run.
    Releases,
    /// Leases.
    Leases,
    /// Ledger records.
    Ledger,
    /// Ledger records grouped per remediation.
    Remediations,
    /// Remediations waiting for an approval.
    Approvals,
    /// Every release held.
    ConfigHistory,
    /// The trust chain, as a file.
    Trust,
    /// Leave the fleet and stop.
    Leave,
    /// Prometheus metrics.
    Metrics,
    /// Merge and spread the signed file with this text.
    Publish(String),
}

/// The agent's answer.
#[derive(Debug)]
pub enum Answer {
    /// The loop runs.
    Alive,
    /// A JSON document.
    Json(serde_json::Value),
    /// A request refused, with why, as JSON.
    Refused(serde_json::Value),
    /// Prometheus text.
    Metrics(String),
}

/// One request to the agent's loop.
#[derive(Debug)]
pub struct Request {
    /// What is asked.
    pub query: Query,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Answer>,
}

/// What the admin API counts, shared by its tasks and read by the agent's
/// `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests refused because the agent's queue was full.
    pub busy: AtomicU64,
    /// Connections closed at once: [`CONNECTIONS_MAX`] were open.
    pub connections_refused: AtomicU64,
    /// Connections closed for idling ([`IDLE_TIMEOUT`]) or lasting past
    /// [`CONNECTION_TIME_MAX`].
    pub connections_timed_out: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Requests refused before any handler ran: wrong `Host`, an `Origin`,
    /// no or a wrong token, a POST that is not JSON.
    pub requests_refused: AtomicU64,
    /// Failed accepts (out of descriptors, say); the listener pauses and
    /// goes on.
    pub accept_errors: AtomicU64,
}

/// Where the admin API listens and who may use it, as the agent's config
/// says.
#[derive(Debug)]
pub enum Listen {
    /// A Unix socket at this path: its file mode decides who connects.
    Unix(std::path::PathBuf),
    /// A loopback address: every request must carry the token.
    Tcp(std::net::SocketAddr, Token),
}

impl Listen {
    /// The admin API of `config`; `None` when it is off. For TCP, reads the
    /// configured token file, or writes a fresh token to
    /// [`ADMIN_TOKEN`] in the state directory (mode 0600).
    pub fn of(config: &AgentConfig) -> anyhow::Result<Option<Listen>> {
        Ok(match &config.admin {
            None => None,
            Some(Endpoint::Unix(path)) => Some(Listen::Unix(path.clone())),
            Some(Endpoint::Tcp(addr)) => {
                let token = match &config.admin_token_file {
                    Some(path) => Token::read_secret(path)?,
                    None => Token::generate(&config.state_dir.join(ADMIN_TOKEN))?,
                };
                Some(Listen::Tcp(*addr, token))
            }
        })
    }
}

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    agent: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

/// A bound admin listener, ready to serve.
pub struct Server {
    listener: listener::Listener,
    router: Router,
    counters: Arc<Counters>,
}

impl Server {
    /// Binds where `listen` says. Requests go to `agent`; what is refused
    /// and why is counted in `counters`.
    pub async fn bind(
        listen: Listen,
        agent: mpsc::Sender<Request>,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Server> {
        let (listener, token) = match listen {
            Listen::Unix(path) => (listener::Listener::bind_unix(&path).await?, None),
            Listen::Tcp(addr, token) => (listener::Listener::bind_tcp(addr).await?, Some(token)),
        };
        let guard = guard::Guard::new(&listener.endpoint(), token, Arc::clone(&counters));
        let shared = Shared {
            agent,
            counters: Arc::clone(&counters),
        };
        Ok(Server {
            router: router(shared, guard),
            listener,
            counters,
        })
    }

    /// Where it listens (the port bound, when the config asked for port 0).
    pub fn endpoint(&self) -> Endpoint {
        self.listener.endpoint()
    }

    /// Serves until the task is dropped; dropping it closes every
    /// connection and removes the socket file.
    pub async fn serve(self) {
        self.listener.serve(self.router, self.counters).await;
    }
}

/// The routes, behind the guard.
fn router(shared: Shared, guard: guard::Guard) -> Router {
    Router::new()
        .route("/healthz", get(|state| ask(state, Query::Alive)))
        .route("/v1/agent", get(|state| ask(state, Query::Agent)))
        .route("/v1/members", get(|state| ask(state, Query::Members)))
        .route("/v1/health", get(|state| ask(state, Query::Health)))
        .route("/v1/releases", get(|state| ask(state, Query::Releases)))
        .route("/v1/leases", get(|state| ask(state, Query::Leases)))
        .route("/v1/ledger", get(|state| ask(state, Query::Ledger)))
        .route(
            "/v1/remediations",
            get(|state| ask(state, Query::Remediations)),
        )
        .route("/v1/approvals", get(|state| ask(state, Query::Approvals)))
        .route(
            "/v1/config/history",
            get(|state| ask(state, Query::ConfigHistory)),
        )
        .route("/v1/trust", get(|state| ask(state, Query::Trust)))
        .route("/v1/leave", post(|state| ask(state, Query::Leave)))
        .route("/metrics", get(|state| ask(state, Query::Metrics)))
        .route(
            "/v1/publish",
            post(|state, body: String| ask(state, Query::Publish(body))),
        )
        .layer(DefaultBodyLimit::max(PUBLISH_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .with_state(shared)
}

/// A JSON answer `{"error": why}` with `status`.
fn refusal(status: StatusCode, why: &str) -> Response {
    let body = serde_json::json!({ "error": why }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn unavailable(why: &str) -> Response {
    refusal(StatusCode::SERVICE_UNAVAILABLE, why)
}

async fn ask(State(shared): State<Shared>, query: Query) -> Response {
    let (reply, answer) = oneshot::channel();
    match shared.agent.try_send(Request { query, reply }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            shared.counters.busy.fetch_add(1, Ordering::Relaxed);
            return unavailable("the agent is busy: retry shortly");
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return unavailable("the agent is stopping");
        }
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Answer::Alive)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Ok(Answer::Json(value))) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{value:#}\n"),
        )
            .into_response(),
        Ok(Ok(Answer::Refused(value))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{value:#}\n"),
        )
            .into_response(),
        Ok(Ok(Answer::Metrics(text))) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(_)) => unavailable("the agent is stopping"),
        Err(_) => unavailable("the agent did not answer in time"),
    }
}
