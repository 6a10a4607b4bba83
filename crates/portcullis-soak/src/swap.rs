//! Policy swaps while the load runs.
//!
//! Every `swap_percent` of the requests the controller replaces the ECDS
//! file (A <-> B). The phase counter ([`crate::load::Load::phase`]) tells
//! the load threads where the run is: phase `2k` means policy `k` is in
//! force and proven so, phase `2k+1` means a swap from `k` to `k+1` is under
//! way. The controller enters `2k+1` *before* renaming the new file over the
//! watched one, waits for Envoy's `config_reload` counter, then sends probes
//! on new connections until one is decided by the new policy
//! ([`crate::load::fence`]), and only then enters `2k+2`. With one Envoy
//! worker, every stream decoded after that probe uses the new policy.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use portcullis_e2e::envoy;

use crate::load::{fence, Load, SWAP_DEADLINE};
use crate::rig::Rig;
use crate::tally::Tally;
use crate::workload::POLICY_NAMES;

/// One policy swap.
#[derive(Debug, Clone)]
pub struct Swap {
    /// Requests answered when it started.
    pub at_request: u64,
    /// The policy swapped in.
    pub to: &'static str,
    /// From the file rename to Envoy's `config_reload`, milliseconds.
    pub reload_ms: u128,
    /// From the file rename to the first probe decided by the new policy.
    pub fence_ms: u128,
    /// Probes sent.
    pub probes: u64,
}

/// The request counts at which to swap: every `percent` % of `requests`,
/// below 100 %.
pub fn plan(requests: u64, percent: u64) -> Vec<u64> {
    let step = percent.max(1);
    (1..)
        .map(|j| j * step)
        .take_while(|p| *p < 100)
        .map(|p| requests * p / 100)
        .collect()
}

/// Progress lines every 10 s while the controller waits.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
    last: Instant,
    pid: u32,
}

impl Progress {
    /// Progress of a load that started at `start` against Envoy `pid`.
    pub fn new(start: Instant, pid: u32) -> Progress {
        Progress {
            start,
            last: Instant::now(),
            pid,
        }
    }

    /// Prints a line when 10 s have passed (or `force`).
    pub fn report(&mut self, load: &Load, force: bool) {
        if force || self.last.elapsed() >= Duration::from_secs(10) {
            self.last = Instant::now();
            let d = load.done.load(Ordering::Relaxed);
            let s = self.start.elapsed().as_secs_f64();
            println!(
                "soak: {d} / {} requests, {:.0} s, {:.0} req/s, Envoy RSS {} KiB",
                load.cfg.requests,
                s,
                d as f64 / s.max(0.001),
                envoy::rss_kib(self.pid).unwrap_or(0)
            );
        }
    }

    /// Waits (reporting) until `until` holds.
    pub fn wait(&mut self, load: &Load, every: Duration, until: impl Fn(&Load) -> bool) {
        while !until(load) {
            std::thread::sleep(every);
            self.report(load, false);
        }
    }
}

/// Polls Envoy until its `config_reload` counter passes `before`; the time
/// since `t0`.
fn await_reload(rig: &Rig, before: u64, to: usize, t0: Instant) -> Result<Duration, String> {
    loop {
        match rig.ecds_counter(".config_reload") {
            Ok(v) if v > before => return Ok(t0.elapsed()),
            Ok(_) if t0.elapsed() > SWAP_DEADLINE => {
                return Err(format!(
                    "swap to {}: no config_reload after {SWAP_DEADLINE:?}",
                    POLICY_NAMES[to]
                ))
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("stats: {e}")),
        }
    }
}

/// Swaps from policy `current` to `current + 1`: phase up, new file,
/// reload, fence, phase up.
fn swap_once(load: &Load, rig: &Rig, current: usize, probes: &mut Tally) -> Result<Swap, String> {
    let to = (current + 1) % 2;
    let before = rig
        .ecds_counter(".config_reload")
        .map_err(|e| format!("stats: {e}"))?;
    let at_request = load.done.load(Ordering::Relaxed);
    load.phase.fetch_add(1, Ordering::SeqCst);
    let t0 = Instant::now();
    rig.write_policy(to)?;
    let reload = await_reload(rig, before, to, t0)?;
    let n = fence(load, to, probes, t0)?;
    load.phase.fetch_add(1, Ordering::SeqCst);
    Ok(Swap {
        at_request,
        to: POLICY_NAMES[to],
        reload_ms: reload.as_millis(),
        fence_ms: t0.elapsed().as_millis(),
        probes: n,
    })
}

/// Runs the swaps of `points` as the load reaches them; stops the load on
/// the first failure (pushed to `errors`). The swaps done.
pub fn run_swaps(
    load: &Load,
    rig: &Rig,
    points: &[u64],
    probes: &mut Tally,
    progress: &mut Progress,
    errors: &mut Vec<String>,
) -> Vec<Swap> {
    let mut swaps: Vec<Swap> = Vec::new();
    for &point in points {
        progress.wait(load, Duration::from_millis(5), |l| {
            l.done.load(Ordering::Relaxed) >= point || l.all_done()
        });
        if load.all_done() {
            break;
        }
        match swap_once(load, rig, swaps.len(), probes) {
            Ok(s) => {
                println!(
                    "soak: swap {} at request {} -> {} (config_reload after {} ms, in force after {} ms, {} probes)",
                    swaps.len() + 1,
                    s.at_request,
                    s.to,
                    s.reload_ms,
                    s.fence_ms,
                    s.probes
                );
                swaps.push(s);
            }
            Err(e) => {
                errors.push(e);
                load.halt();
                break;
            }
        }
    }
    swaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_are_planned_every_percent_below_the_end() {
        assert_eq!(plan(1000, 15), vec![150, 300, 450, 600, 750, 900]);
        assert_eq!(plan(100, 50), vec![50]);
        assert_eq!(plan(100, 100), Vec::<u64>::new());
        assert_eq!(plan(10, 0).len(), 99);
    }
}
