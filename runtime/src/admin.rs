//! The admin API: JSON over HTTP on a loopback address (the config refuses
//! any other, since the API has no authentication).
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
//! | `GET /v1/config/history` | every release held per config document, and which one runs |
//! | `GET /v1/trust` | the trust chain the agent runs, as a trust chain file |
//! | `GET /metrics` | Prometheus text format ([`crate::metrics`]) |
//! | `POST /v1/publish` | hands the agent a signed file: a trust chain, a config change, a config release or an approval, as the operator CLI writes them; 200 when merged, 422 with the reason when refused |
//! | `POST /v1/leave` | the agent leaves the fleet gracefully and stops, as on SIGTERM |
//!
//! Publishing grants nothing a peer could not do: the agent verifies a
//! published entry exactly as one arriving from the mesh, and spreads it
//! only if it verifies.
//!
//! The agent's state belongs to its own task, so handlers do not read it:
//! each sends a [`Query`] over a bounded channel and awaits the answer. A
//! full channel answers 503 at once (counted), so a flood of requests
//! cannot queue up work for the agent.

use std::net::SocketAddr;
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

/// Requests waiting for the agent's loop at most.
pub const QUEUE_MAX: usize = 64;

/// Largest file `POST /v1/publish` takes: a message's worth, the most any
/// one entry can be.
pub const PUBLISH_BYTES_MAX: usize = 4 * fleetmesh_node::wire::MESSAGE_BYTES_MAX;

/// How long a handler waits for the agent's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

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

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    agent: mpsc::Sender<Request>,
    busy: Arc<AtomicU64>,
}

/// A bound admin listener, ready to serve.
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Shared,
}

impl Server {
    /// Binds `addr`. Requests go to `agent`; each one refused because the
    /// queue is full is counted in `busy`.
    pub async fn bind(
        addr: SocketAddr,
        agent: mpsc::Sender<Request>,
        busy: Arc<AtomicU64>,
    ) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!(
                "cannot listen for the admin API on {addr}: {error}; pick another `admin` address in the agent config, or \"off\""
            )
        })?;
        Ok(Server {
            listener,
            shared: Shared { agent, busy },
        })
    }

    /// The address bound (the port, when the config asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped.
    pub async fn serve(self) -> std::io::Result<()> {
        let router = Router::new()
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
            .with_state(self.shared);
        axum::serve(self.listener, router).await
    }
}

fn unavailable(why: &str) -> Response {
    let body = serde_json::json!({ "error": why }).to_string();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn ask(State(shared): State<Shared>, query: Query) -> Response {
    let (reply, answer) = oneshot::channel();
    match shared.agent.try_send(Request { query, reply }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            shared.busy.fetch_add(1, Ordering::Relaxed);
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

/// Calls the admin API of the agent at `addr`: `GET path`, or `POST path`
/// with `body`. Returns the status and the body; an error when no agent
/// answers, worded for an operator.
pub async fn call(
    addr: SocketAddr,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|error| {
        anyhow::anyhow!(
            "no agent answers at {addr} ({error}): start it with `fleetmesh agent --config FILE`, or pass --admin with the `admin` address of its config"
        )
    })?;
    call_on(stream, addr, path, body).await
}

/// [`call`] over a connection the caller opened to the admin API at
/// `addr` (from inside another network namespace, say).
pub async fn call_on(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(u16, String)> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = tokio::time::timeout(ANSWER_TIMEOUT * 2, sender.send_request(request))
        .await
        .map_err(|_| anyhow::anyhow!("the agent on {addr} did not answer in time"))??;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
