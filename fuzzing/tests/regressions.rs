//! Inputs a campaign found failing, kept under `fuzzing/regressions/NAME/`
//! (one directory per target) and run again by every `cargo test`.

use std::path::Path;

use fleetmesh_fuzzing::{TARGETS, target};

#[test]
fn every_input_a_campaign_found_failing_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut ran = 0;
    for dir in std::fs::read_dir(&root).expect("fuzzing/regressions") {
        let dir = dir.expect("a directory entry").path();
        let name = dir.file_name().and_then(|name| name.to_str()).unwrap_or("");
        let target = target(name).unwrap_or_else(|| {
            panic!(
                "{} names no target (one of {:?})",
                dir.display(),
                TARGETS.map(|target| target.name)
            )
        });
        for input in std::fs::read_dir(&dir).expect("a target's regressions") {
            let input = input.expect("a directory entry").path();
            let bytes = std::fs::read(&input).expect("a regression input");
            eprintln!("{name}: {}", input.display());
            (target.run)(&bytes);
            ran += 1;
        }
    }
    assert!(ran > 0, "no regression inputs under {}", root.display());
}
