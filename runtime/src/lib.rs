//! The fleetmesh agent on a real host: the first real driver of the
//! sans-IO core (`fleetmesh-node`).
//!
//! One tokio task owns the core's `Agent` and drives it with real time
//! ([`clock`]) and OS randomness ([`driver`]); peers talk over libp2p with
//! QUIC, authenticated by the agent's ed25519 node key ([`transport`]),
//! and peers the core does not admit may hold only a few connections for
//! a few seconds and send only Hello-sized messages ([`admission`],
//! [`gate`]);
//! what the core must not forget lives in a state directory written
//! crash-safely ([`state`], [`files`], [`formats`]), with a journal of the
//! replicated entries merged since the last snapshot ([`journal`]); checks
//! and actions run
//! in executors off the core's task ([`exec`]); an admin API on loopback
//! serves JSON and Prometheus metrics ([`admin`], [`metrics`]). The agent
//! is configured by one TOML file ([`config`]) and run by
//! `fleetmesh agent --config FILE`. [`local`] runs a whole fleet of them
//! as processes on loopback (`fleetmesh demo`, the multi-process tests).

#![warn(missing_docs)]

pub mod admin;
pub mod admission;
pub mod clock;
pub mod config;
pub mod driver;
pub mod exec;
pub mod files;
pub mod formats;
pub mod gate;
pub mod journal;
pub mod local;
pub mod metrics;
pub mod peers;
pub mod process;
pub mod records;
pub mod state;
pub mod transport;
pub mod views;

pub use config::AgentConfig;
pub use driver::{Started, run, shutdown_signal};
