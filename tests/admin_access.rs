//! Who may use an agent's admin API, tried on real agent processes as an
//! outsider would:
//!
//! - as user `nobody`, the Unix socket (mode 0660, the agent's group)
//!   refuses the connection, so nobody can neither read the agent's view,
//!   publish, nor make it leave, and the CLI says what to do;
//! - on TCP, nobody cannot read the token, and a request without it is
//!   refused 401, one with a foreign Host 421, one with an Origin 403; a
//!   POST that is not JSON is refused 415 even with the token;
//! - holding far more idle connections than the cap neither exhausts the
//!   agent's descriptors (its limit here is 256) nor keeps its owner out
//!   past the idle timeout, and its state is still written.
//!
//! Becoming `nobody` needs root; elsewhere those tests print why they skip
//! and pass, unless `FLEETMESH_ROOT_REQUIRED` is set, as `.ci/run` does as
//! root. Every agent is killed when its test ends, pass or fail.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fleetmesh_runtime::admin::{CONNECTIONS_MAX, IDLE_TIMEOUT};
use fleetmesh_runtime::local::{self, LocalFleet, Placement};
use tempfile::TempDir;

/// Set (to anything) where the tests that need root must run, as in CI.
const ROOT_REQUIRED_VAR: &str = "FLEETMESH_ROOT_REQUIRED";
/// The user the outsider runs as.
const NOBODY: u32 = 65534;
/// Longest any one wait may take.
const WAIT: Duration = Duration::from_secs(60);
/// Connection attempts the descriptor test makes, held open.
const ATTEMPTS: usize = 2000;
/// The open files limit the agent of the descriptor test runs under: far
/// below [`ATTEMPTS`], as a host's default soft limit (1,024) is below
/// the ~1,100 connections that stopped an agent before the cap.
const AGENT_FILES_LIMIT: usize = 256;
/// Descriptors the agent may hold beyond its idle count and the capped
/// connections (a state write, a log rotation, a timer).
const DESCRIPTORS_SLACK: usize = 16;

/// Whether this process can become another user; prints why a test skips
/// when not, and panics instead where [`ROOT_REQUIRED_VAR`] is set.
fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os(ROOT_REQUIRED_VAR).is_some() {
        panic!("{test}: {ROOT_REQUIRED_VAR} is set but this test does not run as root");
    }
    // Straight to standard error: the harness captures `eprintln!` of a
    // passing test, and a skip must be seen.
    let _ = writeln!(
        io::stderr(),
        "SKIPPED {test}: becoming user nobody needs root"
    );
    false
}

/// A started fleet of one agent placed at `place`, its directory, and
/// its id.
fn one_agent(place: Placement) -> (LocalFleet, TempDir) {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let mut fleet = LocalFleet::create_at(
        Path::new(env!("CARGO_BIN_EXE_fleetmesh")),
        scratch.path(),
        vec![place],
    )
    .expect("the fleet's files");
    fleet.start(0).expect("the agent starts");
    local::wait_for("the admin API answers", WAIT, || fleet.id(0))
        .unwrap_or_else(|error| panic!("{error}\n{}", fleet.logs()));
    (fleet, scratch)
}

/// Lets others through the fleet's directories (not into them): what
/// keeps nobody out must be the socket's own mode, not a directory's.
fn open_directories(fleet: &LocalFleet) {
    for dir in [fleet.dir(), &fleet.nodes[0].dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    }
}

/// `fleetmesh ARGS` as user nobody (the standard library drops the
/// supplementary groups too).
fn fleetmesh_as_nobody(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .current_dir("/")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("the fleetmesh binary runs as nobody")
}

/// Asserts a command was refused (exit 1, no panic) saying each of
/// `expected`.
fn assert_refused(output: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{stderr:?} lacks {text:?}");
    }
}

/// Whether the agent's process still runs.
fn running(fleet: &LocalFleet) -> bool {
    fleet
        .pid(0)
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

#[test]
fn nobody_can_neither_read_publish_nor_stop_an_agent_on_its_socket() {
    if !root_or_skip("nobody_can_neither_read_publish_nor_stop_an_agent_on_its_socket") {
        return;
    }
    let (fleet, _scratch) = one_agent(Placement::loopback().expect("a free port"));
    open_directories(&fleet);
    let socket = fleet.nodes[0].admin.endpoint.to_string();
    let metadata = std::fs::metadata(&socket).expect("the socket exists");
    assert_eq!(metadata.mode() & 0o777, 0o660, "{socket}");
    // SAFETY: getegid has no preconditions and cannot fail.
    assert_eq!(metadata.gid(), unsafe { libc::getegid() });

    let denied = [
        format!("you lack permission on {socket}"),
        "run as the agent's user or a member of group root".to_owned(),
        format!("(ls -l {socket})"),
    ];
    let denied: Vec<&str> = denied.iter().map(String::as_str).collect();
    let trust = fleet.dir().join("trust.json").display().to_string();
    for command in [
        &["members", "--admin", &socket][..],
        &["config", "publish", "--admin", &socket, &trust],
        &["leave", "--admin", &socket],
    ] {
        assert_refused(&fleetmesh_as_nobody(command), &denied);
    }

    // The owner still reads it, and it never left.
    let members = fleet.get_json(0, "/v1/members").expect("the owner reads");
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1));
    assert!(running(&fleet), "{}", fleet.logs());
}

#[test]
fn on_tcp_a_request_needs_the_token_its_host_no_origin_and_json() {
    if !root_or_skip("on_tcp_a_request_needs_the_token_its_host_no_origin_and_json") {
        return;
    }
    let (fleet, _scratch) = one_agent(Placement::loopback_tcp_admin().expect("free ports"));
    open_directories(&fleet);
    let node = &fleet.nodes[0];
    let addr = match node.admin.endpoint {
        fleetmesh_runtime::config::Endpoint::Tcp(addr) => addr,
        ref other => panic!("a TCP admin API, not {other}"),
    };
    let token_file = node.admin.token_file.clone().expect("a token file");
    let token = std::fs::read_to_string(&token_file).expect("the owner reads the token");
    let token = token.trim();
    let mode = std::fs::metadata(&token_file).expect("token").mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Nobody cannot read the token...
    let at = addr.to_string();
    let file = token_file.display().to_string();
    assert_refused(
        &fleetmesh_as_nobody(&["members", "--admin", &at, "--token-file", &file]),
        &["cannot read the admin token", "run as the agent's user"],
    );
    // ...and without it gets nothing, whatever it sends.
    let host = format!("Host: {at}\r\n");
    let json = "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    for (request, status) in [
        (format!("GET /v1/members HTTP/1.1\r\n{host}\r\n"), 401),
        (format!("POST /v1/leave HTTP/1.1\r\n{host}{json}"), 401),
        (
            format!(
                "GET /v1/members HTTP/1.1\r\nHost: rebound.example:{}\r\n\r\n",
                addr.port()
            ),
            421,
        ),
        (
            format!("POST /v1/leave HTTP/1.1\r\n{host}Origin: https://evil.example\r\n{json}"),
            403,
        ),
    ] {
        let answer = tcp_request_as_nobody(addr, request.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} answered {answer:?}"
        );
        assert!(answer.contains("{\"error\":"), "{answer}");
    }
    // The owner, with the token, is still refused a POST that is not JSON
    // (a browser's form or text/plain), and answered otherwise.
    let bearer = format!("Authorization: Bearer {token}\r\n");
    for (request, status) in [
        (
            format!(
                "POST /v1/leave HTTP/1.1\r\n{host}{bearer}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
            415,
        ),
        (
            format!("GET /v1/members HTTP/1.1\r\n{host}{bearer}\r\n"),
            200,
        ),
    ] {
        let answer = tcp_request(addr, request.as_bytes());
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?} answered {answer:?}"
        );
    }
    assert!(running(&fleet), "{}", fleet.logs());
    assert_eq!(
        fleet.metric(0, "fleetmesh_runtime_admin_requests_refused_total"),
        Some(5)
    );
}

/// One request over TCP as this process; the whole answer.
fn tcp_request(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Most bytes of an answer [`tcp_request_as_nobody`] passes back.
const ANSWER_BYTES_MAX: usize = 4096;

/// One request over TCP from a child process running as user nobody;
/// the answer it read. The child runs only system calls between fork and
/// exit (no allocation: everything it touches is ready before the fork),
/// as a forked child of a threaded process must.
fn tcp_request_as_nobody(addr: SocketAddr, request: &[u8]) -> String {
    let SocketAddr::V4(addr) = addr else {
        panic!("the agent's admin API listens on IPv4 loopback here");
    };
    let target = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut pipe = [0; 2];
    // SAFETY: pipe writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let [from_child, to_parent] = pipe;
    // SAFETY: the child only makes system calls on memory prepared above
    // (the request, the address, a stack buffer) and leaves by _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: as above; each call gets valid pointers and lengths.
        unsafe {
            libc::close(from_child);
            libc::alarm(20);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                libc::_exit(2);
            }
            let socket = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let connected = libc::connect(
                socket,
                (&raw const target).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if socket < 0 || connected != 0 {
                libc::_exit(3);
            }
            let sent = libc::write(socket, request.as_ptr().cast(), request.len());
            if usize::try_from(sent) != Ok(request.len()) {
                libc::_exit(4);
            }
            let mut buffer = [0u8; ANSWER_BYTES_MAX];
            loop {
                let read = libc::read(socket, buffer.as_mut_ptr().cast(), buffer.len());
                if read <= 0 {
                    break;
                }
                libc::write(to_parent, buffer.as_ptr().cast(), read as usize);
            }
            libc::_exit(0);
        }
    }
    // SAFETY: the parent's copy of the write end is its own to close.
    unsafe { libc::close(to_parent) };
    // SAFETY: the read end is this process's, and the File takes it over.
    let mut reader = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(from_child) };
    let mut answer = Vec::new();
    reader.read_to_end(&mut answer).expect("the child's answer");
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child as nobody failed: status {status}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn idle_connections_past_the_cap_are_closed_and_the_agent_keeps_its_descriptors() {
    // The agent runs with a limit of open files far below the attempts.
    let mut place = Placement::loopback().expect("a free port");
    place.prefix = [
        "sh",
        "-c",
        &format!("ulimit -n {AGENT_FILES_LIMIT} && exec \"$0\" \"$@\""),
    ]
    .map(str::to_owned)
    .to_vec();
    let (fleet, _scratch) = one_agent(place);
    let pid = fleet.pid(0).expect("running");
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|entries| entries.count())
            .unwrap_or(usize::MAX)
    };
    let idle = descriptors();
    let socket = fleet.nodes[0].admin.endpoint.to_string();

    // This process holds every connection it makes: it needs the files.
    let mine = fleetmesh_runtime::process::raise_open_files_limit().expect("own limit");
    let attempts = ATTEMPTS.min(usize::try_from(mine.soft).unwrap_or(usize::MAX) - 64);
    let start = Instant::now();
    let mut held = Vec::with_capacity(attempts);
    let mut most = idle;
    for attempt in 0..attempts {
        match UnixStream::connect(&socket) {
            Ok(stream) => held.push(stream),
            Err(error) => panic!("attempt {attempt}: {error}\n{}", fleet.logs()),
        }
        if attempt % 50 == 0 {
            most = most.max(descriptors());
        }
    }
    let took = start.elapsed();
    // Connections past the cap are closed as soon as the agent accepts
    // them (it may still be working through its backlog); the others wait
    // idle until their timeout.
    for stream in &held {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    let still_open = || {
        held.iter()
            .filter(|stream| {
                let mut reader: &UnixStream = stream;
                matches!(reader.read(&mut [0; 1]), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
            })
            .count()
    };
    let open = local::wait_for("connections past the cap closed", WAIT, || {
        most = most.max(descriptors());
        let open = still_open();
        (open <= CONNECTIONS_MAX).then_some(open)
    })
    .unwrap_or_else(|error| panic!("{error}: {} open\n{}", still_open(), fleet.logs()));
    most = most.max(descriptors());
    eprintln!(
        "{attempts} connections in {:.2}s: agent descriptors {idle} idle, {most} at most; {open} left open after {:.2}s",
        took.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    assert!(open <= CONNECTIONS_MAX, "{open} connections left open");
    assert!(
        most <= idle + CONNECTIONS_MAX + DESCRIPTORS_SLACK,
        "the agent held {most} descriptors (idle: {idle})"
    );
    assert!(running(&fleet), "{}", fleet.logs());

    // The idle ones are cut off in time, and the owner gets in again while
    // every connection is still held on this side.
    let owner = local::wait_for("the owner answered again", IDLE_TIMEOUT + WAIT, || {
        fleet.get_json(0, "/v1/members")
    })
    .unwrap_or_else(|error| panic!("{error}\n{}", fleet.logs()));
    assert_eq!(owner["members"].as_array().map(Vec::len), Some(1));
    let refused = fleet.metric(0, "fleetmesh_runtime_admin_connections_refused_total");
    assert!(refused.is_some_and(|refused| refused > 0), "{refused:?}");
    let timed_out = fleet.metric(0, "fleetmesh_runtime_admin_connections_timed_out_total");
    assert!(timed_out.is_some_and(|count| count > 0), "{timed_out:?}");

    // A release written to durable.json: the agent still writes its state.
    fleet
        .publish_release(0, "app", "[web]\nport = 8080\n")
        .expect("published");
    local::wait_for("the agent runs the release", WAIT, || {
        (fleet.release(0, "app") == Some(1)).then_some(())
    })
    .unwrap_or_else(|error| panic!("{error}\n{}", fleet.logs()));
    let durable =
        std::fs::read_to_string(fleet.nodes[0].dir.join("durable.json")).expect("durable.json");
    assert!(durable.contains("\"app\""), "{durable}");
    assert!(running(&fleet), "{}", fleet.logs());
    drop(held);
}
