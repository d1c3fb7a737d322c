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

pub mod agent;
pub mod broadcast;
pub mod budget;
pub mod config;
pub mod coverage;
pub mod encoding;
pub mod error;
pub mod event;
pub mod health;
pub mod identity;
pub mod lease;
pub mod limits;
pub mod members;
pub mod output;
pub mod persist;
pub mod probe;
pub mod remedy;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod suspicion;
pub mod time;
pub mod wire;

pub use agent::Agent;
pub use config::{Config, ConfigError, VerifyBudget};
pub use coverage::{PROBES, Probe};
pub use error::AgentError;
pub use event::{Event, Transmit};
pub use fleetmesh_crdt as crdt;
pub use fleetmesh_crdt::{Incarnation, Liveness, MemberState, NodeId, NodeMeta};
pub use identity::Identity;
pub use output::Output;
pub use persist::{Durable, Persist};
pub use remedy::policy::{POLICY_DOC, Policy, PolicyError};
pub use remedy::task::{Task, TaskId, TaskResult};
pub use stats::Stats;
pub use time::Instant;
