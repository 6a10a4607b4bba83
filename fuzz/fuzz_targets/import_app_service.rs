//! Fuzz target `import_app_service`: see `fuzz/src/import_checks.rs` and docs/import.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each importer target uses one of the shared checks.
#[allow(dead_code)]
#[path = "../src/import_checks.rs"]
mod import_checks;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = import_checks::check_app_service(data) {
        panic!("{e}");
    }
});
