//! The smoke run's mutator: libFuzzer's everyday mutations, drawn from a
//! seeded RNG so that a run is reproducible, without coverage feedback.
//!
//! Each input is a seed with 1 to [`MUTATIONS_MAX`] mutations stacked:
//! bit flips, byte sets, inserts, deletes, splices from another seed,
//! interesting integers (bounds, bincode's varint markers) and tweaks of
//! bytes that may be lengths (off by one or two, a LEB128 or bincode
//! varint made longer).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most mutations stacked on one input.
pub const MUTATIONS_MAX: u32 = 4;

/// Most bytes one mutation inserts or deletes.
pub const CHUNK_BYTES_MAX: usize = 64;

/// Most bytes an input grows past its seed.
pub const GROWTH_BYTES_MAX: usize = 512;

/// Integers that sit at the edges parsers check: zero, one, signed and
/// unsigned bounds, bincode's varint markers (251 to 254), the length of
/// a key.
const INTERESTING: [u64; 18] = [
    0,
    1,
    2,
    32,
    0x7f,
    0x80,
    0xff,
    251,
    252,
    253,
    254,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
];

/// Makes inputs from seeds.
pub struct Mutator {
    rng: ChaCha8Rng,
}

impl Mutator {
    /// A mutator drawing from `seed`.
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Writes into `input` a mutation of one of `seeds` (which must not be
    /// empty), spliced with others.
    pub fn mutate(&mut self, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
        let seed = &seeds[self.rng.random_range(0..seeds.len())];
        input.clear();
        input.extend_from_slice(seed);
        let limit = seed.len() + GROWTH_BYTES_MAX;
        for _ in 0..self.rng.random_range(1..=MUTATIONS_MAX) {
            let other = &seeds[self.rng.random_range(0..seeds.len())];
            self.once(input, other);
            input.truncate(limit);
        }
    }

    fn once(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        if input.is_empty() {
            self.insert(input);
            return;
        }
        match self.rng.random_range(0..7) {
            0 => {
                let at = self.position(input);
                input[at] ^= 1 << self.rng.random_range(0..8);
            }
            1 => {
                let at = self.position(input);
                input[at] = self.rng.random();
            }
            2 => self.insert(input),
            3 => {
                let at = self.position(input);
                let len = self
                    .rng
                    .random_range(1..=CHUNK_BYTES_MAX)
                    .min(input.len() - at);
                input.drain(at..at + len);
            }
            4 => self.splice(input, other),
            5 => self.interesting(input),
            _ => self.length(input),
        }
    }

    fn position(&mut self, input: &[u8]) -> usize {
        self.rng.random_range(0..input.len())
    }

    /// Inserts random bytes, or a repeat of one byte.
    fn insert(&mut self, input: &mut Vec<u8>) {
        let at = self.rng.random_range(0..=input.len());
        let len = self.rng.random_range(1..=CHUNK_BYTES_MAX);
        let bytes: Vec<u8> = if self.rng.random() {
            (0..len).map(|_| self.rng.random()).collect()
        } else {
            vec![self.rng.random(); len]
        };
        input.splice(at..at, bytes);
    }

    /// Copies a piece of `other` over or into the input.
    fn splice(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        if other.is_empty() {
            return;
        }
        let from = self.rng.random_range(0..other.len());
        let len = self
            .rng
            .random_range(1..=CHUNK_BYTES_MAX)
            .min(other.len() - from);
        let piece = &other[from..from + len];
        let at = self.rng.random_range(0..=input.len());
        if self.rng.random() {
            input.splice(at..at, piece.iter().copied());
        } else {
            let end = (at + len).min(input.len());
            input.splice(at..end, piece.iter().copied());
        }
    }

    /// Writes an interesting integer, 1, 2, 4 or 8 bytes little-endian.
    fn interesting(&mut self, input: &mut [u8]) {
        let value = INTERESTING[self.rng.random_range(0..INTERESTING.len())];
        let width = 1 << self.rng.random_range(0..4);
        let at = self.position(input);
        let end = (at + width).min(input.len());
        input[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
    }

    /// Tweaks a byte as if it were a length: off by one or two, a LEB128
    /// continuation bit, a bincode varint marker of a wider integer.
    fn length(&mut self, input: &mut [u8]) {
        let at = self.position(input);
        let byte = input[at];
        input[at] = match self.rng.random_range(0..6) {
            0 => byte.wrapping_add(1),
            1 => byte.wrapping_sub(1),
            2 => byte.wrapping_add(2),
            3 => byte.wrapping_sub(2),
            4 => byte | 0x80,
            _ => self.rng.random_range(251..=253),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_inputs() {
        let seeds = vec![b"hello fleet".to_vec(), vec![0; 40]];
        let run = |seed| {
            let mut mutator = Mutator::new(seed);
            let mut input = Vec::new();
            (0..200)
                .map(|_| {
                    mutator.mutate(&seeds, &mut input);
                    input.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn inputs_differ_from_their_seed_and_stay_bounded() {
        let seeds = vec![vec![0x55; 100]];
        let mut mutator = Mutator::new(1);
        let mut input = Vec::new();
        let mut changed = 0;
        for _ in 0..1_000 {
            mutator.mutate(&seeds, &mut input);
            assert!(input.len() <= 100 + GROWTH_BYTES_MAX);
            changed += usize::from(input != seeds[0]);
        }
        // A mutation can undo another or rewrite a byte with itself, so
        // not quite every input differs.
        assert!(changed > 900, "only {changed} of 1000 inputs differ");
    }
}
