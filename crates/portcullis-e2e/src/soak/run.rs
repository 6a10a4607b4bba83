//! Orchestration of a soak run.
//!
//! One stand-in backend (recording nothing), one Envoy (`--concurrency 1`)
//! with two listeners on [`LISTEN_IP`] — TLS and plain — whose Portcullis filter
//! is discovered through ECDS from one file. Load threads send the mix of
//! [`workload`] over keep-alive connections, one per (listener, source
//! address); every response is checked against the core ([`check`]).
//!
//! **Policy swaps.** Every `swap_percent` of the requests the controller
//! replaces the ECDS file (A <-> B). A global phase counter tells the load
//! threads where the run is: phase `2k` means policy `k` is in force and
//! proven so, phase `2k+1` means a swap from `k` to `k+1` is under way. The
//! controller enters `2k+1` *before* renaming the new file over the watched
//! one, waits for Envoy's `config_reload` counter, then sends probes on new
//! connections until one is decided by the new policy, and only then enters
//! `2k+2`. With one Envoy worker, every stream decoded after that probe uses
//! the new policy. A load thread reads the phase before sending and after
//! receiving: if both reads give the same even phase, the response must match
//! that phase's policy exactly; otherwise it must match one of the policies
//! of the phases in between (the old or the new one), never neither.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_core::Policy;
use rustls::ClientConfig;
use serde_json::{json, Value};

use crate::backend::Backend;
use crate::config::{AccessLog, EnvoyConfig, Filter, Listener, Upstream};
use crate::envoy::{self, Envoy, Options};
use crate::soak::check::{self, Sent};
use crate::soak::http::{self, Conn, Response};
use crate::soak::workload::{self, Class, Spec, HOST, KEY, POLICY_NAMES};
use crate::translate::free_port;
use crate::{paths, tls};

/// How long a swap may take to show before the run counts it as failed (a
/// hang guard; the reload is polled).
const SWAP_DEADLINE: Duration = Duration::from_secs(60);
/// Where Envoy's listeners bind.
pub const LISTEN_IP: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 1);
/// RSS samples needed before the growth check means anything.
pub const MIN_RSS_SAMPLES: usize = 20;
/// Largest RSS growth (percent, first to last quarter) that passes.
pub const MAX_RSS_GROWTH_PERCENT: f64 = 5.0;

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
    /// Where the JSON summary goes.
    pub json: PathBuf,
}

/// Counts kept by each load thread.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests answered (or failed on I/O).
    pub requests: u64,
    /// Requests sent over TLS.
    pub tls: u64,
    /// Requests per class.
    pub by_class: BTreeMap<&'static str, u64>,
    /// Responses per status.
    pub by_status: BTreeMap<u16, u64>,
    /// Responses outside swap windows that differ from the policy in force.
    pub mismatches: u64,
    /// Responses inside swap windows matching neither the old nor the new policy.
    pub swap_violations: u64,
    /// Responses inside swap windows.
    pub in_window: u64,
    /// Responses breaking the hardening promises.
    pub hardening: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// Exchanges that failed on I/O.
    pub io_errors: u64,
    /// Requests Envoy must reject (431) by their size.
    pub envoy_431_expected: u64,
    /// 431 responses seen.
    pub envoy_431_seen: u64,
    /// Decisions matched, per policy (A, B) and verdict (forward, deny, redirect).
    pub decided: [[u64; 3]; 2],
    /// The first few failures, described.
    pub examples: Vec<String>,
}

impl Tally {
    fn example(&mut self, s: String) {
        if self.examples.len() < 12 {
            self.examples.push(s);
        }
    }

    fn merge(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.tls += o.tls;
        for (k, v) in &o.by_class {
            *self.by_class.entry(k).or_default() += v;
        }
        for (k, v) in &o.by_status {
            *self.by_status.entry(*k).or_default() += v;
        }
        self.mismatches += o.mismatches;
        self.swap_violations += o.swap_violations;
        self.in_window += o.in_window;
        self.hardening += o.hardening;
        self.status_5xx += o.status_5xx;
        self.io_errors += o.io_errors;
        self.envoy_431_expected += o.envoy_431_expected;
        self.envoy_431_seen += o.envoy_431_seen;
        for p in 0..2 {
            for v in 0..3 {
                if let (Some(a), Some(b)) = (
                    self.decided.get_mut(p).and_then(|r| r.get_mut(v)),
                    o.decided.get(p).and_then(|r| r.get(v)),
                ) {
                    *a += b;
                }
            }
        }
        for e in &o.examples {
            self.example(e.clone());
        }
    }
}

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

/// One check of the run.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Name.
    pub name: &'static str,
    /// `Some(passed)`, or `None` when it cannot be judged (too short a run).
    pub passed: Option<bool>,
    /// Figures.
    pub detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The configuration.
    pub config: Config,
    /// Load-thread counts plus probes.
    pub tally: Tally,
    /// Load duration.
    pub seconds: f64,
    /// Swaps done.
    pub swaps: Vec<Swap>,
    /// Swaps planned.
    pub swaps_planned: usize,
    /// Probe tally (part of `tally.decided`).
    pub probes: u64,
    /// RSS samples (seconds since load start, KiB).
    pub rss: Vec<(f64, u64)>,
    /// Non-zero wasm failure stats.
    pub vm_failures: Vec<(String, u64)>,
    /// Envoy's `wasm.*` stats at the end (VM counts, reloads, failures).
    pub wasm_stats: Vec<(String, u64)>,
    /// `wasmcustom.portcullis.*` verdict counters.
    pub filter_counters: Vec<(String, u64)>,
    /// ECDS counters.
    pub ecds: Vec<(String, u64)>,
    /// Problems of the run itself (start-up, swaps).
    pub errors: Vec<String>,
    /// Checks.
    pub checks: Vec<CheckResult>,
}

struct Shared {
    cfg: Config,
    policies: [Policy; 2],
    plain: SocketAddr,
    tls_addr: SocketAddr,
    tls: Arc<ClientConfig>,
    next: AtomicU64,
    done: AtomicU64,
    phase: AtomicU64,
    stop: AtomicBool,
    deadline: Instant,
}

fn check_response(
    sh: &Shared,
    spec: &Spec,
    peer: SocketAddr,
    p0: u64,
    p1: u64,
    resp: &Response,
    t: &mut Tally,
) {
    *t.by_status.entry(resp.status).or_default() += 1;
    if resp.status >= 500 {
        t.status_5xx += 1;
    }
    let local = if spec.tls { sh.tls_addr } else { sh.plain };
    let what = |spec: &Spec| {
        format!(
            "{} v{} {} {} from {} ({} header bytes)",
            spec.class.name(),
            spec.variant,
            if spec.tls { "tls" } else { "plain" },
            spec.method,
            spec.source,
            workload::header_bytes(spec)
        )
    };
    if spec.envoy_rejects {
        t.envoy_431_expected += 1;
        if resp.status == 431 {
            t.envoy_431_seen += 1;
        }
        if let Err(e) = check::envoy_431(resp) {
            t.mismatches += 1;
            t.example(format!("mismatch: {}: {e}", what(spec)));
        }
        if let Err(e) = check::hardening(resp, spec.tls, true, false) {
            t.hardening += 1;
            t.example(format!("hardening: {}: {e}", what(spec)));
        }
        return;
    }
    if resp.status == 431 {
        t.envoy_431_seen += 1;
    }
    let sent = Sent {
        peer,
        local,
        tls: spec.tls,
        method: spec.method.as_bytes(),
        authority: spec.authority.as_bytes(),
        path: spec.path.as_bytes(),
        headers: &spec.headers,
    };
    let strict = p0 == p1 && p0.is_multiple_of(2);
    let mut matched = None;
    let mut why = Vec::new();
    // Phases p0..=p1 cover policies p0/2 ..= (p1+1)/2.
    for k in p0 / 2..=p1.div_ceil(2) {
        let pi = (k % 2) as usize;
        let Some(policy) = sh.policies.get(pi) else {
            continue;
        };
        let want = check::expected(policy, &sent);
        match check::compare(&want, resp) {
            Ok(()) => {
                matched = Some((pi, want.verdict));
                break;
            }
            Err(e) => why.push(format!("{}: {e}", policy.name)),
        }
    }
    if !strict {
        t.in_window += 1;
    }
    match matched {
        Some((pi, v)) => {
            if let Some(c) = t.decided.get_mut(pi).and_then(|r| r.get_mut(v.index())) {
                *c += 1;
            }
        }
        None if strict => {
            t.mismatches += 1;
            t.example(format!("mismatch: {}: {}", what(spec), why.join("; ")));
        }
        None => {
            t.swap_violations += 1;
            t.example(format!(
                "swap violation (phases {p0}..{p1}): {}: {}",
                what(spec),
                why.join("; ")
            ));
        }
    }
    if let Err(e) = check::hardening(resp, spec.tls, true, true) {
        t.hardening += 1;
        t.example(format!("hardening: {}: {e}", what(spec)));
    }
}

fn load_thread(sh: &Shared, thread: usize) -> Tally {
    let mut t = Tally::default();
    let mut conns: BTreeMap<(bool, Ipv4Addr), Conn> = BTreeMap::new();
    loop {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let i = sh.next.fetch_add(1, Ordering::Relaxed);
        if i >= sh.cfg.requests {
            break;
        }
        if Instant::now() > sh.deadline {
            sh.stop.store(true, Ordering::Relaxed);
            break;
        }
        let spec = workload::build(sh.cfg.seed, i, thread);
        t.requests += 1;
        *t.by_class.entry(spec.class.name()).or_default() += 1;
        t.tls += u64::from(spec.tls);
        let bytes = spec.to_bytes();
        let slot = (spec.tls, spec.source);
        let p0 = sh.phase.load(Ordering::SeqCst);
        let result = (|| {
            let c = match conns.entry(slot) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let to = if spec.tls { sh.tls_addr } else { sh.plain };
                    v.insert(Conn::connect(
                        SocketAddr::new(IpAddr::V4(spec.source), 0),
                        to,
                        spec.tls.then_some(&sh.tls),
                    )?)
                }
            };
            c.exchange(&bytes, false).map(|r| (r, c.local))
        })();
        let p1 = sh.phase.load(Ordering::SeqCst);
        sh.done.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok((resp, peer)) => {
                if resp.close {
                    conns.remove(&slot);
                }
                check_response(sh, &spec, peer, p0, p1, &resp, &mut t);
            }
            Err(e) => {
                conns.remove(&slot);
                t.io_errors += 1;
                t.example(format!(
                    "i/o error: {} v{} from {}: {e}",
                    spec.class.name(),
                    spec.variant,
                    spec.source
                ));
            }
        }
    }
    t
}

/// Sends one probe (plain, from a caller only policy A allows, on a new
/// connection) and says which policy decided it: `Some(index)`, or `None`
/// when neither (a violation). Counted in `t`.
fn probe(sh: &Shared, t: &mut Tally) -> Result<Option<usize>, String> {
    let spec = Spec {
        class: Class::PlainRedirect,
        variant: 0,
        tls: false,
        source: workload::source(workload::ONLY_A, 249, 0),
        method: "GET",
        authority: HOST.to_owned(),
        path: String::from("/probe"),
        headers: vec![("x-functions-key".to_owned(), KEY.to_vec())],
        envoy_rejects: false,
    };
    let mut c = Conn::connect(SocketAddr::new(IpAddr::V4(spec.source), 0), sh.plain, None)
        .map_err(|e| format!("probe connect: {e}"))?;
    let resp = c
        .exchange(&spec.to_bytes(), false)
        .map_err(|e| format!("probe: {e}"))?;
    let sent = Sent {
        peer: c.local,
        local: sh.plain,
        tls: false,
        method: b"GET",
        authority: spec.authority.as_bytes(),
        path: spec.path.as_bytes(),
        headers: &spec.headers,
    };
    *t.by_status.entry(resp.status).or_default() += 1;
    for (pi, policy) in sh.policies.iter().enumerate() {
        let want = check::expected(policy, &sent);
        if check::compare(&want, &resp).is_ok() {
            if let Some(c) = t
                .decided
                .get_mut(pi)
                .and_then(|r| r.get_mut(want.verdict.index()))
            {
                *c += 1;
            }
            return Ok(Some(pi));
        }
    }
    t.swap_violations += 1;
    t.example(format!(
        "probe decided by neither policy: status {} {:?}",
        resp.status, resp.headers
    ));
    Ok(None)
}

/// Sends probes until one is decided by policy `want` (or the deadline).
fn fence(sh: &Shared, want: usize, t: &mut Tally, started: Instant) -> Result<u64, String> {
    // One worker: one probe decided by the new policy proves it. Several:
    // each probe's connection lands on a worker by the kernel's hash of its
    // 4-tuple (SO_REUSEPORT), so 16 in a row make it all but certain that
    // every worker has the new policy (not a proof; see docs/robustness.md).
    let need = if sh.cfg.concurrency <= 1 { 1 } else { 16 };
    let mut n = 0;
    let mut in_a_row = 0;
    loop {
        n += 1;
        if probe(sh, t)? == Some(want) {
            in_a_row += 1;
            if in_a_row >= need {
                return Ok(n);
            }
            continue;
        }
        in_a_row = 0;
        if started.elapsed() > SWAP_DEADLINE {
            return Err(format!(
                "policy {} not in force {SWAP_DEADLINE:?} after the swap",
                POLICY_NAMES.get(want).unwrap_or(&"?")
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn ecds_counter(envoy: &Envoy, suffix: &str) -> Result<u64, String> {
    Ok(envoy
        .stats_matching("extension_config_discovery")?
        .into_iter()
        .filter(|(n, _)| n.contains("portcullis") && n.ends_with(suffix))
        .map(|(_, v)| v)
        .sum())
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Average of the first and last quarter of the samples, and the growth in percent.
pub fn rss_quarters(samples: &[(f64, u64)]) -> Option<(f64, f64, f64)> {
    let q = samples.len() / 4;
    if q == 0 {
        return None;
    }
    let avg = |s: &[(f64, u64)]| s.iter().map(|(_, k)| *k as f64).sum::<f64>() / s.len() as f64;
    let first = avg(samples.get(..q)?);
    let last = avg(samples.get(samples.len() - q..)?);
    Some((first, last, (last - first) / first * 100.0))
}

/// Runs a soak. Errors only when it cannot start; failures of the run are
/// in the summary's checks.
pub fn run(cfg: Config) -> Result<Summary, String> {
    let wasm = paths::filter_wasm()?;
    let policies = [0, 1].map(|k| Policy::parse(workload::policy_json(k).as_bytes()));
    let [Ok(pa), Ok(pb)] = policies else {
        return Err("the soak policies do not parse".into());
    };
    let dir = paths::scratch("soak");
    let backend = Backend::start_unrecorded(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .map_err(|e| format!("backend: {e}"))?;
    let cert = tls::test_cert()?;
    let tls = http::tls_config(&cert.cert)?;
    // The listeners get a loopback address of their own: ports handed out
    // by `free_port` are released before Envoy binds them, and on 127.0.0.1
    // any process's outgoing connection could take one in between.
    let lo = [LISTEN_IP];
    let plain = SocketAddr::from((LISTEN_IP, free_port(&lo)?));
    let tls_addr = SocketAddr::from((LISTEN_IP, free_port(&lo)?));
    let ecds = dir.join("ecds").join("portcullis.yaml");
    std::fs::create_dir_all(dir.join("ecds")).map_err(|e| e.to_string())?;
    let filter = Filter::Discovered {
        name: "portcullis".into(),
        path: ecds.clone(),
    };
    let config = EnvoyConfig {
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        listeners: vec![
            Listener {
                name: "plain".into(),
                address: plain,
                tls: None,
                filter: filter.clone(),
            },
            Listener {
                name: "tls".into(),
                address: tls_addr,
                tls: Some(cert.clone()),
                filter,
            },
        ],
        upstream: Upstream::Static(backend.addr()),
        wasm,
        access_log: AccessLog::Off,
    };
    write_atomic(
        &ecds,
        &config.render_ecds_resource("portcullis", &workload::policy_json(0)),
    )?;
    let mut envoy = Envoy::start_with(
        &dir,
        &config.render(),
        &Options {
            concurrency: cfg.concurrency,
            log_level: "warning".into(),
            component_log_level: None,
        },
    )
    .map_err(|e| e.to_string())?;
    let pid = envoy.pid();
    println!(
        "soak: Envoy pid {pid} (--concurrency {}), plain {plain}, tls {tls_addr}, backend {}, dir {}",
        cfg.concurrency,
        backend.addr(),
        dir.display()
    );
    let sh = Arc::new(Shared {
        deadline: Instant::now() + cfg.budget,
        cfg: cfg.clone(),
        policies: [pa, pb],
        plain,
        tls_addr,
        tls,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        phase: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let mut errors = Vec::new();
    let mut probes = Tally::default();
    // Phase 0: policy A must be in force before the load starts.
    if let Err(e) = fence(&sh, 0, &mut probes, Instant::now()) {
        return Err(format!("policy A never came into force: {e}"));
    }

    let finished = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let sampler = {
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !finished.load(Ordering::Relaxed) {
                if let Some(k) = envoy::rss_kib(pid) {
                    samples.push((start.elapsed().as_secs_f64(), k));
                }
                next += Duration::from_secs(1);
                while Instant::now() < next && !finished.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            samples
        })
    };
    let workers: Vec<_> = (0..cfg.threads)
        .map(|t| {
            let sh = Arc::clone(&sh);
            std::thread::spawn(move || load_thread(&sh, t))
        })
        .collect();

    // The controller: swaps, and progress.
    let mut swaps = Vec::new();
    let step = cfg.swap_percent.max(1);
    let points: Vec<u64> = (1..)
        .map(|j| j * step)
        .take_while(|p| *p < 100)
        .map(|p| cfg.requests * p / 100)
        .collect();
    let swaps_planned = points.len();
    let mut last_report = Instant::now();
    let all_done = |sh: &Shared| {
        sh.done.load(Ordering::Relaxed) >= sh.cfg.requests || sh.stop.load(Ordering::Relaxed)
    };
    let mut report = |sh: &Shared, force: bool| {
        if force || last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let d = sh.done.load(Ordering::Relaxed);
            let s = start.elapsed().as_secs_f64();
            println!(
                "soak: {d} / {} requests, {:.0} s, {:.0} req/s, Envoy RSS {} KiB",
                sh.cfg.requests,
                s,
                d as f64 / s.max(0.001),
                envoy::rss_kib(pid).unwrap_or(0)
            );
        }
    };
    let mut current = 0usize;
    for point in points {
        while sh.done.load(Ordering::Relaxed) < point && !all_done(&sh) {
            std::thread::sleep(Duration::from_millis(5));
            report(&sh, false);
        }
        if all_done(&sh) {
            break;
        }
        let next = current + 1;
        let to = next % 2;
        let before = match ecds_counter(&envoy, ".config_reload") {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("stats: {e}"));
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
        };
        let at_request = sh.done.load(Ordering::Relaxed);
        sh.phase.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        if let Err(e) = write_atomic(
            &ecds,
            &config.render_ecds_resource("portcullis", &workload::policy_json(to)),
        ) {
            errors.push(e);
            sh.stop.store(true, Ordering::Relaxed);
            break;
        }
        let reloaded = loop {
            match ecds_counter(&envoy, ".config_reload") {
                Ok(v) if v > before => break Ok(t0.elapsed()),
                Ok(_) if t0.elapsed() > SWAP_DEADLINE => {
                    break Err(format!(
                        "swap to {}: no config_reload after {SWAP_DEADLINE:?}",
                        POLICY_NAMES[to]
                    ))
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => break Err(format!("stats: {e}")),
            }
        };
        let reload = match reloaded {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
        };
        match fence(&sh, to, &mut probes, t0) {
            Ok(n) => {
                sh.phase.fetch_add(1, Ordering::SeqCst);
                current = next;
                let s = Swap {
                    at_request,
                    to: POLICY_NAMES[to],
                    reload_ms: reload.as_millis(),
                    fence_ms: t0.elapsed().as_millis(),
                    probes: n,
                };
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
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    while !all_done(&sh) {
        std::thread::sleep(Duration::from_millis(20));
        report(&sh, false);
    }
    let mut tally = Tally::default();
    for w in workers {
        match w.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => errors.push("a load thread panicked".into()),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    finished.store(true, Ordering::Relaxed);
    let rss = sampler.join().unwrap_or_default();
    report(&sh, true);
    let probe_count: u64 = probes.decided.iter().flatten().sum::<u64>() + probes.swap_violations;
    tally.merge(&probes);

    let vm_failures = envoy.wasm_failures().unwrap_or_else(|e| {
        errors.push(e.clone());
        vec![(format!("stats unreadable: {e}"), 1)]
    });
    let wasm_stats: Vec<(String, u64)> = envoy
        .stats_matching("wasm")
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| n.starts_with("wasm."))
        .collect();
    let filter_counters: Vec<(String, u64)> = envoy
        .stats_matching("wasmcustom.portcullis.")
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| {
            n.ends_with(".allowed") || n.ends_with(".denied") || n.ends_with(".redirected")
        })
        .collect();
    let ecds_stats: Vec<(String, u64)> = envoy
        .stats_matching("extension_config_discovery")
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| n.contains("portcullis"))
        .collect();
    let alive = envoy.running() && envoy.pid() == pid;
    let log_tail: String = {
        let log = envoy.log();
        let lines: Vec<&str> = log.lines().collect();
        lines
            .get(lines.len().saturating_sub(20)..)
            .unwrap_or_default()
            .join("\n")
    };
    envoy.stop();
    drop(backend);

    let mut summary = Summary {
        config: cfg,
        tally,
        seconds,
        swaps,
        swaps_planned,
        probes: probe_count,
        rss,
        vm_failures,
        wasm_stats,
        filter_counters,
        ecds: ecds_stats,
        errors,
        checks: Vec::new(),
    };
    summary.checks = judge(&summary, alive);
    if !alive {
        summary
            .errors
            .push(format!("Envoy is gone; log tail:\n{log_tail}"));
    }
    Ok(summary)
}

fn counter(list: &[(String, u64)], name: &str) -> u64 {
    list.iter().filter(|(n, _)| n == name).map(|(_, v)| v).sum()
}

fn judge(s: &Summary, alive: bool) -> Vec<CheckResult> {
    let t = &s.tally;
    let mut c = Vec::new();
    let mut add = |name: &'static str, passed: Option<bool>, detail: String| {
        c.push(CheckResult {
            name,
            passed,
            detail,
        });
    };
    let sent = t.requests;
    add(
        "all requests sent within the budget",
        Some(sent == s.config.requests),
        format!(
            "{sent} of {} in {:.1} s (budget {} s)",
            s.config.requests,
            s.seconds,
            s.config.budget.as_secs()
        ),
    );
    add(
        "no i/o errors",
        Some(t.io_errors == 0),
        format!("{}", t.io_errors),
    );
    add(
        "every response matches the core's decision",
        Some(t.mismatches == 0),
        format!("{} mismatches", t.mismatches),
    );
    add(
        "swap windows: old or new policy, never neither",
        Some(t.swap_violations == 0),
        format!(
            "{} violations in {} responses inside windows",
            t.swap_violations, t.in_window
        ),
    );
    add(
        "hardened headers (no Server/X-Powered-By, HSTS once iff secure)",
        Some(t.hardening == 0),
        format!("{} failures", t.hardening),
    );
    add(
        "no 5xx",
        Some(t.status_5xx == 0),
        format!("{}", t.status_5xx),
    );
    add(
        "Envoy's 431 exactly for the oversized requests decided up front",
        Some(t.envoy_431_seen == t.envoy_431_expected),
        format!(
            "{} expected, {} seen",
            t.envoy_431_expected, t.envoy_431_seen
        ),
    );
    add(
        "no wasm VM failures",
        Some(s.vm_failures.is_empty()),
        if s.vm_failures.is_empty() {
            "none".into()
        } else {
            format!("{:?}", s.vm_failures)
        },
    );
    let fails = s
        .ecds
        .iter()
        .filter(|(n, _)| {
            n.ends_with(".config_fail")
                || n.ends_with(".update_rejected")
                || n.ends_with(".update_failure")
        })
        .map(|(_, v)| v)
        .sum::<u64>();
    add(
        "every ECDS swap applied and in force",
        Some(s.swaps.len() == s.swaps_planned && fails == 0 && s.errors.is_empty()),
        format!(
            "{} of {} swaps, {fails} ECDS failures{}",
            s.swaps.len(),
            s.swaps_planned,
            if s.errors.is_empty() {
                String::new()
            } else {
                format!(", errors: {}", s.errors.join("; "))
            }
        ),
    );
    // The filter's own counters agree with what the client saw, per policy and verdict.
    let mut diffs = Vec::new();
    for (pi, name) in POLICY_NAMES.iter().enumerate() {
        for (vi, word) in ["allowed", "denied", "redirected"].iter().enumerate() {
            let ours = t
                .decided
                .get(pi)
                .and_then(|r| r.get(vi))
                .copied()
                .unwrap_or(0);
            let theirs = counter(
                &s.filter_counters,
                &format!("wasmcustom.portcullis.{name}.{word}"),
            );
            if ours != theirs {
                diffs.push(format!("{name}.{word}: filter {theirs}, client {ours}"));
            }
        }
    }
    let total: u64 = t.decided.iter().flatten().sum();
    add(
        "filter counters = client-side decisions (per policy and verdict)",
        Some(diffs.is_empty()),
        if diffs.is_empty() {
            format!("{total} decisions")
        } else {
            diffs.join(", ")
        },
    );
    match rss_quarters(&s.rss) {
        Some((first, last, growth)) if s.rss.len() >= MIN_RSS_SAMPLES => add(
            "Envoy RSS growth first -> last quarter under 5%",
            Some(growth < MAX_RSS_GROWTH_PERCENT),
            format!(
                "{first:.0} KiB -> {last:.0} KiB ({growth:+.2}%), {} samples",
                s.rss.len()
            ),
        ),
        other => add(
            "Envoy RSS growth first -> last quarter under 5%",
            None,
            format!(
                "not judged: {} samples (needs {MIN_RSS_SAMPLES}, one per second){}",
                s.rss.len(),
                other
                    .map(|(f, l, g)| format!("; {f:.0} KiB -> {l:.0} KiB ({g:+.2}%)"))
                    .unwrap_or_default()
            ),
        ),
    }
    add(
        "Envoy still running, same process",
        Some(alive),
        String::new(),
    );
    c
}

impl Summary {
    /// Checks passed and failed (unjudged ones in neither).
    pub fn counts(&self) -> (usize, usize) {
        let passed = self
            .checks
            .iter()
            .filter(|c| c.passed == Some(true))
            .count();
        let failed = self
            .checks
            .iter()
            .filter(|c| c.passed == Some(false))
            .count();
        (passed, failed)
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.tally.requests as f64 / self.seconds.max(0.001)
    }

    /// The JSON summary.
    pub fn to_json(&self) -> Value {
        let t = &self.tally;
        let (passed, failed) = self.counts();
        let rss = rss_quarters(&self.rss);
        json!({
            "requests": t.requests,
            "requests_planned": self.config.requests,
            "requests_tls": t.tls,
            "seconds": self.seconds,
            "rps": self.rps(),
            "threads": self.config.threads,
            "envoy_concurrency": self.config.concurrency,
            "seed": self.config.seed,
            "mismatches": t.mismatches,
            "swap_violations": t.swap_violations,
            "responses_in_swap_windows": t.in_window,
            "hardening_failures": t.hardening,
            "status_5xx": t.status_5xx,
            "io_errors": t.io_errors,
            "envoy_431": { "expected": t.envoy_431_expected, "seen": t.envoy_431_seen },
            "vm_failures": self.vm_failures.iter().map(|(n, v)| json!({"stat": n, "value": v})).collect::<Vec<_>>(),
            "rss_kib": {
                "samples": self.rss.len(),
                "first_quarter": rss.map(|r| r.0),
                "last_quarter": rss.map(|r| r.1),
                "growth_percent": rss.map(|r| r.2),
                "min": self.rss.iter().map(|r| r.1).min(),
                "max": self.rss.iter().map(|r| r.1).max(),
                "series": self.rss.iter().map(|(t, k)| json!([(t * 10.0).round() / 10.0, k])).collect::<Vec<_>>(),
            },
            "wasm_stats": self.wasm_stats.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "swaps": self.swaps.iter().map(|s| json!({
                "at_request": s.at_request, "to": s.to, "reload_ms": s.reload_ms as u64,
                "in_force_ms": s.fence_ms as u64, "probes": s.probes,
            })).collect::<Vec<_>>(),
            "swaps_planned": self.swaps_planned,
            "probes": self.probes,
            "by_class": t.by_class,
            "by_status": t.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "decisions": POLICY_NAMES.iter().enumerate().map(|(pi, n)| (n.to_string(), json!({
                "forward": t.decided.get(pi).map(|r| r[0]),
                "deny": t.decided.get(pi).map(|r| r[1]),
                "redirect": t.decided.get(pi).map(|r| r[2]),
            }))).collect::<serde_json::Map<_, _>>(),
            "filter_counters": self.filter_counters.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "ecds": self.ecds.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "examples": t.examples,
            "errors": self.errors,
            "checks": self.checks.iter().map(|c| json!({"name": c.name, "passed": c.passed, "detail": c.detail})).collect::<Vec<_>>(),
            "passed": passed,
            "failed": failed,
        })
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rss_quarters_measure_growth() {
        let flat: Vec<(f64, u64)> = (0..40).map(|i| (f64::from(i), 1000)).collect();
        assert_eq!(rss_quarters(&flat).map(|r| r.2), Some(0.0));
        let growing: Vec<(f64, u64)> = (0..40)
            .map(|i| (f64::from(i), 1000 + 10 * i as u64))
            .collect();
        let (f, l, g) = rss_quarters(&growing).unwrap();
        assert!(l > f && g > 25.0, "{f} {l} {g}");
        assert_eq!(rss_quarters(&flat[..3]), None);
    }
}
