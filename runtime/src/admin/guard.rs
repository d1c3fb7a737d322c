//! The checks every admin request passes before any handler runs, in
//! this order:
//!
//! 1. **No `Origin` header** (403). Browsers send one on every cross-origin
//!    POST and on fetches; the CLI, curl and scripts send none. A web page
//!    the operator visits can therefore never make the agent leave or
//!    publish, even on a port it can reach.
//! 2. **`Host` names this listener** (421): the bound `IP:PORT` (or
//!    `localhost:PORT`) on TCP, `localhost` on the Unix socket. A DNS
//!    rebinding page reaches 127.0.0.1 under its own host name, which it
//!    cannot make the browser hide.
//! 3. **The token** (401), on TCP only: `Authorization: Bearer TOKEN`,
//!    compared in constant time. On the Unix socket the file's mode has
//!    already decided who connects.
//! 4. **A POST carries `Content-Type: application/json`** (415): a
//!    browser's "simple" request (form, text/plain) can never have it
//!    without a CORS preflight, which nothing here answers.
//!
//! Each refusal is counted and answered as JSON saying why and what to do.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{Counters, Token, refusal};
use crate::config::Endpoint;

/// The host name clients give on the Unix socket (curl's
/// `--unix-socket` default, and the CLI's).
const UNIX_HOST: &str = "localhost";

/// What one listener accepts.
#[derive(Clone)]
pub(super) struct Guard {
    /// `Host` values naming this listener (compared ignoring ASCII case).
    hosts: Arc<[String]>,
    /// The token every request must carry, on TCP.
    token: Option<Token>,
    counters: Arc<Counters>,
}

impl Guard {
    /// The checks for a listener bound at `endpoint`.
    pub(super) fn new(endpoint: &Endpoint, token: Option<Token>, counters: Arc<Counters>) -> Guard {
        let hosts = match endpoint {
            Endpoint::Unix(_) => vec![UNIX_HOST.to_owned()],
            Endpoint::Tcp(addr) => {
                vec![addr.to_string(), format!("{UNIX_HOST}:{}", addr.port())]
            }
        };
        Guard {
            hosts: hosts.into(),
            token,
            counters,
        }
    }

    /// Why `method` with `headers` is refused, if it is: the status and
    /// what to say.
    fn refuse(&self, method: &Method, headers: &HeaderMap) -> Option<(StatusCode, String)> {
        if headers.contains_key(header::ORIGIN) {
            return Some((
                StatusCode::FORBIDDEN,
                "requests with an Origin header (from a browser) are refused: use the fleetmesh CLI, curl or a script".to_owned(),
            ));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        if !host.is_some_and(|host| self.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(host))) {
            return Some((
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Host {} does not name this admin API: send Host: {}",
                    host.map_or_else(|| "(none)".to_owned(), |host| format!("{host:?}")),
                    self.hosts[0]
                ),
            ));
        }
        if let Some(token) = &self.token {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
            if !presented.is_some_and(|presented| token.matches(presented)) {
                return Some((
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong token: send Authorization: Bearer TOKEN with the content of the agent's admin token file".to_owned(),
                ));
            }
        }
        if method == Method::POST && !is_json(headers) {
            return Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a POST must carry Content-Type: application/json".to_owned(),
            ));
        }
        None
    }
}

/// Whether the request says its body is JSON (parameters such as a
/// charset allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: answers a refused request itself, passes the others on.
pub(super) async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.refuse(request.method(), request.headers()) {
        Some((status, why)) => {
            guard
                .counters
                .requests_refused
                .fetch_add(1, Ordering::Relaxed);
            refusal(status, &why)
        }
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|&(name, value)| {
                let value = HeaderValue::from_str(value).expect("value");
                (header::HeaderName::from_static(name), value)
            })
            .collect()
    }

    fn status(guard: &Guard, method: Method, pairs: &[(&'static str, &str)]) -> u16 {
        guard
            .refuse(&method, &headers(pairs))
            .map_or(200, |(status, _)| status.as_u16())
    }

    #[test]
    fn a_tcp_listener_wants_its_host_its_token_no_origin_and_json_posts() {
        let token =
            Token::generate(&tempfile::tempdir().expect("dir").path().join("t")).expect("token");
        let bearer = format!("Bearer {}", token.expose());
        let guard = Guard::new(
            &Endpoint::Tcp("127.0.0.1:7947".parse().unwrap()),
            Some(token),
            Arc::default(),
        );
        let host = ("host", "127.0.0.1:7947");
        let auth = ("authorization", bearer.as_str());
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(status(&guard, Method::GET, &[host, auth]), 200);
        assert_eq!(
            status(&guard, Method::GET, &[("host", "LOCALHOST:7947"), auth]),
            200
        );
        assert_eq!(status(&guard, Method::POST, &[host, auth, json]), 200);
        assert_eq!(status(&guard, Method::GET, &[host]), 401);
        assert_eq!(
            status(
                &guard,
                Method::GET,
                &[host, ("authorization", "Bearer nope")]
            ),
            401
        );
        assert_eq!(
            status(&guard, Method::GET, &[("host", "evil.example:7947"), auth]),
            421
        );
        assert_eq!(status(&guard, Method::GET, &[auth]), 421);
        assert_eq!(
            status(&guard, Method::GET, &[host, auth, ("origin", "null")]),
            403
        );
        assert_eq!(
            status(
                &guard,
                Method::POST,
                &[host, auth, ("content-type", "text/plain")]
            ),
            415
        );
        assert_eq!(status(&guard, Method::POST, &[host, auth]), 415);
    }

    #[test]
    fn a_unix_listener_wants_localhost_and_no_token() {
        let guard = Guard::new(
            &Endpoint::Unix("/s/admin.sock".into()),
            None,
            Arc::default(),
        );
        assert_eq!(status(&guard, Method::GET, &[("host", "localhost")]), 200);
        assert_eq!(status(&guard, Method::GET, &[("host", "127.0.0.1")]), 421);
        assert_eq!(
            status(
                &guard,
                Method::POST,
                &[("host", "localhost"), ("origin", "https://a.example")]
            ),
            403
        );
    }
}
