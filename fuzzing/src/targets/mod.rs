//! The target bodies, one module per input they model.

pub mod config_change;
pub mod entries_verify;
pub mod release_apply;
pub mod snapshot_decode;
pub mod texts;
pub mod wire_decode;
