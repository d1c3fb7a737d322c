//! Calling an agent's admin API, as the CLI and the local fleet do: one
//! request per connection, with the headers the guard asks for, and
//! errors worded for an operator (no agent there, no permission, no
//! token).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::http::header;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::{ANSWER_TIMEOUT, CONNECTIONS_MAX, Stream, Token};
use crate::config::Endpoint;

/// Longest a group name read from the system is taken to be.
const GROUP_BUFFER_BYTES: usize = 4096;

/// An agent's admin API as a client reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Where it listens.
    pub endpoint: Endpoint,
    /// The token file, for TCP: read at each call, since the agent writes
    /// a fresh token at each start.
    pub token_file: Option<PathBuf>,
}

impl Target {
    /// The Unix socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Target {
        Target {
            endpoint: Endpoint::Unix(path.into()),
            token_file: None,
        }
    }
}

/// Calls the admin API at `target`: `GET path`, or `POST path` with the
/// JSON `body`. Returns the status and the body; an error when no agent
/// answers or this user may not ask, worded for an operator.
pub async fn call(
    target: &Target,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<(u16, String)> {
    let token = match &target.token_file {
        Some(file) => Some(Token::read(file)?),
        None => None,
    };
    let at = &target.endpoint;
    let exchange = async {
        let (stream, host): (Box<dyn Stream>, String) = match at {
            Endpoint::Unix(socket) => match tokio::net::UnixStream::connect(socket).await {
                Ok(stream) => (Box::new(stream), "localhost".to_owned()),
                Err(error) => return Err(connect_error(at, &error)),
            },
            Endpoint::Tcp(addr) => match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => (Box::new(stream), addr.to_string()),
                Err(error) => return Err(connect_error(at, &error)),
            },
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(if body.is_some() { "POST" } else { "GET" })
            .uri(path)
            .header(header::HOST, host);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender.send_request(request).await.map_err(|error| {
            anyhow::anyhow!(
                "the agent at {at} closed the connection without an answer ({error}): it may be stopping, or hold its most admin connections ({CONNECTIONS_MAX}); retry shortly"
            )
        })?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        driver.abort();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(ANSWER_TIMEOUT * 2, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("the agent at {at} did not answer in time"))?
}

/// Why connecting to `at` failed, and what to do.
fn connect_error(at: &Endpoint, error: &std::io::Error) -> anyhow::Error {
    match (at, error.kind()) {
        (Endpoint::Unix(socket), std::io::ErrorKind::PermissionDenied) => {
            let (group, look) = owner_group(socket);
            anyhow::anyhow!(
                "you lack permission on {} ({error}): run as the agent's user or a member of group {group} ({look})",
                socket.display()
            )
        }
        _ => anyhow::anyhow!(
            "no agent answers at {at} ({error}): start it with `fleetmesh agent --config FILE`, or pass --admin with the socket or address of its config's `admin`"
        ),
    }
}

/// The group that may use `socket`, and the command that shows it: the
/// socket's own group, or its directory's when the directory is what
/// keeps this user out.
fn owner_group(socket: &Path) -> (String, String) {
    if let Ok(metadata) = std::fs::metadata(socket) {
        return (
            group_name(metadata.gid()),
            format!("ls -l {}", socket.display()),
        );
    }
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let group = std::fs::metadata(dir).map_or_else(
        |_| "of the agent".to_owned(),
        |metadata| group_name(metadata.gid()),
    );
    (group, format!("ls -ld {}", dir.display()))
}

/// The name of group `gid`, or its number when the system knows no name.
fn group_name(gid: u32) -> String {
    let mut group = std::mem::MaybeUninit::<libc::group>::uninit();
    let mut buffer = vec![0 as libc::c_char; GROUP_BUFFER_BYTES];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrgid_r writes the entry into `group`, its strings into
    // `buffer` (of the length given), and sets `found` to `group` or null;
    // all three live past the call, and the name is read only when found.
    let name = unsafe {
        let result = libc::getgrgid_r(
            gid,
            group.as_mut_ptr(),
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        if result != 0 || found.is_null() || (*found).gr_name.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*found).gr_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    name.unwrap_or_else(|| gid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_zero_is_named_and_an_unknown_group_is_its_number() {
        assert_eq!(group_name(0), "root");
        assert_eq!(group_name(4_000_000_000), "4000000000");
    }
}
