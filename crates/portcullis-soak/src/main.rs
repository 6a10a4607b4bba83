//! The soak: real Envoy with the Portcullis filter under a long mixed load,
//! every response checked against the core, policies swapped through ECDS.
//!
//! ```text
//! portcullis-soak
//! ```
//! Environment: `SOAK_REQUESTS` (default 1000000), `SOAK_SECONDS` (time
//! budget, default 600), `SOAK_THREADS` (load threads, default 4),
//! `SOAK_SWAP_PERCENT` (swap every N % of the requests, default 15),
//! `SOAK_SEED` (default 1), `SOAK_CONCURRENCY` (Envoy workers, 1 or 2;
//! default 1 — the swap-window proof needs one worker, see
//! `portcullis_soak::swap`), `SOAK_H2_SHARE` (percent of the requests
//! over HTTP/2, default 20; `scripts/soak.sh --h2-share N`), `SOAK_JSON` (default
//! `target/bench/soak.json`). Needs Envoy and the filter (`./build.sh
//! build`). Prints the figures, one line per check and `N passed, N failed`;
//! exits non-zero when a check fails.
use std::process::ExitCode;

use portcullis_soak::config::Config;
use portcullis_soak::run::run;

fn main() -> ExitCode {
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("portcullis-soak: {e}");
            return ExitCode::from(2);
        }
    };
    let json_path = cfg.json.clone();
    let s = match run(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("portcullis-soak: cannot run: {e}");
            return ExitCode::FAILURE;
        }
    };
    s.print();
    if let Some(dir) = json_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::to_string_pretty(&s.to_json()).unwrap_or_default();
    match std::fs::write(&json_path, text + "\n") {
        Ok(()) => println!("summary: {}", json_path.display()),
        Err(e) => eprintln!("portcullis-soak: {}: {e}", json_path.display()),
    }
    let (passed, failed) = s.counts();
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
