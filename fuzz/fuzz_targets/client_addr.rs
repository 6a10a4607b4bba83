//! Fuzz target `client_addr`: see `fuzz/src/client_addr.rs` (`Target::ClientAddr`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_fuzz::client_addr;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = client_addr::check(data) {
        panic!("{e}");
    }
});
