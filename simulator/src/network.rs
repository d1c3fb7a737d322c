//! The simulated network and its fault model.
//!
//! What happens to one message is decided when it is sent, by a chain of
//! rules in a fixed order (after turmoil):
//!
//! 1. **Cut**: the current partition may forbid the directed link
//!    `from -> to` (two halves, any grouping, one-way links, bridge nodes
//!    that see every group). Dropped.
//! 2. **Loss**: dropped with the link's loss probability.
//! 3. **Latency**: delivered after `min + Exp(mean - min)` milliseconds, the
//!    link's distribution; with the link's reorder probability an extra
//!    uniform delay up to `reorder_ms` is added, so it overtakes nothing but
//!    is overtaken.
//! 4. **Duplication**: with the link's duplicate probability a second copy
//!    is delivered after an independently drawn latency.
//!
//! A link's model is the first override whose selectors match the two ends,
//! else the default. All draws come from the network's own RNG stream.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

const NANOS_PER_MS: f64 = 1_000_000.0;

/// The behaviour of one directed link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkModel {
    /// Smallest one-way latency, in milliseconds.
    pub latency_min_ms: f64,
    /// Mean one-way latency, in milliseconds (at least the minimum).
    pub latency_mean_ms: f64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back by up to `reorder_ms`.
    pub reorder: f64,
    /// Largest extra delay of a held-back message, in milliseconds.
    pub reorder_ms: f64,
}

impl Default for LinkModel {
    fn default() -> LinkModel {
        LinkModel {
            latency_min_ms: 0.2,
            latency_mean_ms: 1.0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_ms: 0.0,
        }
    }
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// The partition forbids the link.
    Partition,
    /// Random loss.
    Loss,
    /// The recipient was crashed (or had left, or not started) on arrival.
    Down,
    /// The recipient was paused and its receive buffer was full.
    Overflow,
    /// The address named no node.
    Unroutable,
}

/// A partition: every node in a group, and the directed links allowed
/// between groups. Links within a group are always allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Group of each node, by node index.
    pub group_of: Vec<u16>,
    /// Number of groups.
    pub groups: u16,
    /// `allowed[from * groups + to]`: may group `from` send to group `to`.
    pub allowed: Vec<bool>,
}

impl Cut {
    /// A cut with `groups` isolated groups.
    pub fn isolated(group_of: Vec<u16>, groups: u16) -> Cut {
        let size = usize::from(groups) * usize::from(groups);
        let mut allowed = vec![false; size];
        for group in 0..usize::from(groups) {
            allowed[group * usize::from(groups) + group] = true;
        }
        Cut {
            group_of,
            groups,
            allowed,
        }
    }

    /// Allows the directed link from group `from` to group `to`.
    pub fn allow(&mut self, from: u16, to: u16) {
        self.allowed[usize::from(from) * usize::from(self.groups) + usize::from(to)] = true;
    }

    /// May node `from` reach node `to`?
    pub fn permits(&self, from: u32, to: u32) -> bool {
        let from = usize::from(self.group_of[from as usize]);
        let to = usize::from(self.group_of[to as usize]);
        self.allowed[from * usize::from(self.groups) + to]
    }
}

/// A per-link override: applies when the sender matches `from` and the
/// recipient matches `to` (node sets as boolean masks by index).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkOverride {
    /// Senders the override applies to.
    pub from: Vec<bool>,
    /// Recipients the override applies to.
    pub to: Vec<bool>,
    /// The model of matching links.
    pub model: LinkModel,
}

/// What the network decided for one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Dropped.
    Drop(DropReason),
    /// Delivered after the first delay, and again after the second if any.
    Deliver(u64, Option<u64>),
}

/// The network: default link model, overrides, current partition.
#[derive(Clone, Debug)]
pub struct Network {
    /// Model of links no override matches.
    pub default: LinkModel,
    /// Overrides, first match wins.
    pub overrides: Vec<LinkOverride>,
    /// The partition in force, if any.
    pub cut: Option<Cut>,
    rng: ChaCha8Rng,
}

impl Network {
    /// A network drawing from `rng`.
    pub fn new(default: LinkModel, overrides: Vec<LinkOverride>, rng: ChaCha8Rng) -> Network {
        Network {
            default,
            overrides,
            cut: None,
            rng,
        }
    }

    /// How far the network's random stream has advanced (words drawn).
    pub fn draws(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Decides the fate of a message from `from` to `to`.
    pub fn route(&mut self, from: u32, to: u32) -> Verdict {
        if let Some(cut) = &self.cut
            && !cut.permits(from, to)
        {
            return Verdict::Drop(DropReason::Partition);
        }
        let model = self
            .overrides
            .iter()
            .find(|rule| rule.from[from as usize] && rule.to[to as usize])
            .map_or(self.default, |rule| rule.model);
        if model.loss > 0.0 && self.rng.random_bool(model.loss) {
            return Verdict::Drop(DropReason::Loss);
        }
        let first = self.delay(&model);
        let second = (model.duplicate > 0.0 && self.rng.random_bool(model.duplicate))
            .then(|| self.delay(&model));
        Verdict::Deliver(first, second)
    }

    fn delay(&mut self, model: &LinkModel) -> u64 {
        let spread = (model.latency_mean_ms - model.latency_min_ms).max(0.0);
        // Exponential by inversion; 1 - U is in (0, 1], so ln is finite.
        let uniform: f64 = self.rng.random();
        let mut ms = model.latency_min_ms - spread * (1.0 - uniform).ln();
        if model.reorder > 0.0 && self.rng.random_bool(model.reorder) {
            ms += model.reorder_ms * self.rng.random::<f64>();
        }
        (ms * NANOS_PER_MS).round().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn one_way_cut_forbids_only_one_direction() {
        let mut cut = Cut::isolated(vec![0, 0, 1, 1], 2);
        cut.allow(0, 1);
        assert!(cut.permits(0, 2));
        assert!(!cut.permits(2, 0));
        assert!(cut.permits(2, 3));
    }

    #[test]
    fn loss_and_latency_follow_the_model() {
        let model = LinkModel {
            loss: 0.2,
            latency_min_ms: 1.0,
            latency_mean_ms: 3.0,
            ..LinkModel::default()
        };
        let mut network = Network::new(model, Vec::new(), ChaCha8Rng::seed_from_u64(1));
        let (mut lost, mut total_ms, mut delivered) = (0, 0.0, 0);
        for _ in 0..20_000 {
            match network.route(0, 1) {
                Verdict::Drop(_) => lost += 1,
                Verdict::Deliver(delay, _) => {
                    assert!(delay >= 1_000_000);
                    total_ms += delay as f64 / 1e6;
                    delivered += 1;
                }
            }
        }
        let loss = f64::from(lost) / 20_000.0;
        assert!((loss - 0.2).abs() < 0.02, "loss {loss}");
        let mean = total_ms / f64::from(delivered);
        assert!((mean - 3.0).abs() < 0.15, "mean latency {mean}");
    }
}
