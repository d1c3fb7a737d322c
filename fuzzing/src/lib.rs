//! fleetmesh's fuzz targets, with the fleet they run against, their seed
//! corpora and a stable-Rust smoke run.
//!
//! Each target is a `pub fn NAME(data: &[u8])` that feeds `data` to one
//! of fleetmesh's decoders or parsers, as a peer, a file or a local user
//! could, and panics when a check fails; listed in [`TARGETS`]. The
//! cargo-fuzz wrappers in `fuzz/` hand them libFuzzer's inputs; the
//! `fuzz-smoke` binary runs them on mutated seeds in CI; `fuzz-corpus`
//! writes the seeds. `docs/fuzzing.md` says how to run a campaign and
//! what has run.

#![deny(missing_docs)]

pub mod corpus;
pub mod fixture;
pub mod mutate;
pub mod smoke;
pub mod targets;

pub use targets::config_change::config_change;
pub use targets::entries_verify::entries_verify;
pub use targets::release_apply::release_apply;
pub use targets::snapshot_decode::snapshot_decode;
pub use targets::texts::{admin_body, agent_config, drafts_journal, rollout_plan, scenario};
pub use targets::wire_decode::wire_decode;

/// A fuzz target.
pub struct Target {
    /// Its name: the function's, the cargo-fuzz target's and the corpus
    /// directory's.
    pub name: &'static str,
    /// The target body.
    pub run: fn(&[u8]),
    /// Inputs the smoke run gives it in CI (seeds included), sized so the
    /// whole smoke run stays within a few minutes (`docs/fuzzing.md`).
    pub smoke_inputs: u64,
}

/// Every target.
pub const TARGETS: [Target; 10] = [
    Target {
        name: "wire_decode",
        run: wire_decode,
        smoke_inputs: 2_000_000,
    },
    Target {
        name: "snapshot_decode",
        run: snapshot_decode,
        smoke_inputs: 20_000,
    },
    Target {
        name: "entries_verify",
        run: entries_verify,
        smoke_inputs: 20_000,
    },
    Target {
        name: "config_change",
        run: config_change,
        smoke_inputs: 1_000_000,
    },
    Target {
        name: "release_apply",
        run: release_apply,
        smoke_inputs: 100_000,
    },
    Target {
        name: "agent_config",
        run: agent_config,
        smoke_inputs: 100_000,
    },
    Target {
        name: "scenario",
        run: scenario,
        smoke_inputs: 50_000,
    },
    Target {
        name: "admin_body",
        run: admin_body,
        smoke_inputs: 50_000,
    },
    Target {
        name: "rollout_plan",
        run: rollout_plan,
        smoke_inputs: 100_000,
    },
    Target {
        name: "drafts_journal",
        run: drafts_journal,
        smoke_inputs: 100_000,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}
