//! The load threads and the probes.
//!
//! Load threads send the mix of [`workload`] over keep-alive connections,
//! one per (listener, source address), and check every response against
//! the core ([`check`]) under the policy (or policies) the swap phase
//! allows: a thread reads [`Load::phase`] before sending and after
//! receiving; if both reads give the same even phase, the response must
//! match that phase's policy exactly, otherwise one of the policies of the
//! phases in between (see [`crate::swap`]).
//!
//! A probe is a request on a new connection from a caller only policy A
//! allows; [`fence`] sends probes until one is decided by the new policy.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portcullis_core::Policy;
use portcullis_e2e::http1::{Conn, Response, TlsClient};

use crate::check::{self, Sent};
use crate::config::Config;
use crate::http2::{self, Answer};
use crate::rig::Rig;
use crate::tally::{Protocol, Tally};
use crate::workload::{self, Class, Spec, HOST, KEY, POLICY_NAMES};

/// How long a swap may take to show before the run counts it as failed (a
/// hang guard; the reload is polled).
pub const SWAP_DEADLINE: Duration = Duration::from_secs(60);

/// What the load threads, the probes and the controller share.
#[derive(Debug)]
pub struct Load {
    /// The run's configuration.
    pub cfg: Config,
    /// Policies A and B, parsed by the core.
    pub policies: [Policy; 2],
    /// The plain listener.
    pub plain: SocketAddr,
    /// The TLS listener.
    pub tls_addr: SocketAddr,
    /// The TLS client.
    pub tls: TlsClient,
    /// The next request index to send.
    pub next: AtomicU64,
    /// Requests answered (or failed).
    pub done: AtomicU64,
    /// The swap phase: `2k` policy `k` in force, `2k+1` a swap from `k` under way.
    pub phase: AtomicU64,
    /// Stop now (budget spent, or the controller gave up).
    pub stop: AtomicBool,
    /// The end of the time budget.
    pub deadline: Instant,
}

impl Load {
    /// The shared state for a run against `rig`.
    pub fn new(cfg: &Config, rig: &Rig) -> Result<Load, String> {
        let policies = [0, 1].map(|k| Policy::parse(workload::policy_json(k).as_bytes()));
        let [Ok(pa), Ok(pb)] = policies else {
            return Err("the soak policies do not parse".into());
        };
        Ok(Load {
            deadline: Instant::now() + cfg.budget,
            cfg: cfg.clone(),
            policies: [pa, pb],
            plain: rig.plain,
            tls_addr: rig.tls_addr,
            tls: rig.tls.clone(),
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            phase: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    /// Every request answered, or the run stopped.
    pub fn all_done(&self) -> bool {
        self.done.load(Ordering::Relaxed) >= self.cfg.requests || self.stop.load(Ordering::Relaxed)
    }

    /// Stops the load.
    pub fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn listener(&self, tls: bool) -> SocketAddr {
        if tls {
            self.tls_addr
        } else {
            self.plain
        }
    }
}

/// A request of the mix, described for a failure example.
fn what(spec: &Spec, protocol: Protocol) -> String {
    format!(
        "{} {} v{} {} {} from {} ({} header bytes)",
        protocol.as_str(),
        spec.class.name(),
        spec.variant,
        if spec.tls { "tls" } else { "plain" },
        spec.method,
        spec.source,
        workload::header_bytes(spec)
    )
}

fn sent<'a>(spec: &'a Spec, peer: SocketAddr, local: SocketAddr) -> Sent<'a> {
    Sent {
        peer,
        local,
        tls: spec.tls,
        method: spec.method.as_bytes(),
        authority: spec.authority.as_bytes(),
        path: spec.path.as_bytes(),
        headers: &spec.headers,
    }
}

/// A request Envoy must answer itself (431): checked without the core.
fn check_envoy_431(load: &Load, spec: &Spec, resp: &Response, t: &mut Tally, protocol: Protocol) {
    t.envoy_431_expected += 1;
    if resp.status == 431 {
        t.envoy_431_seen += 1;
    }
    if let Err(e) = check::envoy_431(resp, load.cfg.native) {
        t.mismatches += 1;
        t.example(format!("mismatch: {}: {e}", what(spec, protocol)));
    }
    if let Err(e) = check::hardening(resp, spec.tls, true, false) {
        t.hardening += 1;
        t.example(format!("hardening: {}: {e}", what(spec, protocol)));
    }
}

/// Checks one response of the mix, sent in phase `p0` and received in `p1`.
fn check_response(
    load: &Load,
    spec: &Spec,
    peer: SocketAddr,
    (p0, p1): (u64, u64),
    resp: &Response,
    t: &mut Tally,
    protocol: Protocol,
) {
    *t.by_status.entry(resp.status).or_default() += 1;
    if resp.status >= 500 {
        t.status_5xx += 1;
    }
    if spec.envoy_rejects {
        return check_envoy_431(load, spec, resp, t, protocol);
    }
    if resp.status == 431 {
        t.envoy_431_seen += 1;
    }
    let sent = sent(spec, peer, load.listener(spec.tls));
    let strict = p0 == p1 && p0.is_multiple_of(2);
    let mut matched = None;
    let mut why = Vec::new();
    // Phases p0..=p1 cover policies p0/2 ..= (p1+1)/2.
    for k in p0 / 2..=p1.div_ceil(2) {
        let pi = (k % 2) as usize;
        let Some(policy) = load.policies.get(pi) else {
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
        Some((pi, v)) => t.decided_by(pi, v),
        None if strict => {
            t.mismatches += 1;
            t.example(format!(
                "mismatch: {}: {}",
                what(spec, protocol),
                why.join("; ")
            ));
        }
        None => {
            t.swap_violations += 1;
            t.example(format!(
                "swap violation (phases {p0}..{p1}): {}: {}",
                what(spec, protocol),
                why.join("; ")
            ));
        }
    }
    if let Err(e) = check::hardening(resp, spec.tls, true, true) {
        t.hardening += 1;
        t.example(format!("hardening: {}: {e}", what(spec, protocol)));
    }
}

/// Checks what came back for `spec`; the status, if a response. Over
/// HTTP/2 a request over Envoy's header limits must get a stream reset
/// (where HTTP/1.1 gets the 431 of [`check_envoy_431`]); any other request
/// must get a response, checked by [`check_response`].
fn check_answer(
    load: &Load,
    spec: &Spec,
    peer: SocketAddr,
    phases: (u64, u64),
    answer: Answer,
    t: &mut Tally,
    protocol: Protocol,
) -> Option<u16> {
    let h2_reject = protocol == Protocol::Http2 && spec.envoy_rejects;
    t.envoy_reset_expected += u64::from(h2_reject);
    match answer {
        Answer::Reset(reason) => {
            if let Some(p) = t.by_protocol.get_mut(protocol.index()) {
                p.stream_resets += 1;
            }
            if h2_reject {
                t.envoy_reset_seen += 1;
            } else {
                t.mismatches += 1;
                t.example(format!(
                    "mismatch: {}: stream reset ({reason:?}) instead of a response",
                    what(spec, protocol)
                ));
            }
            None
        }
        Answer::Response(resp) if h2_reject => {
            *t.by_status.entry(resp.status).or_default() += 1;
            t.mismatches += 1;
            t.example(format!(
                "mismatch: {}: status {} instead of Envoy's stream reset",
                what(spec, protocol),
                resp.status
            ));
            Some(resp.status)
        }
        Answer::Response(resp) => {
            check_response(load, spec, peer, phases, &resp, t, protocol);
            Some(resp.status)
        }
    }
}

/// Sends `spec` over HTTP/1.1 on the thread's connection for its listener
/// and source (a new one if none is open, or the last one closed).
fn exchange_http1(
    load: &Load,
    conns: &mut BTreeMap<(bool, Ipv4Addr), Conn>,
    spec: &Spec,
) -> std::io::Result<(Response, SocketAddr)> {
    let slot = (spec.tls, spec.source);
    let result = (|| {
        let c = match conns.entry(slot) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(Conn::connect(
                SocketAddr::new(IpAddr::V4(spec.source), 0),
                load.listener(spec.tls),
                spec.tls.then_some(&load.tls),
            )?),
        };
        c.exchange(&spec.to_bytes(), false).map(|r| (r, c.local))
    })();
    match &result {
        Ok((resp, _)) if !resp.close => {}
        _ => {
            conns.remove(&slot);
        }
    }
    result
}

/// One load thread: requests until the run has sent them all or stops.
/// Each request goes over HTTP/2 or HTTP/1.1 by [`workload::h2_pick`].
fn load_thread(load: &Load, thread: usize) -> Tally {
    let mut t = Tally::default();
    let mut conns: BTreeMap<(bool, Ipv4Addr), Conn> = BTreeMap::new();
    let mut h2 = match http2::Client::new(&load.tls) {
        Ok(c) => Some(c),
        Err(e) => {
            t.example(format!("HTTP/2 client: {e}"));
            None
        }
    };
    let share = load.cfg.h2_share;
    while !load.stop.load(Ordering::Relaxed) {
        let i = load.next.fetch_add(1, Ordering::Relaxed);
        if i >= load.cfg.requests {
            break;
        }
        if Instant::now() > load.deadline {
            load.halt();
            break;
        }
        let spec = workload::build(load.cfg.seed, i, thread);
        t.requests += 1;
        *t.by_class.entry(spec.class.name()).or_default() += 1;
        t.tls += u64::from(spec.tls);
        let over_h2 = workload::h2_picked(load.cfg.seed, i, share);
        let marks = t.marks();
        let p0 = load.phase.load(Ordering::SeqCst);
        let (protocol, result) = match (&mut h2, over_h2) {
            (Some(c), true) => (Protocol::Http2, c.exchange(&spec, load.listener(spec.tls))),
            (None, true) => (
                Protocol::Http2,
                Err(std::io::Error::other("no HTTP/2 client")),
            ),
            (_, false) => (
                Protocol::Http1,
                exchange_http1(load, &mut conns, &spec).map(|(r, a)| (Answer::Response(r), a)),
            ),
        };
        let p1 = load.phase.load(Ordering::SeqCst);
        load.done.fetch_add(1, Ordering::Relaxed);
        let status = match result {
            Ok((answer, peer)) => {
                check_answer(load, &spec, peer, (p0, p1), answer, &mut t, protocol)
            }
            Err(e) => {
                t.io_errors += 1;
                t.example(format!(
                    "i/o error: {} {} v{} from {}: {e}",
                    protocol.as_str(),
                    spec.class.name(),
                    spec.variant,
                    spec.source
                ));
                None
            }
        };
        t.count_protocol(protocol, spec.tls, status, marks);
    }
    t
}

/// Starts `cfg.threads` load threads.
pub fn spawn(load: &Arc<Load>) -> Vec<JoinHandle<Tally>> {
    (0..load.cfg.threads)
        .map(|t| {
            let load = Arc::clone(load);
            std::thread::spawn(move || load_thread(&load, t))
        })
        .collect()
}

/// Waits for the load threads and merges their tallies.
pub fn join(workers: Vec<JoinHandle<Tally>>, errors: &mut Vec<String>) -> Tally {
    let mut tally = Tally::default();
    for w in workers {
        match w.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => errors.push("a load thread panicked".into()),
        }
    }
    tally
}

/// Sends one probe (plain, from a caller only policy A allows, on a new
/// connection) and says which policy decided it: `Some(index)`, or `None`
/// when neither (a violation). Counted in `t`.
pub fn probe(load: &Load, t: &mut Tally) -> Result<Option<usize>, String> {
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
    let mut c = Conn::connect(
        SocketAddr::new(IpAddr::V4(spec.source), 0),
        load.plain,
        None,
    )
    .map_err(|e| format!("probe connect: {e}"))?;
    let resp = c
        .exchange(&spec.to_bytes(), false)
        .map_err(|e| format!("probe: {e}"))?;
    let sent = sent(&spec, c.local, load.plain);
    *t.by_status.entry(resp.status).or_default() += 1;
    for (pi, policy) in load.policies.iter().enumerate() {
        let want = check::expected(policy, &sent);
        if check::compare(&want, &resp).is_ok() {
            t.decided_by(pi, want.verdict);
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

/// Sends probes until policy `want` is in force (or the deadline after
/// `started`); the number of probes sent.
pub fn fence(load: &Load, want: usize, t: &mut Tally, started: Instant) -> Result<u64, String> {
    // One worker: one probe decided by the new policy proves it. Several:
    // each probe's connection lands on a worker by the kernel's hash of its
    // 4-tuple (SO_REUSEPORT), so 16 in a row make it all but certain that
    // every worker has the new policy (not a proof; see docs/robustness.md).
    let need = if load.cfg.concurrency <= 1 { 1 } else { 16 };
    let mut n = 0;
    let mut in_a_row = 0;
    loop {
        n += 1;
        if probe(load, t)? == Some(want) {
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
