//! Replays the committed inputs of the `replay_logs` fuzz target
//! (`fuzz/corpus/replay_logs`, `fuzz/regressions/replay_logs`) through the
//! very check the target runs, so `cargo test` holds them without nightly.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/replay_checks.rs"]
mod replay_checks;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn committed_fuzz_inputs_hold_the_invariants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let seeds = files(&root.join("corpus/replay_logs"));
    assert!(
        seeds.len() >= 10,
        "fuzz/corpus/replay_logs has {} inputs",
        seeds.len()
    );
    let mut failures = Vec::new();
    for p in seeds
        .iter()
        .chain(&files(&root.join("regressions/replay_logs")))
    {
        let data = std::fs::read(p).unwrap();
        if let Err(e) = replay_checks::check_log(&data) {
            failures.push(format!("{}: {e}", p.display()));
        }
        // Every prefix of a small input, too: a log cut anywhere.
        if data.len() <= 4096 {
            for cut in (0..data.len()).step_by(7) {
                if let Err(e) = replay_checks::check_log(&data[..cut]) {
                    failures.push(format!("{} cut at {cut}: {e}", p.display()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
