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
//! `portcullis_e2e::soak::run`), `SOAK_JSON` (default
//! `target/bench/soak.json`). Needs Envoy and the filter (`./build.sh
//! build`). Prints the figures, one line per check and `N passed, N failed`;
//! exits non-zero when a check fails.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use portcullis_e2e::paths;
use portcullis_e2e::soak::run::{rss_quarters, run, Config};

fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name}={v} is not a number")),
    }
}

fn config() -> Result<Config, String> {
    let concurrency = env_u64("SOAK_CONCURRENCY", 1)?;
    if !(1..=2).contains(&concurrency) {
        return Err("SOAK_CONCURRENCY must be 1 or 2".into());
    }
    let threads = env_u64("SOAK_THREADS", 4)?.clamp(1, 64);
    Ok(Config {
        requests: env_u64("SOAK_REQUESTS", 1_000_000)?,
        threads: usize::try_from(threads).unwrap_or(4),
        budget: Duration::from_secs(env_u64("SOAK_SECONDS", 600)?),
        swap_percent: env_u64("SOAK_SWAP_PERCENT", 15)?,
        seed: env_u64("SOAK_SEED", 1)?,
        concurrency: u32::try_from(concurrency).unwrap_or(1),
        json: std::env::var_os("SOAK_JSON")
            .map(PathBuf::from)
            .unwrap_or_else(|| paths::target().join("bench").join("soak.json")),
    })
}

fn main() -> ExitCode {
    let cfg = match config() {
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
    let t = &s.tally;
    println!();
    println!("== soak figures");
    println!(
        "requests        {} in {:.1} s ({:.0} req/s, {} load threads, Envoy --concurrency {})",
        t.requests,
        s.seconds,
        s.rps(),
        s.config.threads,
        s.config.concurrency
    );
    println!(
        "listeners       {} over TLS, {} plain",
        t.tls,
        t.requests - t.tls
    );
    let classes: Vec<String> = t.by_class.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("classes         {}", classes.join(", "));
    let statuses: Vec<String> = t
        .by_status
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("statuses        {}", statuses.join(", "));
    println!("mismatches      {}", t.mismatches);
    println!(
        "swap violations {} ({} responses inside swap windows)",
        t.swap_violations, t.in_window
    );
    println!("hardening       {} failures", t.hardening);
    println!("5xx             {}", t.status_5xx);
    println!(
        "envoy 431       {} expected, {} seen",
        t.envoy_431_expected, t.envoy_431_seen
    );
    println!("i/o errors      {}", t.io_errors);
    println!(
        "VM failures     {}",
        if s.vm_failures.is_empty() {
            "0".to_owned()
        } else {
            format!("{:?}", s.vm_failures)
        }
    );
    match rss_quarters(&s.rss) {
        Some((f, l, g)) => println!("Envoy RSS       first quarter {f:.0} KiB, last quarter {l:.0} KiB, growth {g:+.2}% ({} samples)", s.rss.len()),
        None => println!("Envoy RSS       {} samples: too few for quarters", s.rss.len()),
    }
    println!(
        "swaps           {} of {} planned, {} probes",
        s.swaps.len(),
        s.swaps_planned,
        s.probes
    );
    for sw in &s.swaps {
        println!(
            "                at request {} -> {}: config_reload {} ms, in force {} ms",
            sw.at_request, sw.to, sw.reload_ms, sw.fence_ms
        );
    }
    for e in &t.examples {
        println!("example         {e}");
    }
    for e in &s.errors {
        println!("error           {e}");
    }
    println!();
    println!("== checks");
    for c in &s.checks {
        let mark = match c.passed {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "N/A ",
        };
        println!("{mark} {}: {}", c.name, c.detail);
    }
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
