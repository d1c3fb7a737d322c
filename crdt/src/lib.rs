//! Replicated data types of fleetmesh.
//!
//! Every type here is pure data with a merge that is commutative, associative
//! and idempotent, so replicas that have seen the same updates in any order,
//! with any duplication, hold the same value. Nothing in this crate reads a
//! clock, draws randomness or performs I/O; the protocol core and the
//! simulator decide when merges happen.

#![deny(missing_docs, unreachable_pub)]

pub mod cert;
pub mod cert_table;
pub mod config;
pub mod health;
pub mod hlc;
pub mod keys;
pub mod lease;
pub mod ledger;
pub mod membership;
mod register;
pub mod replica;
pub mod selector;
pub mod stop;
#[cfg(test)]
mod testing;
pub mod trust;

pub use membership::{
    Incarnation, Liveness, MemberRecord, MemberState, Merged, MetaError, MetaVersion, NodeId,
    NodeMeta, meta_limits,
};

pub use cert::{CertBody, CertError, NodeCert};
pub use cert_table::{CERTS_MAX, CertTable, cert_key};
pub use config::{
    AppliedRelease, ConfigEntry, ConfigError, ConfigStore, Equivocation, MalformedChange, Release,
    ReleaseError, ReleaseLog, SignedChange, SignedRelease, Value,
};
pub use health::{HealthReport, HealthState, HealthTable, SignedHealth, health_limits};
pub use hlc::{Hlc, HlcClock};
pub use keys::{Digest, Ed25519, Keypair, PublicKey, Signature, SignatureCheck, Verifier};
pub use lease::{
    Current, Grant, GrantBody, GrantDecision, GrantRequest, Lease, LeaseKind, LeaseTable, Refusal,
    SignedLease, Voter, VoterRecord, lease_limits,
};
pub use ledger::{
    IdempotencyKey, Ledger, LedgerRecord, RecordKind, SignedRecord, attest_limits, is_stop_record,
    ledger_limits, stop_limits,
};
pub use replica::{Ctx, Merge, Rejected, Replica};
pub use stop::{ActiveStop, active_stops, sign_resume, sign_stop};
pub use trust::{Role, SignedTrust, TrustChain, TrustDoc, TrustError, TrustInsert};
