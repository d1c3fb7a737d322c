//! SIGINT, SIGTERM and SIGHUP noted instead of ending the process, for a
//! command that must clean up before it exits (`fleetmesh demo`: its
//! agents and its directory of keys). The command polls [`received`]
//! where it waits; a handler only stores the signal's number, which is
//! all a signal handler may safely do.

use std::sync::atomic::{AtomicI32, Ordering};

/// The last signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signals that ask a command to stop.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn note(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// From now on, the stop signals are noted for [`received`] instead of
/// ending the process. Processes it starts afterwards get the default
/// dispositions back at exec, as always for caught signals.
pub fn watch() -> anyhow::Result<()> {
    for signal in STOP_SIGNALS {
        // SAFETY: a zeroed sigaction is valid (no flags, empty mask);
        // the handler is an `extern "C" fn(c_int)` that only stores to an
        // atomic, which is async-signal-safe.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            anyhow::bail!(
                "cannot watch for signal {signal}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// The stop signal received since [`watch`], if any.
pub fn received() -> Option<libc::c_int> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// A signal's name, for messages.
pub fn name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
