//! Replicated data types of fleetmesh.
//!
//! Every type here is pure data with a merge that is commutative, associative
//! and idempotent, so replicas that have seen the same updates in any order,
//! with any duplication, hold the same value. Nothing in this crate reads a
//! clock, draws randomness or performs I/O; the protocol core and the
//! simulator decide when merges happen.

pub mod membership;

pub use membership::{
    Incarnation, Liveness, MemberRecord, MemberState, Merged, MetaError, MetaVersion, NodeId,
    NodeMeta, meta_limits,
};
