//! Protocol parameters: every timing and size knob of the agent in one place.

use std::num::{NonZeroU8, NonZeroU32};
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

impl Default for Config {
    fn default() -> Config {
        Config::lan()
    }
}
