//! The admin API's listener: a Unix socket made with its permissions in
//! place before anyone can connect, or a loopback TCP port; and the accept
//! loop, which holds at most [`CONNECTIONS_MAX`] connections and none of
//! them for long, so no local user can make the agent run out of file
//! descriptors (each connection costs one) through it.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{Counters, Stream};
use crate::config::Endpoint;
use crate::files;

/// Most admin connections open at once; one more is closed as soon as it
/// is accepted (counted). Operators and scripts need a handful; the bound
/// keeps the descriptors the API can take far below any open files limit.
pub const CONNECTIONS_MAX: usize = 32;

/// How long a connection may wait for its request's headers (from the
/// moment it opens): a client holding a connection idle is cut off then,
/// freeing its slot.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection may last in all, body and answer included
/// (one request each: connections are not kept alive).
pub const CONNECTION_TIME_MAX: Duration = Duration::from_secs(30);

/// Pause after a failed accept (out of descriptors, say), so a failing
/// listener does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Longest path a Unix socket address holds (`sun_path` less its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// Mode of the socket file: the agent's user and group connect, nobody
/// else (connecting needs write permission).
const SOCKET_MODE: u32 = 0o660;

/// How long the check for another agent on an existing socket waits.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A bound listener.
pub(super) enum Listener {
    /// On a Unix socket; the file goes when this does.
    Unix {
        listener: tokio::net::UnixListener,
        file: SocketFile,
    },
    /// On a loopback TCP port.
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// Binds a Unix socket at `path`, mode 0660, group the agent's (its
    /// user's primary group under systemd's `User=`). The socket is made
    /// in a private directory (0700) beside `path`, given its mode and
    /// group there, and renamed into place, so no one connects while it
    /// still has the mode the umask gave it. A socket left at `path` by an
    /// agent that crashed is removed; one another process still answers on
    /// is not.
    pub(super) async fn bind_unix(path: &Path) -> anyhow::Result<Listener> {
        if path.file_name().is_none() {
            bail!(
                "admin socket {} names no file: set `admin` to a path such as \"unix:/run/fleetmesh/admin.sock\"",
                path.display()
            );
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let private = dir.join(format!(".admin.tmp-{}", std::process::id()));
        let temp = private.join("s");
        for candidate in [path, &temp] {
            let length = candidate.as_os_str().len();
            if length > SOCKET_PATH_MAX {
                bail!(
                    "admin socket {} is too long for a Unix socket ({length} bytes, {} with the name it is made under; at most {SOCKET_PATH_MAX}): set `admin` to a shorter path such as \"unix:/run/fleetmesh/admin.sock\"",
                    path.display(),
                    temp.as_os_str().len()
                );
            }
        }
        remove_stale(path).await?;
        // A leftover of a crash under this same process id (an agent that
        // is PID 1 in its container, say): this process's to replace.
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(|error| {
                files::io_failure("cannot make the admin socket's directory", &private, &error)
            })?;
        let bound = bind_private(&temp, path);
        // The private directory held the socket only until its rename.
        let _ = std::fs::remove_dir_all(&private);
        let listener = bound?;
        let metadata = std::fs::metadata(path)
            .map_err(|error| files::io_failure("cannot inspect", path, &error))?;
        Ok(Listener::Unix {
            listener,
            file: SocketFile {
                path: path.to_owned(),
                device: metadata.dev(),
                inode: metadata.ino(),
            },
        })
    }

    /// Binds a loopback TCP address (the config allows no other).
    pub(super) async fn bind_tcp(addr: std::net::SocketAddr) -> anyhow::Result<Listener> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!(
                "cannot listen for the admin API on {addr}: {error}; pick another `admin` address in the agent config, \"unix\", or \"off\""
            )
        })?;
        Ok(Listener::Tcp(listener))
    }

    /// Where it listens.
    pub(super) fn endpoint(&self) -> Endpoint {
        match self {
            Listener::Unix { file, .. } => Endpoint::Unix(file.path.clone()),
            Listener::Tcp(listener) => match listener.local_addr() {
                Ok(addr) => Endpoint::Tcp(addr),
                // A bound socket has an address; this is only for form.
                Err(_) => Endpoint::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            },
        }
    }

    async fn accept(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Listener::Unix { listener, .. } => Box::new(listener.accept().await?.0),
            Listener::Tcp(listener) => Box::new(listener.accept().await?.0),
        })
    }

    /// Accepts and serves connections until dropped: at most
    /// [`CONNECTIONS_MAX`] at once, each one request, cut off after
    /// [`IDLE_TIMEOUT`] without its headers and [`CONNECTION_TIME_MAX`] in
    /// all. Dropping this future drops every connection.
    pub(super) async fn serve(self, router: Router, counters: Arc<Counters>) {
        let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
        let mut connections = JoinSet::new();
        let mut failing = false;
        loop {
            let accepted = tokio::select! {
                accepted = self.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let stream = match accepted {
                Ok(stream) => {
                    failing = false;
                    stream
                }
                Err(error) => {
                    counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        let at = self.endpoint().to_string();
                        let error = files::io_failure("cannot accept on", Path::new(&at), &error);
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "the admin API cannot accept connections; retrying"
                        );
                    }
                    failing = true;
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let open = Open::new(slot, Arc::clone(&counters));
            let service = TowerToHyperService::new(router.clone());
            connections.spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(IDLE_TIMEOUT)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                let timed_out = match tokio::time::timeout(CONNECTION_TIME_MAX, connection).await {
                    Ok(Ok(())) => false,
                    Ok(Err(error)) => error.is_timeout(),
                    Err(_) => true,
                };
                if timed_out {
                    open.counters
                        .connections_timed_out
                        .fetch_add(1, Ordering::Relaxed);
                }
                drop(open);
            });
        }
    }
}

/// Binds at `temp` (in a directory only this user enters), sets the
/// socket's mode and group, and renames it to `path`.
fn bind_private(temp: &Path, path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    let listener = tokio::net::UnixListener::bind(temp)
        .map_err(|error| files::io_failure("cannot listen for the admin API on", temp, &error))?;
    std::fs::set_permissions(temp, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(|error| files::io_failure("cannot set the mode of", temp, &error))?;
    // SAFETY: getegid has no preconditions and cannot fail.
    let group = unsafe { libc::getegid() };
    std::os::unix::fs::chown(temp, None, Some(group))
        .map_err(|error| files::io_failure("cannot set the group of", temp, &error))?;
    std::fs::rename(temp, path)
        .map_err(|error| files::io_failure("cannot move the admin socket to", path, &error))?;
    Ok(listener)
}

/// Removes a socket an earlier agent left at `path` (it crashed, or was
/// killed). Refuses to touch anything else: a file that is no socket, or a
/// socket some process still answers on.
async fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(files::io_failure("cannot inspect", path, &error)),
    };
    if !metadata.file_type().is_socket() {
        bail!(
            "{} exists and is no socket: move it away, or set `admin` to another path",
            path.display()
        );
    }
    let probe = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await;
    if matches!(probe, Ok(Ok(_)) | Err(_)) {
        bail!(
            "a process answers on the admin socket {}: stop it (another agent?), or set `admin` to another path",
            path.display()
        );
    }
    std::fs::remove_file(path)
        .map_err(|error| files::io_failure("cannot remove the stale admin socket", path, &error))
}

/// The socket file of a Unix listener, removed when the listener goes
/// unless something else has taken its path meanwhile.
pub(super) struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| metadata.dev() == self.device && metadata.ino() == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One open connection: holds its slot and the gauge of open connections
/// while it lives.
struct Open {
    _slot: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Open {
    fn new(slot: OwnedSemaphorePermit, counters: Arc<Counters>) -> Open {
        counters.connections_open.fetch_add(1, Ordering::Relaxed);
        Open {
            _slot: slot,
            counters,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}
