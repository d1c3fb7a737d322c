//! A closed standard output ends a printing command quietly.
//!
//! Rust programs start with SIGPIPE ignored, so a write to a pipe whose
//! reader has gone (`fleetmesh members --json | head -1`) fails with
//! `EPIPE`, and `println!` panics on it with a backtrace hint. Commands
//! that print for a reader take the signal's default back instead, as
//! `cat` and `ls` have it: the process ends at once, silently, with the
//! status a shell shows as 141. Set once in `main`, for every command but
//! the agent (whose sockets must never end it) and the demo (which must
//! stop its agents and remove its directory first).
//!
//! The admin API client's own socket is the one write of those commands
//! that must not end them so: an agent that closes the connection early
//! (refusing a request too large) is an error to report. [`PipeErrors`]
//! ignores the signal around those calls.

/// Makes a write to a closed pipe end the process (SIGPIPE's default).
pub fn end_on_closed_stdout() {
    // SAFETY: signal(2) with a constant disposition; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// While held, a write to a closed pipe or socket fails with `EPIPE`
/// instead of ending the process; dropping it puts back what was before.
/// For single-threaded code: the disposition is the whole process's.
pub struct PipeErrors {
    previous: libc::sighandler_t,
}

impl PipeErrors {
    /// Ignores SIGPIPE until the guard is dropped.
    pub fn returned() -> PipeErrors {
        // SAFETY: as in `end_on_closed_stdout`.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        PipeErrors { previous }
    }
}

impl Drop for PipeErrors {
    fn drop(&mut self) {
        if self.previous != libc::SIG_ERR {
            // SAFETY: puts back the disposition `signal` returned, a
            // constant (no handler is ever installed for SIGPIPE here).
            unsafe {
                libc::signal(libc::SIGPIPE, self.previous);
            }
        }
    }
}
