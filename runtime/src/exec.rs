//! Executors: how the runtime runs the checks and actions the core hands
//! out ([`Task`]). Each runs as its own tokio task, off the core's loop, and
//! is killed at its timeout; the result goes back through
//! `Agent::handle_task_result`.
//!
//! - exec check and action: the command runs directly (no shell), in its
//!   own process group, with standard input closed; stdout and stderr are
//!   captured up to a bound and the rest is read and dropped (a chatty
//!   command must not block on a full pipe nor fill memory). At the timeout
//!   the whole process group is killed, so a script's children die with it.
//! - HTTP check: `GET` of an `http://` URL, passing on the expected status.
//! - TCP check: a connection to `host:port` opens.

use std::process::Stdio;
use std::time::Duration;

use fleetmesh_node::CheckKind;
use fleetmesh_node::{Task, TaskId, TaskResult};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Runs `task` to its end or its timeout, whichever comes first.
pub async fn run(task: Task, output_max: usize) -> (TaskId, TaskResult) {
    match task {
        Task::Check { id, check } => {
            let result = match &check.kind {
                CheckKind::Exec { command } => exec(command, &[], check.timeout, output_max).await,
                CheckKind::Http { url, status } => http(url, *status, check.timeout).await,
                CheckKind::Tcp { addr } => tcp(addr, check.timeout).await,
            };
            (id, result)
        }
        Task::Action {
            id,
            key,
            check,
            step,
            epoch,
            timeout,
        } => {
            // What a remediation script needs to know which incident it is
            // fixing, and to record or fence its own side effects.
            let env = [
                ("FLEETMESH_RULE", key.rule.clone()),
                ("FLEETMESH_TARGET", key.target.to_hex()),
                ("FLEETMESH_INCIDENT", key.incident.clone()),
                ("FLEETMESH_EPOCH", epoch.to_string()),
                ("FLEETMESH_CHECK", check),
                ("FLEETMESH_ACTION", step.action.clone()),
                ("FLEETMESH_CLASS", step.class.name().to_owned()),
            ];
            (id, exec(&step.command, &env, timeout, output_max).await)
        }
    }
}

fn failed(detail: String) -> TaskResult {
    TaskResult {
        success: false,
        exit_code: None,
        detail,
    }
}

/// Runs `command` with `env` added, killing its process group at `timeout`.
pub async fn exec(
    command: &[String],
    env: &[(&str, String)],
    timeout: Duration,
    output_max: usize,
) -> TaskResult {
    let Some((program, args)) = command.split_first() else {
        return failed("the step names no command to run".to_owned());
    };
    let mut child = Command::new(program);
    child
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    child.process_group(0);
    let mut child = match child.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("cannot run {program:?}: {error}")),
    };
    // Kills the group if this future is dropped before the command ends:
    // at the timeout below, or when the agent stops mid-action.
    let mut group = Group(child.id());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = async {
        let (status, out, err) = tokio::join!(
            child.wait(),
            capture(stdout, output_max),
            capture(stderr, output_max)
        );
        (status, out, err)
    };
    let outcome = tokio::time::timeout(timeout, finished).await;
    if outcome.is_ok() {
        // The command ended by itself; what it left running in its group
        // is its own business, as with any service manager's ExecStart.
        group.0 = None;
    }
    match outcome {
        Ok((Ok(status), out, err)) => {
            let mut detail = out;
            if !err.is_empty() {
                if !detail.is_empty() {
                    detail.push('\n');
                }
                detail.push_str(&err);
            }
            truncate(&mut detail, output_max);
            let code = status.code();
            let detail = match code {
                Some(code) => format!("exit {code}: {detail}"),
                None => format!("killed by a signal: {detail}"),
            };
            TaskResult {
                success: status.success(),
                exit_code: code,
                detail,
            }
        }
        Ok((Err(error), _, _)) => failed(format!("waiting for {program:?} failed: {error}")),
        Err(_) => {
            drop(group);
            failed(format!(
                "{program:?} was killed at its timeout of {} ms",
                timeout.as_millis()
            ))
        }
    }
}

/// The process group led by a running command (its own, set at spawn);
/// dropped while it holds the leader's pid, it kills the whole group: the
/// command and everything it started.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) takes plain integers and touches no memory.
            // The group is the child's own (process_group(0) at spawn) and
            // the child is not yet reaped (its `Child`, declared before the
            // guard, is dropped after it), so the id cannot have been
            // reused by an unrelated group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

/// Reads a pipe to its end, keeping at most `max` bytes as text.
async fn capture<R: AsyncRead + Unpin>(pipe: Option<R>, max: usize) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..read.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).trim_end().to_owned()
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// `GET url`; passes when the response has `status`.
pub async fn http(url: &str, status: u16, timeout: Duration) -> TaskResult {
    match tokio::time::timeout(timeout, get(url)).await {
        Ok(Ok(got)) if got == status => TaskResult {
            success: true,
            exit_code: None,
            detail: format!("HTTP {got}"),
        },
        Ok(Ok(got)) => failed(format!("HTTP {got}, expected {status}")),
        Ok(Err(error)) => failed(format!("GET {url}: {error}")),
        Err(_) => failed(format!(
            "GET {url}: no response within {} ms",
            timeout.as_millis()
        )),
    }
}

async fn get(url: &str) -> Result<u16, String> {
    let uri: hyper::Uri = url.parse().map_err(|error| format!("not a URL: {error}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(
            "only http:// URLs are supported (for https, check with an exec check running curl)"
                .to_owned(),
        );
    }
    let host = uri.host().ok_or("the URL names no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map_or_else(|| host.to_owned(), |authority| authority.to_string());
    // A bracketed IPv6 literal connects without its brackets.
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((connect_host, port))
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake: {error}"))?;
    // The connection is driven beside the request and dropped with it.
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "fleetmesh-check")
        .body(Empty::<Bytes>::new())
        .map_err(|error| format!("bad request: {error}"))?;
    let response = sender.send_request(request).await;
    driver.abort();
    let response = response.map_err(|error| format!("request failed: {error}"))?;
    Ok(response.status().as_u16())
}

/// Opens a TCP connection to `addr` (`host:port`).
pub async fn tcp(addr: &str, timeout: Duration) -> TaskResult {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => TaskResult {
            success: true,
            exit_code: None,
            detail: format!("connected to {addr}"),
        },
        Ok(Err(error)) => failed(format!("cannot connect to {addr}: {error}")),
        Err(_) => failed(format!(
            "no connection to {addr} within {} ms",
            timeout.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn command(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    /// [`exec`] of `parts` with no added environment.
    async fn exec_parts(parts: &[&str], timeout: Duration, output_max: usize) -> TaskResult {
        exec(&command(parts), &[], timeout, output_max).await
    }

    #[tokio::test]
    async fn exec_captures_exit_code_output_and_environment() {
        let ok = exec(
            &command(&["sh", "-c", "echo out $FLEETMESH_EPOCH; echo err >&2"]),
            &[("FLEETMESH_EPOCH", "7".to_owned())],
            Duration::from_secs(10),
            1024,
        )
        .await;
        assert!(ok.success);
        assert_eq!(ok.exit_code, Some(0));
        assert_eq!(ok.detail, "exit 0: out 7\nerr");
        let failing = exec_parts(&["sh", "-c", "exit 3"], Duration::from_secs(10), 64).await;
        assert!(!failing.success);
        assert_eq!(failing.exit_code, Some(3));
        let missing = exec_parts(&["/nonexistent/check"], Duration::from_secs(1), 64).await;
        assert!(!missing.success && missing.detail.contains("cannot run"));
        let empty = exec(&[], &[], Duration::from_secs(1), 64).await;
        assert!(!empty.success);
    }

    #[tokio::test]
    async fn output_is_bounded_and_a_flood_does_not_block() {
        // 1 MiB of output, far over the pipe buffer: the executor must keep
        // reading or the command would never finish.
        let result = exec_parts(
            &["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x"],
            Duration::from_secs(10),
            100,
        )
        .await;
        assert!(result.success, "{result:?}");
        assert_eq!(result.detail, format!("exit 0: {}", "x".repeat(100)));
    }

    #[tokio::test]
    async fn a_hung_command_and_its_children_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let marker = dir.path().join("child-survived");
        let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let result = exec_parts(&["sh", "-c", &script], Duration::from_millis(200), 64).await;
        assert!(!result.success);
        assert_eq!(result.exit_code, None);
        assert!(result.detail.contains("timeout"), "{}", result.detail);
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the background child outlived the kill");
    }

    #[tokio::test]
    async fn an_action_abandoned_mid_run_is_killed_with_its_children() {
        // The agent stopping drops the running executor: nothing it started
        // may live on.
        let dir = tempfile::tempdir().expect("temporary directory");
        let marker = dir.path().join("child-survived");
        let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let command = command(&["sh", "-c", &script]);
        let run = exec(&command, &[], Duration::from_secs(60), 64);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), run)
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a child outlived the abandoned action");
    }

    #[tokio::test]
    async fn tcp_and_http_checks_see_a_real_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut stream, _) = listener.accept().await.expect("accept");
                let mut request = [0; 1024];
                let _ = stream.read(&mut request).await;
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                stream.write_all(response.as_bytes()).await.expect("write");
            }
        });
        let url = format!("http://{addr}/healthz");
        let healthy = http(&url, 200, Duration::from_secs(5)).await;
        assert!(healthy.success, "{healthy:?}");
        let unhealthy = http(&url, 200, Duration::from_secs(5)).await;
        assert!(!unhealthy.success);
        assert!(unhealthy.detail.contains("503"), "{}", unhealthy.detail);
        server.await.expect("server");
        // The server is gone: both kinds of check fail, quickly.
        assert!(!tcp(&addr.to_string(), Duration::from_secs(5)).await.success);
        assert!(!http(&url, 200, Duration::from_secs(5)).await.success);
        let https = http("https://127.0.0.1/", 200, Duration::from_secs(1)).await;
        assert!(https.detail.contains("only http://"), "{}", https.detail);
    }

    #[tokio::test]
    async fn tcp_check_passes_on_an_open_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        assert!(tcp(&addr, Duration::from_secs(5)).await.success);
    }
}
