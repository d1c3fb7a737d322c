//! What the agent lends the lease logic for one input ([`Cx`]), and the
//! pure helpers that need only it: timeouts, jitter, a candidate's rank.

use crate::config::Config;
use crate::stats::LeaseStats;
use crate::time::Instant;
use fleetmesh_crdt::{Hlc, HlcClock, Keypair, LeaseTable, PublicKey};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Duration;

/// What the agent lends the lease logic for one input.
pub(crate) struct Cx<'a> {
    pub now: Instant,
    pub config: &'a Config,
    pub keypair: &'a Keypair,
    pub hlc: &'a mut HlcClock,
    pub rng: &'a mut ChaCha8Rng,
    pub table: &'a LeaseTable,
    pub stats: &'a mut LeaseStats,
}

impl Cx<'_> {
    pub(super) fn millis(&self) -> u64 {
        self.now.0 / 1_000_000
    }

    pub(super) fn stamp(&mut self) -> Hlc {
        let physical = self.millis().max(self.hlc.last().millis);
        self.hlc.now(physical)
    }

    /// A jitter in `[0, span)` from the agent's RNG.
    pub(super) fn jitter(&mut self, span: Duration) -> Duration {
        let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(self.rng.random_range(0..nanos))
    }

    /// How long a candidate waits for answers.
    pub(super) fn answer_timeout(&self) -> Duration {
        self.config.probe_timeout * 2
    }

    /// The wait a candidate of rank `rank` adds before asking after a
    /// vacancy: `rank` answer timeouts, plus a jitter of less than one, so
    /// an attempt of a better-ranked candidate has ended (won, or been
    /// refused or timed out) before the next one asks.
    pub(super) fn stagger(&mut self, rank: usize) -> Duration {
        let step = self.answer_timeout();
        let rank = u32::try_from(rank.min(RANK_MAX)).unwrap_or(0);
        step * rank + self.jitter(step)
    }
}

/// The rank past which candidates wait no longer: with many voters the
/// tail shares the last slot and falls back on the jitter.
const RANK_MAX: usize = 7;

/// Where `me` stands among the candidates for `scope`: its position when
/// the voters are ordered by a hash of scope and key (so each scope prefers
/// another voter), or last if it is no voter.
pub(super) fn rank(scope: &str, me: PublicKey, voters: &BTreeSet<PublicKey>) -> usize {
    let order = |key: &PublicKey| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(scope.as_bytes());
        hasher.update(&key.0);
        *hasher.finalize().as_bytes()
    };
    let mine = order(&me);
    if !voters.contains(&me) {
        return voters.len();
    }
    voters
        .iter()
        .filter(|&&voter| voter != me && order(&voter) < mine)
        .count()
}

/// How long another holder's lease in the table still runs, by this
/// agent's clock against the holder's HLC stamp.
pub(super) fn others_lease_left(cx: &Cx<'_>, scope: &str, me: PublicKey) -> Option<Duration> {
    let signed = cx
        .table
        .get(scope)
        .filter(|signed| signed.lease.holder != me)?;
    let left = signed.lease.expires_at_millis().checked_sub(cx.millis())?;
    (left > 0).then(|| Duration::from_millis(left))
}

/// The config's lock-delay in the voter's milliseconds.
pub(super) fn lock_delay_millis(cx: &Cx<'_>) -> u64 {
    u64::try_from(cx.config.lease_lock_delay.as_millis()).unwrap_or(u64::MAX)
}
