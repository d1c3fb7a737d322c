//! Invariant: while the network is quiet (no loss, no partition, no pause,
//! no crash or restart for a whole detection window) no running agent is
//! declared dead. Outside quiet periods false deaths are counted, not
//! forbidden: they are what the false-positive benchmarks measure.

use super::{Kind, Violation};
use std::collections::BTreeSet;

/// The false-death checker.
pub struct FalseDeath {
    window: u64,
    disturbed_until: u64,
    ongoing: u32,
    lossy: bool,
    incidents: BTreeSet<(u32, u32)>,
    declarations: u64,
}

impl FalseDeath {
    /// A checker whose quiet periods start `window` nanoseconds after the
    /// last disturbance; `lossy` networks are never quiet.
    pub fn new(window: u64, lossy: bool) -> FalseDeath {
        FalseDeath {
            window,
            disturbed_until: 0,
            ongoing: 0,
            lossy,
            incidents: BTreeSet::new(),
            declarations: 0,
        }
    }

    /// Distinct (agent, incarnation) pairs falsely declared dead.
    pub fn incidents(&self) -> usize {
        self.incidents.len()
    }

    /// Declarations of a running agent's death, counting every declarer.
    pub fn declarations(&self) -> u64 {
        self.declarations
    }

    /// The network's loss changed.
    pub fn set_lossy(&mut self, now: u64, lossy: bool) {
        self.lossy = lossy;
        self.disturbed_until = self.disturbed_until.max(now);
    }

    /// A lasting disturbance began.
    pub fn disturbance_started(&mut self, now: u64) {
        self.ongoing += 1;
        self.disturbed_until = self.disturbed_until.max(now);
    }

    /// A lasting disturbance ended.
    pub fn disturbance_ended(&mut self, now: u64) {
        self.ongoing = self.ongoing.saturating_sub(1);
        self.disturbed_until = self.disturbed_until.max(now);
    }

    /// A momentary disturbance.
    pub fn instant_disturbance(&mut self, now: u64) {
        self.disturbed_until = self.disturbed_until.max(now);
    }

    /// Agent `agent` declared the running agent `member` dead.
    pub fn declared(
        &mut self,
        now: u64,
        agent: u32,
        member: u32,
        incarnation: u32,
    ) -> Option<Violation> {
        self.declarations += 1;
        self.incidents.insert((member, incarnation));
        let quiet = !self.lossy && self.ongoing == 0 && now >= self.disturbed_until + self.window;
        quiet.then(|| Violation {
            invariant: "no-false-death-when-quiet",
            kind: Kind::Safety,
            at: now,
            details: format!(
                "agent {agent} declared running agent {member} (incarnation {incarnation}) dead; \
                 the network had been quiet since t={:.3}s",
                self.disturbed_until as f64 / 1e9
            ),
            agents: vec![agent, member],
        })
    }
}
