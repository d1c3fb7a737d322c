//! Protocol parameters: every timing and size knob of the agent in one place,
//! and [`Config::validate`], the relationships between them the core relies
//! on. Every driver validates a config before it builds an agent from it.

use std::num::{NonZeroU8, NonZeroU32};
use std::ops::RangeInclusive;
use std::time::Duration;

/// A token bucket of signature verifications (see `crate::budget`): a
/// sustained rate and the burst a full bucket allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyBudget {
    /// Verifications refilled per second.
    pub per_second: NonZeroU32,
    /// Verifications a full bucket holds.
    pub burst: NonZeroU32,
}

impl VerifyBudget {
    /// What one admitted peer may cost by default: about 4% of a core
    /// sustained (one ed25519 verification takes ~40 µs), and a burst that
    /// covers a joiner's catch-up from one peer in a fleet of thousands
    /// (every certificate, health report and ledger record it lacks).
    pub const PER_PEER: VerifyBudget = VerifyBudget::new(1_024, 16_384);

    /// What all peers not admitted together may cost by default: one
    /// certificate check per Hello, enough for a thousand agents joining
    /// through one seed within seconds.
    pub const UNADMITTED: VerifyBudget = VerifyBudget::new(1_024, 2_048);

    /// A budget of `per_second` and `burst`, each raised to at least 1.
    pub const fn new(per_second: u32, burst: u32) -> VerifyBudget {
        VerifyBudget {
            per_second: non_zero(per_second),
            burst: non_zero(burst),
        }
    }
}

/// `value`, or 1 for 0.
const fn non_zero(value: u32) -> NonZeroU32 {
    match NonZeroU32::new(value) {
        Some(value) => value,
        None => NonZeroU32::MIN,
    }
}

/// Protocol parameters of one agent. All agents of a fleet should use the
/// same values; they tolerate small differences.
///
/// Start from [`Config::lan`] (one data centre or one edge site, sub-ms to
/// a few ms of latency) or [`Config::wan`] (sites joined over the internet,
/// tens to hundreds of ms), then change single fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// How often the agent probes one member (SWIM's protocol period), before
    /// the local health multiplier stretches it. Detection time and probe
    /// traffic both scale with it.
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking helpers, before the
    /// local health multiplier stretches it. Keep it above the 99.9th
    /// percentile round-trip time.
    pub probe_timeout: Duration,
    /// Helpers asked to probe a member that missed a direct ack. More helpers
    /// make false suspicions under loss rarer and cost traffic.
    pub indirect_probes: NonZeroU8,
    /// Ceiling of Lifeguard's local health score. An agent that misses its
    /// own deadlines (overloaded, paused, losing packets) multiplies its probe
    /// interval and timeout by `1 + score`, so it stops accusing others.
    pub local_health_max: u8,
    /// Lifeguard's alpha: the shortest suspicion timeout is
    /// `suspicion_mult * max(1, log10(members)) * probe_interval`.
    pub suspicion_mult: f64,
    /// Lifeguard's beta: an unconfirmed suspicion lasts
    /// `suspicion_max_mult` times the shortest timeout; each independent
    /// confirmation shrinks it toward the shortest.
    pub suspicion_max_mult: f64,
    /// Lifeguard's K: independent confirmations that bring a suspicion down
    /// to the shortest timeout.
    pub suspicion_confirmations: NonZeroU8,
    /// How often queued updates are pushed to `gossip_fanout` random members.
    /// A "round" in dissemination figures is one such interval.
    pub gossip_interval: Duration,
    /// Members each gossip round is sent to.
    pub gossip_fanout: NonZeroU8,
    /// Lambda in the retransmit limit `lambda * ceil(log10(members + 1))`:
    /// how often each agent forwards one update before dropping it.
    pub retransmit_mult: u32,
    /// Largest datagram the agent builds, in bytes. Piggybacked updates fill
    /// a message up to this size.
    pub datagram_bytes_max: usize,
    /// How often the agent runs push-pull anti-entropy with a random member.
    /// This is what repairs anything gossip lost.
    pub sync_interval: Duration,
    /// How often the agent tries to reach a dead member or a seed with an
    /// anti-entropy exchange, so that the two sides of a partition, each of
    /// which declared the other dead, find each other again after it heals.
    pub reconnect_interval: Duration,
    /// How long a dead or departed member stays in the table (so that late
    /// gossip about it is recognised as stale) before it is forgotten.
    pub reap_after: Duration,
    /// Bound of the queue of updates waiting to be gossiped. When full, the
    /// updates forwarded most often are dropped first; anti-entropy repairs.
    pub broadcast_queue_max: usize,
    /// Most member records one anti-entropy message carries. A joiner's
    /// bootstrap continues with exchange after exchange until it has the
    /// whole table; any other larger difference is repaired over later
    /// exchanges and gossip. The bound keeps messages small while a large
    /// fleet is forming, when almost every bucket differs between any two
    /// agents. Records travel in whole buckets, so this must exceed the
    /// fullest of the 64 buckets (about N/64 members, plus slack): 1024
    /// serves fleets of up to about 50,000.
    pub sync_records_max: usize,
    /// Most probes this agent runs on behalf of others at once.
    pub relayed_probes_max: usize,
    /// Most outgoing messages buffered between two drains by the driver.
    pub transmit_queue_max: usize,
    /// Most events buffered between two drains by the driver.
    pub event_queue_max: usize,
    /// How much shorter than its ttl a lease holder trusts its lease: it
    /// holds until `asked + ttl - lease_drift_bound` on its own clock,
    /// counted from when it sent its requests. It must cover how far the
    /// holder's clock may run slow against any voter's over one ttl (rate
    /// drift, not offset: both sides measure durations on monotonic
    /// clocks). Clocks worse than this void the promise that two agents
    /// never hold one scope at the same moment; one holder per epoch holds
    /// regardless.
    pub lease_drift_bound: Duration,
    /// How long a voter waits past its last grant's ttl before it grants a
    /// new epoch of the scope, on its own clock: slack for the old holder
    /// to notice its lease ran out and stop.
    pub lease_lock_delay: Duration,
    /// How often a holder republishes its renewed lease to the whole fleet.
    /// A new epoch is published at once (it is the fencing token every
    /// target must learn); renewals only refresh the voters' promises, and
    /// flooding each one would cost every agent a lease entry per scope per
    /// renewal. Between republications the table shows the holder's last
    /// published claim, which may look expired: other candidates then ask,
    /// and the voters' refusals tell them the scope is held.
    pub lease_publish_interval: Duration,
    /// Signature verifications one admitted peer's messages may cost
    /// (`crate::budget`): past it, its messages that would verify are
    /// dropped and counted until the bucket refills. Raise it for fleets
    /// whose joiners must catch up on more entries than the burst at once.
    pub verify_per_peer: VerifyBudget,
    /// Signature verifications all peers not admitted together may cost
    /// (their Hellos' certificate checks): one shared bucket, since keys
    /// cost nothing to make.
    pub verify_unadmitted: VerifyBudget,
}

impl Config {
    /// Parameters for one site: low latency, rare loss.
    ///
    /// Tuned so that a crashed member is known dead by all of 1,000 agents
    /// in a median of about 7 s (first suspicion after ~1.5 s, shortest
    /// suspicion timeout 4.5 s, one last probe of 0.5 s, gossip reaching
    /// all in under a second), while a suspicion nobody confirms lasts
    /// 27 s: ample time to refute under 10% loss or a 1 s pause.
    pub fn lan() -> Config {
        Config {
            probe_interval: Duration::from_millis(1000),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: NonZeroU8::new(3).expect("non-zero"),
            local_health_max: 8,
            suspicion_mult: 1.5,
            suspicion_max_mult: 6.0,
            suspicion_confirmations: NonZeroU8::new(3).expect("non-zero"),
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: NonZeroU8::new(4).expect("non-zero"),
            retransmit_mult: 4,
            datagram_bytes_max: 1400,
            sync_interval: Duration::from_secs(15),
            reconnect_interval: Duration::from_secs(5),
            reap_after: Duration::from_secs(15 * 60),
            broadcast_queue_max: 1024,
            sync_records_max: 1024,
            relayed_probes_max: 256,
            transmit_queue_max: 4096,
            event_queue_max: 65_536,
            lease_drift_bound: Duration::from_millis(500),
            lease_lock_delay: Duration::from_secs(2),
            lease_publish_interval: Duration::from_secs(120),
            verify_per_peer: VerifyBudget::PER_PEER,
            verify_unadmitted: VerifyBudget::UNADMITTED,
        }
    }

    /// Parameters for sites joined over a wide-area network: higher and more
    /// variable latency, so longer timeouts and slower rounds.
    pub fn wan() -> Config {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            suspicion_mult: 4.0,
            gossip_interval: Duration::from_millis(500),
            sync_interval: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(20),
            reap_after: Duration::from_secs(60 * 60),
            ..Config::lan()
        }
    }

    /// How often each agent forwards one update, for a fleet of `members`.
    pub fn retransmit_limit(&self, members: usize) -> u8 {
        let scale = ((members as f64) + 1.0).log10().ceil().max(1.0);
        let limit = (f64::from(self.retransmit_mult) * scale).ceil();
        limit.clamp(1.0, f64::from(u8::MAX)) as u8
    }

    /// The shortest suspicion timeout for a fleet of `members`.
    pub fn suspicion_timeout_min(&self, members: usize) -> Duration {
        let scale = (members.max(1) as f64).log10().max(1.0);
        self.probe_interval.mul_f64(self.suspicion_mult * scale)
    }
}

/// Longest duration any timing field may hold: a week. Timers are set as
/// `now + interval * k` with small `k` (and the local health multiplier of
/// at most 256), which stays far inside `Duration` for this bound.
pub(crate) const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// Smallest `datagram_bytes_max`: IPv6's minimum MTU, which holds a
/// message header and an update with the largest metadata (asserted in
/// below), so every update can be gossiped.
pub(crate) const DATAGRAM_BYTES_MIN: usize = 1280;

/// Largest `datagram_bytes_max` (64 KiB); a message of this size passes
/// every receiver's decode limit (asserted below).
pub(crate) const DATAGRAM_BYTES_MAX: usize = 64 << 10;

/// Largest `sync_records_max`: the records one anti-entropy message may
/// carry before receivers refuse it (equal to [`crate::limits::RECORDS_MAX`],
/// asserted below).
pub(crate) const SYNC_RECORDS_LIMIT: usize = 65_536;

/// Largest `lease_drift_bound`: below the longest lease ttl
/// (`crate::lease::TTL_MAX`, asserted there), so some ttl can always be
/// asked for.
pub(crate) const LEASE_DRIFT_BOUND_MAX: Duration = Duration::from_secs(60);

/// Largest `retransmit_mult`: past it the retransmit limit saturates its
/// `u8` in fleets of a few hundred members.
pub(crate) const RETRANSMIT_MULT_MAX: u32 = 32;

/// Range of `suspicion_mult` (Lifeguard's alpha).
pub(crate) const SUSPICION_MULT_RANGE: RangeInclusive<f64> = 0.1..=100.0;

/// Range of `suspicion_max_mult` (Lifeguard's beta): at least 1, since the
/// longest suspicion timeout is this times the shortest.
pub(crate) const SUSPICION_MAX_MULT_RANGE: RangeInclusive<f64> = 1.0..=100.0;

/// A [`Config`] field out of the range the core relies on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protocol parameter `{field}`: {problem}")]
pub struct ConfigError {
    /// The field of [`Config`] at fault.
    pub field: &'static str,
    /// What is wrong with it and what range it must be in.
    pub problem: String,
}

impl ConfigError {
    fn new(field: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            problem: problem.into(),
        }
    }
}

impl Config {
    /// Checks every relationship between the fields that the core relies
    /// on; the first one broken is returned. [`Config::lan`] and
    /// [`Config::wan`] pass. An agent built from a config that fails could
    /// spin on a zero interval, panic on an empty queue bound or never
    /// hold a lease.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let timings = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("gossip_interval", self.gossip_interval),
            ("sync_interval", self.sync_interval),
            ("reconnect_interval", self.reconnect_interval),
            ("reap_after", self.reap_after),
            ("lease_publish_interval", self.lease_publish_interval),
        ];
        for (field, value) in timings {
            if value.is_zero() || value > DURATION_MAX {
                let problem = format!("{value:?} is outside (0, {DURATION_MAX:?}]");
                return Err(ConfigError::new(field, problem));
            }
        }
        if self.probe_timeout >= self.probe_interval {
            let problem = format!(
                "{:?} must be shorter than probe_interval ({:?}): a probe ends before the next starts",
                self.probe_timeout, self.probe_interval
            );
            return Err(ConfigError::new("probe_timeout", problem));
        }
        for (field, value, range) in [
            ("suspicion_mult", self.suspicion_mult, SUSPICION_MULT_RANGE),
            (
                "suspicion_max_mult",
                self.suspicion_max_mult,
                SUSPICION_MAX_MULT_RANGE,
            ),
        ] {
            if !range.contains(&value) {
                let problem = format!("{value} is outside {range:?}");
                return Err(ConfigError::new(field, problem));
            }
        }
        if !(1..=RETRANSMIT_MULT_MAX).contains(&self.retransmit_mult) {
            let problem = format!(
                "{} is outside 1..={RETRANSMIT_MULT_MAX}",
                self.retransmit_mult
            );
            return Err(ConfigError::new("retransmit_mult", problem));
        }
        if !(DATAGRAM_BYTES_MIN..=DATAGRAM_BYTES_MAX).contains(&self.datagram_bytes_max) {
            let problem = format!(
                "{} is outside {DATAGRAM_BYTES_MIN}..={DATAGRAM_BYTES_MAX} bytes",
                self.datagram_bytes_max
            );
            return Err(ConfigError::new("datagram_bytes_max", problem));
        }
        if !(1..=SYNC_RECORDS_LIMIT).contains(&self.sync_records_max) {
            let problem = format!(
                "{} is outside 1..={SYNC_RECORDS_LIMIT}",
                self.sync_records_max
            );
            return Err(ConfigError::new("sync_records_max", problem));
        }
        let bounds = [
            ("broadcast_queue_max", self.broadcast_queue_max),
            ("relayed_probes_max", self.relayed_probes_max),
            ("transmit_queue_max", self.transmit_queue_max),
            ("event_queue_max", self.event_queue_max),
        ];
        for (field, value) in bounds {
            if value == 0 {
                let problem = "must be at least 1: a zero bound drops everything";
                return Err(ConfigError::new(field, problem));
            }
        }
        if self.lease_drift_bound > LEASE_DRIFT_BOUND_MAX {
            let problem = format!(
                "{:?} exceeds {LEASE_DRIFT_BOUND_MAX:?}; every lease ttl must exceed it",
                self.lease_drift_bound
            );
            return Err(ConfigError::new("lease_drift_bound", problem));
        }
        if self.lease_lock_delay > DURATION_MAX {
            let problem = format!("{:?} exceeds {DURATION_MAX:?}", self.lease_lock_delay);
            return Err(ConfigError::new("lease_lock_delay", problem));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::lan()
    }
}

// Constant relationships the codec and the agent rely on.
const _: () = {
    use crate::limits::{MESSAGE_BYTES_MAX, RECORDS_MAX, UPDATE_BYTES_MAX};
    // An update with the largest metadata fits in half the smallest
    // datagram a validated config allows, leaving the rest for the header.
    assert!(2 * UPDATE_BYTES_MAX <= DATAGRAM_BYTES_MIN);
    // The largest datagram a config allows is a message every receiver
    // accepts, and so is the largest record batch it may ask for.
    assert!(DATAGRAM_BYTES_MAX <= MESSAGE_BYTES_MAX);
    assert!(SYNC_RECORDS_LIMIT == RECORDS_MAX);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        assert_eq!(Config::lan().validate(), Ok(()));
        assert_eq!(Config::wan().validate(), Ok(()));
    }

    /// Each broken relationship is refused, naming its field.
    #[test]
    fn broken_relationships_name_their_field() {
        let lan = Config::lan();
        let cases = [
            (
                "probe_timeout",
                Config {
                    probe_timeout: lan.probe_interval,
                    ..lan.clone()
                },
            ),
            (
                "gossip_interval",
                Config {
                    gossip_interval: Duration::ZERO,
                    ..lan.clone()
                },
            ),
            (
                "reap_after",
                Config {
                    reap_after: DURATION_MAX + Duration::from_secs(1),
                    ..lan.clone()
                },
            ),
            (
                "suspicion_mult",
                Config {
                    suspicion_mult: f64::NAN,
                    ..lan.clone()
                },
            ),
            (
                "suspicion_max_mult",
                Config {
                    suspicion_max_mult: 0.5,
                    ..lan.clone()
                },
            ),
            (
                "retransmit_mult",
                Config {
                    retransmit_mult: 0,
                    ..lan.clone()
                },
            ),
            (
                "datagram_bytes_max",
                Config {
                    datagram_bytes_max: DATAGRAM_BYTES_MIN - 1,
                    ..lan.clone()
                },
            ),
            (
                "sync_records_max",
                Config {
                    sync_records_max: SYNC_RECORDS_LIMIT + 1,
                    ..lan.clone()
                },
            ),
            (
                "broadcast_queue_max",
                Config {
                    broadcast_queue_max: 0,
                    ..lan.clone()
                },
            ),
            (
                "lease_drift_bound",
                Config {
                    lease_drift_bound: LEASE_DRIFT_BOUND_MAX + Duration::from_millis(1),
                    ..lan.clone()
                },
            ),
        ];
        for (field, config) in cases {
            let error = config.validate().expect_err(field);
            assert_eq!(error.field, field, "{error}");
            assert!(error.to_string().contains(field), "{error}");
        }
    }
}
