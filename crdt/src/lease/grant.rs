//! The signed statements behind a lease: voter grants and the holder's
//! claim.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::keys::{Keypair, PublicKey, Signature, SignatureCheck, domain};

/// Bounds on leases, so one cannot exhaust an agent's memory.
pub mod lease_limits {
    /// Longest scope name, in bytes.
    pub const SCOPE_MAX: usize = 64;
    /// Most voters of one quorum lease.
    pub const VOTERS_MAX: usize = 64;
    /// Most scopes a lease table or a voter keeps.
    pub const SCOPES_MAX: usize = 4_096;
}

/// What a voter grants: `holder` may hold `scope` at `epoch` for
/// `ttl_millis` of the voter's own clock from when it granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantBody {
    /// The scope, e.g. `remediate:web`.
    pub scope: String,
    /// The fencing epoch granted.
    pub epoch: u64,
    /// Who may hold the lease.
    pub holder: PublicKey,
    /// How long the voter promises not to grant a new epoch (before its
    /// lock-delay is added).
    pub ttl_millis: u64,
    /// The voter that signs.
    pub voter: PublicKey,
    /// When the voter granted, on its HLC.
    pub issued: Hlc,
}

/// A voter's signed grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// What is granted.
    pub body: GrantBody,
    /// `body.voter`'s signature over the body (domain GRANT).
    pub signature: Signature,
}

impl Grant {
    /// Signs `body` with `voter`, which must be the key named in
    /// `body.voter`.
    pub fn sign(body: GrantBody, voter: &Keypair) -> Grant {
        let signature = voter.sign(domain::GRANT, &body);
        Grant { body, signature }
    }

    /// The signature check this grant needs.
    pub fn check(&self) -> SignatureCheck {
        SignatureCheck::of(self.body.voter, domain::GRANT, &self.body, self.signature)
    }
}

/// What backs a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseKind {
    /// Grants from a strict majority of `voters`: at most one holder per
    /// epoch fleet-wide. Callers must check that `voters` is the scope's
    /// voter set in the released config; the table only checks the grants
    /// against the set the lease names.
    Quorum {
        /// The scope's voters.
        voters: BTreeSet<PublicKey>,
        /// Grants from distinct voters, for this lease's scope, epoch and
        /// holder.
        grants: Vec<Grant>,
    },
    /// No grants: for non-disruptive coordination; promises one holder per
    /// connected component (once ttl plus max skew has passed), nothing
    /// globally.
    Component,
}

/// A lease as its holder claims it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The scope.
    pub scope: String,
    /// The fencing epoch: targets refuse intents with a lower one.
    pub epoch: u64,
    /// The holder, who signs.
    pub holder: PublicKey,
    /// When the holder (re)acquired it, on its HLC.
    pub granted_at: Hlc,
    /// How long it holds from `granted_at`.
    pub ttl_millis: u64,
    /// What backs it.
    pub kind: LeaseKind,
}

impl Lease {
    /// HLC milliseconds at which the lease stops holding.
    pub fn expires_at_millis(&self) -> u64 {
        self.granted_at.millis.saturating_add(self.ttl_millis)
    }
}

/// A lease signed by its holder: the entry the lease table replicates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedLease {
    /// The lease.
    pub lease: Lease,
    /// `lease.holder`'s signature over the lease (domain LEASE).
    pub signature: Signature,
}

impl SignedLease {
    /// Signs `lease` with `holder`, which must be the key named in
    /// `lease.holder`.
    pub fn sign(lease: Lease, holder: &Keypair) -> SignedLease {
        let signature = holder.sign(domain::LEASE, &lease);
        SignedLease { lease, signature }
    }

    /// The signature check of the holder's claim (grants not included).
    pub fn check(&self) -> SignatureCheck {
        SignatureCheck::of(
            self.lease.holder,
            domain::LEASE,
            &self.lease,
            self.signature,
        )
    }
}
