//! Fuzz target `scope_input`: see `fuzz/src/scope_input.rs` (`Target::ScopeInput`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::scope_input;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = scope_input::check(data) {
        panic!("{e}");
    }
});
