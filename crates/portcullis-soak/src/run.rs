//! A soak run from start to summary: the rig ([`crate::rig`]), policy A
//! fenced in, the load threads ([`crate::load`]) and an RSS sampler
//! started, the swaps ([`crate::swap`]), the final stats, the checks
//! ([`crate::judge`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portcullis_e2e::envoy;

use crate::config::Config;
use crate::judge::judge;
use crate::load::{self, fence, Load};
use crate::rig::Rig;
use crate::summary::Summary;
use crate::swap::{self, Progress};
use crate::tally::Tally;

/// Envoy's RSS, sampled once a second while the load runs.
struct RssSampler {
    finished: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(f64, u64)>>,
}

impl RssSampler {
    fn start(pid: u32, start: Instant) -> RssSampler {
        let finished = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&finished);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if let Some(k) = envoy::rss_kib(pid) {
                    samples.push((start.elapsed().as_secs_f64(), k));
                }
                next += Duration::from_secs(1);
                while Instant::now() < next && !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            samples
        });
        RssSampler { finished, thread }
    }

    /// (seconds since the load started, KiB) samples.
    fn finish(self) -> Vec<(f64, u64)> {
        self.finished.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Runs a soak. Errors only when it cannot start; failures of the run are
/// in the summary's checks.
pub fn run(cfg: Config) -> Result<Summary, String> {
    let rig = Rig::start(&cfg)?;
    let load = Arc::new(Load::new(&cfg, &rig)?);
    let mut errors = Vec::new();
    let mut probes = Tally::default();
    // Phase 0: policy A must be in force before the load starts.
    fence(&load, 0, &mut probes, Instant::now())
        .map_err(|e| format!("policy A never came into force: {e}"))?;

    let start = Instant::now();
    let sampler = RssSampler::start(rig.pid, start);
    let workers = load::spawn(&load);
    let mut progress = Progress::new(start, rig.pid);
    let points = swap::plan(cfg.requests, cfg.swap_percent);
    let swaps = swap::run_swaps(
        &load,
        &rig,
        &points,
        &mut probes,
        &mut progress,
        &mut errors,
    );
    progress.wait(&load, Duration::from_millis(20), Load::all_done);
    let mut tally = load::join(workers, &mut errors);
    let seconds = start.elapsed().as_secs_f64();
    let rss = sampler.finish();
    progress.report(&load, true);
    let probe_count = probes.decisions_total() + probes.swap_violations;
    tally.merge(&probes);

    let end = rig.finish(&mut errors);
    let mut summary = Summary {
        config: cfg,
        tally,
        seconds,
        swaps,
        swaps_planned: points.len(),
        probes: probe_count,
        rss,
        vm_failures: end.vm_failures,
        wasm_stats: end.wasm_stats,
        filter_counters: end.filter_counters,
        ecds: end.ecds,
        protocol_stats: end.protocol_stats,
        errors,
        checks: Vec::new(),
    };
    summary.checks = judge(&summary, end.alive);
    if !end.alive {
        summary
            .errors
            .push(format!("Envoy is gone; log tail:\n{}", end.log_tail));
    }
    Ok(summary)
}
