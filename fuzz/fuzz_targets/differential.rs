//! Fuzz target `differential`: see `fuzz/src/lib.rs` (`Target::Differential`) and docs/robustness.md.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::{root_from, Fixture, Target};

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fixture = FIXTURE.get_or_init(|| {
        match Fixture::load(&root_from(env!("CARGO_MANIFEST_DIR"), 1), true) {
            Ok(f) => f,
            Err(e) => panic!("fixture: {e}"),
        }
    });
    if let Err(e) = fixture.run(Target::Differential, data) {
        panic!("{e}");
    }
});
