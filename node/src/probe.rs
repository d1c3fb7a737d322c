//! Choosing whom to probe: SWIM's randomized round-robin.
//!
//! Each round visits every position of the member table once, in the order
//! `start, start + stride, start + 2 * stride, ...` modulo the table size,
//! with a random start and a random stride coprime to the size. That bounds
//! the time until any member is probed (one round) like a shuffled list
//! does, without storing a permutation per agent (which at 10,000 members
//! would cost 80 KB per agent). A change of table size starts a new round.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Position generator over `0..size`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProbeCursor {
    size: usize,
    start: usize,
    stride: usize,
    step: usize,
}

impl ProbeCursor {
    /// The next table position to consider, or `None` for an empty table.
    pub(crate) fn next(&mut self, size: usize, rng: &mut ChaCha8Rng) -> Option<usize> {
        if size == 0 {
            return None;
        }
        if size != self.size || self.step >= self.size {
            self.size = size;
            self.start = rng.random_range(0..size);
            self.stride = coprime_stride(size, rng);
            self.step = 0;
        }
        let position = (self.start + self.step * self.stride) % self.size;
        self.step += 1;
        Some(position)
    }
}

fn coprime_stride(size: usize, rng: &mut ChaCha8Rng) -> usize {
    if size <= 2 {
        return 1;
    }
    // Coprimes are dense (a fraction 6/pi^2 of pairs), so a few draws suffice;
    // the bound keeps the loop finite whatever the RNG does.
    for _ in 0..64 {
        let stride = rng.random_range(1..size);
        if gcd(stride, size) == 1 {
            return stride;
        }
    }
    1
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_round_visits_every_position_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for size in [1, 2, 3, 10, 97, 100, 1000] {
            let mut cursor = ProbeCursor::default();
            let mut seen = vec![false; size];
            for _ in 0..size {
                let position = cursor.next(size, &mut rng).unwrap();
                assert!(
                    !seen[position],
                    "position {position} twice in one round of {size}"
                );
                seen[position] = true;
            }
        }
    }
}
