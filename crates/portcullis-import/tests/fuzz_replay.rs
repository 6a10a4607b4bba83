//! Replays the committed inputs of the importer fuzz targets
//! (`fuzz/corpus/import_*`, `fuzz/regressions/import_*`) through the very
//! checks the targets run, so `cargo test` holds them without nightly.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/import_checks.rs"]
mod import_checks;

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
    type Check = fn(&[u8]) -> Result<(), String>;
    let targets: [(&str, Check); 4] = [
        ("import_apim", import_checks::check_apim),
        ("import_nsg", import_checks::check_nsg),
        ("import_service_tags", import_checks::check_service_tags),
        ("import_app_service", import_checks::check_app_service),
    ];
    for (name, check) in targets {
        let seeds = files(&root.join("corpus").join(name));
        assert!(
            seeds.len() >= 2,
            "fuzz/corpus/{name} has {} inputs",
            seeds.len()
        );
        for p in seeds
            .iter()
            .chain(&files(&root.join("regressions").join(name)))
        {
            let data = std::fs::read(p).unwrap();
            if let Err(e) = check(&data) {
                panic!("{}: {e}", p.display());
            }
        }
    }
}

#[test]
fn the_filter_does_not_depend_on_the_importers() {
    let toml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../portcullis-filter/Cargo.toml"),
    )
    .unwrap();
    assert!(
        !toml.contains("portcullis-import"),
        "the filter .wasm must not link the importers"
    );
}
