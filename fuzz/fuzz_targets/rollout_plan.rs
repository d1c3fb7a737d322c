#![no_main]
//! cargo-fuzz wrapper of `fleetmesh_fuzzing::rollout_plan` (what it models and
//! checks is documented there).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fleetmesh_fuzzing::rollout_plan(data));
