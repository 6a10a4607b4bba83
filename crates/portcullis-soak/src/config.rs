//! What a soak runs: read from the `SOAK_*` environment variables
//! ([`Config::from_env`]); `scripts/soak.sh` documents them.

use std::path::PathBuf;
use std::time::Duration;

use portcullis_e2e::paths;

/// Percent of the requests sent over HTTP/2 unless `SOAK_H2_SHARE` says otherwise.
pub const DEFAULT_H2_SHARE: u64 = 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Requests to send.
    pub requests: u64,
    /// Load threads.
    pub threads: usize,
    /// Time budget: the load stops here even if not all requests were sent
    /// (the run then fails its request-count check).
    pub budget: Duration,
    /// Swap the policy every this many percent of the requests.
    pub swap_percent: u64,
    /// Seed of the request mix.
    pub seed: u64,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// Percent of the requests sent over HTTP/2 ([`crate::workload::h2_picked`];
    /// the rest go over HTTP/1.1).
    pub h2_share: u64,
    /// Run the native module (`SOAK_ENGINE=native`,
    /// `dist/libportcullis_envoy.so`) instead of the wasm filter.
    pub native: bool,
    /// Where the JSON summary goes.
    pub json: PathBuf,
}

fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name}={v} is not a number")),
    }
}

impl Config {
    /// `SOAK_REQUESTS` (default 1000000), `SOAK_SECONDS` (time budget,
    /// default 600), `SOAK_THREADS` (load threads, default 4, at most 64),
    /// `SOAK_SWAP_PERCENT` (default 15), `SOAK_SEED` (default 1),
    /// `SOAK_CONCURRENCY` (Envoy workers, 1 or 2; default 1 — the
    /// swap-window proof needs one worker, see [`crate::swap`]),
    /// `SOAK_H2_SHARE` (percent of the requests over HTTP/2, 0..=100,
    /// default [`DEFAULT_H2_SHARE`]), `SOAK_ENGINE` (`wasm`, the default, or
    /// `native`), `SOAK_JSON` (default
    /// `target/bench/soak.json`).
    pub fn from_env() -> Result<Config, String> {
        let concurrency = env_u64("SOAK_CONCURRENCY", 1)?;
        if !(1..=2).contains(&concurrency) {
            return Err("SOAK_CONCURRENCY must be 1 or 2".into());
        }
        let h2_share = env_u64("SOAK_H2_SHARE", DEFAULT_H2_SHARE)?;
        if h2_share > 100 {
            return Err("SOAK_H2_SHARE must be a percent, 0..=100".into());
        }
        let threads = env_u64("SOAK_THREADS", 4)?.clamp(1, 64);
        let native = match std::env::var("SOAK_ENGINE").as_deref() {
            Err(_) | Ok("wasm") => false,
            Ok("native") => true,
            Ok(other) => return Err(format!("SOAK_ENGINE={other}: wasm or native")),
        };
        Ok(Config {
            requests: env_u64("SOAK_REQUESTS", 1_000_000)?,
            threads: usize::try_from(threads).unwrap_or(4),
            budget: Duration::from_secs(env_u64("SOAK_SECONDS", 600)?),
            swap_percent: env_u64("SOAK_SWAP_PERCENT", 15)?,
            seed: env_u64("SOAK_SEED", 1)?,
            concurrency: u32::try_from(concurrency).unwrap_or(1),
            h2_share,
            native,
            json: std::env::var_os("SOAK_JSON")
                .map(PathBuf::from)
                .unwrap_or_else(|| paths::target().join("bench").join("soak.json")),
        })
    }
}
