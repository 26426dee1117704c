//! Replays every input under `fuzz/regressions/<target>/` (crashes found by fuzzing, kept
//! after the fix) and every target's seed files through the parsers: each must return
//! without panicking. A regression file names an existing target by its folder.

use std::panic::{AssertUnwindSafe, catch_unwind};

#[test]
fn regressions_and_seeds_parse_without_panicking() {
    let root = ept_fuzz::repo().canonicalize().unwrap();
    ept_fuzz::make_seeds(&root).unwrap();
    let mut replayed = 0;
    for target in ept_fuzz::targets() {
        let mut inputs: Vec<(String, Vec<u8>)> = target
            .seeds
            .iter()
            .map(|s| (s.to_string(), std::fs::read(root.join(s)).unwrap()))
            .collect();
        let folder = root.join("fuzz/regressions").join(target.name);
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for entry in entries.flatten() {
                let path = entry.path();
                inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
        for (name, bytes) in inputs {
            let outcome = catch_unwind(AssertUnwindSafe(|| (target.parse)(&bytes, ept_fuzz::scratch())));
            assert!(outcome.is_ok(), "target {}: {name} panics", target.name);
            replayed += 1;
        }
    }
    // Every regression folder belongs to a target (a renamed target must move its files).
    if let Ok(entries) = std::fs::read_dir(root.join("fuzz/regressions")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                ept_fuzz::target(&name).is_some(),
                "fuzz/regressions/{name}: no such target"
            );
        }
    }
    assert!(replayed >= ept_fuzz::targets().len());
}
