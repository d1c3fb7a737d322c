//! Hybrid logical clocks.
//!
//! A timestamp is (physical milliseconds, logical counter). Each agent's
//! clock never goes backwards, stays within the clock skew of its physical
//! clock, and moves past every timestamp it has received, so a report
//! written after reading another report orders after it even when the two
//! hosts' clocks disagree (Kulkarni et al., 2014). Last-writer-wins
//! registers order writes by these timestamps.

use serde::{Deserialize, Serialize};

/// A hybrid logical timestamp; ordered by physical time, then counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds on the physical clock of whoever wrote it (Unix epoch in
    /// the runtime, virtual time in the simulator).
    pub millis: u64,
    /// Orders timestamps within one millisecond.
    pub counter: u32,
}

/// A remote timestamp was too far ahead of this agent's physical clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {remote_millis} ms is {ahead_millis} ms ahead of the local clock")]
pub struct TooFarAhead {
    /// The remote timestamp's physical part.
    pub remote_millis: u64,
    /// How far ahead of the local physical clock it was.
    pub ahead_millis: u64,
}

/// One agent's hybrid logical clock.
#[derive(Clone, Debug)]
pub struct HlcClock {
    last: Hlc,
    max_ahead_millis: u64,
}

impl HlcClock {
    /// A clock that refuses remote timestamps more than `max_ahead_millis`
    /// ahead of the local physical clock: one host with a wild clock must
    /// not drag every other clock into its future.
    pub fn new(max_ahead_millis: u64) -> HlcClock {
        HlcClock {
            last: Hlc::default(),
            max_ahead_millis,
        }
    }

    /// A timestamp for a local event at physical time `physical_millis`.
    pub fn now(&mut self, physical_millis: u64) -> Hlc {
        self.last = if physical_millis > self.last.millis {
            Hlc {
                millis: physical_millis,
                counter: 0,
            }
        } else {
            self.tick(self.last)
        };
        self.last
    }

    /// Moves the clock past `remote`, received at physical time
    /// `physical_millis`; refuses timestamps from too far in the future.
    pub fn observe(&mut self, remote: Hlc, physical_millis: u64) -> Result<(), TooFarAhead> {
        let ahead_millis = remote.millis.saturating_sub(physical_millis);
        if ahead_millis > self.max_ahead_millis {
            return Err(TooFarAhead {
                remote_millis: remote.millis,
                ahead_millis,
            });
        }
        if remote > self.last {
            self.last = remote;
        }
        Ok(())
    }

    /// The last timestamp this clock issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    fn tick(&self, at: Hlc) -> Hlc {
        match at.counter.checked_add(1) {
            Some(counter) => Hlc {
                millis: at.millis,
                counter,
            },
            // Four billion events in one millisecond: borrow the next one.
            None => Hlc {
                millis: at.millis + 1,
                counter: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_after_what_it_has_seen_despite_a_slow_clock() {
        let mut fast = HlcClock::new(10_000);
        let mut slow = HlcClock::new(10_000);
        let written = fast.now(5_000);
        slow.observe(written, 1_000).unwrap();
        let reply = slow.now(1_001);
        assert!(reply > written);
    }

    #[test]
    fn refuses_timestamps_from_far_in_the_future() {
        let mut clock = HlcClock::new(1_000);
        let wild = Hlc {
            millis: 100_000,
            counter: 0,
        };
        assert!(clock.observe(wild, 1_000).is_err());
        assert!(clock.now(1_000) < wild);
    }

    proptest! {
        #[test]
        fn never_goes_backwards(steps in proptest::collection::vec((0u64..10_000, any::<bool>(), 0u64..10_000), 1..200)) {
            let mut clock = HlcClock::new(5_000);
            let mut previous = Hlc::default();
            for (physical, remote_event, remote_millis) in steps {
                if remote_event {
                    let _ = clock.observe(Hlc { millis: remote_millis, counter: 3 }, physical);
                    prop_assert!(clock.last() >= previous);
                    previous = clock.last();
                } else {
                    let stamp = clock.now(physical);
                    prop_assert!(stamp > previous || (previous == Hlc::default() && stamp >= previous));
                    prop_assert!(stamp.millis <= physical.max(previous.millis) + 1);
                    previous = stamp;
                }
            }
        }
    }
}
