//! `fleetmesh demo` stopped early: SIGINT or SIGTERM to the demo alone or
//! to its whole process group (what Ctrl-C does) stop every agent and
//! remove the demo's directory, which holds the fleet's keys; SIGKILL to
//! the demo alone still takes its agents with it. `--hold` keeps the mesh
//! up until Enter or a signal. Each demo runs in a temporary directory of
//! the test's own (`TMPDIR`), in a process group of its own; every wait is
//! bounded, and a demo still running when a test ends is killed with its
//! group.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Longest wait for a line of the demo (its agents start, or with
/// `--hold` the whole demo runs).
const LINE_WAIT: Duration = Duration::from_secs(120);
/// Longest wait for the demo to stop once told: its agents get 10 s.
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for killed agents to be gone.
const GONE_WAIT: Duration = Duration::from_secs(10);
/// Pause between two looks.
const POLL: Duration = Duration::from_millis(100);

/// A running demo: its process (the leader of its own group), its output
/// lines as they come, and the directory it makes its own in.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    tmp: TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(-self.pid(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Demo {
    /// Starts `fleetmesh demo --nodes 2` and `extra`, with its standard
    /// input a pipe the test holds.
    fn start(extra: &[&str]) -> Demo {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(["demo", "--nodes", "2"])
            .args(extra)
            .env("TMPDIR", tmp.path())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo starts");
        let stdout = child.stdout.take().expect("stdout");
        let (to, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if to.send(line).is_err() {
                    return;
                }
            }
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
            tmp,
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a process id")
    }

    /// Waits for a line holding `text`.
    fn wait_line(&mut self, text: &str) {
        let start = Instant::now();
        while start.elapsed() < LINE_WAIT {
            match self.lines.recv_timeout(POLL) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "no line with {text:?} from the demo:\n{}",
            self.seen.join("\n")
        );
    }

    /// The demo's directory, as its first line names it.
    fn dir(&self) -> PathBuf {
        self.seen
            .iter()
            .find_map(|line| line.split_once(" nodes in "))
            .and_then(|(_, rest)| rest.split(" (").next())
            .map(PathBuf::from)
            .expect("the demo names its directory")
    }

    /// Waits for the demo to exit; its status, with the rest of its
    /// output read.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        while start.elapsed() < EXIT_WAIT {
            if let Some(status) = self.child.try_wait().expect("the demo's status") {
                self.seen.extend(self.lines.iter());
                return status;
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "the demo did not stop within {EXIT_WAIT:?}:\n{}",
            self.seen.join("\n")
        );
    }

    /// Asserts that nothing of the demo is left: no process naming its
    /// directory, no directory in its `TMPDIR`.
    fn assert_nothing_left(&self, dir: &Path) {
        assert_gone(dir);
        assert!(!dir.exists(), "{} was left behind", dir.display());
        let left: Vec<_> = fs::read_dir(self.tmp.path())
            .expect("the test's TMPDIR")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    }
}

/// Sends `signal` to process `pid` (a group when negative).
fn signal(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory; the
    // demo is not reaped yet, so its id (and its group's) is still its own.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// The processes whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| fs::read(entry.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .filter(|line| line.contains(text))
        .collect()
}

/// Waits until no process names `dir` (the agents run with their config
/// in it); fails naming those left.
fn assert_gone(dir: &Path) {
    let text = dir.display().to_string();
    let start = Instant::now();
    loop {
        let left = processes_mentioning(&text);
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < GONE_WAIT, "agents left running: {left:?}");
        std::thread::sleep(POLL);
    }
}

/// Starts a demo, signals it (`to_group`: its whole process group) once
/// its agents run, and checks it stopped cleanly with 128 + the signal.
fn stopped_by(sig: libc::c_int, to_group: bool, name: &str) {
    let mut demo = Demo::start(&[]);
    demo.wait_line("started 2 agents");
    let dir = demo.dir();
    assert!(dir.starts_with(demo.tmp.path()), "{}", dir.display());
    signal(if to_group { -demo.pid() } else { demo.pid() }, sig);
    let status = demo.wait_exit();
    let output = demo.seen.join("\n");
    assert_eq!(status.code(), Some(128 + sig), "{status:?}:\n{output}");
    assert!(
        output.contains(&format!("interrupted by {name}: stopped")),
        "{output}"
    );
    demo.assert_nothing_left(&dir);
}

#[test]
fn sigint_to_the_demo_stops_its_agents_and_removes_its_directory() {
    stopped_by(libc::SIGINT, false, "SIGINT");
}

#[test]
fn sigterm_to_the_demo_stops_its_agents_and_removes_its_directory() {
    stopped_by(libc::SIGTERM, false, "SIGTERM");
}

#[test]
fn ctrl_c_to_the_demos_group_stops_its_agents_and_removes_its_directory() {
    stopped_by(libc::SIGINT, true, "SIGINT");
}

#[test]
fn sigterm_to_a_held_demos_group_stops_it_and_removes_its_directory() {
    let mut demo = Demo::start(&["--hold"]);
    demo.wait_line("the mesh stays up");
    demo.wait_line("fleetmesh members --admin ");
    let dir = demo.dir();
    signal(-demo.pid(), libc::SIGTERM);
    let status = demo.wait_exit();
    let output = demo.seen.join("\n");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{output}");
    demo.assert_nothing_left(&dir);
}

#[test]
fn enter_ends_a_held_demo_which_then_cleans_up() {
    let mut demo = Demo::start(&["--hold"]);
    demo.wait_line("the mesh stays up");
    let dir = demo.dir();
    // Still up while held: its agents run.
    assert!(!processes_mentioning(&dir.display().to_string()).is_empty());
    let mut stdin = demo.child.stdin.take().expect("stdin");
    stdin.write_all(b"\n").expect("Enter");
    let status = demo.wait_exit();
    let output = demo.seen.join("\n");
    assert!(status.success(), "{status:?}:\n{output}");
    assert!(output.contains("stopped 2 agents (0 killed"), "{output}");
    demo.assert_nothing_left(&dir);
}

#[test]
fn sigkill_to_the_demo_alone_takes_its_agents_with_it() {
    let mut demo = Demo::start(&[]);
    demo.wait_line("started 2 agents");
    let dir = demo.dir();
    assert!(!processes_mentioning(&dir.display().to_string()).is_empty());
    signal(demo.pid(), libc::SIGKILL);
    let status = demo.wait_exit();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // No drop ran in the demo: its agents die of their own parent death
    // signal. The directory stays (the test's TMPDIR takes it).
    assert_gone(&dir);
}
