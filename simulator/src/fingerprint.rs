//! Per-step fingerprints of a run, and the first step at which two runs of
//! one seed part ways.
//!
//! The trace hash says *that* two runs differ; it cannot say where. A run
//! asked to fingerprint records, for every step of the event loop, its
//! virtual time, what it was, the agent it concerned and a digest of the
//! trace events it emitted and of the random draws made so far (the
//! network's, the operators' and that agent's stream positions). Two runs
//! of one seed must agree step for step; the first step where they do not
//! is where nondeterminism entered — a hash map's order, a wall-clock
//! read — usually within a handful of events of its cause.

use std::fmt;

/// The kinds of step, by the code [`Step::what`] holds.
pub const STEP_KINDS: [&str; 12] = [
    "deliver",
    "wake",
    "fault",
    "check-convergence",
    "check-detection",
    "check-spread",
    "check-publications",
    "stop-after-leave",
    "check-done",
    "action-done",
    "check-fixed",
    "?",
];

/// What one step of the event loop did, in a form two runs compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// True time of the step, in nanoseconds.
    pub at: u64,
    /// The step's kind, an index into [`STEP_KINDS`].
    pub what: u8,
    /// The agent the step concerned (the recipient of a delivery, the agent
    /// woken), or `u32::MAX`.
    pub agent: u32,
    /// Digest of the trace events the step emitted and of the random
    /// streams' positions after it.
    pub digest: u64,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = STEP_KINDS
            .get(usize::from(self.what))
            .copied()
            .unwrap_or("?");
        write!(f, "t={:.9}s {kind}", self.at as f64 / 1e9)?;
        if self.agent != u32::MAX {
            write!(f, " agent {}", self.agent)?;
        }
        write!(f, " (digest {:016x})", self.digest)
    }
}

/// A 64-bit digest folded one word at a time (FNV-1a over 8-byte words):
/// cheap enough to run on every event, and only ever compared between two
/// runs of one build, so it need not be cryptographic.
#[derive(Clone, Copy, Debug)]
pub struct Fold(u64);

impl Default for Fold {
    fn default() -> Fold {
        Fold(0xcbf2_9ce4_8422_2325)
    }
}

impl Fold {
    /// Folds `word` in.
    pub fn word(&mut self, word: u64) {
        for byte in word.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Folds a 128-bit stream position in.
    pub fn position(&mut self, position: u128) {
        self.word(position as u64);
        self.word((position >> 64) as u64);
    }

    /// The digest so far.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// Where two runs of one seed part ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first step that differs.
    pub index: usize,
    /// The last step both runs agree on, if any.
    pub agreed: Option<Step>,
    /// The first run's step there (`None`: it had ended).
    pub first: Option<Step>,
    /// The second run's step there (`None`: it had ended).
    pub second: Option<Step>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |step: &Option<Step>| match step {
            Some(step) => step.to_string(),
            None => "(run ended)".to_string(),
        };
        writeln!(f, "the runs part at step {}", self.index)?;
        match &self.agreed {
            Some(step) => writeln!(f, "  last step both agree on: {step}")?,
            None => writeln!(f, "  they differ from the first step")?,
        }
        writeln!(f, "  first run:  {}", show(&self.first))?;
        write!(f, "  second run: {}", show(&self.second))
    }
}

/// The first step where `first` and `second` differ, if they do.
pub fn first_divergence(first: &[Step], second: &[Step]) -> Option<Divergence> {
    let index = first
        .iter()
        .zip(second)
        .position(|(one, two)| one != two)
        .or_else(|| (first.len() != second.len()).then(|| first.len().min(second.len())))?;
    Some(Divergence {
        index,
        agreed: index.checked_sub(1).map(|before| first[before]),
        first: first.get(index).copied(),
        second: second.get(index).copied(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at: u64, digest: u64) -> Step {
        Step {
            at,
            what: 0,
            agent: 3,
            digest,
        }
    }

    #[test]
    fn names_the_first_differing_step() {
        let one = [step(1, 10), step(2, 20), step(3, 30), step(4, 40)];
        let mut two = one;
        assert_eq!(first_divergence(&one, &two), None);
        two[2].digest = 31;
        two[3].digest = 41;
        let divergence = first_divergence(&one, &two).expect("they differ");
        assert_eq!(divergence.index, 2);
        assert_eq!(divergence.agreed, Some(one[1]));
        assert_eq!(divergence.first, Some(one[2]));
        assert_eq!(divergence.second, Some(two[2]));
        assert!(divergence.to_string().contains("step 2"));
    }

    #[test]
    fn a_run_that_ends_early_differs_where_it_ends() {
        let one = [step(1, 10), step(2, 20)];
        let divergence = first_divergence(&one, &one[..1]).expect("they differ");
        assert_eq!(divergence.index, 1);
        assert_eq!(divergence.second, None);
        assert_eq!(first_divergence(&[], &[]), None);
    }

    #[test]
    fn the_fold_sees_every_word_and_its_order() {
        let digest = |words: &[u64]| {
            let mut fold = Fold::default();
            words.iter().for_each(|&word| fold.word(word));
            fold.value()
        };
        assert_ne!(digest(&[1, 2]), digest(&[2, 1]));
        assert_ne!(digest(&[1]), digest(&[1, 0]));
        assert_eq!(digest(&[7, 8]), digest(&[7, 8]));
    }
}
