//! What a run's report draws, gathered from its trace events as they
//! happen: fleet traffic per time bucket, bytes per agent, and the
//! membership, release and action events themselves.
//!
//! It keeps aggregates rather than the trace (a 1,000-agent run delivers
//! millions of messages), and caps the per-event lists so a report of any
//! run fits in memory; past a cap it says so instead of drawing a wrong
//! picture silently.

use crate::event::TraceEvent;

/// Time buckets of the traffic plot.
pub const BUCKETS: usize = 200;
/// Most events of each kind kept.
pub const EVENTS_MAX: usize = 500_000;

/// One agent's changed belief about another: (time ns, agent, member,
/// state code as in [`TraceEvent::Member`]).
pub type MemberChange = (u64, u32, u32, u8);

/// The events and aggregates of one run that a report draws.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Length of a traffic bucket, in nanoseconds.
    pub bucket: u64,
    /// Bytes delivered per bucket, fleet-wide.
    pub traffic: Vec<u64>,
    /// Bytes each agent sent that were delivered.
    pub sent: Vec<u64>,
    /// Membership changes, in time order.
    pub members: Vec<MemberChange>,
    /// (time, agent, version): an agent moved to a config release.
    pub releases: Vec<(u64, u32, u32)>,
    /// (time, agent, phase): a remediation action started or ended, phase
    /// as in [`crate::event::ACTION_PHASES`].
    pub actions: Vec<(u64, u32, u8)>,
    /// Some list reached [`EVENTS_MAX`]: later events of it are missing.
    pub truncated: bool,
}

impl Timeline {
    /// An empty timeline for a run of `duration` nanoseconds and `agents`
    /// agents.
    pub fn new(duration: u64, agents: usize) -> Timeline {
        Timeline {
            bucket: (duration / BUCKETS as u64).max(1),
            traffic: vec![0; BUCKETS],
            sent: vec![0; agents],
            ..Timeline::default()
        }
    }

    /// Takes in one trace event at true time `at`.
    pub fn record(&mut self, at: u64, event: TraceEvent) {
        match event {
            TraceEvent::Deliver { from, bytes, .. } => {
                let bucket = usize::try_from(at / self.bucket)
                    .unwrap_or(usize::MAX)
                    .min(BUCKETS - 1);
                self.traffic[bucket] += u64::from(bytes);
                if let Some(sent) = self.sent.get_mut(from as usize) {
                    *sent += u64::from(bytes);
                }
            }
            TraceEvent::Member {
                agent,
                member,
                state,
                ..
            } => push(
                &mut self.members,
                &mut self.truncated,
                (at, agent, member, state),
            ),
            TraceEvent::Release { agent, version } => push(
                &mut self.releases,
                &mut self.truncated,
                (at, agent, version),
            ),
            TraceEvent::Action { agent, phase } => {
                push(&mut self.actions, &mut self.truncated, (at, agent, phase));
            }
            TraceEvent::Drop { .. } | TraceEvent::Fault { .. } => {}
        }
    }
}

fn push<T>(list: &mut Vec<T>, truncated: &mut bool, item: T) {
    if list.len() < EVENTS_MAX {
        list.push(item);
    } else {
        *truncated = true;
    }
}
