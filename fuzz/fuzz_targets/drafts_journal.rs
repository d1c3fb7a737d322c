#![no_main]
//! cargo-fuzz wrapper of `fleetmesh_fuzzing::drafts_journal` (what it models and
//! checks is documented there).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fleetmesh_fuzzing::drafts_journal(data));
