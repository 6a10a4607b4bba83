//! Fuzz target `replay_logs`: every log reader of `portcullis replay` (see
//! `fuzz/src/replay_checks.rs` and docs/replay.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/replay_checks.rs"]
mod replay_checks;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = replay_checks::check_log(data) {
        panic!("{e}");
    }
});
