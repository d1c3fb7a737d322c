//! Mapping between simulator node indices and agent ids.
//!
//! Real ids are uniformly distributed hashes of public keys and the agent's
//! anti-entropy bucketing relies on that. The simulator gives node `i` the
//! id `mix(i)`, where `mix` is the MurmurHash3 64-bit finalizer: uniform
//! looking, and a bijection, so routing a message needs no lookup table.

use fleetmesh_node::NodeId;

/// The id of simulated node `index`.
pub fn node_id(index: u32) -> NodeId {
    let mut x = u64::from(index) ^ 0x5EED_F1EE_7000_0000;
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    NodeId(x)
}

/// The index of the simulated node named `id`, if `id` names one of `count`.
pub fn node_index(id: NodeId, count: usize) -> Option<u32> {
    let mut x = id.0;
    x ^= x >> 33;
    x = x.wrapping_mul(0x9CB4_B2F8_1293_37DB);
    x ^= x >> 33;
    x = x.wrapping_mul(0x4F74_430C_22A5_4005);
    x ^= x >> 33;
    x ^= 0x5EED_F1EE_7000_0000;
    u32::try_from(x)
        .ok()
        .filter(|&index| (index as usize) < count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_a_bijection() {
        for index in [0, 1, 2, 999, 65_535, 1_000_000] {
            assert_eq!(node_index(node_id(index), 2_000_000), Some(index));
        }
        assert_eq!(node_index(node_id(10), 10), None);
        assert_eq!(node_index(NodeId(12345), 1000), None);
    }
}
