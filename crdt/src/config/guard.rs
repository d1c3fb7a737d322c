//! The panic boundary around automerge.
//!
//! automerge 0.12 panics on some malformed changes, while parsing them and
//! while applying them (`shared/repro/automerge-panics.md`, docs/security.md
//! "A dependency's panics"). Every automerge call in this crate that can see
//! bytes from outside (a peer, the admin API, an operator's file, a snapshot)
//! goes through [`guarded`], which turns a panic into a [`Panicked`] value
//! the caller refuses like any other malformed input.
//!
//! A panic may leave the automerge document it happened in half-changed;
//! callers never read a document after a caught panic without rebuilding it
//! from its verified changes first (`Document::apply`).
//!
//! The guard keeps the panic quiet: a hook installed once per process stays
//! silent for panics inside a guarded call (their message becomes the
//! refusal's reason) and hands every other panic to the hook that was there
//! before, so the crate's own bugs still print and, under a fuzzer, still
//! abort.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

// The guard needs panics to unwind; a build with `panic = "abort"` would
// let one malformed change kill the process.
#[cfg(panic = "abort")]
compile_error!("fleetmesh-crdt needs panic = \"unwind\": it catches automerge's panics");

thread_local! {
    /// How many guarded calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last guarded panic happened, as the hook saw it.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Panics caught on this thread so far.
    static CAUGHT: Cell<u64> = const { Cell::new(0) };
}

/// How many panics guarded calls on this thread have caught so far: a
/// caller counts what its own calls caught by the difference, exactly,
/// since nothing else runs on its thread in between.
pub(crate) fn caught() -> u64 {
    CAUGHT.with(Cell::get)
}

/// A guarded call that panicked: where, and the panic's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Panicked(pub String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "automerge panicked: {}", self.0)
    }
}

/// Runs `call`, turning a panic inside it into [`Panicked`].
///
/// `call` must not leave state the caller reads afterwards in a broken
/// condition unless the caller repairs it on `Err`: the guard cannot know
/// what a half-run call changed.
pub(crate) fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, Panicked> {
    install_hook();
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(call));
    DEPTH.with(|depth| depth.set(depth.get() - 1));
    result.map_err(|payload| {
        CAUGHT.with(|caught| caught.set(caught.get() + 1));
        let location = LOCATION
            .with(|location| location.borrow_mut().take())
            .unwrap_or_else(|| "unknown location".to_owned());
        Panicked(format!("{location}: {}", message(payload.as_ref())))
    })
}

/// The text of a panic payload (`panic!` carries a `&str` or a `String`).
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Installs, once, the hook that keeps guarded panics quiet.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                return previous(info);
            }
            let location = info.location().map(|location| {
                // Registry paths are long and machine-specific: keep the
                // crate and file.
                let file = location.file();
                let file = file.find("automerge").map_or(file, |start| &file[start..]);
                format!("{file}:{}", location.line())
            });
            LOCATION.with(|slot| *slot.borrow_mut() = location);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_returned_with_its_message_and_the_thread_goes_on() {
        let panicked = guarded(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert!(panicked.0.ends_with("boom 7"), "{panicked:?}");
        assert!(panicked.0.contains("guard.rs"), "{panicked:?}");
        assert_eq!(guarded(|| 5), Ok(5));
        // Nested guards unwind to the innermost one.
        let outer = guarded(|| guarded(|| -> u32 { panic!("inner") }).is_err());
        assert_eq!(outer, Ok(true));
        assert_eq!(DEPTH.with(Cell::get), 0);
        let before = caught();
        let _ = guarded(|| -> u32 { panic!("counted") });
        assert_eq!(caught(), before + 1);
    }
}
