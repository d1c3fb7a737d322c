//! Invariant: once the fleet is left alone, every running agent agrees with
//! the truth about who is running, within a bound.
//!
//! For each running agent `a` it keeps `wrong[a]`, the number of agents whose
//! up-ness in `a`'s view differs from the truth (an agent it thinks up that
//! is gone, or a running one it does not count). The fleet has converged
//! when no running agent has a wrong count. Every disturbance (crash,
//! partition, heal, pause, restart, join) restarts the clock; checks are
//! scheduled at `last disturbance + bound`.

use super::{Kind, Violation};

/// The convergence checker.
pub struct Convergence {
    wrong: Vec<u32>,
    tracked: Vec<bool>,
    unconverged: usize,
    ongoing: u32,
    settled_from: u64,
    bound: u64,
    settle_times: Vec<u64>,
    awaiting_settle: bool,
}

impl Convergence {
    /// A checker for `agents` agents with `bound` nanoseconds to converge.
    pub fn new(agents: usize, bound: u64) -> Convergence {
        Convergence {
            wrong: vec![0; agents],
            tracked: vec![false; agents],
            unconverged: 0,
            ongoing: 0,
            settled_from: 0,
            bound,
            settle_times: Vec::new(),
            awaiting_settle: false,
        }
    }

    /// The bound, in nanoseconds.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Running agents whose view is wrong.
    pub fn unconverged(&self) -> usize {
        self.unconverged
    }

    /// Time from each quiet point to convergence, in nanoseconds.
    pub fn settle_times(&self) -> &[u64] {
        &self.settle_times
    }

    /// Starts checking agent `agent`, whose view is wrong about `wrong` agents.
    pub fn track(&mut self, agent: u32, wrong: u32) {
        let at = agent as usize;
        debug_assert!(!self.tracked[at]);
        self.tracked[at] = true;
        self.wrong[at] = wrong;
        self.unconverged += usize::from(wrong > 0);
    }

    /// Stops checking agent `agent` (crashed, left).
    pub fn untrack(&mut self, agent: u32) {
        let at = agent as usize;
        if self.tracked[at] {
            self.unconverged -= usize::from(self.wrong[at] > 0);
            self.tracked[at] = false;
            self.wrong[at] = 0;
        }
    }

    /// Is agent `agent` checked?
    pub fn is_tracked(&self, agent: u32) -> bool {
        self.tracked[agent as usize]
    }

    /// Agent `agent`'s view became wrong (`+1`) or right (`-1`) about one agent.
    pub fn adjust(&mut self, now: u64, agent: u32, became_wrong: bool) {
        let at = agent as usize;
        if !self.tracked[at] {
            return;
        }
        let before = self.wrong[at] > 0;
        if became_wrong {
            self.wrong[at] += 1;
        } else {
            debug_assert!(
                self.wrong[at] > 0,
                "agent {agent} became right about more agents than it was wrong about"
            );
            self.wrong[at] = self.wrong[at].saturating_sub(1);
        }
        let after = self.wrong[at] > 0;
        match (before, after) {
            (false, true) => self.unconverged += 1,
            (true, false) => self.unconverged -= 1,
            _ => {}
        }
        self.note_progress(now);
    }

    /// A disturbance began that lasts until [`Convergence::disturbance_ended`].
    pub fn disturbance_started(&mut self) {
        self.ongoing += 1;
    }

    /// A lasting disturbance ended at `now`; returns when to check.
    pub fn disturbance_ended(&mut self, now: u64) -> u64 {
        self.ongoing = self.ongoing.saturating_sub(1);
        self.instant_disturbance(now)
    }

    /// A momentary disturbance at `now`; returns when to check.
    pub fn instant_disturbance(&mut self, now: u64) -> u64 {
        self.settled_from = now;
        self.awaiting_settle = true;
        now + self.bound
    }

    fn note_progress(&mut self, now: u64) {
        if self.unconverged == 0 && self.ongoing == 0 && self.awaiting_settle {
            self.awaiting_settle = false;
            self.settle_times.push(now - self.settled_from);
        }
    }

    /// Re-evaluates after a batch of changes (tracking, truth changes).
    pub fn refresh(&mut self, now: u64) {
        self.note_progress(now);
    }

    /// The scheduled check at `now`.
    pub fn check(&self, now: u64) -> Option<Violation> {
        let quiet_long_enough = self.ongoing == 0 && now >= self.settled_from + self.bound;
        if !quiet_long_enough || self.unconverged == 0 {
            return None;
        }
        let wrong: Vec<(u32, u32)> = self
            .wrong
            .iter()
            .enumerate()
            .filter(|&(agent, &wrong)| self.tracked[agent] && wrong > 0)
            .take(5)
            .map(|(agent, &wrong)| (agent as u32, wrong))
            .collect();
        let worst: Vec<String> = wrong
            .iter()
            .map(|(agent, wrong)| format!("agent {agent} wrong about {wrong}"))
            .collect();
        Some(Violation {
            invariant: "converge-after-quiet",
            kind: Kind::Liveness,
            at: now,
            details: format!(
                "{} running agents still disagree with the truth {:.1}s after the last disturbance at t={:.3}s ({})",
                self.unconverged,
                self.bound as f64 / 1e9,
                self.settled_from as f64 / 1e9,
                worst.join(", ")
            ),
            agents: wrong.iter().map(|(agent, _)| *agent).collect(),
        })
    }
}
