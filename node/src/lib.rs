//! The fleetmesh agent's protocol core.
//!
//! This crate is deterministic and does no I/O: it reads no clock, opens no
//! socket, spawns no thread and draws randomness only from a seeded RNG that
//! each [`Agent`] owns. Time is an argument of every input. The same code
//! runs inside the simulator (`fleetmesh-simulator`) and inside the tokio
//! runtime (`fleetmesh-runtime`); the crate's dependency list (no tokio, no networking
//! crate) is the proof.
//!
//! Start at [`Agent`]: its doc comment gives the order in which a driver
//! feeds inputs and drains [`Output`]s.

#![deny(missing_docs, unreachable_pub)]

// Private modules: what drivers need is re-exported below. The codec
// (`wire`, with `snapshot` for the saved form) and the protocol's bounds
// (`limits`) stay public as namespaces of their own: fuzzers, the
// simulator's attacker and the runtime's journal build and measure
// messages with them.
mod agent;
mod broadcast;
mod budget;
mod config;
mod coverage;
mod encoding;
mod error;
mod event;
mod health;
mod identity;
mod lease;
pub mod limits;
mod members;
mod output;
mod persist;
mod probe;
mod remedy;
pub mod snapshot;
mod state;
mod stats;
mod suspicion;
mod time;
pub mod wire;

pub use agent::{Agent, RolloutView, WaveView};
pub use config::{Config, ConfigError, VerifyBudget};
pub use coverage::{PROBES, Probe};
pub use error::{AgentError, LeaseError};
pub use event::{Event, Transmit};
pub use fleetmesh_crdt as crdt;
pub use fleetmesh_crdt::{Incarnation, Liveness, MemberState, NodeId, NodeMeta};
pub use identity::Identity;
pub use members::{Member, MemberTable};
pub use output::Output;
pub use persist::{Durable, Persist};
pub use remedy::policy::{
    ActionClass, CheckKind, CheckSpec, POLICY_DOC, Policy, PolicyError, PolicyRefusal, Selector,
};
pub use remedy::task::{Task, TaskId, TaskResult};
pub use state::{Entry, Kind, Loaded, Replicas, StateBytes, StateStats};
pub use stats::{LeaseStats, RemedyStats, RolloutStats, Stats};
pub use time::Instant;
